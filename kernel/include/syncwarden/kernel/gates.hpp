// The gates between a persisted plan and the applier. Today: error findings
// in the input block the run. A failing gate means nothing is applied.
#pragma once

#include <syncwarden/kernel/findings.hpp>
#include <syncwarden/kernel/result.hpp>

namespace syncwarden::kernel {

Status check_gates(const finding_log& findings);

}  // namespace syncwarden::kernel
