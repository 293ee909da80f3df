// One run, end to end: the planner makes the plan, the plan is persisted,
// the gates check it, and the applier applies the persisted plan. Records
// everything in the run store. Knows nothing of the CLI.
#pragma once

#include <syncwarden/kernel/sandbox.hpp>

#include <syncwarden/kernel/audit.hpp>
#include <syncwarden/kernel/clock.hpp>
#include <syncwarden/kernel/config.hpp>
#include <syncwarden/kernel/gates.hpp>
#include <syncwarden/kernel/plan.hpp>
#include <syncwarden/kernel/registry.hpp>
#include <syncwarden/kernel/retry.hpp>
#include <syncwarden/kernel/secrets.hpp>
#include <syncwarden/kernel/store.hpp>
#include <syncwarden/kernel/worker.hpp>

#include <chrono>
#include <filesystem>
#include <memory>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace syncwarden::kernel {

struct run_options {
    bool dry_run = false;
    std::filesystem::path plan_out;  // also write the plan here
    size_t preview = 10;             // how many changes to describe in the outcome
    bool no_wait = false;            // fail (busy) instead of waiting for another run's target lock
    // runs retry-failed: only changes of these target keys, by entity.
    std::map<std::string, std::set<std::string>> only_keys;
    std::string retry_of;            // the run whose failed changes these are
    gate_allowance allow;            // --allow: limits pre-approved for this run
    // `runs approve`: the held run whose plan this run applies, if the
    // source and the target are still as they were when it was made.
    struct approved_plan {
        std::string run_id, by, plan_file, digest, content_digest;
        std::optional<std::string> state_token;
    };
    std::optional<approved_plan> approval;
    std::string trigger;  // "" for the pipeline's actor
    std::string run_id;   // "" for a new one; the daemon names its runs before they start
};

// "r20261126T140642-3fa9c1": a new run id, from the time and 24 random bits.
std::string new_run_id(const clock& clk);
// An id new_run_id() could have made (r, then letters, digits and '-').
bool valid_run_id(const std::string& id);

struct run_outcome {
    Status status;                    // the run's error, if it failed
    run_record run;
    std::vector<finding_record> findings;
    size_t findings_not_kept = 0;     // beyond the cap, counted only
    size_t blocking_findings = 0;
    std::map<std::string, change_counts> planned;
    size_t applied = 0, failed = 0;
    std::vector<std::string> preview;
    std::filesystem::path plan_path;
    std::string retry_of;
    std::vector<gate_verdict> verdicts;
    size_t protected_records = 0;
    std::vector<std::string> allowed;  // --allow, as given
    // `runs approve`: whether the approved plan itself was applied, and if
    // not, why it was stale.
    bool applied_approved_plan = false;
    std::string stale_reason;
    // For the run's audit summary: the job file's digest as read, the build
    // ids of the connectors by role, and when each phase started.
    std::string job_digest;
    std::map<std::string, std::string> builds;
    // The secrets each connector's settings named, by role, and the version
    // used (never a value).
    std::vector<std::pair<std::string, secret_use>> secrets_used;
    std::vector<std::pair<std::string, std::chrono::system_clock::time_point>> phases;
    // Requests the connectors sent again through the host's retry_wait
    // (ABI 1.4), and how long the kernel made them wait.
    size_t connector_retries = 0;
    std::chrono::milliseconds connector_retry_wait{0};
    // What each connector's worker was granted, by role, and the sandbox
    // layers the run went without ("in-process": no sandbox at all).
    std::map<std::string, std::vector<grant>> grants;
    std::vector<std::string> unconfined;
};

// A decision on a held run, for `runs approve` and `runs reject`.
struct decision {
    std::string by, reason;
    // `--plan DIGEST`: the plan the operator reviewed (its digest, or a
    // prefix of at least 8 hex digits); refused when the held plan differs.
    std::string plan;
};

class pipeline {
public:
    pipeline(registry& reg, run_store& store, const clock& clk, std::filesystem::path data_dir);
    ~pipeline();
    // Who starts runs through this pipeline, for the audit log: "cli:USER",
    // "schedule". A run's trigger, unless its options name another.
    void set_actor(std::string a) { actor_ = std::move(a); }
    // The kernel config file, watched for changes like the job files.
    void set_kernel_config(std::filesystem::path f) { kernel_config_ = std::move(f); }
    // Plans the job; without dry_run also applies the plan.
    run_outcome run(const job_config& job, const run_options& opts);
    // Applies the stored plan of an earlier dry run, as a new run.
    run_outcome apply_stored(const std::string& run_id, bool no_wait = false);
    // Continues a cancelled or interrupted run (or one stopped by its target
    // or connector) from its persisted plan and checkpoint, as the same run.
    run_outcome resume(const std::string& run_id, bool no_wait = false);
    // Plans the job of `run_id` again, keeping only the changes of the keys
    // whose change failed in that run: re-checked against the source and
    // the target as they are now.
    run_outcome retry_failed(const std::string& run_id, run_options opts);
    // Applies exactly the plan of a held run, as a new run. When the source
    // or the target changed since it was made, that plan is stale and is not
    // applied: the job is planned and gated again, and the new run holds
    // again if a gate still trips. The held run is closed either way.
    run_outcome approve(const std::string& run_id, const decision& d, bool no_wait = false);
    // Closes a held run without applying anything.
    Status reject(const std::string& run_id, const decision& d);
    // Runs stop (as cancelled) once this flag is set; it must outlive them.
    void set_cancel(const cancel_flag* c) { cancel_ = c; }
    // Waits between retries and for the rate limit; tests pass one that
    // moves their manual clock. It must outlive the runs.
    void set_sleeper(sleeper* s) { sleeper_ = s ? s : &real_; }

private:
    registry& registry_;
    run_store& store_;
    const clock& clock_;
    std::filesystem::path data_dir_;
    const cancel_flag* cancel_ = nullptr;
    std::string actor_ = "cli";
    std::unique_ptr<audit_log> audit_;
    // The audit log, opened (its key loaded or created) at first use.
    Result<audit_log*> audit();
    std::filesystem::path kernel_config_;
    Status config_events(const std::string& run_id, const std::filesystem::path& job_file,
                         const std::string& job_digest, std::vector<audit_event>& events);
    real_sleeper real_;
    sleeper* sleeper_ = &real_;
};

// Exit code of the `syncwarden` command for a failed status (README).
int exit_code_for(const Status& s);

}  // namespace syncwarden::kernel
