#include <syncwarden/kernel/clock.hpp>
#include <syncwarden/kernel/config.hpp>
#include <syncwarden/kernel/gates.hpp>
#include <syncwarden/kernel/store.hpp>

namespace syncwarden::kernel {

bool gate_stage_result::holds() const {
    for (auto& v : verdicts)
        if (v.holds()) return true;
    return false;
}

Result<gate_stage_result> run_gate_stage(plan& p, const source_counts& sources, const job_config& job,
                                         run_store& store, const clock& clk, const finding_log& findings,
                                         const gate_allowance& allow) {
    using time_point = std::chrono::system_clock::time_point;
    const time_point now = clk.now();
    std::map<std::string, std::map<std::string, time_point>> since;
    for (auto& [entity, pol] : job.gates.deprovision) {
        if (!pol.deactivate) continue;
        auto known = store.deactivations(job.name, entity);
        if (!known) return known.status();
        auto& out = since[entity];
        for (auto& [key, at] : *known)
            if (auto t = parse_iso8601(at)) out[key] = *t;
    }
    auto seen = protect_and_deprovision(p, {job.gates, since, now, job.file.string()});
    if (!seen) return seen.status();
    for (auto& [entity, pol] : job.gates.deprovision) {
        if (!pol.deactivate) continue;
        static const std::vector<std::string> k_none;
        auto first = seen->first_seen.find(entity);
        auto forget = seen->forget.find(entity);
        if (auto s = store.update_deactivations(job.name, entity, first == seen->first_seen.end() ? k_none : first->second,
                                                iso8601(now), forget == seen->forget.end() ? k_none : forget->second);
            !s)
            return s;
    }
    gate_stage_result out;
    out.profile.sources = sources;
    for (auto& ep : p.entities) out.profile.target_sizes[ep.schema.name] = ep.current.size();
    auto last = store.last_good_profile(job.name);
    if (!last) return last.status();
    std::optional<std::pair<std::string, run_profile>> last_good;
    if (*last)
        last_good = std::pair{(*last)->first, run_profile::from_json(nlohmann::json::parse((*last)->second, nullptr, false))};
    out.verdicts = evaluate_gates({p, sources, last_good, findings, job.gates, allow});
    return out;
}

}  // namespace syncwarden::kernel
