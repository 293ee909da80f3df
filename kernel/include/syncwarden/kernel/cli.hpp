// The `syncwarden` command, callable in-process for tests.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace syncwarden::kernel {

class clock;

// Returns the process exit code (README, "Exit codes").
int run_cli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
            const clock& clk);

}  // namespace syncwarden::kernel
