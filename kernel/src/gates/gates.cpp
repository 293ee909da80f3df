#include <syncwarden/kernel/gates.hpp>

namespace syncwarden::kernel {

Status check_gates(const finding_log& findings) {
    if (findings.blocking() == 0) return Status::ok();
    return Status::error(error_kind::input, std::to_string(findings.blocking()) +
                                                " error finding(s) in the input; nothing was applied. First: " +
                                                findings.first_blocking() +
                                                ". Fix the source data (or the mapping) and run again");
}

}  // namespace syncwarden::kernel
