#include "cli_common.hpp"

#include <sys/stat.h>
#include <syncwarden/connector.h>
#include <syncwarden/kernel/cli.hpp>
#include <syncwarden/kernel/clock.hpp>
#include <syncwarden/kernel/config.hpp>
#include <syncwarden/kernel/locks.hpp>
#include <syncwarden/kernel/os_user.hpp>
#include <syncwarden/kernel/worker.hpp>
#include <syncwarden/kernel/log.hpp>
#include <syncwarden/kernel/pii.hpp>
#include <syncwarden/kernel/pipeline.hpp>
#include <syncwarden/kernel/registry.hpp>
#include <syncwarden/kernel/retention.hpp>
#include <syncwarden/kernel/secrets.hpp>
#include <syncwarden/kernel/digest.hpp>
#include <syncwarden/kernel/private_file.hpp>

#include <openssl/rand.h>
#include <syncwarden/kernel/store.hpp>
#include <syncwarden/kernel/text.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <csignal>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <unistd.h>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <iterator>
#include <map>

namespace fs = std::filesystem;

namespace syncwarden::kernel {

const char* const cli_detail::k_usage = R"(usage: syncwarden [--data-dir DIR] [--config KERNEL.json] COMMAND

commands:
  connectors install FILE.so     check a connector library and install it
      [--replace]                a pre-release (1.2.0-dev) rebuilt: the new build takes its place
  connectors list [--json]       installed releases: name, version, ABI, capabilities, build id,
                                 the jobs folder's jobs that resolve to each and
                                 the runs using it (in progress or held)
  connectors pin JOB VERSION [--connector NAME]
                                 the job's runs use that release (roll back or
                                 forward), whatever its range says; audited
  connectors unpin JOB [--connector NAME]
                                 back to the newest release in the job's range
  connectors retire NAME VERSION remove a release no job resolves to, is pinned
                                 to, and no run uses; the refusal names them
  connectors schema NAME [--version RANGE]
                                 the JSON Schema of a connector's settings
  run JOB.json [--dry-run] [--plan-out FILE] [--preview N] [--no-wait]
      [--allow LIMIT[,LIMIT...]] [--run-id ID] [--trigger TEXT] [--job-dir DIR]
                                 plan a sync; without --dry-run also apply it.
                                 Waits while another run applies to the same
                                 target system, or with --no-wait exits 9.
                                 A run a safety gate holds exits 10. --allow
                                 pre-approves a limit for this run only:
                                 delete=60%, students.delete=500, shrink=50%.
                                 --run-id, --trigger, --job-dir: the id, the
                                 "started by" and the folder for relative
                                 paths a daemon gives its runs
  runs list [--limit N] [--json] recent runs, newest first
  runs show RUN_ID [--json]      one run: state, why it was held, gate verdicts,
                                 counts, findings, failed changes
  runs show RUN_ID --changes [--entity E] [--kind K] [--limit N]
                                 the planned changes, filtered (kind: create,
                                 update, delete, deactivate)
  runs approve RUN_ID --as NAME [--reason TEXT] [--plan DIGEST] [--no-wait]
                                 apply exactly the plan of a held run (--plan:
                                 only if its digest is the one reviewed); if the
                                 source or target changed since, plan again
  runs reject RUN_ID --as NAME --reason TEXT
                                 close a held run without applying it
  runs apply RUN_ID [--no-wait]  apply the stored plan of a dry run, if the
                                 target has not changed since it was made
  runs cancel RUN_ID [--no-wait] stop a run in progress (as SIGINT would) and
                                 wait until its outcome is recorded
  runs resume RUN_ID [--no-wait] continue a cancelled or interrupted run from its
                                 checkpoint; acknowledged changes are not resent
  runs retry-failed RUN_ID [--dry-run] [--no-wait]
                                 plan the run's job again, keeping only the keys
                                 whose changes failed in that run
  audit verify [--against HEAD.json] [--key PUBLIC.pem] [--all-signatures] [--json]
                                 recompute every entry and the Merkle tree, check
                                 the signed heads; --against: prove the log
                                 still extends a head kept elsewhere. Exits 11
                                 naming the first entry that fails
  audit export-head FILE         write the newest signed head, to keep elsewhere
  audit public-key [--out FILE]  the public key that checks heads and proofs
  audit proof RUN_ID [--out FILE]
                                 an inclusion proof of a run's summary
  audit check-proof FILE --key PUBLIC.pem
                                 check a proof offline, with the key alone
  audit report RUN_ID [--format md|html|json] [--out FILE]
                                 a run's report: summary, gates, failures,
                                 decisions, notes and its inclusion proof
  audit note RUN_ID --as NAME TEXT
                                 add an operator's note to a run
  audit rotate-key --reason TEXT [--old-key-lost] [--as NAME] [--json]
                                 a new signing key, its handover recorded in
                                 the log (signed by the old key, or saying
                                 that the old key was lost)
  audit list [--from N] [--limit N] [--json]
                                 the log's entries, oldest first
  secrets set NAME [--from-file FILE] [--allow-short]
                                 store a connector credential, encrypted; the
                                 value is read from stdin (or the file). A job
                                 names it as {"$secret": "NAME"} in settings.
                                 Values under 8 bytes need --allow-short
  secrets rotate NAME [--from-file FILE] [--allow-short]
                                 a new version of a secret
  secrets retire NAME VERSION    erase an old version's value for good
  secrets rekey [--new-key-file FILE] [--finish]
                                 re-encrypt every secret under a new master
                                 key, in one transaction, audited
  secrets list [--json]          names, versions, dates; never values
  retention apply [--dry-run]    remove plans, change results and log files older
                                 than the kernel config's retention (default 30,
                                 90 and 30 days); summaries and the audit log stay
  serve [--test-clock TIME]      the daemon: runs the jobs folder's schedules,
                                 installs what is dropped into the inbox, answers
                                 the control API; SIGHUP reloads, SIGTERM stops
                                 (runs stop at a checkpoint, as interrupted).
                                 --test-clock: its clock stands at TIME and moves
                                 only through the API (tests)
  status [--json]                the daemon's jobs, next fires, last outcomes and
                                 runs in progress
  jobs list [--json]             the daemon's jobs
  jobs trigger JOB               start a run of a daemon's job now
  jobs resume JOB                schedule a job paused after failures again
  version                        kernel and ABI versions

