#include <syncwarden/kernel/clock.hpp>
#include <syncwarden/kernel/config.hpp>
#include <syncwarden/kernel/gates.hpp>
#include <syncwarden/kernel/store.hpp>

#include <set>

namespace syncwarden::kernel {

bool gate_stage_result::holds() const {
    for (auto& v : verdicts)
        if (v.holds()) return true;
    return false;
}

Result<gate_stage_result> run_gate_stage(plan& p, const gate_stage_input& in, const job_config& job,
                                         run_store& store, const clock& clk, finding_log& findings,
                                         const gate_allowance& allow) {
    const source_counts& sources = in.sources;
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
    for (auto& [entity, l] : in.layouts)
        if (sources.count(entity)) out.profile.layouts[entity] = l;
    out.profile.formats = in.formats;
    for (auto& ep : p.entities) out.profile.target_sizes[ep.schema.name] = ep.current.size();
    auto last = store.last_good_profile(job.name);
    if (!last) return last.status();
    std::optional<std::pair<std::string, run_profile>> last_good;
    if (*last) {
        last_good = std::pair{(*last)->first, run_profile::from_json(nlohmann::json::parse((*last)->second, nullptr, false))};
        layout_drift(out.profile.layouts, last_good->second.layouts, last_good->first, findings);
        format_drift(out.profile, last_good->second, last_good->first, findings);
    }
    out.verdicts = evaluate_gates({p, sources, last_good, findings, job.gates, allow});
    return out;
}

void format_drift(const run_profile& now, const run_profile& before, const std::string& last_run,
                  finding_log& findings) {
    auto pct = [](double share) { return std::to_string(static_cast<int>(share * 100 + 0.5)) + "%"; };
    for (auto& c : compare_formats(before.formats, now.formats)) {
        std::string file;
        uint64_t column = 0;
        if (auto l = now.layouts.find(c.entity); l != now.layouts.end()) {
            file = l->second.file;
            for (size_t i = 0; i < l->second.columns.size(); ++i)
                if (l->second.columns[i] == c.field) column = i + 1;
        }
        findings.add({"warning", "format_changed", c.entity, file, 0, column, c.example_key,
                      c.entity + "." + c.field + " changed format since the last good run " + last_run + ": " +
                          pct(c.was_share) + " of its values looked like " + c.was + " then, " +
                          pct(c.now_share_of_was) + " do now; " + pct(c.now_share) + " look like " + c.now +
                          (c.example_key.empty() ? "" : " (first: '" + c.example_key + "')") +
                          ". Check the export before the mapping reads them"},
                     true);
    }
}

void layout_drift(const source_layouts& now, const source_layouts& before, const std::string& last_run,
                  finding_log& findings) {
    for (auto& [entity, l] : now) {
        auto b = before.find(entity);
        if (b == before.end()) continue;
        const std::set<std::string> had(b->second.columns.begin(), b->second.columns.end());
        const std::set<std::string> has(l.columns.begin(), l.columns.end());
        for (size_t i = 0; i < l.columns.size(); ++i)
            if (!l.columns[i].empty() && !had.count(l.columns[i]))
                findings.add({"warning", "column_added", entity, l.file, 1, i + 1, "",
                              "column '" + l.columns[i] + "' is new since the last good run " + last_run +
                                  "; check that the export still means what the mapping expects"},
                             true);
        for (size_t i = 0; i < b->second.columns.size(); ++i)
            if (!b->second.columns[i].empty() && !has.count(b->second.columns[i]))
                findings.add({"warning", "column_removed", entity, l.file, 1, 0, "",
                              "column '" + b->second.columns[i] + "' (column " + std::to_string(i + 1) + " in " +
                                  (b->second.file.empty() ? "the last good run" : b->second.file) +
                                  ") is gone since the last good run " + last_run +
                                  "; the fields it fed are now empty"},
                             true);
    }
}

}  // namespace syncwarden::kernel
