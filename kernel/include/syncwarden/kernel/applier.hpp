// The applier: a persisted plan to its target.
//
// It refuses a plan whose target changed since it was made (the state token),
// sends the changes in batches, retries what the target reports as retryable
// or throttled (retry.hpp), records each batch's results as "staged" together
// with a checkpoint, and calls the target's commit. Staged changes become
// "applied" only in the store transaction that records the commit
// (run_store::finish_apply, called by the pipeline with the final run row).
#pragma once

#include <syncwarden/kernel/clock.hpp>
#include <syncwarden/kernel/plan_file.hpp>
#include <syncwarden/kernel/retry.hpp>
#include <syncwarden/kernel/session.hpp>
#include <syncwarden/kernel/store.hpp>
#include <syncwarden/kernel/worker.hpp>

#include <functional>
#include <map>
#include <optional>
#include <string>

namespace syncwarden::kernel {

struct apply_outcome {
    size_t staged = 0;  // accepted by apply; durable only once committed
    size_t failed = 0;  // refused by apply
    size_t resent = 0;  // sends of a change after its first
    size_t skipped = 0; // acknowledged by an earlier attempt of this run (resume)
    std::chrono::milliseconds waited{0};  // backoff and retry-after waits
    std::map<std::string, size_t> failed_by_category;
    // By target entity and change kind: {staged, failed, skipped}.
    std::map<std::string, std::map<std::string, std::array<size_t, 3>>> by_entity;
    bool commit_attempted = false, committed = false, aborted = false;
    std::string commit_category, commit_message;
    std::string last_error;  // "people/s-1: message" of the last refused change
};

struct apply_context {
    apply_context(const clock& c, sleeper& s, retry_policy p) : clk(c), sleep(s), policy(std::move(p)) {}
    const clock& clk;
    sleeper& sleep;
    retry_policy policy;
    const cancel_flag* cancel = nullptr;
    // The end of the apply phase on clk: a retry that would wait past it
    // ends its changes as failed_retryable instead.
    std::optional<std::chrono::system_clock::time_point> deadline;
    // Paces apply calls when the connector does not call acquire itself.
    rate_limiter* limiter = nullptr;
    const bool* connector_paces = nullptr;
    uint64_t seed = 0;  // for the jitter
    // Resume: changes (by plan position) acknowledged before are not sent
    // again; the batch that starts at `inflight_seq` was in flight when the
    // run stopped, and its changes go out with attempt 2.
    std::function<bool(uint64_t seq)> acknowledged;
    std::optional<uint64_t> inflight_seq;
    // Compare the target's state token with the plan's first (off for a
    // resume after the target acknowledged some of the plan).
    bool check_state = true;
    // ABI 1.4, a target with SW_CAP_TARGET_IDS: the system its ids belong
    // to (the one-run-per-system lock's name for it). Empty: the kernel
    // keeps no ids for this target.
    std::string target_system;
};

Status apply_plan(const plan_reader& plan, connector_session& target, run_services& rs, run_store& store,
                  const std::string& run_id, apply_outcome& out, const apply_context& ctx);

}  // namespace syncwarden::kernel