While `syncwarden serve` runs for the data dir, `run`, `runs ...` and
`connectors ...` are carried out by the daemon (its limits apply, it lists
them); otherwise they work directly.

The data directory holds installed connectors, the run store and plans. It is
--data-dir, else $SYNCWARDEN_DATA_DIR, else the config's data_dir, else
./syncwarden-data.
)";

namespace {

using namespace cli_detail;


// SIGINT and SIGTERM cancel the run in progress: the flag is polled by the
// worker sessions and between phases and batches. SIGUSR1 (the daemon
// stopping) stops it the same way, recorded as interrupted. The previous handlers
// come back when the command ends.
cancel_flag g_cancel;

extern "C" void on_cancel_signal(int sig) {
    g_cancel.signal.store(sig);
    g_cancel.requested.store(true);
}

class cancel_on_signals {
public:
    cancel_on_signals() {
        g_cancel.requested.store(false);
        g_cancel.signal.store(0);
        struct sigaction sa {};
        sa.sa_handler = on_cancel_signal;
        sigemptyset(&sa.sa_mask);
        ::sigaction(SIGINT, &sa, &old_int_);
        ::sigaction(SIGTERM, &sa, &old_term_);
        ::sigaction(SIGUSR1, &sa, &old_usr1_);
    }
    ~cancel_on_signals() {
        ::sigaction(SIGINT, &old_int_, nullptr);
        ::sigaction(SIGTERM, &old_term_, nullptr);
        ::sigaction(SIGUSR1, &old_usr1_, nullptr);
    }
    cancel_on_signals(const cancel_on_signals&) = delete;
    cancel_on_signals& operator=(const cancel_on_signals&) = delete;

private:
    struct sigaction old_int_ {}, old_term_ {}, old_usr1_ {};
};

// The jobs folder's jobs (the daemon's; kernel config daemon.jobs_dir, else
// <data_dir>/jobs). A file that does not load is said in `warnings`.
std::vector<job_config> folder_jobs(context& c, std::vector<std::string>& warnings) {
    const fs::path dir = c.cfg.daemon.jobs_dir.empty() ? c.cfg.data_dir / "jobs" : c.cfg.daemon.jobs_dir;
    std::vector<job_config> out;
    std::error_code ec;
    std::vector<fs::path> files;
    for (auto& e : fs::directory_iterator(dir, ec))
        if (e.path().extension() == ".json" && e.is_regular_file(ec)) files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (auto& f : files) {
        auto j = load_job(f);
        if (!j) warnings.push_back(j.status().message() + " (not counted)");
        else out.push_back(std::move(*j));
    }
    return out;
}

// Who uses a release: jobs of the jobs folder that resolve to it, and runs
// in progress or held (a held run's approval applies with it).
struct release_users {
    std::vector<std::string> jobs, runs;
};
release_users users_of(const registry& reg, const std::vector<job_config>& jobs, run_store* store,
                       const installed_release& rel) {
    release_users u;
    for (auto& j : jobs)
        for (const connector_ref* ref : {&j.source, &j.target}) {
            if (ref->connector != rel.info.name) continue;
            auto r = reg.resolve_for(j.name, ref->connector, ref->version);
            if (r && r->info.version == rel.info.version &&
                std::find(u.jobs.begin(), u.jobs.end(), j.name) == u.jobs.end())
                u.jobs.push_back(j.name);
        }
    if (!store) return u;
    std::vector<run_record> runs;
    if (auto un = store->unfinished_runs()) runs = *un;
    if (auto recent = store->list_runs(1000))
        for (auto& r : *recent)
            if (r.state == "held") runs.push_back(r);
    for (auto& r : runs)
        if ((r.source_connector == rel.info.name && r.source_version == rel.info.version) ||
            (r.target_connector == rel.info.name && r.target_version == rel.info.version))
            u.runs.push_back(r.id + " (" + r.state + ")");
    return u;
}

std::string joined(const std::vector<std::string>& v) {
    std::string out;
    for (auto& x : v) out += (out.empty() ? "" : ", ") + x;
    return out;
}

int connectors_cmd(context& c, const std::vector<std::string>& args) {
    parsed_args pa;
    std::string error;
    if (!parse_args(args, {{"--json", false}, {"--version", true}, {"--replace", false}, {"--connector", true}}, pa,
                    error))
        return usage(c, error);
    if (pa.pos.empty()) return usage(c, "connectors needs a subcommand: install, list, schema, pin, unpin or retire");
    registry reg(c.cfg.data_dir / "connectors", c.clk);
    if (pa.pos[0] == "pin" || pa.pos[0] == "unpin") {
        const bool pin = pa.pos[0] == "pin";
        if (pa.pos.size() != (pin ? 3u : 2u))
            return usage(c, pin ? "connectors pin takes JOB VERSION [--connector NAME]"
                                : "connectors unpin takes JOB [--connector NAME]");
        std::vector<std::string> warnings;
        auto jobs = folder_jobs(c, warnings);
        const job_config* job = nullptr;
        for (auto& j : jobs)
            if (j.name == pa.pos[1] || fs::absolute(j.file) == fs::absolute(pa.pos[1])) job = &j;
        if (!job) {
            auto direct = load_job(pa.pos[1]);
            if (!direct)
                return fail(c, Status::error(error_kind::not_found,
                                             "no job named '" + pa.pos[1] + "' in the jobs folder, and no job file at "
                                             "that path" + (warnings.empty() ? "" : " (" + joined(warnings) + ")")));
            jobs.push_back(std::move(*direct));
            job = &jobs.back();
        }
        // Which of the job's connectors: --connector, else the one that has
        // this version installed.
        std::vector<std::string> candidates;
        for (const connector_ref* ref : {&job->source, &job->target}) {
            if (pa.opts.count("--connector") && ref->connector != pa.opts["--connector"]) continue;
            if (pin && !reg.resolve(ref->connector, "=" + pa.pos[2])) continue;
            if (!pin) {
                auto p = reg.pins();
                if (!p || !(*p)[job->name].count(ref->connector)) continue;  // unpin: only what is pinned
            }
            if (std::find(candidates.begin(), candidates.end(), ref->connector) == candidates.end())
                candidates.push_back(ref->connector);
        }
        if (candidates.size() != 1)
            return fail(c, Status::error(error_kind::usage,
                                         candidates.empty()
                                             ? "job " + job->name + " uses " + job->source.connector + " and " +
                                                   job->target.connector + "; " +
                                                   (pin ? "neither has version " + pa.pos[2] + " installed"
                                                        : "neither is pinned" +
                                                              std::string(pa.opts.count("--connector")
                                                                              ? " under that --connector name"
                                                                              : "")) +
                                                   " (`syncwarden connectors list`)"
                                             : "both of job " + job->name + "'s connectors match; say which with "
                                                                              "--connector NAME"));
        const std::string conn = candidates[0];
        auto store = open_store(c);
        if (!store) return fail(c, store.status());
        if (auto s = reg.pin(job->name, conn, pin ? pa.pos[2] : ""); !s) return fail(c, s);
        if (auto s = audit_admin_event(c, **store,
                                       {pin ? "connector_pinned" : "connector_unpinned", "",
                                        {{"job", job->name}, {"connector", conn}, {"version", pin ? pa.pos[2] : ""},
                                         {"by", cli_actor()}, {"os_user", authenticated_user().to_json()}}});
            !s)
            c.err << "warning: the audit log could not record it: " << s.message() << "\n";
        if (pin)
            c.out << "pinned job " << job->name << " to " << conn << " " << pa.pos[2]
                  << ": its next runs use that release, whatever its range says\n";
        else
            c.out << "unpinned " << conn << " of job " << job->name << ": its next runs take the newest release in "
                  << "its range\n";
        return 0;
    }
    if (pa.pos[0] == "retire") {
        if (pa.pos.size() != 3) return usage(c, "connectors retire takes NAME VERSION");
        auto all = reg.list();
        if (!all) return fail(c, all.status());
        const installed_release* rel = nullptr;
        for (auto& r : *all)
            if (r.info.name == pa.pos[1] && r.info.version == pa.pos[2]) rel = &r;
        if (!rel)
            return fail(c, Status::error(error_kind::not_found, "no installed release " + pa.pos[1] + " " + pa.pos[2] +
                                                                    "; `syncwarden connectors list` shows them"));
        std::vector<std::string> warnings;
        auto jobs = folder_jobs(c, warnings);
        auto store = open_store(c);
        if (!store) return fail(c, store.status());
        auto u = users_of(reg, jobs, store->get(), *rel);
        std::vector<std::string> pinned;
        if (auto p = reg.pins())
            for (auto& [job, m] : *p)
                if (auto it = m.find(rel->info.name); it != m.end() && it->second == rel->info.version) pinned.push_back(job);
        if (!u.jobs.empty() || !u.runs.empty() || !pinned.empty())
            return fail(c, Status::error(error_kind::usage,
                                         rel->info.name + " " + rel->info.version + " is still used, so it stays: " +
                                             (u.jobs.empty() ? "" : "jobs that resolve to it: " + joined(u.jobs) + "; ") +
                                             (pinned.empty() ? "" : "jobs pinned to it: " + joined(pinned) + "; ") +
                                             (u.runs.empty() ? "" : "runs using it: " + joined(u.runs) + "; ") +
                                             "pin or change those jobs, let the runs end, then retire it"));
        for (auto& w : warnings) c.err << "warning: " << printable(w) << "\n";
        if (auto s = reg.retire(rel->info.name, rel->info.version); !s) return fail(c, s);
        if (auto s = audit_admin_event(c, **store,
                                       {"connector_retired", "",
                                        {{"name", rel->info.name}, {"version", rel->info.version},
                                         {"build_id", rel->info.build_id}, {"by", cli_actor()}, {"os_user", authenticated_user().to_json()}}});
            !s)
            c.err << "warning: the audit log could not record it: " << s.message() << "\n";
        c.out << "retired " << rel->info.name << " " << rel->info.version << ": its files are removed\n";
        return 0;
    }
    if (pa.pos[0] == "install") {
        if (pa.pos.size() != 2) return usage(c, "connectors install takes one FILE.so");
        auto r = reg.install(pa.pos[1], pa.opts.count("--replace") > 0);
        if (!r) return fail(c, r.status());
        auto store = open_store(c);
        if (!store) return fail(c, store.status());
        if (auto s = audit_admin_event(c, **store,
                                       {"connector_installed", "",
                                        {{"name", r->info.name}, {"version", r->info.version},
                                         {"build_id", r->info.build_id}, {"sha256", r->sha256},
                                         {"abi", std::to_string(r->info.abi_major) + "." + std::to_string(r->info.abi_minor)},
                                         {"repaired", r->repaired}, {"replaced_build", r->replaced_build},
                                         {"by", cli_actor()}, {"os_user", authenticated_user().to_json()}}});
            !s)
            return fail(c, s.context("installed " + r->info.name + " " + r->info.version +
                                     ", but the audit log could not record it"));
        if (!r->replaced_build.empty())
            c.out << "replaced build " << r->replaced_build << " of " << r->info.name << " " << r->info.version
                  << " (runs that have it loaded finish on it)\n";
        c.out << (r->repaired ? "repaired " : "installed ") << r->info.name << " " << r->info.version << " (build " << r->info.build_id
              << ", " << capabilities_text(r->info.capabilities) << ")\n  " << r->path.string() << "\n";
        return 0;
    }
    if (pa.pos[0] == "list") {
        auto all = reg.list();
        if (!all) return fail(c, all.status());
        for (auto& w : reg.warnings()) c.err << "warning: " << printable(w) << "\n";
        std::vector<std::string> warnings;
        auto jobs = folder_jobs(c, warnings);
        std::unique_ptr<run_store> store;
        std::error_code fec;
        if (fs::exists(c.cfg.data_dir / "syncwarden.db", fec))
            if (auto s = open_store(c)) store = std::move(*s);
        std::vector<release_users> users;
        for (auto& r : *all) users.push_back(users_of(reg, jobs, store.get(), r));
        if (pa.opts.count("--json")) {
            nlohmann::json j = nlohmann::json::array();
            for (size_t i = 0; i < all->size(); ++i) {
                auto& r = (*all)[i];
                j.push_back({{"name", r.info.name}, {"version", r.info.version},
                             {"abi", std::to_string(r.info.abi_major) + "." + std::to_string(r.info.abi_minor)},
                             {"capabilities", capabilities_text(r.info.capabilities)},
                             {"build_id", r.info.build_id}, {"sha256", r.sha256},
                             {"path", r.path.string()}, {"installed_at", r.installed_at},
                             {"jobs", users[i].jobs}, {"runs", users[i].runs}});
            }
            c.out << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
            return 0;
        }
        if (all->empty()) {
            c.out << "no connectors installed; `syncwarden connectors install FILE.so` adds one\n";
            return 0;
        }
        c.out << std::left << std::setw(18) << "NAME" << std::setw(10) << "VERSION" << std::setw(6) << "ABI"
              << std::setw(20) << "CAPABILITIES" << std::setw(18) << "BUILD ID" << "USED BY\n";
        for (size_t i = 0; i < all->size(); ++i) {
            auto& r = (*all)[i];
            std::string used;
            if (!users[i].jobs.empty()) used += "jobs: " + joined(users[i].jobs);
            if (!users[i].runs.empty()) used += (used.empty() ? "" : "; ") + std::string("runs: ") + joined(users[i].runs);
            c.out << std::setw(18) << r.info.name << std::setw(10) << r.info.version << std::setw(6)
                  << (std::to_string(r.info.abi_major) + "." + std::to_string(r.info.abi_minor)) << std::setw(20)
                  << capabilities_text(r.info.capabilities) << std::setw(18) << r.info.build_id
                  << (used.empty() ? "-" : used) << "\n";
        }
        return 0;
    }
    if (pa.pos[0] == "schema") {
        if (pa.pos.size() != 2) return usage(c, "connectors schema takes one NAME");
        auto rel = reg.resolve(pa.pos[1], pa.opts.count("--version") ? pa.opts["--version"] : "*");
        if (!rel) return fail(c, rel.status());
        // From release.json; a release installed before it was kept there is
        // asked in a confined worker, never loaded into this process.
        std::string schema = rel->info.settings_schema;
        if (!rel->schema_recorded) {
            if (auto s = reg.verify(*rel); !s) return fail(c, s);
            auto probed = probe_in_worker(rel->path, worker_limits{}, c.cfg.data_dir);
            if (!probed) return fail(c, probed.status());
            schema = probed->settings_schema;
        }
        if (schema.empty()) {
            c.out << rel->info.name << " " << rel->info.version << " declares no settings schema\n";
            return 0;
        }
        c.out << schema << "\n";
        return 0;
    }
    return usage(c, "unknown connectors subcommand '" + pa.pos[0] + "'");
}


// "delete=60%,students.update=500,shrink=off" -> the run's allowance.
Result<gate_allowance> parse_allow(const std::string& text) {
    gate_allowance out;
    size_t pos = 0;
    while (pos <= text.size()) {
        const size_t end = text.find(',', pos);
        const std::string item = text.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
        const size_t eq = item.find('=');
        const std::string what = item.substr(0, eq);
        const std::string kind = what.substr(what.rfind('.') == std::string::npos ? 0 : what.rfind('.') + 1);
        if (eq == std::string::npos || (kind != "create" && kind != "update" && kind != "delete" &&
                                        kind != "deactivate" && kind != "shrink"))
            return Status::error(error_kind::usage,
                                 "--allow takes KIND=LIMIT or ENTITY.KIND=LIMIT, where KIND is create, update, delete, "
                                 "deactivate or shrink and LIMIT is a count, a percentage or off (delete=60%), found '" +
                                     item + "'");
        std::string error;
        auto limit = parse_limit_text(item.substr(eq + 1), error);
        if (!limit) return Status::error(error_kind::usage, "--allow " + item + ": " + error);
        out.limits[what] = *limit;
        out.as_given.push_back(item);
        if (end == std::string::npos) break;
        pos = end + 1;
    }
    return out;
}

int run_cmd(context& c, const std::vector<std::string>& args) {
    parsed_args pa;
    std::string error;
    if (!parse_args(args, {{"--dry-run", false}, {"--plan-out", true}, {"--preview", true}, {"--no-wait", false},
                           {"--allow", true}, {"--run-id", true}, {"--trigger", true}, {"--job-dir", true}},
                    pa, error))
        return usage(c, error);
    if (pa.pos.size() != 1) return usage(c, "run takes one JOB.json");
    run_options opts;
    if (pa.opts.count("--run-id")) {
        opts.run_id = pa.opts["--run-id"];
        if (!valid_run_id(opts.run_id))
            return usage(c, "--run-id takes an id such as r20261126T140642-3fa9c1 (r, then letters, digits and '-')");
    }
    if (pa.opts.count("--trigger")) opts.trigger = pa.opts["--trigger"];
    opts.dry_run = pa.opts.count("--dry-run") > 0;
    opts.no_wait = pa.opts.count("--no-wait") > 0;
    if (pa.opts.count("--plan-out")) opts.plan_out = pa.opts["--plan-out"];
    if (pa.opts.count("--preview")) {
        try { opts.preview = std::stoul(pa.opts["--preview"]); }
        catch (...) { return usage(c, "--preview takes a whole number"); }
    }
    if (pa.opts.count("--allow")) {
        auto allow = parse_allow(pa.opts["--allow"]);
        if (!allow) return usage(c, allow.status().message());
        opts.allow = std::move(*allow);
    }
    auto job = load_job(pa.pos[0]);
    if (!job) return fail(c, job.status());
    // The daemon runs a kept copy of a job whose file broke: its relative
    // paths start from the folder of the job's own file.
    if (pa.opts.count("--job-dir")) job->base_dir = fs::absolute(pa.opts["--job-dir"]);
    auto store = open_store(c);
    if (!store) return fail(c, store.status());
    registry reg(c.cfg.data_dir / "connectors", c.clk);
    pipeline p(reg, **store, c.clk, c.cfg.data_dir);
    setup_pipeline(c, p);
    cancel_on_signals signals;
    p.set_cancel(&g_cancel);
    auto o = p.run(*job, opts);
    for (auto& w : reg.warnings()) c.err << "warning: " << printable(w) << "\n";

    return print_outcome(c, o, opts.dry_run);
}

int runs_cmd(context& c, const std::vector<std::string>& args) {
    parsed_args pa;
    std::string error;
    if (!parse_args(args, {{"--json", false}, {"--limit", true}, {"--no-wait", false}, {"--dry-run", false},
                           {"--as", true}, {"--reason", true}, {"--plan", true}, {"--changes", false}, {"--entity", true},
                           {"--kind", true}},
                    pa, error))
        return usage(c, error);
    if (pa.pos.empty())
        return usage(c, "runs needs a subcommand: list, show, apply, approve, reject, cancel, resume or retry-failed");
    // Reading commands never create a data dir: with no store there are no runs.
    std::error_code ec;
    if (pa.pos[0] != "apply" && pa.pos[0] != "resume" && pa.pos[0] != "retry-failed" && pa.pos[0] != "approve" &&
        !fs::exists(c.cfg.data_dir / "syncwarden.db", ec)) {
        if (pa.pos[0] == "list") {
            c.out << (pa.opts.count("--json") ? "[]\n" : "no runs yet\n");
            return 0;
        }
        if (pa.pos[0] == "show" && pa.pos.size() == 2)
            return fail(c, Status::error(error_kind::not_found, "no run with id '" + pa.pos[1] + "'; " +
                                                                    c.cfg.data_dir.string() + " holds no runs"));
    }
    auto store = open_store(c);
    if (!store) return fail(c, store.status());
    bool json = pa.opts.count("--json") > 0;
    if (pa.pos[0] == "list") {
        size_t limit = 20;
        if (pa.opts.count("--limit")) {
            try { limit = std::stoul(pa.opts["--limit"]); } catch (...) { return usage(c, "--limit takes a whole number"); }
        }
        auto runs = (*store)->list_runs(limit);
        if (!runs) return fail(c, runs.status());
        if (json) {
            nlohmann::json j = nlohmann::json::array();
            for (auto& r : *runs)
                j.push_back({{"id", r.id}, {"job", r.job}, {"state", r.state}, {"category", r.category},
                             {"dry_run", r.dry_run},
                             {"created_at", r.created_at}, {"exit_code", r.exit_code},
                             {"summary", nlohmann::json::parse(r.summary_json, nullptr, false)}});
            c.out << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
            return 0;
        }
        if (runs->empty()) {
            c.out << "no runs yet\n";
            return 0;
        }
        c.out << std::left << std::setw(26) << "RUN" << std::setw(18) << "JOB" << std::setw(18) << "STATE"
              << std::setw(6) << "DRY" << "CREATED\n";
        for (auto& r : *runs)
            c.out << std::setw(26) << r.id << std::setw(18) << r.job << std::setw(18) << r.state << std::setw(6)
                  << (r.dry_run ? "yes" : "no") << r.created_at << "\n";
        return 0;
    }
    if (pa.pos[0] == "show") return runs_show(c, **store, pa);
    if (pa.pos[0] == "cancel") {
        if (pa.pos.size() != 2) return usage(c, "runs cancel takes one RUN_ID");
        auto r = (*store)->get_run(pa.pos[1]);
        if (!r) return fail(c, r.status());
        const fs::path lock = run_lock_path(c.cfg.data_dir, r->id);
        const std::string note = file_lock::note(lock);
        pid_t pid = 0;
        if (note.rfind("pid ", 0) == 0) pid = static_cast<pid_t>(std::atol(note.c_str() + 4));
        if (!file_lock::held(lock) || pid <= 0)
            return fail(c, Status::error(error_kind::usage, "run " + r->id + " is not in progress (it is " + r->state +
                                                                "); only a running run can be cancelled"));
        // The run's own process handles SIGTERM as a cancel: it asks its
        // connectors to stop, records what was done and keeps checkpoints.
        if (::kill(pid, SIGTERM) != 0)
            return fail(c, Status::error(error_kind::internal, "could not signal process " + std::to_string(pid) +
                                                                   " running run " + r->id + ": " +
                                                                   std::strerror(errno)));
        if (auto s = audit_admin_event(c, **store, {"cancel", r->id, {{"by", cli_actor()}, {"os_user", authenticated_user().to_json()}, {"phase", r->phase}}}); !s)
            c.err << "warning: the audit log could not record the cancel: " << s.message() << "\n";
        c.out << "asked run " << r->id << " (process " << pid << ") to stop\n";
        if (pa.opts.count("--no-wait")) return 0;
        // Waits for the run's process to let go of its lock: then its outcome is recorded.
        auto released = file_lock::take(lock, "", true);
        if (!released) return fail(c, released.status());
        released->reset();
        auto after = (*store)->get_run(r->id);
        if (!after) return fail(c, after.status());
        c.out << "run " << after->id << ": " << after->state << "\n";
        return after->state == "cancelled" ? 0 : exit_code_for(Status::error(error_kind::target, ""));
    }
    // The commands that drive a stored plan: a pipeline that SIGINT and
    // SIGTERM cancel, then the outcome.
    auto drive_stored = [&](const char* what, bool dry_run, auto&& start) {
        registry reg(c.cfg.data_dir / "connectors", c.clk);
        pipeline p(reg, **store, c.clk, c.cfg.data_dir);
        setup_pipeline(c, p);
        cancel_on_signals signals;
        p.set_cancel(&g_cancel);
        run_outcome o = start(p);
        if (o.run.id.empty()) return fail(c, o.status);
        c.out << what << pa.pos[1] << "\n";
        return print_outcome(c, o, dry_run);
    };
    const bool no_wait = pa.opts.count("--no-wait") > 0;
    if (pa.pos[0] == "reject") {
        if (pa.pos.size() != 2) return usage(c, "runs reject takes one RUN_ID");
        registry reg(c.cfg.data_dir / "connectors", c.clk);
        pipeline p(reg, **store, c.clk, c.cfg.data_dir);
        setup_pipeline(c, p);
        if (auto s = p.reject(pa.pos[1], {pa.opts["--as"], pa.opts["--reason"], ""}); !s) return fail(c, s);
        c.out << "rejected run " << pa.pos[1] << ": nothing of its plan was applied\n";
        return 0;
    }
    if (pa.pos[0] == "approve") {
        if (pa.pos.size() != 2) return usage(c, "runs approve takes one RUN_ID");
        decision d{pa.opts["--as"], pa.opts["--reason"], pa.opts["--plan"]};
        return drive_stored("approving the plan of run ", false,
                            [&](pipeline& p) { return p.approve(pa.pos[1], d, no_wait); });
    }
    if (pa.pos[0] == "retry-failed" || pa.pos[0] == "resume" || pa.pos[0] == "apply") {
        if (pa.pos.size() != 2) return usage(c, "runs " + pa.pos[0] + " takes one RUN_ID");
        if (pa.pos[0] == "retry-failed") {
            run_options opts;
            opts.dry_run = pa.opts.count("--dry-run") > 0;
            opts.no_wait = no_wait;
            return drive_stored("retrying the failed changes of run ", opts.dry_run,
                                [&](pipeline& p) { return p.retry_failed(pa.pos[1], opts); });
        }
        if (pa.pos[0] == "resume")
            return drive_stored("resuming run ", false, [&](pipeline& p) { return p.resume(pa.pos[1], no_wait); });
        return drive_stored("applying the plan of run ", false,
                            [&](pipeline& p) { return p.apply_stored(pa.pos[1], no_wait); });
    }
    return usage(c, "unknown runs subcommand '" + pa.pos[0] + "'");
}

int secrets_cmd(context& c, const std::vector<std::string>& args) {
    parsed_args pa;
    std::string error;
    if (!parse_args(args,
                    {{"--from-file", true}, {"--json", false}, {"--allow-short", false}, {"--new-key-file", true},
                     {"--finish", false}},
                    pa, error))
        return usage(c, error);
    if (pa.pos.empty()) return usage(c, "secrets needs a subcommand: set, rotate, retire, rekey or list");
    auto store = open_store(c);
    if (!store) return fail(c, store.status());
    const fs::path key_file = c.cfg.data_dir / "keys" / "master.key";
    const fs::path next_file = key_file.string() + ".new";
    if (pa.pos[0] == "rekey" && pa.opts.count("--finish")) {
        // A rekey stopped between its commit and its rename: keep whichever
        // key the secrets are stored under now.
        std::error_code ec;
        if (!fs::exists(next_file, ec)) {
            c.out << "no rekey to finish\n";
            return 0;
        }
        auto next_text = read_private_file(next_file, "the new master key");
        if (!next_text) return fail(c, next_text.status());
        auto next = master_key::parse(*next_text, next_file.string());
        if (!next) return fail(c, next.status());
        secret_store probe(**store, master_key::from_bytes(*next, next_file.string()), c.clk);
        if (probe.opens_with(*next)) {
            fs::rename(next_file, key_file, ec);
            if (ec) return fail(c, Status::error(error_kind::store, "renaming " + next_file.string() + ": " + ec.message()));
            c.out << "the rekey had committed: " << key_file.string() << " is now the new key\n";
        } else {
            fs::remove(next_file, ec);
            c.out << "the rekey had not committed: the secrets stay under " << key_file.string() << "\n";
        }
        return 0;
    }
    auto key = master_key::load(c.cfg.data_dir);
    if (!key) return fail(c, key.status());
    const std::string key_source = key->source(), key_id = key->key_id();
    secret_store secrets(**store, std::move(*key), c.clk);
    if (pa.pos[0] == "list") {
        auto all = secrets.list();
        if (!all) return fail(c, all.status());
        if (pa.opts.count("--json")) {
            nlohmann::json j = nlohmann::json::array();
            for (auto& x : *all)
                j.push_back({{"name", x.name}, {"version", x.version}, {"created_at", x.created_at}, {"by", x.created_by},
                             {"retired", x.retired}});
            c.out << j.dump(2) << "\n";
            return 0;
        }
        if (all->empty()) c.out << "no secrets yet\n";
        for (auto& x : *all)
            c.out << std::left << std::setw(24) << x.name << " version " << std::setw(4) << x.version << x.created_at
                  << "  by " << x.created_by << (x.retired ? "  (retired)" : "") << "\n";
        return 0;
    }
    const std::string by = cli_actor();
    if (pa.pos[0] == "retire") {
        if (pa.pos.size() != 3) return usage(c, "secrets retire takes NAME and VERSION");
        uint32_t version = 0;
        try {
            size_t used = 0;
            const unsigned long v = std::stoul(pa.pos[2], &used);
            if (used != pa.pos[2].size() || v == 0 || v > UINT32_MAX) throw std::invalid_argument("version");
            version = static_cast<uint32_t>(v);
        } catch (...) {
            return usage(c, "secrets retire: VERSION is a version number (`secrets list` shows them), not '" +
                                pa.pos[2] + "'");
        }
        std::optional<secret_info> info;
        if (auto s = (*store)->in_transaction([&]() -> Status {
                auto gone = secrets.retire(pa.pos[1], version);
                if (!gone) return gone.status();
                info = *gone;
                return audit_admin_event(c, **store,
                                         {"secret_changed", "",
                                          {{"name", info->name}, {"version", info->version}, {"action", "retire"},
                                           {"by", by}, {"os_user", authenticated_user().to_json()}}});
            });
            !s)
            return fail(c, s);
        (*store)->compact_free_pages();
        c.out << "retired secret " << info->name << " version " << info->version << ": its value is erased\n";
        return 0;
    }
    if (pa.pos[0] == "rekey") {
        if (pa.pos.size() != 1) return usage(c, "secrets rekey takes no NAME: it re-encrypts every secret");
        // The new key: made here when the key lives in the data dir; given
        // (--new-key-file) when it comes from the environment or systemd,
        // where the operator installs it afterwards.
        const bool in_data_dir = key_source == key_file.string();
        std::array<unsigned char, 32> next{};
        if (pa.opts.count("--new-key-file")) {
            auto text = read_private_file(pa.opts["--new-key-file"], "the new master key");
            if (!text) return fail(c, text.status());
            auto parsed = master_key::parse(*text, pa.opts["--new-key-file"]);
            if (!parsed) return fail(c, parsed.status());
            next = *parsed;
        } else if (!in_data_dir) {
            return fail(c, Status::error(error_kind::usage, "the master key comes from " + key_source +
                                                                ": give the new one with --new-key-file FILE (64 hex "
                                                                "digits, `openssl rand -hex 32`), and install it there "
                                                                "once the rekey is done"));
        } else if (RAND_bytes(next.data(), static_cast<int>(next.size())) != 1) {
            return fail(c, Status::error(error_kind::internal, "no randomness for the new master key"));
        }
        const master_key fresh = master_key::from_bytes(next, "the new key");
        if (fresh.key_id() == key_id)
            return fail(c, Status::error(error_kind::usage, "the new master key is the present one"));
        // Written before the commit: a rekey that stops after it leaves
        // both keys, and `secrets rekey --finish` keeps the right one.
        if (in_data_dir)
            if (auto s = create_private_file(next_file, to_hex(next.data(), next.size()) + "\n", "the new master key");
                !s)
                return fail(c, s);
        size_t count = 0;
        const std::string& old_id = key_id;
        if (auto s = (*store)->in_transaction([&]() -> Status {
                auto n = secrets.rekey(next);
                if (!n) return n.status();
                count = *n;
                return audit_admin_event(c, **store,
                                         {"secrets_rekeyed", "",
                                          {{"secrets", count}, {"old_key_id", old_id}, {"new_key_id", fresh.key_id()},
                                           {"by", by}, {"os_user", authenticated_user().to_json()}}});
            });
            !s) {
            std::error_code ec;
            if (in_data_dir) fs::remove(next_file, ec);
            return fail(c, s);
        }
        (*store)->compact_free_pages();
        if (in_data_dir) {
            std::error_code ec;
            fs::rename(next_file, key_file, ec);
            if (ec)
                return fail(c, Status::error(error_kind::store, "the secrets are re-encrypted, but " +
                                                                    next_file.string() + " could not replace " +
                                                                    key_file.string() + ": " + ec.message() +
                                                                    "; run `syncwarden secrets rekey --finish`"));
            c.out << "re-encrypted " << count << " secret versions under a new master key (" << fresh.key_id()
                  << "), now in " << key_file.string() << "; back it up apart from the data dir\n";
        } else {
            c.out << "re-encrypted " << count << " secret versions under the new master key (" << fresh.key_id()
                  << "); install it in place of " << key_source << " before the next run\n";
        }
        return 0;
    }
    if (pa.pos[0] != "set" && pa.pos[0] != "rotate") return usage(c, "unknown secrets subcommand '" + pa.pos[0] + "'");
    if (pa.pos.size() != 2) return usage(c, "secrets " + pa.pos[0] + " takes one NAME; the value is read from stdin");
    // The value: stdin, or a file (a systemd credential); one trailing
    // newline (what `echo` adds) is not part of it.
    std::string value;
    if (pa.opts.count("--from-file")) {
        std::ifstream in(pa.opts["--from-file"], std::ios::binary);
        if (!in) return fail(c, Status::error(error_kind::not_found, pa.opts["--from-file"] + ": cannot read it"));
        value.assign(std::istreambuf_iterator<char>(in), {});
    } else {
        value.assign(std::istreambuf_iterator<char>(std::cin), {});
    }
    if (!value.empty() && value.back() == '\n') value.pop_back();
    if (!value.empty() && value.back() == '\r') value.pop_back();
    // A short value cannot be kept out of the logs: scrubbing it would
    // blank ordinary words, not scrubbing it leaves it in clear wherever a
    // connector prints it.
    if (value.size() < pii::k_short_secret && !pa.opts.count("--allow-short"))
        return fail(c, Status::error(error_kind::config,
                                     "secret " + pa.pos[1] + ": the value is " + std::to_string(value.size()) +
                                         " bytes; a secret shorter than " + std::to_string(pii::k_short_secret) +
                                         " bytes cannot be kept out of the logs reliably. Use a longer value, or "
                                         "--allow-short to store it anyway (each run that uses it then warns)"));
    // The new version and its audit event commit together, or neither does.
    std::optional<secret_info> info;
    if (auto s = (*store)->in_transaction([&]() -> Status {
            auto added = pa.pos[0] == "set" ? secrets.set(pa.pos[1], value, by) : secrets.rotate(pa.pos[1], value, by);
            if (!added) return added.status();
            info = *added;
            return audit_admin_event(c, **store,
                                     {"secret_changed", "",
                                      {{"name", info->name}, {"version", info->version}, {"action", pa.pos[0]}, {"by", by},
                                       {"os_user", authenticated_user().to_json()}}});
        });
        !s)
        return fail(c, s);
    c.out << "stored secret " << info->name << " version " << info->version << "\n";
    return 0;
}

int retention_cmd(context& c, const std::vector<std::string>& args) {
    parsed_args pa;
    std::string error;
    if (!parse_args(args, {{"--dry-run", false}}, pa, error)) return usage(c, error);
    if (pa.pos.size() != 1 || pa.pos[0] != "apply") return usage(c, "retention takes one subcommand: apply [--dry-run]");
    auto store = open_store(c);
    if (!store) return fail(c, store.status());
    const bool dry = pa.opts.count("--dry-run") > 0;
    auto rep = apply_retention(**store, c.cfg.data_dir, c.cfg.retention, c.clk, dry);
    if (!rep) return fail(c, rep.status());
    auto days = [](const std::optional<int>& d) { return d ? std::to_string(*d) + " days" : std::string("forever"); };
    c.out << (dry ? "would remove" : "removed") << " (plans kept " << days(c.cfg.retention.plans_days)
          << ", change results " << days(c.cfg.retention.change_results_days) << ", logs "
          << days(c.cfg.retention.logs_days) << "):\n"
          << "  plans of " << rep->plans.size() << " runs\n"
          << "  " << rep->results << " change results of " << rep->results_of.size() << " runs\n"
          << "  " << rep->logs.size() << " daily log files\n";
    for (auto& h : rep->kept_held)
        c.out << "kept the plan of held run " << h << ": it awaits `syncwarden runs approve` or `runs reject`\n";
    if (!dry) c.out << "run records, their summaries and the audit log are kept; `syncwarden audit verify` still checks\n";
    return 0;
}

}  // namespace

