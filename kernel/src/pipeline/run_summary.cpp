#include "run_summary.hpp"

#include <syncwarden/kernel/os_user.hpp>

namespace syncwarden::kernel {
namespace {

double seconds_between(std::chrono::system_clock::time_point a, std::chrono::system_clock::time_point b) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(b - a).count();
    return static_cast<double>(ms < 0 ? 0 : ms) / 1000.0;
}

const char* mode_of(const run_outcome& out) {
    const run_record& r = out.run;
    if (r.dry_run) return "dry_run";
    if (out.applied_approved_plan) return "approved_plan";
    if (!out.retry_of.empty()) return "retry_failed";
    if (!r.plan_of.empty()) return "apply_stored";
    return "apply";
}

}  // namespace

audit_event run_summary_event(const run_outcome& out, const apply_outcome& a, const std::string& plan_digest,
                              std::chrono::system_clock::time_point end) {
    const run_record& r = out.run;
    nlohmann::json d;
    d["job"] = r.job;
    d["job_digest"] = out.job_digest;
    d["trigger"] = r.trigger;
    d["mode"] = mode_of(out);
    if (!r.plan_of.empty()) d["plan_of"] = r.plan_of;
    if (!out.retry_of.empty()) d["retry_of"] = out.retry_of;
    auto connector = [&](const std::string& role, const std::string& name, const std::string& version) {
        auto b = out.builds.find(role);
        return nlohmann::json{{"name", name}, {"version", version}, {"build_id", b == out.builds.end() ? "" : b->second}};
    };
    d["source"] = connector("source", r.source_connector, r.source_version);
    nlohmann::json secrets = nlohmann::json::array();
    for (auto& [role, u] : out.secrets_used) secrets.push_back({{"role", role}, {"name", u.name}, {"version", u.version}});
    if (!secrets.empty()) d["secrets"] = secrets;
    d["os_user"] = authenticated_user().to_json();
    // What each connector's worker could reach, and the sandbox layers the
    // run went without: paths and endpoints, never people's data.
    nlohmann::json grants = nlohmann::json::object();
    for (auto& [role, g] : out.grants) grants[role] = grants_json(g);
    d["grants"] = grants;
    if (!out.unconfined.empty()) d["unconfined"] = out.unconfined;
    d["target"] = connector("target", r.target_connector, r.target_version);
    d["started_at"] = r.created_at;
    d["ended_at"] = r.finished_at;
    nlohmann::json phases = nlohmann::json::object();
    for (size_t i = 0; i < out.phases.size(); ++i) {
        const auto stop = i + 1 < out.phases.size() ? out.phases[i + 1].second : end;
        phases[out.phases[i].first] = seconds_between(out.phases[i].second, stop);
    }
    d["phase_seconds"] = phases;
    // Per entity and kind: planned, applied, failed, skipped.
    nlohmann::json entities = nlohmann::json::object();
    for (auto& [entity, c] : out.planned) {
        const std::pair<const char*, size_t> kinds[] = {
            {"create", c.create}, {"update", c.update}, {"delete", c.remove}, {"deactivate", c.deactivate},
            {"adopt", c.adopt}};
        for (auto& [kind, n] : kinds)
            if (n) entities[entity][kind] = {{"planned", n}, {"applied", 0}, {"failed", 0}, {"skipped", 0}};
    }
    for (auto& [entity, kinds] : a.by_entity)
        for (auto& [kind, n] : kinds) {
            auto& x = entities[entity][kind];
            if (!x.contains("planned")) x["planned"] = 0;
            // Staged changes are applied once the target committed them.
            x["applied"] = a.committed ? n[0] + n[2] : 0;
            x["failed"] = n[1] + (a.commit_attempted && !a.committed ? n[0] : 0);
            x["skipped"] = n[2];
        }
    d["changes"] = entities;
    const size_t sent = out.applied + out.failed;
    d["applied"] = out.applied;
    d["failed"] = out.failed;
    // Per mille, as an integer: canonical JSON writes it the same everywhere.
    d["error_rate_permille"] = sent ? (out.failed * 1000 + sent / 2) / sent : 0;
    nlohmann::json cats = nlohmann::json::object();
    for (auto& [cat, n] : a.failed_by_category) cats[cat] = n;
    if (a.commit_attempted && !a.committed && a.staged)
        cats[a.commit_category.empty() ? "commit_failed" : a.commit_category] = a.staged;
    d["failures_by_category"] = cats;
    d["findings"] = {{"extracted", out.findings.size() + out.findings_not_kept}, {"blocking", out.blocking_findings}};
    nlohmann::json gates = nlohmann::json::array();
    for (auto& v : out.verdicts)
        gates.push_back({{"gate", v.gate}, {"entity", v.entity}, {"kind", v.kind}, {"verdict", v.verdict},
                         {"count", v.count}, {"base", v.base}, {"limit", v.limit}});
    d["gates"] = gates;
    if (!out.allowed.empty()) d["allowed"] = out.allowed;
    if (out.protected_records) d["protected"] = out.protected_records;
    d["plan_digest"] = plan_digest;
    nlohmann::json outcome{{"state", r.state}, {"exit_code", r.exit_code}};
    if (!out.status) {
        outcome["error_kind"] = to_string(out.status.kind());
        if (!r.category.empty()) outcome["category"] = r.category;
    }
    d["outcome"] = outcome;
    return {"run_summary", r.id, std::move(d)};
}

}  // namespace syncwarden::kernel
