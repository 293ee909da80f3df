// A target's own diff hook: the kernel hands it every desired record and
// takes the plan it emits in place of the generic diff's.
#pragma once

#include <syncwarden/kernel/plan.hpp>
#include <syncwarden/kernel/session.hpp>
#include <syncwarden/kernel/store.hpp>

#include <functional>
#include <map>
#include <string>

namespace syncwarden::kernel {

// `plans` holds the desired (sorted) and current records per entity on entry
// and the target's plan on return. Malformed changes are reported as findings.
Status run_custom_diff(connector_session& target, plan& plans, const std::map<std::string, size_t>& target_index,
                       run_services& rs, const std::function<void(finding_record)>& add_finding);

}  // namespace syncwarden::kernel
