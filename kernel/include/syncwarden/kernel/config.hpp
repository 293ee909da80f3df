// Kernel config and job files: JSON with comments, checked field by field.
// Every error names the file and the JSON path and says what was expected.
#pragma once

#include <syncwarden/kernel/cron.hpp>
#include <syncwarden/kernel/scheduler.hpp>

#include <syncwarden/kernel/gate_policy.hpp>
#include <syncwarden/kernel/result.hpp>
#include <syncwarden/kernel/sandbox.hpp>
#include <syncwarden/kernel/retry_policy.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <map>
#include <string>
#include <optional>
#include <vector>

namespace syncwarden::kernel {

// How long the data dir keeps what holds people's data or grows without
// bound, in days after a run ends; nullopt keeps it forever. Run records,
// their summaries, plan digests and the audit log are always kept.
struct retention_policy {
    std::optional<int> plans_days = 30;           // plans (the only place data lives)
    std::optional<int> change_results_days = 90;  // per-change results and attempts
    std::optional<int> logs_days = 30;            // daily log files
};

// "daemon": how `syncwarden serve` runs (config/README.md, "The daemon").
struct daemon_config {
    std::filesystem::path jobs_dir;   // empty: <data_dir>/jobs
    std::filesystem::path inbox_dir;  // empty: <data_dir>/inbox
    std::filesystem::path socket;     // empty: <data_dir>/syncwarden.sock
    size_t max_runs = 4;              // at once in all (0: no limit)
    size_t max_runs_per_target = 1;   // at once per target system (0: no limit)
    std::chrono::milliseconds poll{std::chrono::seconds(2)};          // jobs folder and inbox
    std::chrono::milliseconds stop_timeout{std::chrono::minutes(5)};  // SIGTERM: then runs are killed
    size_t max_connections = 64;  // control API connections open at once; more wait in the backlog
    std::chrono::milliseconds idle_timeout{std::chrono::seconds(30)};  // to send a whole request
};

struct kernel_config {
    std::filesystem::path file;      // empty when defaults were used
    std::filesystem::path data_dir;  // runs, plans, connectors, logs live here
    std::string log_level = "info";
    std::string store = "sqlite";    // the only kind so far
    retention_policy retention;
    daemon_config daemon;
    sandbox_config sandbox;
};

// One field of a target entity, computed from a source record.
// A list field filled from the records of another source entity that name
// this record (config/README.md, "Groups with members"): the members of a
// class are the `value`s of the enrollments whose `by` is the class's key.
struct collect_rule {
    std::string from;   // the source entity whose records are collected
    std::string by;     // its field (or key) naming this record's source key; a list field names several
    std::string value;  // its field (or key) that becomes one item; empty: its key
    std::vector<std::pair<std::string, std::vector<std::string>>> where;  // field -> allowed values
};

struct field_rule {
    enum class kind { from, template_, constant, collect };
    enum class on_missing { error, keep, empty, use_default };
    kind k = kind::from;
    std::string from;                     // kind::from: a source field or the source key name
    std::vector<std::string> parts;       // kind::template_: literal, field, literal, field, ...
    std::string value;                    // kind::constant
    std::string table;                    // optional mapping table applied to the value
    on_missing missing = on_missing::error;
    std::string default_value;
    // Applied in order: "lower", "upper", "trim", "ascii" (ICU
    // transliteration to ASCII: Zoë Łukasiewicz -> Zoe Lukasiewicz),
    // "username" (ascii, lower, then only a-z 0-9 . _ - @ kept).
    std::vector<std::string> transform;
    collect_rule collect;                 // kind::collect
    // The value is a name no other record of the target entity was given:
    // a counter from 2 goes before its '@' (or at its end) for the second
    // record that gets the same name, and each keeps its name across runs.
    bool unique = false;
    std::string path;                     // JSON path, for errors
};

struct entity_mapping {
    std::string target, source;
    std::vector<std::pair<std::string, std::vector<std::string>>> where;  // field -> allowed values
    std::vector<std::pair<std::string, field_rule>> fields;                // target field -> rule
    // When set, one target record per distinct value (or list item) of this
    // source field, not one per source record: a group per role. The record
    // mapped has that value as its key and in that field, nothing else.
    std::string distinct;
    std::string path;
    bool collects() const {
        for (auto& [f, r] : fields)
            if (r.k == field_rule::kind::collect) return true;
        return !distinct.empty();
    }
};

struct connector_ref {
    std::string connector;
    std::string version;  // semver range
    nlohmann::json settings = nlohmann::json::object();
    std::vector<std::string> env;  // variables passed on to its worker
};

// How a job's connectors run: isolation, limits and deadlines (README,
// "Isolation, limits and deadlines").
struct job_runtime {
    bool in_process = false;  // "isolation": "in-process"; worker processes otherwise
    // 8 GiB: a first delivery of a large district (8M rows) holds ~2.5 GiB in
    // the target connector; the limit is there to stop a runaway, not to pinch.
    uint64_t memory_mb = 8192, cpu_seconds = 3600, open_files = 1024;  // 0 = no limit
    uint64_t processes = 64;  // RLIMIT_NPROC of a worker with an id of its own; 0 = no limit
    uint64_t read_ahead_mb = 256;  // how far a source may run ahead of the kernel; 0 = not at all
    uint64_t output_mb = 16;  // what the run's connectors may print and log() into the run's log
    // Phase deadlines; 0 = none. stall: the watchdog; grace: how long a
    // connector has to stop after it was asked to.
    std::chrono::milliseconds contract{std::chrono::minutes(1)}, extract{std::chrono::hours(2)},
        diff{std::chrono::hours(2)}, apply{std::chrono::hours(4)}, stall{std::chrono::minutes(5)},
        grace{std::chrono::seconds(10)};
};

// "schedule": when the daemon runs the job (syncwarden serve).
struct job_schedule {
    cron_schedule cron;
    schedule_policy policy;  // overlap, catch_up, pause_after (target: set by the daemon)
};

struct job_config {
    std::filesystem::path file;
    std::filesystem::path base_dir;  // the job file's folder: relative paths start here
    std::string name;
    connector_ref source, target;
    std::map<std::string, std::map<std::string, std::string>> tables;
    std::vector<entity_mapping> entities;
    size_t batch_size = 500;
    job_runtime runtime;
    retry_policy retry;
    gate_policy gates;
    std::optional<job_schedule> schedule;  // none: run only when asked
    // A run of this job the daemon stopped (SIGTERM) is resumed when it
    // starts again.
    bool resume_interrupted = false;
};

// "90s", "5m", "1h", "30d", "250ms", or a number of seconds; what is wrong otherwise.
Result<std::chrono::milliseconds> parse_duration(const nlohmann::json& j);

// `file` may be empty: then defaults apply, with data_dir = `default_data_dir`.
Result<kernel_config> load_kernel_config(const std::filesystem::path& file,
                                         const std::filesystem::path& default_data_dir);
Result<job_config> load_job(const std::filesystem::path& file);

// Parses JSON with comments; errors say file:line:column. Only regular
// files of at most k_max_config_bytes are read.
inline constexpr uintmax_t k_max_config_bytes = 16u << 20;
Result<nlohmann::json> parse_json_file(const std::filesystem::path& file);
// The same for text read elsewhere (`file` names it in errors). Both refuse
// JSON nested deeper than k_max_json_depth or with more than
// k_max_json_values values, as a config error.
inline constexpr size_t k_max_json_depth = 64;
inline constexpr size_t k_max_json_values = 4'000'000;
Result<nlohmann::json> parse_json_text(const std::string& text, const std::filesystem::path& file);

}  // namespace syncwarden::kernel
