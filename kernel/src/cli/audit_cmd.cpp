// `syncwarden audit ...`: verify the log, keep and check heads and proofs,
// write a run's report, add an operator's note.
#include "cli_common.hpp"

#include <syncwarden/kernel/audit.hpp>
#include <syncwarden/kernel/os_user.hpp>
#include <syncwarden/kernel/config.hpp>
#include <syncwarden/kernel/text.hpp>

#include <fstream>
#include <sstream>

namespace fs = std::filesystem;

namespace syncwarden::kernel::cli_detail {
namespace {

Result<std::string> read_text(const fs::path& p, const std::string& what) {
    std::ifstream in(p);
    if (!in) return Status::error(error_kind::not_found, p.string() + ": cannot read " + what);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

Status write_text(const fs::path& p, const std::string& text) {
    std::ofstream out(p, std::ios::trunc);
    out << text;
    out.close();
    if (!out) return Status::error(error_kind::usage, p.string() + ": cannot write it");
    return Status::ok();
}

// --key FILE, else the public half of this data dir's signing key.
Result<verify_key> key_for(context& c, parsed_args& pa) {
    if (pa.opts.count("--key")) {
        auto pem = read_text(pa.opts["--key"], "the public key");
        if (!pem) return pem.status();
        auto k = verify_key::from_pem(*pem);
        if (!k) return k.status().context(pa.opts["--key"]);
        return k;
    }
    const fs::path file = audit_key_file(c.cfg.data_dir);
    std::error_code ec;
    if (!fs::exists(file, ec))
        return Status::error(error_kind::not_found, c.cfg.data_dir.string() + " has no audit signing key yet (it is "
                                                                               "made by the first run); or give --key");
    auto k = signing_key::load_or_create(file);
    if (!k) return k.status();
    return verify_key::from_pem(k->public_pem());
}

int verdict_exit(context& c, const audit_verdict& v, bool json) {
    if (json) {
        nlohmann::json j{{"ok", v.ok}, {"entries", v.entries}, {"heads", v.heads}, {"handovers", v.handovers}, {"root", v.root},
                         {"message", v.message}};
        if (v.bad_entry) j["bad_entry"] = *v.bad_entry;
        c.out << j.dump(2) << "\n";
    } else if (v.ok) {
        c.out << v.message << "\n";
    }
    if (v.ok) return 0;
    return fail(c, Status::error(error_kind::tampered, v.message));
}

std::string html_escape(const std::string& s) {
    std::string out;
    for (char ch : s) {
        switch (ch) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '"': out += "&quot;"; break;
            default: out += ch;
        }
    }
    return out;
}

std::string md_cell(const std::string& s) {
    std::string out;
    for (char ch : s) {
        if (ch == '|') out += "\\|";
        else if (ch == '\n') out += ' ';
        else out += ch;
    }
    return out;
}

std::string text_of(const nlohmann::json& v) {
    if (v.is_string()) return v.get<std::string>();
    if (v.is_null()) return "";
    return v.dump();
}

// A report as tables: each a title, a header and rows, rendered as
// Markdown or HTML.
struct table {
    std::string title;
    std::vector<std::string> head;
    std::vector<std::vector<std::string>> rows;
};

std::vector<table> report_tables(const nlohmann::json& summary, const std::vector<nlohmann::json>& events) {
    const auto& d = summary["data"];
    std::vector<table> t;
    table run{"Run", {"field", "value"}, {}};
    auto add = [&](const std::string& k, const std::string& v) { run.rows.push_back({k, v}); };
    add("run", summary.value("run", ""));
    add("job", d.value("job", ""));
    add("job file digest", d.value("job_digest", ""));
    add("trigger", d.value("trigger", ""));
    add("mode", d.value("mode", ""));
    for (const char* role : {"source", "target"})
        if (d.contains(role))
            add(std::string(role) + " connector", d[role].value("name", "") + " " + d[role].value("version", "") +
                                                      " (build " + d[role].value("build_id", "") + ")");
    add("started", d.value("started_at", ""));
    add("ended", d.value("ended_at", ""));
    if (d.contains("phase_seconds"))
        for (auto& [phase, secs] : d["phase_seconds"].items()) add("time in " + phase, text_of(secs) + " s");
    const auto& o = d.value("outcome", nlohmann::json::object());
    add("outcome", o.value("state", "") + " (exit code " + text_of(o.value("exit_code", nlohmann::json(0))) + ")" +
                       (o.contains("category") ? ", category " + text_of(o["category"]) : ""));
    add("plan digest", d.value("plan_digest", ""));
    add("error rate", std::to_string(d.value("error_rate_permille", 0) / 10.0).substr(0, 5) + " %");
    t.push_back(run);
    table changes{"Changes", {"entity", "kind", "planned", "applied", "failed", "skipped"}, {}};
    if (d.contains("changes"))
        for (auto& [entity, kinds] : d["changes"].items())
            for (auto& [kind, n] : kinds.items())
                changes.rows.push_back({entity, kind, text_of(n.value("planned", nlohmann::json(0))),
                                        text_of(n.value("applied", nlohmann::json(0))),
                                        text_of(n.value("failed", nlohmann::json(0))),
                                        text_of(n.value("skipped", nlohmann::json(0)))});
    t.push_back(changes);
    table failures{"Failures by category", {"category", "changes"}, {}};
    if (d.contains("failures_by_category"))
        for (auto& [cat, n] : d["failures_by_category"].items()) failures.rows.push_back({cat, text_of(n)});
    t.push_back(failures);
    table gates{"Safety gates", {"gate", "entity", "kind", "verdict", "count", "base", "limit"}, {}};
    if (d.contains("gates"))
        for (auto& g : d["gates"])
            gates.rows.push_back({g.value("gate", ""), g.value("entity", ""), g.value("kind", ""), g.value("verdict", ""),
                                  text_of(g["count"]), text_of(g["base"]), g.value("limit", "")});
    t.push_back(gates);
    table decisions{"Decisions and events", {"at", "event", "by", "detail"}, {}};
    table notes{"Notes", {"at", "by", "note"}, {}};
    for (auto& e : events) {
        const std::string kind = e.value("kind", "");
        const auto& ed = e["data"];
        if (kind == "run_summary") continue;
        if (kind == "note") {
            notes.rows.push_back({e.value("at", ""), ed.value("by", ""), ed.value("text", "")});
            continue;
        }
        std::string detail;
        for (auto& [k, v] : ed.items())
            if (k != "by") detail += (detail.empty() ? "" : ", ") + k + ": " + text_of(v);
        decisions.rows.push_back({e.value("at", ""), kind, ed.value("by", ""), detail});
    }
    t.push_back(decisions);
    t.push_back(notes);
    return t;
}

std::string render_md(const std::string& run_id, const std::vector<table>& tables, const nlohmann::json& proof,
                      const audit_verdict& checked) {
    std::ostringstream o;
    o << "# Syncwarden audit report: run " << run_id << "\n\n";
    for (auto& t : tables) {
        o << "## " << t.title << "\n\n";
        if (t.rows.empty()) {
            o << "None.\n\n";
            continue;
        }
        o << "|";
        for (auto& h : t.head) o << " " << h << " |";
        o << "\n|";
        for (size_t i = 0; i < t.head.size(); ++i) o << "---|";
        o << "\n";
        for (auto& r : t.rows) {
            o << "|";
            for (auto& cell : r) o << " " << md_cell(cell) << " |";
            o << "\n";
        }
        o << "\n";
    }
    o << "## Integrity\n\n" << checked.message << ".\n\n"
      << "Save the JSON below as `proof.json` and check it with the log's public key alone:\n"
      << "`syncwarden audit check-proof proof.json --key audit-public-key.pem`\n\n```json\n"
      << proof.dump(2) << "\n```\n";
    return o.str();
}

std::string render_html(const std::string& run_id, const std::vector<table>& tables, const nlohmann::json& proof,
                        const audit_verdict& checked) {
    std::ostringstream o;
    o << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Syncwarden audit report: run "
      << html_escape(run_id)
      << "</title>\n<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse;"
         "margin-bottom:1.5em}td,th{border:1px solid #999;padding:.2em .6em;text-align:left}pre{background:#f4f4f4;"
         "padding:1em;overflow:auto}</style></head>\n<body>\n<h1>Syncwarden audit report: run "
      << html_escape(run_id) << "</h1>\n";
    for (auto& t : tables) {
        o << "<h2>" << html_escape(t.title) << "</h2>\n";
        if (t.rows.empty()) {
            o << "<p>None.</p>\n";
            continue;
        }
        o << "<table><tr>";
        for (auto& h : t.head) o << "<th>" << html_escape(h) << "</th>";
        o << "</tr>\n";
        for (auto& r : t.rows) {
            o << "<tr>";
            for (auto& cell : r) o << "<td>" << html_escape(cell) << "</td>";
            o << "</tr>\n";
        }
        o << "</table>\n";
    }
    o << "<h2>Integrity</h2>\n<p>" << html_escape(checked.message)
      << ".</p>\n<p>Save the JSON below as <code>proof.json</code> and check it with the log's public key alone: "
         "<code>syncwarden audit check-proof proof.json --key audit-public-key.pem</code></p>\n<pre>"
      << html_escape(proof.dump(2)) << "</pre>\n</body></html>\n";
    return o.str();
}

}  // namespace

int audit_cmd(context& c, const std::vector<std::string>& args) {
    parsed_args pa;
    std::string error;
    if (!parse_args(args, {{"--json", false}, {"--against", true}, {"--key", true}, {"--all-signatures", false},
                           {"--format", true}, {"--out", true}, {"--as", true}, {"--from", true}, {"--limit", true},
                           {"--reason", true}, {"--old-key-lost", false}},
                    pa, error))
        return usage(c, error);
    if (pa.pos.empty())
        return usage(c, "audit needs a subcommand: verify, export-head, proof, check-proof, report, public-key, note, "
                        "rotate-key or list");
    const std::string& sub = pa.pos[0];
    auto out_to = [&](const std::string& text) {
        if (pa.opts.count("--out")) {
            if (auto s = write_text(pa.opts["--out"], text); !s) return fail(c, s);
            return 0;
        }
        c.out << text;
        return 0;
    };
    if (sub == "check-proof") {
        // Offline: needs only the proof and the public key, no data dir.
        if (pa.pos.size() != 2 || !pa.opts.count("--key"))
            return usage(c, "audit check-proof takes a proof FILE and --key PUBLIC_KEY.pem");
        auto j = parse_json_file(pa.pos[1]);
        if (!j) return fail(c, j.status());
        auto key = key_for(c, pa);
        if (!key) return fail(c, key.status());
        auto v = check_inclusion_proof(*j, *key);
        if (!v.ok) v.message = pa.pos[1] + ": " + v.message;
        return verdict_exit(c, v, pa.opts.count("--json") > 0);
    }
    std::error_code ec;
    if (!fs::exists(c.cfg.data_dir / "syncwarden.db", ec))
        return fail(c, Status::error(error_kind::not_found, c.cfg.data_dir.string() + " holds no run store, so no "
                                                                                       "audit log"));
    auto store = open_store(c);
    if (!store) return fail(c, store.status());
    run_store& st = **store;
    if (sub == "verify") {
        auto key = key_for(c, pa);
        if (!key) return fail(c, key.status());
        verify_options o;
        o.all_signatures = pa.opts.count("--all-signatures") > 0;
        auto v = verify_audit_log(st, *key, o);
        if (!v) return fail(c, v.status());
        if (v->ok && pa.opts.count("--against")) {
            auto old = read_exported_head(pa.opts["--against"]);
            if (!old) return fail(c, old.status());
            // The head is checked with the key the auditor gave, else with
            // the key saved in the head's file.
            std::optional<verify_key> given;
            if (pa.opts.count("--key")) given.emplace(std::move(*key));
            auto a = verify_against(st, *old, given ? &*given : nullptr);
            if (!a) return fail(c, a.status());
            if (a->ok) a->message = v->message + "\n" + a->message;
            return verdict_exit(c, *a, pa.opts.count("--json") > 0);
        }
        return verdict_exit(c, *v, pa.opts.count("--json") > 0);
    }
    if (sub == "public-key") {
        // The log's key: never one made up here for a log that has entries.
        auto log = audit_log::open(st, c.cfg.data_dir, c.clk);
        if (!log) return fail(c, log.status());
        return out_to((*log)->key().public_pem());
    }
    if (sub == "export-head") {
        if (pa.pos.size() != 2) return usage(c, "audit export-head takes one FILE to write");
        auto head = st.audit_head();
        if (!head) return fail(c, head.status());
        if (!*head) return fail(c, Status::error(error_kind::not_found, "the audit log is empty: nothing to export yet"));
        auto log = audit_log::open(st, c.cfg.data_dir, c.clk);
        if (!log) return fail(c, log.status());
        if ((*log)->key().key_id() != (*head)->key_id)
            return fail(c, Status::error(error_kind::usage, "the newest head is signed by key " + (*head)->key_id +
                                                                ", handed over since to key " + (*log)->key().key_id() +
                                                                ": export the head after the next run, which the new "
                                                                "key signs"));
        if (auto s = write_text(pa.pos[1], export_head(**head, (*log)->key().public_pem())); !s) return fail(c, s);
        c.out << "wrote the signed head of " << (*head)->size << " entries (root " << (*head)->root << ", " << (*head)->at
              << ") to " << pa.pos[1] << "\nkeep it where the data dir's owner cannot change it; later, "
              << "`syncwarden audit verify --against " << pa.pos[1] << "` proves the log still extends it\n";
        return 0;
    }
    if (sub == "proof") {
        if (pa.pos.size() != 2) return usage(c, "audit proof takes one RUN_ID");
        auto p = run_inclusion_proof(st, pa.pos[1]);
        if (!p) return fail(c, p.status());
        return out_to(p->dump(2) + "\n");
    }
    if (sub == "report") {
        if (pa.pos.size() != 2) return usage(c, "audit report takes one RUN_ID");
        const std::string format = pa.opts.count("--format") ? pa.opts["--format"] : "md";
        if (format != "md" && format != "html" && format != "json")
            return usage(c, "--format is md, html or json, not '" + format + "'");
        auto p = run_inclusion_proof(st, pa.pos[1]);
        if (!p) return fail(c, p.status());
        // The report's numbers are the log's: its proof is checked here
        // before anything is written.
        auto key = key_for(c, pa);
        if (!key) return fail(c, key.status());
        auto checked = check_inclusion_proof(*p, *key);
        if (!checked.ok) return fail(c, Status::error(error_kind::tampered, checked.message));
        auto events = run_audit_entries(st, pa.pos[1]);
        if (!events) return fail(c, events.status());
        const nlohmann::json summary = nlohmann::json::parse((*p)["entry"].get<std::string>());
        if (format == "json") {
            nlohmann::json j{{"format", "syncwarden-audit-report/1"}, {"run", pa.pos[1]}, {"summary", summary["data"]},
                             {"summary_at", summary["at"]}};
            j["events"] = nlohmann::json::array();
            for (auto& e : *events)
                if (e.value("kind", "") != "run_summary") j["events"].push_back(e);
            j["proof"] = *p;
            j["integrity"] = checked.message;
            return out_to(j.dump(2) + "\n");
        }
        const auto tables = report_tables(summary, *events);
        return out_to(format == "md" ? render_md(pa.pos[1], tables, *p, checked)
                                     : render_html(pa.pos[1], tables, *p, checked));
    }
    if (sub == "note") {
        if (pa.pos.size() != 3 || pa.opts["--as"].empty())
            return usage(c, "audit note takes RUN_ID, --as NAME and the note's TEXT");
        auto run = st.get_run(pa.pos[1]);
        if (!run) return fail(c, run.status());
        auto log = audit_log::open(st, c.cfg.data_dir, c.clk);
        if (!log) return fail(c, log.status());
        if (auto s = (*log)->append({{"note", pa.pos[1],
                                      {{"by", pa.opts["--as"]}, {"text", pa.pos[2]},
                                       {"os_user", authenticated_user().to_json()}}}});
            !s)
            return fail(c, s);
        c.out << "noted on run " << pa.pos[1] << " by " << pa.opts["--as"] << "\n";
        return 0;
    }
    if (sub == "rotate-key") {
        // A new signing key; the handover is an entry of the log itself.
        if (pa.pos.size() != 1 || pa.opts["--reason"].empty())
            return usage(c, "audit rotate-key takes --reason TEXT (and --old-key-lost when the old key is gone)");
        const bool lost = pa.opts.count("--old-key-lost") > 0;
        const nlohmann::json who{{"by", pa.opts.count("--as") ? pa.opts["--as"] : cli_actor()},
                                 {"os_user", authenticated_user().to_json()},
                                 {"reason", pa.opts["--reason"]}};
        auto ho = audit_log::rotate_key(st, c.cfg.data_dir, c.clk, who, lost);
        if (!ho) return fail(c, ho.status());
        if (pa.opts.count("--json")) {
            c.out << nlohmann::json{{"old_key_id", ho->old_id}, {"new_key_id", ho->new_id},
                                    {"old_key_lost", ho->old_key_lost}, {"entry", ho->seq}, {"new_public_key", ho->new_pem}}
                         .dump(2)
                  << "\n";
            return 0;
        }
        c.out << "the audit log is now signed by key " << ho->new_id << " (was " << ho->old_id << ")"
              << (lost ? "; the log records that the old key was lost" : "; the old key signed the handover")
              << "\nGive auditors the new public key: `syncwarden audit public-key`\n";
        return 0;
    }
    if (sub == "list") {
        uint64_t from = 0, limit = 50;
        try {
            if (pa.opts.count("--from")) from = std::stoull(pa.opts["--from"]);
            if (pa.opts.count("--limit")) limit = std::stoull(pa.opts["--limit"]);
        } catch (...) {
            return usage(c, "--from and --limit take whole numbers");
        }
        auto es = st.audit_entries(from, limit);
        if (!es) return fail(c, es.status());
        if (pa.opts.count("--json")) {
            nlohmann::json j = nlohmann::json::array();
            for (auto& e : *es) j.push_back({{"seq", e.seq}, {"leaf", e.leaf}, {"entry", e.entry}});
            c.out << j.dump(2) << "\n";
            return 0;
        }
        for (auto& e : *es) c.out << e.entry << "\n";
        return 0;
    }
    return usage(c, "unknown audit subcommand '" + sub + "'");
}

}  // namespace syncwarden::kernel::cli_detail
