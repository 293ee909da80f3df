// The applier: a persisted plan to its target.
//
// It refuses a plan whose target changed since it was made (the state token),
// sends the changes in batches, records each batch's results as "staged"
// together with a checkpoint, and calls the target's commit. Staged changes
// become "applied" only in the store transaction that records the commit
// (run_store::finish_apply, called by the pipeline with the final run row).
#pragma once

#include <syncwarden/kernel/clock.hpp>
#include <syncwarden/kernel/plan_file.hpp>
#include <syncwarden/kernel/session.hpp>
#include <syncwarden/kernel/store.hpp>
#include <syncwarden/kernel/worker.hpp>

#include <string>

namespace syncwarden::kernel {

struct apply_outcome {
    size_t staged = 0;  // accepted by apply; durable only once committed
    size_t failed = 0;  // refused by apply
    bool commit_attempted = false, committed = false;
    std::string commit_category, commit_message;
    std::string last_error;  // "people/s-1: message" of the last refused change
};

Status apply_plan(const plan_reader& plan, connector_session& target, run_services& rs, run_store& store,
                  const clock& clk, const std::string& run_id, apply_outcome& out,
                  const cancel_flag* cancel = nullptr);

}  // namespace syncwarden::kernel
