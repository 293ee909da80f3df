#include <syncwarden/kernel/cli.hpp>
#include <syncwarden/kernel/clock.hpp>

#include <iostream>

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    syncwarden::kernel::system_clock clk;
    return syncwarden::kernel::run_cli(args, std::cout, std::cerr, clk);
}
