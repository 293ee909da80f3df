#include <syncwarden/kernel/cli.hpp>
#include <syncwarden/kernel/clock.hpp>
#include <syncwarden/kernel/worker.hpp>

#include <iostream>
#include <sys/prctl.h>

int main(int argc, char** argv) {
    // The same binary hosts connectors in worker processes.
    if (syncwarden::kernel::is_worker_command(argc, argv)) return syncwarden::kernel::worker_main(argc, argv);
    // Not dumpable: no process of another identity, and no confined worker,
    // may open this one's /proc/<pid>/mem, environ or fd/, or trace it.
    ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    std::vector<std::string> args(argv + 1, argv + argc);
    syncwarden::kernel::system_clock clk;
    return syncwarden::kernel::run_cli(args, std::cout, std::cerr, clk);
}
