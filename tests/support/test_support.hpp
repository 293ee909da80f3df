// Helpers shared by the test executables: temp folders, running the CLI
// in-process, installing the shipped connectors, and writing jobs.
#pragma once

#include <syncwarden/kernel/clock.hpp>

#include <gmock/gmock.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <sys/types.h>
#include <map>
#include <string>
#include <vector>

namespace sw_test {

namespace fs = std::filesystem;

// A fresh folder under the system temp dir, removed with its content.
class temp_dir {
public:
    temp_dir();
    ~temp_dir();
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    const fs::path& path() const { return path_; }
    fs::path operator/(const std::string& rel) const { return path_ / rel; }

private:
    fs::path path_;
};

struct cli_result {
    int code = -1;
    std::string out, err;
};

// Runs `syncwarden --data-dir DATA args...` in this process.
cli_result cli(const fs::path& data_dir, const std::vector<std::string>& args);
// The same on a clock the test sets.
cli_result cli(const fs::path& data_dir, const std::vector<std::string>& args, const syncwarden::kernel::clock& clk);

// Runs the `syncwarden` binary as a child process with `env` added to the
// environment; output goes to files in `data_dir`. `signal` is the signal
// that killed it, or 0.
// A job file (root/job.json), the data dir it runs in (root/data) and the
// district export it reads (root/district), for end-to-end tests.
struct job_dir {
    fs::path root;
    fs::path data() const { return root / "data"; }
    fs::path district() const { return root / "district"; }
    fs::path job() const { return root / "job.json"; }
    // `syncwarden run job.json`, with --dry-run when `dry`.
    cli_result run(bool dry = false) const;
    // The plan file that run wrote.
    nlohmann::json plan(const cli_result& r) const;
};

struct process_result {
    int code = -1, signal = 0;
};
process_result run_kernel(const fs::path& data_dir, const std::vector<std::string>& args,
                          const std::vector<std::string>& env = {});
// The same, started in the background; wait_kernel() collects it.
pid_t start_kernel(const fs::path& data_dir, const std::vector<std::string>& args,
                   const std::vector<std::string>& env = {});
process_result wait_kernel(pid_t pid);
// Polls for a file a child process creates when it reaches a point (not a
// timing guess: the condition itself); false after `limit`.
bool wait_for_file(const fs::path& p, std::chrono::seconds limit = std::chrono::seconds(60));

void write_file(const fs::path& p, const std::string& content);
// Every daily log file of a data dir (logs/syncwarden_*.jsonl), oldest first.
std::string read_logs(const fs::path& data_dir);
// The runs' own logs (what connectors printed and logged), oldest run
// first; and the shared logs followed by those.
std::string read_run_logs(const fs::path& data_dir);
std::string read_all_logs(const fs::path& data_dir);
std::string read_file(const fs::path& p);
// The state in a ledger-target fixture's ledger file: key -> name (a line
// with an empty name is a delete).
std::map<std::string, std::string> ledger_state(const fs::path& p);
// The rows of a CSV file after its header, split at commas, without a
// trailing CR: for exports whose cells hold no quoted comma (the demo
// district, the generated ones).
std::vector<std::vector<std::string>> csv_rows(const fs::path& p);
// Every file below `dir`, relative path -> content.
std::vector<std::pair<std::string, std::string>> snapshot(const fs::path& dir);

fs::path fixture(const std::string& name);   // a fixture plugin, by file stem
fs::path plugin(const std::string& name);    // a shipped connector, by name
fs::path shared_data(const std::string& rel);  // ../shared/data/<rel>

// Installs oneroster-csv and vendor-csv into the data dir.
void install_shipped(const fs::path& data_dir);

// A job from a OneRoster export at `source` into a vendor-csv folder:
// users -> people, enrollments -> rosters.
// `extra` adds top-level members (each with a trailing comma).
std::string roster_job(const fs::path& source, const fs::path& drop_folder, const std::string& extra = "");

// The run id a `run` or `runs apply` printed ("run r2026...-abc123 of job").
std::string run_id_of(const std::string& out);

// A job from the "good" fixture source into the diff-target fixture, which
// logs what it applies to dir/applied.log; installs both into dir/data.
// `extra` adds target settings (JSON members with a leading comma).
void diff_target_job(const fs::path& dir, const std::string& extra = "", const std::string& top = "");

// Copies a OneRoster folder so a test may change it.
void copy_tree(const fs::path& from, const fs::path& to);

}  // namespace sw_test
