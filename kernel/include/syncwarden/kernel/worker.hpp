// Connector worker processes: each connector instance of a run lives in its
// own process, started from the kernel's own binary with an internal
// subcommand. The kernel sees it through connector_session, like an
// in-process connector. A worker that crashes, exits, runs out of memory or
// stops making progress fails its run with a category (connector_crashed,
// connector_exited, connector_oom, timeout); the kernel goes on.
#pragma once

#include <syncwarden/kernel/loader.hpp>
#include <syncwarden/kernel/result.hpp>
#include <syncwarden/kernel/sandbox.hpp>
#include <syncwarden/kernel/session.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

namespace syncwarden::kernel {

inline constexpr const char* k_worker_command = "__worker";

// setrlimit values for the worker; 0 = no limit.
struct worker_limits {
    uint64_t memory_mb = 8192;    // RLIMIT_DATA: heap and private memory
    uint64_t cpu_seconds = 3600;  // RLIMIT_CPU
    uint64_t open_files = 1024;   // RLIMIT_NOFILE
    // Shared memory a started extract may fill before the kernel reads it
    // (connector_session::start_extract); 0: none.
    uint64_t read_ahead_mb = 256;
    // RLIMIT_NPROC: processes (and threads) at once, when the worker runs as
    // an id of its own (the limit counts every process of its uid).
    uint64_t processes = 64;
};

// Set when the run should stop: by SIGINT/SIGTERM, `runs cancel`, or a
// deadline. Sessions poll it and hand it to the connector as is_cancelled.
struct cancel_flag {
    std::atomic<bool> requested{false};
    std::atomic<int> signal{0};  // the signal that asked, if any
};

// "the run was cancelled (SIGINT) <where>", as a cancelled status.
Status cancelled_status(const cancel_flag& c, const std::string& where);

struct worker_options {
    worker_limits limits;
    // No emit, result, log or other host call for this long: the connector
    // is stuck. 0 = no watchdog.
    std::chrono::milliseconds stall{std::chrono::minutes(5)};
    // After is_cancelled was set: how long the connector has to return
    // SW_CANCELLED before its process is killed.
    std::chrono::milliseconds grace{std::chrono::seconds(10)};
    const cancel_flag* cancel = nullptr;
    std::string run_id, job;  // for the log lines the worker's output becomes
    // What confines the worker (prepare_sandbox; its temporary folder is
    // removed when the worker ends) and the environment variables the job
    // passes to it.
    sandbox_policy sandbox;
    std::vector<std::string> env;
};

// Deadline for the calls that follow (a phase's end), or none.
using deadline = std::optional<std::chrono::steady_clock::time_point>;

// The executable started as the worker: by default this process's own
// binary. Programs that embed the kernel without being `syncwarden` (tests,
// benchmarks) point it at the real binary.
void set_worker_executable(const std::filesystem::path& exe);

// True when argv asks for the worker; main() then returns worker_main().
bool is_worker_command(int argc, char** argv);
int worker_main(int argc, char** argv);

// Loads `so` in a throw-away worker, confined with no grants, and returns
// its manifest: a library that crashes in its constructors or entry fails
// here, not in the kernel. `data_dir` keeps the sandbox's ids.
Result<connector_info> probe_in_worker(const std::filesystem::path& so, const worker_limits& limits,
                                       const std::filesystem::path& data_dir);

// A worker process started before its session is opened, so that a run's
// two workers check and load their libraries (about 10 ms each) at the
// same time rather than one after the other: open_in_worker() takes it
// over. The worker checks the library against `sha256`, what it was
// installed with, before it loads it (and refuses it, as the registry
// would, when it changed). One never taken over ends, and is reaped, with
// its last handle.
struct started_worker;
Result<std::shared_ptr<started_worker>> start_worker(const std::filesystem::path& so, const connector_info& expected,
                                                     const std::string& sha256, const worker_options& opts);

// Starts a worker for `so` (or takes over `started`, when it was started
// for `so`) and creates the connector instance in it. `expected` is what
// the registry recorded for the release; a library whose manifest differs
// is refused.
Result<std::unique_ptr<connector_session>> open_in_worker(const std::filesystem::path& so,
                                                          const connector_info& expected,
                                                          const nlohmann::json& settings,
                                                          const std::string& job_name,
                                                          const std::filesystem::path& base_dir,
                                                          run_services& rs, const std::string& settings_path,
                                                          const worker_options& opts,
                                                          std::shared_ptr<started_worker> started = nullptr);

}  // namespace syncwarden::kernel
