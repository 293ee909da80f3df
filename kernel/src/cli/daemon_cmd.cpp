// `serve`, `status`, `jobs`, and the CLI's commands carried out by a
// running daemon.
#include "cli_common.hpp"

#include <syncwarden/kernel/daemon.hpp>
#include <syncwarden/kernel/log.hpp>
#include <syncwarden/kernel/pii.hpp>
#include <syncwarden/kernel/text.hpp>

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <iomanip>

namespace fs = std::filesystem;

namespace syncwarden::kernel::cli_detail {

namespace {

using json = nlohmann::json;

// The daemon's answer as JSON, or the error it gave as a failure.
Result<json> ask(context& c, const std::string& method, const std::string& target, const json& body = json::object()) {
    auto r = control_request(control_socket_path(c.cfg), method, target, body.empty() ? "" : body.dump());
    if (!r) return r.status();
    json j = json::parse(r->body, nullptr, false);
    if (j.is_discarded())
        return Status::error(error_kind::internal, "the daemon answered " + std::to_string(r->status) +
                                                       " with something that is not JSON: " + printable(r->body.substr(0, 200)));
    if (r->status >= 300)
        return Status::error(r->status == 404   ? error_kind::not_found
                             : r->status == 409 || r->status == 503 ? error_kind::busy
                                                 : error_kind::usage,
                             j.value("error", r->body));
    return j;
}

std::string or_dash(const json& j, const char* key) {
    auto it = j.find(key);
    return it == j.end() || it->is_null() ? "-" : it->is_string() ? it->get<std::string>() : it->dump();
}

}  // namespace

bool daemon_serves(context& c) {
    if (const char* child = std::getenv("SYNCWARDEN_DAEMON_CHILD"); child && *child) return false;
    std::error_code ec;
    return fs::exists(control_socket_path(c.cfg), ec);
}

std::optional<int> through_daemon(context& c, const std::vector<std::string>& args) {
    if (!daemon_serves(c)) return std::nullopt;
    std::error_code ec;
    json body{{"args", args}, {"cwd", fs::current_path(ec).string()}};
    auto r = control_request(control_socket_path(c.cfg), "POST", "/v1/cli", body.dump());
    if (!r) {
        // A socket file no daemon answers on: the daemon is gone; work directly.
        if (r.status().kind() == error_kind::not_found) return std::nullopt;
        return fail(c, r.status());
    }
    json j = json::parse(r->body, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
        c.err << "error: the daemon answered " << r->status << " with something that is not JSON\n";
        return 1;
    }
    if (r->status != 200) {
        c.err << "error: " << j.value("error", r->body) << "\n";
        return r->status == 503 ? 9 : 1;
    }
    c.out << j.value("stdout", std::string());
    c.err << j.value("stderr", std::string());
    return j.value("exit_code", 1);
}

int serve_cmd(context& c, const std::vector<std::string>& args) {
    parsed_args pa;
    std::string error;
    if (!parse_args(args, {{"--test-clock", true}}, pa, error)) return usage(c, error);
    if (!pa.pos.empty()) return usage(c, "serve takes no arguments; the kernel config (--config) says what it serves");
    serve_options o;
    o.cfg = c.cfg;
    o.config_file = c.config_file;
    if (pa.opts.count("--test-clock")) {
        auto t = parse_iso8601(pa.opts["--test-clock"]);
        if (!t) return usage(c, "--test-clock takes a time such as 2026-03-08T07:00:00Z");
        o.test_clock = *t;
    }
    return serve(o, c.out, c.err);
}

int status_cmd(context& c, const std::vector<std::string>& args) {
    parsed_args pa;
    std::string error;
    if (!parse_args(args, {{"--json", false}}, pa, error)) return usage(c, error);
    if (!daemon_serves(c)) {
        if (pa.opts.count("--json")) {
            c.out << json{{"daemon", nullptr}}.dump(2) << "\n";
            return 0;
        }
        c.out << "no daemon serves " << c.cfg.data_dir.string() << " (`syncwarden serve` starts one); "
              << "`syncwarden runs list` shows the runs\n";
        return 0;
    }
    auto st = ask(c, "GET", "/v1/status");
    if (!st) {
        if (st.status().kind() == error_kind::not_found) {
            c.out << "no daemon answers on " << control_socket_path(c.cfg).string() << "\n";
            return 0;
        }
        return fail(c, st.status());
    }
    const json& j = *st;
    if (pa.opts.count("--json")) {
        c.out << j.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
        return 0;
    }
    c.out << "daemon pid " << j.value("pid", 0) << ", up since " << or_dash(j, "started_at")
          << (j.value("stopping", false) ? ", stopping" : "") << (j.value("test_clock", false) ? ", test clock " + or_dash(j, "now") : "")
          << "\n";
    c.out << "\nJOB                 NEXT FIRE                 LAST RUN\n";
    for (auto& job : j["jobs"]) {
        std::string last = "-";
        if (job["last_run"].is_object())
            last = job["last_run"].value("state", "") + " " + job["last_run"].value("id", "");
        std::string flags;
        if (job.value("running", false)) flags += " running";
        if (job.value("queued", false)) flags += " queued";
        if (job.value("paused", false)) flags += " PAUSED";
        if (job.contains("error")) flags += " (job file broken: last good version kept)";
        c.out << std::left << std::setw(20) << job.value("name", "") << std::setw(26) << or_dash(job, "next_fire") << last
              << flags << "\n";
    }
    for (auto& bad : j["job_file_errors"]) c.out << "job file not loaded: " << bad.value("error", "") << "\n";
    c.out << "\nRUNS IN PROGRESS\n";
    if (j["runs"].empty()) c.out << "  none\n";
    for (auto& r : j["runs"])
        c.out << "  " << r.value("id", "") << "  " << r.value("job", "") << "  " << r.value("state", "") << " ("
              << r.value("phase", "") << ")  " << r.value("trigger", "") << "\n";
    return 0;
}

int jobs_cmd(context& c, const std::vector<std::string>& args) {
    parsed_args pa;
    std::string error;
    if (!parse_args(args, {{"--json", false}}, pa, error)) return usage(c, error);
    if (pa.pos.empty() || (pa.pos[0] != "list" && pa.pos[0] != "trigger" && pa.pos[0] != "resume"))
        return usage(c, "jobs needs a subcommand: list, trigger JOB or resume JOB");
    if (!daemon_serves(c))
        return fail(c, Status::error(error_kind::usage, "no daemon serves " + c.cfg.data_dir.string() +
                                                            ": jobs are the daemon's (`syncwarden serve`); without "
                                                            "one, `syncwarden run JOB.json` runs a job"));
    if (pa.pos[0] == "list") {
        auto st = ask(c, "GET", "/v1/status");
        if (!st) return fail(c, st.status());
        if (pa.opts.count("--json")) {
            c.out << (*st)["jobs"].dump(2) << "\n";
            return 0;
        }
        return status_cmd(c, {});
    }
    if (pa.pos.size() != 2) return usage(c, "jobs " + pa.pos[0] + " takes one JOB name");
    auto r = ask(c, "POST", "/v1/jobs/" + pa.pos[1] + "/" + pa.pos[0]);
    if (!r) return fail(c, r.status());
    if (pa.pos[0] == "resume") {
        c.out << "job " << pa.pos[1] << " resumed: its schedule runs again\n";
        return 0;
    }
    if (r->value("started", false)) c.out << "started run " << r->value("run_id", "") << " of job " << pa.pos[1] << "\n";
    else c.out << "job " << pa.pos[1] << " queued: " << r->value("queued", "") << "\n";
    return 0;
}

}  // namespace syncwarden::kernel::cli_detail
