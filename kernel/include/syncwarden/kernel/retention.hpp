// `syncwarden retention apply`: removes what the kernel config's retention
// policy no longer keeps - old plans (the only place people's data lives),
// per-change results and daily log files - and records what it removed in
// the audit log. Run records, their summaries, plan digests and the audit
// log stay, so `audit verify` and `audit report` still work for every run.
#pragma once

#include <syncwarden/kernel/clock.hpp>
#include <syncwarden/kernel/config.hpp>
#include <syncwarden/kernel/result.hpp>
#include <syncwarden/kernel/store.hpp>

#include <filesystem>
#include <string>
#include <vector>

namespace syncwarden::kernel {

struct retention_report {
    std::vector<std::string> plans;       // runs whose plans were removed
    std::vector<std::string> results_of;  // runs whose change results were removed
    uint64_t results = 0;                 // how many change results
    std::vector<std::string> logs;        // log files removed
    std::vector<std::string> kept_held;   // held runs past the limit: their plans await a decision
};

// With dry_run, only says what it would remove.
Result<retention_report> apply_retention(run_store& store, const std::filesystem::path& data_dir,
                                         const retention_policy& policy, const clock& clk, bool dry_run);

}  // namespace syncwarden::kernel
