// The gates between a plan and the applier (config/README.md, "Safety
// gates"). They run in dry runs too. Each gives a verdict with its numbers;
// a verdict that holds stops the run before anything is applied, until an
// operator approves that exact plan.
#pragma once

#include <syncwarden/kernel/findings.hpp>
#include <syncwarden/kernel/gate_policy.hpp>
#include <syncwarden/kernel/plan.hpp>
#include <syncwarden/kernel/result.hpp>
#include <syncwarden/kernel/value_formats.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace syncwarden::kernel {

// What the source sent for one of its entities.
struct source_count {
    uint64_t active = 0, tobedeleted = 0;
    bool sent = false;   // emitted at least one batch
    bool delta = false;  // in delta mode
};
using source_counts = std::map<std::string, source_count>;

// Where a source read an entity, and the columns it found (ABI 1.3 layout).
struct source_layout {
    std::string file;
    std::vector<std::string> columns;
};
using source_layouts = std::map<std::string, source_layout>;  // by source entity

// The profile of a run that the next runs compare against.
struct run_profile {
    source_counts sources;
    source_layouts layouts;
    format_profile formats;
    std::map<std::string, uint64_t> target_sizes;  // by target entity
    nlohmann::json to_json() const;
    static run_profile from_json(const nlohmann::json& j);
};

struct gate_input {
    const plan& p;
    const source_counts& sources;
    // The last good run of the job (its id and profile), if there is one.
    const std::optional<std::pair<std::string, run_profile>>& last_good;
    const finding_log& findings;
    const gate_policy& policy;
    const gate_allowance& allow;
};

std::vector<gate_verdict> evaluate_gates(const gate_input& in);

// The verdicts that hold, joined for an operator: "would delete 4,812 of
// 9,630 students (50%), limit 10%; ...". Empty when none holds.
std::string hold_reason(const std::vector<gate_verdict>& v);

// The verdicts as a JSON array, as the plan file and `runs show --json` give them.
nlohmann::json verdicts_json(const std::vector<gate_verdict>& v);

// 9630 -> "9,630"
std::string grouped(uint64_t n);

// Removes from the plan the deletes that a protect rule covers (listed in
// entity_plan::protected_records), and turns the deletes of entities with a
// deactivate policy into deactivating updates. A record that is already
// deactivated is deleted once its grace period has passed since
// `deactivated_since` (entity -> key -> time); before that, nothing is
// planned for it. Errors name the job file and the JSON path of a rule that
// does not fit the target's contract.
struct deprovision_context {
    const gate_policy& policy;
    const std::map<std::string, std::map<std::string, std::chrono::system_clock::time_point>>& deactivated_since;
    std::chrono::system_clock::time_point now;
    std::string job_file;
};
// What the run store should learn about deactivated records: records found
// deactivated that it had no time for (their grace starts now), and records
// that are active again or gone (their time is forgotten).
struct deactivation_changes {
    std::map<std::string, std::vector<std::string>> first_seen, forget;  // entity -> keys
};
Result<deactivation_changes> protect_and_deprovision(plan& p, const deprovision_context& ctx);

class run_store;
class clock;
struct job_config;

// The gate stage of a run, on the plan the planner made: protection and the
// deprovisioning policy change the plan; then every gate gives its verdict.
// What the target showed about deactivated records is recorded in the store.
struct gate_stage_result {
    std::vector<gate_verdict> verdicts;
    run_profile profile;
    bool holds() const;
};
// Schema drift against the last good run is reported into `findings`
// (warnings unless the job raises them) before the gates look at them.
struct gate_stage_input {
    const source_counts& sources;
    const source_layouts& layouts;
    const format_profile& formats;
};
Result<gate_stage_result> run_gate_stage(plan& p, const gate_stage_input& in, const job_config& job,
                                         run_store& store, const clock& clk, finding_log& findings,
                                         const gate_allowance& allow);

// Findings for columns that appeared in or vanished from a source's files
// since the last good run.
void layout_drift(const source_layouts& now, const source_layouts& before, const std::string& last_run,
                  finding_log& findings);
// Findings for fields whose values changed format since the last good run.
void format_drift(const run_profile& now, const run_profile& before, const std::string& last_run,
                  finding_log& findings);

}  // namespace syncwarden::kernel
