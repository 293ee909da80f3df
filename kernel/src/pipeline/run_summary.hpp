// A run's immutable summary for the audit log, made from its outcome.
#pragma once

#include <syncwarden/kernel/applier.hpp>
#include <syncwarden/kernel/audit.hpp>
#include <syncwarden/kernel/pipeline.hpp>

namespace syncwarden::kernel {

// Counts, times, versions, verdicts and digests; never a record's key or
// value, never an error's message (it may quote them): its kind and
// category only.
audit_event run_summary_event(const run_outcome& out, const apply_outcome& applied, const std::string& plan_digest,
                              std::chrono::system_clock::time_point end);

}  // namespace syncwarden::kernel