int run_cli(const std::vector<std::string>& all, std::ostream& out, std::ostream& err, const clock& clk) {
    std::vector<std::string> args;
    std::string data_dir, config_file;
    for (size_t i = 0; i < all.size(); ++i) {
        if ((all[i] == "--data-dir" || all[i] == "--config") && args.empty()) {
            if (i + 1 >= all.size()) {
                err << "error: " << all[i] << " needs a value\n";
                return 2;
            }
            std::string& dst = all[i] == "--data-dir" ? data_dir : config_file;
            dst = all[++i];
            continue;
        }
        args.push_back(all[i]);
    }
    context c{out, err, clk, {}, config_file};
    if (args.empty() || args[0] == "help" || args[0] == "--help" || args[0] == "-h") {
        (args.empty() ? err : out) << k_usage;
        return args.empty() ? 2 : 0;
    }
    const char* env = std::getenv("SYNCWARDEN_DATA_DIR");
    auto cfg = load_kernel_config(config_file, "syncwarden-data");
    if (!cfg) return fail(c, cfg.status());
    c.cfg = *cfg;
    if (env && *env && config_file.empty()) c.cfg.data_dir = env;
    if (!data_dir.empty()) c.cfg.data_dir = data_dir;
    c.cfg.data_dir = fs::absolute(c.cfg.data_dir);
    set_sandbox_config(c.cfg.sandbox);
    std::vector<std::string> rest(args.begin() + 1, args.end());
    // A data dir this user may not read is said so, not taken for an empty
    // one ("no runs yet") or one that no daemon serves.
    if (args[0] != "version") {
        struct stat st {};
        const bool there = ::stat(c.cfg.data_dir.c_str(), &st) == 0;
        const int e = there ? (::access(c.cfg.data_dir.c_str(), R_OK | X_OK) == 0 ? 0 : errno) : errno;
        if (e && e != ENOENT)
            return fail(c, Status::error(error_kind::store,
                                         "cannot use the data dir " + c.cfg.data_dir.string() + ": " +
                                             std::strerror(e) + (there ? "; it belongs to uid " +
                                                                             std::to_string(st.st_uid) + ":" : ";") +
                                             " run syncwarden as its owner (or root), or give --data-dir"));
    }
    if (args[0] == "version") {
        out << "syncwarden " << SYNCWARDEN_VERSION << " (connector ABI " << SW_ABI_MAJOR << "." << SW_ABI_MINOR << ")\n";
        return 0;
    }
    // Only a command that writes to the data dir creates it (and its logs).
    const bool writes = args[0] == "run" ||
                        (args[0] == "runs" && !rest.empty() &&
                         (rest[0] == "apply" || rest[0] == "resume" || rest[0] == "retry-failed" ||
                          rest[0] == "approve" || rest[0] == "reject")) ||
                        (args[0] == "connectors" && !rest.empty() &&
         (rest[0] == "install" || rest[0] == "pin" || rest[0] == "unpin" || rest[0] == "retire")) ||
                        (args[0] == "audit" && !rest.empty() && rest[0] == "note") || args[0] == "retention" ||
                        args[0] == "secrets";
    // While a daemon serves the data dir, it carries out the commands that
    // start, change or show runs and releases; without one they work here.
    if (args[0] == "run" || args[0] == "runs" || args[0] == "connectors")
        if (auto code = through_daemon(c, args)) return *code;
    if (writes || args[0] == "serve") {
        if (auto s = pii::make_private(c.cfg.data_dir); !s) return fail(c, s);
        if (auto s = pii::use_data_dir_key(c.cfg.data_dir); !s) return fail(c, s);
        init_logging(c.cfg.data_dir, c.cfg.log_level);
    }
    if (args[0] == "serve") return serve_cmd(c, rest);
    if (args[0] == "status") return status_cmd(c, rest);
    if (args[0] == "jobs") return jobs_cmd(c, rest);
    if (args[0] == "connectors") return connectors_cmd(c, rest);
    if (args[0] == "run") return run_cmd(c, rest);
    if (args[0] == "runs") return runs_cmd(c, rest);
    if (args[0] == "audit") return audit_cmd(c, rest);
    if (args[0] == "retention") return retention_cmd(c, rest);
    if (args[0] == "secrets") return secrets_cmd(c, rest);
    return usage(c, "unknown command '" + args[0] + "'");
}

}  // namespace syncwarden::kernel
