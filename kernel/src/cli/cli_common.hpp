// What the `syncwarden` subcommands share: the context, argument parsing,
// errors, and how a run's outcome is printed.
#pragma once

#include <syncwarden/kernel/clock.hpp>
#include <syncwarden/kernel/config.hpp>
#include <syncwarden/kernel/pipeline.hpp>
#include <syncwarden/kernel/store.hpp>

#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace syncwarden::kernel::cli_detail {

extern const char* const k_usage;

struct context {
    std::ostream& out;
    std::ostream& err;
    const clock& clk;
    kernel_config cfg;
    std::filesystem::path config_file;  // --config, if given
};

// "cli:USER": who runs this command, for the audit log.
std::string cli_actor();
// A pipeline for this command: its actor and kernel config set.
void setup_pipeline(context& c, pipeline& p);
// Appends one admin event (installs, cancels) to the data dir's audit log.
Status audit_admin_event(context& c, run_store& store, const audit_event& e);

int fail(context& c, const Status& s);
int usage(context& c, const std::string& why);

// Splits "--flag value" options from positional arguments. A value option
// given twice keeps both, joined by a comma.
struct parsed_args {
    std::vector<std::string> pos;
    std::map<std::string, std::string> opts;
};
bool parse_args(const std::vector<std::string>& in, const std::map<std::string, bool>& known, parsed_args& out,
                std::string& error);

// Opens the run store and records runs whose process is gone as interrupted,
// so that no command ever shows a dead run as running.
Result<std::unique_ptr<run_store>> open_store(context& c);

void print_findings(context& c, const std::vector<finding_record>& fs, size_t limit);
// Every gate's verdict, holds first, in an operator's words.
void print_verdicts(context& c, const std::vector<gate_verdict>& vs, bool dry_run);
// What a run did, for people; then its exit code.
int print_outcome(context& c, const run_outcome& o, bool dry_run);

// `runs show RUN_ID [--json] [--changes [--entity E] [--kind K] [--limit N]]`
int runs_show(context& c, run_store& store, parsed_args& pa);

// `serve [--test-clock TIME]`: the daemon, until SIGTERM.
int serve_cmd(context& c, const std::vector<std::string>& args);
// `status [--json]`: the daemon's jobs, next fires and runs in progress.
int status_cmd(context& c, const std::vector<std::string>& args);
// `jobs list|trigger JOB|resume JOB`: the daemon's jobs.
int jobs_cmd(context& c, const std::vector<std::string>& args);
// Whether a daemon's control socket is there (and this is not one of its
// own child processes, which work directly).
bool daemon_serves(context& c);
// A command carried out by the daemon that serves the data dir: its exit
// code, after its output was printed; nullopt when no daemon answers.
std::optional<int> through_daemon(context& c, const std::vector<std::string>& args);

// `audit verify|export-head|proof|check-proof|report|public-key|note|list`
int audit_cmd(context& c, const std::vector<std::string>& args);

}  // namespace syncwarden::kernel::cli_detail
