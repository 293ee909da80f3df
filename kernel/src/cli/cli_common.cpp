#include "cli_common.hpp"

#include <syncwarden/kernel/audit.hpp>

#include <cstdlib>
#include <cstring>
#include <pwd.h>
#include <unistd.h>

#include <syncwarden/kernel/locks.hpp>
#include <syncwarden/kernel/text.hpp>

#include <iomanip>

namespace syncwarden::kernel::cli_detail {

int fail(context& c, const Status& s) {
    c.err << "error: " << printable(s.message()) << "\n";
    return exit_code_for(s);
}

int usage(context& c, const std::string& why) {
    c.err << "error: " << why << "\n\n" << k_usage;
    return 2;
}

bool parse_args(const std::vector<std::string>& in, const std::map<std::string, bool>& known,
                parsed_args& out, std::string& error) {
    for (size_t i = 0; i < in.size(); ++i) {
        const auto& a = in[i];
        if (a.rfind("--", 0) != 0) { out.pos.push_back(a); continue; }
        auto it = known.find(a);
        if (it == known.end()) { error = "unknown option " + a; return false; }
        if (it->second) {
            if (i + 1 >= in.size()) { error = a + " needs a value"; return false; }
            std::string& value = out.opts[a];
            if (!value.empty()) value.push_back(',');
            value.append(in[i + 1]);
            ++i;
        } else {
            out.opts[a].assign(1, '1');
        }
    }
    return true;
}

Result<std::unique_ptr<run_store>> open_store(context& c) {
    auto s = open_sqlite_store(c.cfg.data_dir / "syncwarden.db");
    if (!s) return s;
    if (auto n = mark_interrupted(**s, c.cfg.data_dir, iso8601(c.clk.now())); !n) return n.status();
    return s;
}

void print_findings(context& c, const std::vector<finding_record>& fs, size_t limit) {
    size_t shown = 0;
    for (auto& f : fs) {
        if (shown++ == limit) {
            c.out << "  ... " << (fs.size() - limit) << " more in the plan file\n";
            break;
        }
        c.out << "  " << f.severity << " [" << f.code << "] ";
        if (!f.file.empty()) {
            c.out << printable(f.file);
            if (f.line) c.out << ":" << f.line;
            if (f.line && f.column) c.out << ":" << f.column;
            else if (f.column) c.out << " (column " << f.column << ")";
            c.out << ": ";
        }
        c.out << printable(f.message) << "\n";
    }
}

void print_verdicts(context& c, const std::vector<gate_verdict>& vs, bool dry_run) {
    if (vs.empty()) return;
    c.out << "safety gates:\n";
    for (const char* which : {"hold", "allowed", "pass"})
        for (auto& v : vs) {
            if (v.verdict != which) continue;
            std::string word = v.verdict == "hold" ? (dry_run ? "WOULD HOLD" : "HOLD") : v.verdict == "allowed" ? "ALLOWED" : "pass";
            std::string what = v.gate;
            if (!v.entity.empty()) what += " " + v.entity;
            if (!v.kind.empty()) what += " " + v.kind;
            c.out << "  " << std::left << std::setw(11) << word << std::setw(34) << what << " " << printable(v.message)
                  << "\n";
        }
}

int print_outcome(context& c, const run_outcome& o, bool dry_run) {
    if (o.run.id.empty() && !o.status) return fail(c, o.status);  // refused before a run was made
    c.out << (dry_run ? "dry run " : "run ") << o.run.id << " of job " << printable(o.run.job) << ": " << o.run.state
          << "\n";
    if (!o.run.source_version.empty())
        c.out << "  source " << o.run.source_connector << " " << o.run.source_version << ", target "
              << o.run.target_connector << " " << o.run.target_version << "\n";
    if (!o.grants.empty()) {
        c.out << "grants:\n";
        for (auto& [role, g] : o.grants)
            c.out << "  " << role << " " << (role == "source" ? o.run.source_connector : o.run.target_connector) << ": "
                  << printable(grants_text(g)) << "\n";
    }
    if (!o.unconfined.empty()) {
        std::string layers;
        for (auto& l : o.unconfined) layers += (layers.empty() ? "" : ", ") + l;
        c.out << "unconfined: " << layers << " (its connectors ran without "
              << (o.unconfined.size() == 1 ? "this layer" : "these layers") << " of the sandbox)\n";
    }
    if (!o.stale_reason.empty())
        c.out << "the approved plan was stale and was not applied: " << printable(o.stale_reason)
              << ".\nThe job was planned and gated again as this run.\n";
    if (o.applied_approved_plan) c.out << "applying exactly the approved plan of run " << o.run.plan_of << "\n";
    if (!o.findings.empty()) {
        c.out << "findings (" << o.findings.size() + o.findings_not_kept << ", " << o.blocking_findings
              << " blocking):\n";
        print_findings(c, o.findings, 20);
    }
    if (!o.planned.empty()) {
        c.out << "plan:\n";
        bool deactivates = false, adopts = false;
        for (auto& [e, n] : o.planned) {
            deactivates = deactivates || n.deactivate;
            adopts = adopts || n.adopt;
        }
        c.out << "  " << std::left << std::setw(20) << "entity" << std::right << std::setw(8) << "create"
              << std::setw(8) << "update" << std::setw(8) << "delete";
        if (deactivates) c.out << std::setw(12) << "deactivate";
        if (adopts) c.out << std::setw(8) << "adopt";
        c.out << "\n";
        for (auto& [e, n] : o.planned) {
            c.out << "  " << std::left << std::setw(20) << e << std::right << std::setw(8) << n.create
                  << std::setw(8) << n.update << std::setw(8) << n.remove;
            if (deactivates) c.out << std::setw(12) << n.deactivate;
            if (adopts) c.out << std::setw(8) << n.adopt;
            c.out << "\n";
        }
        if (o.protected_records)
            c.out << "  " << o.protected_records << " protected record(s) kept out of the plan (listed in the plan file)\n";
        if (!o.preview.empty()) {
            c.out << "first changes:\n";
            for (auto& l : o.preview) c.out << "  " << l << "\n";
        }
        c.out << "plan written to " << o.plan_path.string() << "\n";
    }
    print_verdicts(c, o.verdicts, dry_run);
    if (!o.allowed.empty()) {
        c.out << "pre-approved for this run: ";
        for (size_t i = 0; i < o.allowed.size(); ++i) c.out << (i ? ", " : "") << "--allow " << o.allowed[i];
        c.out << "\n";
    }
    if (o.status.kind() == error_kind::held && !o.status) {
        c.out << (dry_run ? "a run of this plan would be held: " : "held: ") << printable(o.status.message())
              << "\nNothing was changed in the target.\n";
        c.out << "  see the changes:  syncwarden runs show " << o.run.id << " --changes [--entity E] [--kind K]\n";
        c.out << "  apply this plan:  syncwarden runs approve " << o.run.id << " --as NAME [--reason TEXT]\n";
        c.out << "  close it:         syncwarden runs reject " << o.run.id << " --as NAME --reason TEXT\n";
        return exit_code_for(o.status);
    }
    if (!dry_run && o.status) c.out << "applied " << o.applied << " changes, " << o.failed << " failed\n";
    if (dry_run && o.status) c.out << "dry run: nothing was changed in the target\n";
    if (!o.status) return fail(c, o.status);
    return 0;
}

std::string cli_actor() {
    const char* u = std::getenv("SYNCWARDEN_USER");
    // The daemon names who asked it in full ("cli:ana", "daemon:inbox").
    if (u && std::strchr(u, ':')) return u;
    if (!u || !*u) u = std::getenv("USER");
    std::string name = u && *u ? u : "";
    if (name.empty())
        if (const passwd* pw = ::getpwuid(::geteuid())) name = pw->pw_name;
    return "cli:" + (name.empty() ? std::to_string(::geteuid()) : name);
}

void setup_pipeline(context& c, pipeline& p) {
    p.set_actor(cli_actor());
    if (!c.config_file.empty()) p.set_kernel_config(c.config_file);
}

Status audit_admin_event(context& c, run_store& store, const audit_event& e) {
    auto log = audit_log::open(store, c.cfg.data_dir, c.clk);
    if (!log) return log.status();
    return (*log)->append({e});
}

}  // namespace syncwarden::kernel::cli_detail
