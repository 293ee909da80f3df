// The planner: contract, extract, map and diff of one run. It ends with the
// change plan in memory and the target's state token; the pipeline persists
// both (plan_file.hpp) before anything else looks at them.
#pragma once

#include <syncwarden/kernel/config.hpp>
#include <syncwarden/kernel/findings.hpp>
#include <syncwarden/kernel/gates.hpp>
#include <syncwarden/kernel/plan.hpp>
#include <syncwarden/kernel/session.hpp>
#include <syncwarden/kernel/value_formats.hpp>

#include <functional>
#include <optional>
#include <string>

namespace syncwarden::kernel {

struct planned {
    plan changes;
    std::optional<std::string> state_token;  // what the target reported while reading
    size_t extracted = 0;                    // records the source emitted
    source_counts sources;                   // per source entity the job reads
    format_profile formats;                  // the formats of the source's values, sampled
};

class planner {
public:
    // `phase` is told when a phase starts ("contract", "extract", "diff");
    // a failed status from it stops the planner.
    using phase_fn = std::function<Status(const char*)>;
    planner(const job_config& job, connector_session& source, connector_session& target, run_services& source_rs,
            run_services& target_rs, finding_log& findings, phase_fn phase);
    ~planner();
    planner(const planner&) = delete;
    planner& operator=(const planner&) = delete;

    Result<planned> run();
    // Where the source read each entity (ABI 1.3 layouts, filled during
    // extract): findings about a value then name its file and column.
    void set_layouts(const source_layouts* l);
    // Where `unique` rules get their names (identity rules); required when
    // the job has one.
    void set_names(class name_registry* n);

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace syncwarden::kernel
