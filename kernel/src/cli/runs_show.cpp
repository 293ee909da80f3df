#include "cli_common.hpp"

#include <syncwarden/kernel/plan_file.hpp>

#include <unordered_map>

namespace fs = std::filesystem;

#include <syncwarden/kernel/text.hpp>

#include <nlohmann/json.hpp>

#include <fstream>
#include <iomanip>

namespace syncwarden::kernel::cli_detail {
namespace {

// One change of the plan file for people, with old and new values.
std::string change_text(const nlohmann::json& ch) {
    std::string line = ch.value("kind", "?") + " " + ch.value("entity", "?") + "/" + ch.value("key", "?");
    if (auto f = ch.find("fields"); f != ch.end() && f->is_object()) {
        bool first = true;
        for (auto& item : f->items()) {
            // Named, not bound: the lambda below captures it (clang 14).
            const std::string& name = item.key();
            const auto& v = item.value();
            line += first ? ": " : ", ";
            first = false;
            line += name;
            // null: absent, in a field that tells it from the empty string
            auto shown = [&](const char* which) {
                auto it = v.find(which);
                return it != v.end() && it->is_string() ? "'" + it->get<std::string>() + "'" : std::string("null");
            };
            if (v.contains("old")) line += " " + shown("old") + " -> " + shown("new");
            else line += "=" + shown("new");
        }
    }
    return printable(line);
}

// The changes of a run's plan, filtered by entity and kind. The plan file
// holds one change per line, so it is read line by line, never whole.
int show_changes(context& c, run_store& store, const run_record& r, parsed_args& pa) {
    auto plan = store.get_plan(r.plan_of.empty() ? r.id : r.plan_of);
    if (!plan) return fail(c, plan.status());
    if (!*plan) return fail(c, Status::error(error_kind::not_found, "run " + r.id + " has no plan"));
    if (!(*plan)->purged_at.empty())
        return fail(c, Status::error(error_kind::not_found, "the plan of run " + r.id + " was removed by the retention "
                                                            "policy on " + (*plan)->purged_at +
                                                            "; its summary is in `syncwarden audit report " + r.id + "`"));
    size_t limit = 50;
    if (pa.opts.count("--limit")) {
        try { limit = std::stoul(pa.opts["--limit"]); } catch (...) { return usage(c, "--limit takes a whole number"); }
    }
    const std::string entity = pa.opts.count("--entity") ? pa.opts["--entity"] : "";
    const std::string kind = pa.opts.count("--kind") ? pa.opts["--kind"] : "";
    if (!kind.empty() && kind != "create" && kind != "update" && kind != "delete" && kind != "deactivate")
        return usage(c, "--kind is one of create, update, delete, deactivate");
    std::ifstream in((*plan)->path);
    if (!in) return fail(c, Status::error(error_kind::not_found, "the plan file " + (*plan)->path + " is gone"));
    std::string line;
    size_t matched = 0, shown = 0;
    nlohmann::json protected_list = nlohmann::json::array();
    for (bool header = true; std::getline(in, line); header = false) {
        if (header) {
            // The first line is the plan's header, up to its findings; it
            // lists the protected records.
            auto head = nlohmann::json::parse(line.substr(0, line.find(",\"findings\":[")) + "}", nullptr, false);
            if (head.is_object() && head.contains("protected")) protected_list = head["protected"];
            continue;
        }
        if (line.rfind("{\"id\":", 0) != 0) continue;  // findings and the closing lines
        if (line.back() == ',') line.pop_back();
        auto ch = nlohmann::json::parse(line, nullptr, false);
        if (!ch.is_object()) continue;
        if (!entity.empty() && ch.value("entity", "") != entity) continue;
        if (!kind.empty() && ch.value("kind", "") != kind) continue;
        ++matched;
        if (shown < limit) {
            c.out << "  " << change_text(ch) << "\n";
            ++shown;
        }
    }
    if (matched > shown) c.out << "  ... and " << matched - shown << " more (--limit N shows more)\n";
    c.out << matched << " change(s)" << (entity.empty() ? "" : " of " + entity)
          << (kind.empty() ? "" : " of kind " + kind) << " in the plan of run " << r.id << "\n";
    size_t prot = 0;
    for (auto& p : protected_list) {
        if (!entity.empty() && p.value("entity", "") != entity) continue;
        if (prot++ == 0) c.out << "protected (kept out of the plan):\n";
        if (prot <= limit)
            c.out << "  " << printable(p.value("entity", "") + "/" + p.value("key", "")) << ": would "
                  << p.value("would", "") << ", protected by " << printable(p.value("rule", "")) << "\n";
    }
    return 0;
}

// Each change result's key from the run's plan, by position; `hashes`
// gets what the store held. A purged plan leaves the stored hashes.
void resolve_keys(run_store& store, const run_record& r, std::vector<change_result_record>& results,
                  std::vector<std::string>& hashes) {
    std::unordered_map<uint64_t, size_t> at;
    for (size_t i = 0; i < results.size(); ++i) {
        hashes[i] = results[i].key;
        at.emplace(results[i].seq, i);
    }
    if (at.empty()) return;
    auto pr = store.get_plan(r.plan_of.empty() ? r.id : r.plan_of);
    std::error_code ec;
    if (!pr || !*pr || (*pr)->plan_file.empty() || !fs::exists((*pr)->plan_file, ec)) return;
    auto reader = plan_reader::open((*pr)->plan_file, (*pr)->digest);
    if (!reader) return;
    (void)(*reader)->for_each_batch(4096, [&](const plan_header::entity&, const sw_change_batch& b, uint64_t first) {
        for (size_t k = 0; k < b.change_count; ++k)
            if (auto it = at.find(first + k); it != at.end())
                results[it->second].key.assign(b.changes[k].key.ptr, b.changes[k].key.len);
        return Status::ok();
    });
}

}  // namespace

int runs_show(context& c, run_store& store, parsed_args& pa) {
    const bool json = pa.opts.count("--json") > 0;
    if (pa.pos.size() != 2) return usage(c, "runs show takes one RUN_ID");
    auto r = store.get_run(pa.pos[1]);
    if (!r) return fail(c, r.status());
    auto findings = store.findings(r->id);
    if (!findings) return fail(c, findings.status());
    auto results = store.change_results(r->id);
    if (!results) return fail(c, results.status());
    // The store names changes by plan position (and failed ones by keyed
    // hash): their keys are read back from the plan, while it is kept.
    std::vector<std::string> hashes(results->size());
    resolve_keys(store, *r, *results, hashes);
    auto plan = store.get_plan(r->id);
    if (!plan) return fail(c, plan.status());
    auto verdicts = store.verdicts(r->id);
    if (!verdicts) return fail(c, verdicts.status());
    auto decisions = store.approvals(r->id);
    if (!decisions) return fail(c, decisions.status());
    if (pa.opts.count("--changes")) return show_changes(c, store, *r, pa);
    if (json) {
        nlohmann::json j{{"id", r->id}, {"job", r->job}, {"job_file", r->job_file}, {"state", r->state},
                         {"phase", r->phase}, {"dry_run", r->dry_run}, {"created_at", r->created_at},
                         {"finished_at", r->finished_at},
                         {"source", {{"connector", r->source_connector}, {"version", r->source_version}}},
                         {"target", {{"connector", r->target_connector}, {"version", r->target_version}}},
                         {"exit_code", r->exit_code}, {"error", r->error}, {"category", r->category},
                         {"summary", nlohmann::json::parse(r->summary_json, nullptr, false)}};
        if (*plan)
            j["plan"] = {{"path", (*plan)->path}, {"sha256", (*plan)->sha256}, {"file", (*plan)->plan_file},
                         {"digest", (*plan)->digest}, {"content_digest", (*plan)->content_digest},
                         {"purged_at", (*plan)->purged_at}};
        if (!r->plan_of.empty()) j["plan_of"] = r->plan_of;
        // What each connector's worker was granted, and the sandbox layers
        // the run went without (from the run's summary).
        const auto sum = nlohmann::json::parse(r->summary_json, nullptr, false);
        j["grants"] = sum.is_object() && sum.contains("grants") ? sum["grants"] : nlohmann::json::object();
        j["unconfined"] = sum.is_object() && sum.contains("unconfined") ? sum["unconfined"] : nlohmann::json::array();
        nlohmann::json fj = nlohmann::json::array();
        for (auto& f : *findings)
            fj.push_back({{"severity", f.severity}, {"code", f.code}, {"entity", f.entity}, {"file", f.file},
                          {"line", f.line}, {"column", f.column}, {"key", f.key}, {"message", f.message}});
        j["findings"] = fj;
        j["trigger"] = r->trigger;
        j["gates"] = verdicts_json(*verdicts);
        nlohmann::json dj = nlohmann::json::array();
        for (auto& a : *decisions)
            dj.push_back({{"action", a.action}, {"by", a.by}, {"at", a.at}, {"reason", a.reason},
                          {"plan_digest", a.plan_digest}, {"outcome", a.outcome}, {"os_user", a.os_user}});
        j["decisions"] = dj;
        nlohmann::json rj = nlohmann::json::array();
        for (auto& x : *results)
            rj.push_back({{"id", x.change_id}, {"entity", x.entity}, {"key", x.key},
                          {"key_hash", hashes[static_cast<size_t>(&x - results->data())]}, {"seq", x.seq},
                          {"kind", x.kind}, {"status", x.status}, {"category", x.category}, {"message", x.message},
                          {"attempts", x.attempts}});
        j["changes"] = rj;
        auto tries = store.attempts(r->id);
        if (!tries) return fail(c, tries.status());
        nlohmann::json aj = nlohmann::json::array();
        for (auto& a : *tries)
            aj.push_back({{"seq", a.seq}, {"attempt", a.attempt}, {"at", a.at}, {"status", a.status},
                          {"category", a.category}, {"message", a.message}, {"retry_after_ms", a.retry_after_ms}});
        j["retried_attempts"] = aj;
        c.out << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
        return 0;
    }
    c.out << "run " << r->id << "\n  job        " << r->job << " (" << r->job_file << ")\n  state      "
          << r->state << (r->dry_run ? " (dry run)" : "") << "\n  phase      " << r->phase
          << "\n  created    " << r->created_at << "\n  finished   " << r->finished_at << "\n  source     "
          << r->source_connector << " " << r->source_version << "\n  target     " << r->target_connector
          << " " << r->target_version << "\n  summary    " << r->summary_json << "\n";
    if (*plan)
        c.out << "  plan       " << (*plan)->path << " (digest " << (*plan)->digest.substr(0, 16) << ")"
              << ((*plan)->purged_at.empty() ? "" : ", removed by the retention policy on " + (*plan)->purged_at) << "\n";
    if (!r->plan_of.empty()) c.out << "  applies    the plan of run " << r->plan_of << "\n";
    if (const auto sum = nlohmann::json::parse(r->summary_json, nullptr, false); sum.is_object()) {
        if (sum.contains("grants") && sum["grants"].is_object())
            for (auto& [role, g] : sum["grants"].items()) {
                std::string line;
                for (auto& x : g)
                    line += (line.empty() ? "" : "; ") + x.value("kind", "") + " " + x.value("value", "");
                c.out << "  grants     " << role << ": " << printable(line.empty() ? "nothing" : line) << "\n";
            }
        if (sum.contains("connector_output") && sum["connector_output"].is_object()) {
            const auto& o = sum["connector_output"];
            c.out << "  output     " << o.value("lines", 0) << " lines the connectors printed or logged, in "
                  << printable(o.value("file", "")) << " (the data dir's)";
            if (o.value("dropped_lines", 0) > 0)
                c.out << "; " << o.value("dropped_lines", 0) << " more (" << o.value("dropped_bytes", 0)
                      << " bytes) over the cap of " << o.value("cap_bytes", 0) << " bytes were not kept";
            c.out << "\n";
        }
        if (sum.contains("unconfined") && sum["unconfined"].is_array() && !sum["unconfined"].empty()) {
            std::string layers;
            for (auto& l : sum["unconfined"]) layers += (layers.empty() ? "" : ", ") + l.get<std::string>();
            c.out << "  unconfined " << layers << " (the run's connectors went without)\n";
        }
    }
    if (r->trigger != "cli") c.out << "  started by " << r->trigger << "\n";
    if (r->state == "held") {
        c.out << "  held       " << printable(r->error) << "\n";
        c.out << "             nothing was applied. `syncwarden runs show " << r->id
              << " --changes` lists the changes;\n             `syncwarden runs approve " << r->id
              << " --as NAME` applies exactly this plan, `syncwarden runs reject " << r->id
              << " --as NAME --reason TEXT` closes it\n";
    } else if (!r->error.empty()) {
        c.out << "  " << std::left << std::setw(11) << (r->category.empty() || r->category == "held" ? "outcome" : "error")
              << (r->category.empty() || r->category == "held" ? "" : "[" + r->category + "] ") << printable(r->error)
              << "\n";
    }
    for (auto& a : *decisions)
        c.out << "  " << std::left << std::setw(11) << (a.action == "approve" ? "approved" : "rejected") << "by "
              << printable(a.by) << (a.os_user.empty() ? "" : " [os user " + printable(a.os_user) + "]") << " at " << a.at << (a.reason.empty() ? "" : ": " + printable(a.reason))
              << " (plan " << a.plan_digest.substr(0, 16) << ")\n";
    if (!findings->empty()) {
        c.out << "findings:\n";
        print_findings(c, *findings, 50);
    }
    print_verdicts(c, *verdicts, false);
    size_t failed = 0, staged = 0;
    // Failures grouped by category: how many, and a few examples each.
    std::map<std::string, std::vector<const change_result_record*>> by_category;
    for (auto& x : *results) {
        if (x.status == "applied") continue;
        if (x.status == "staged") {
            ++staged;
            continue;
        }
        ++failed;
        by_category[x.category.empty() ? x.status : x.category].push_back(&x);
    }
    if (failed) c.out << "failed changes by category:\n";
    for (auto& [cat, list] : by_category) {
        c.out << "  " << cat << ": " << list.size() << "\n";
        for (size_t i = 0; i < list.size() && i < 3; ++i)
            c.out << "    " << list[i]->kind << " " << list[i]->entity << "/" << printable(list[i]->key) << ": "
                  << list[i]->status << (list[i]->attempts > 1 ? " after " + std::to_string(list[i]->attempts) +
                                                                    " attempts"
                                                              : "")
                  << " " << printable(list[i]->message) << "\n";
        if (list.size() > 3) c.out << "    ... and " << list.size() - 3 << " more\n";
    }
    auto tries = store.attempts(r->id);
    if (!tries) return fail(c, tries.status());
    if (!tries->empty()) {
        std::map<std::string, size_t> retried;
        for (auto& a : *tries) ++retried[a.category.empty() ? a.status : a.category];
        c.out << "retried attempts: " << tries->size() << " (";
        bool first = true;
        for (auto& [cat, n] : retried) {
            c.out << (first ? "" : ", ") << cat << " " << n;
            first = false;
        }
        c.out << ")\n";
    }
    c.out << "changes recorded: " << results->size() << ", failed: " << failed;
    // Accepted by the target but never committed: a run that was killed,
    // or whose commit could not be recorded.
    if (staged) c.out << ", staged but not committed: " << staged;
    c.out << "\n";
    return 0;
}

}  // namespace syncwarden::kernel::cli_detail
