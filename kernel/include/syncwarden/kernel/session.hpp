// One connector instance for one run, as the kernel's phases see it.
//
// Each phase call takes the sink objects that receive what the connector
// hands back during that call (records, changes, per-change results,
// findings, checkpoints). A sink lives exactly as long as the call that uses
// it: between calls, and during destroy, a connector's host calls reach no
// kernel state at all. A worker-process session implements the same
// interface.
#pragma once

#include <syncwarden/connector.h>
#include <syncwarden/kernel/loader.hpp>
#include <syncwarden/kernel/result.hpp>
#include <syncwarden/kernel/schema.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace syncwarden::kernel {

// Records from extract (source) or read_state (target).
class record_sink {
public:
    virtual ~record_sink() = default;
    // SW_OK to go on; another status makes emit return it to the connector.
    virtual sw_status on_records(const sw_batch& batch) = 0;
};

// A target's own plan, from its diff hook.
class change_sink {
public:
    virtual ~change_sink() = default;
    virtual sw_status on_changes(const sw_change_batch& batch) = 0;
};

// Per-change outcomes of one apply call.
// The longest target id (ABI 1.4) the kernel keeps; a longer one is a
// connector defect.
inline constexpr size_t k_max_target_id = 1024;

class result_sink {
public:
    virtual ~result_sink() = default;
    virtual void on_result(size_t index, sw_status status, std::string_view category,
                           std::string_view message) = 0;
    // ABI 1.4: change `index` is known to the target by `id`. `too_long`:
    // the connector sent more than k_max_target_id bytes (id is cut).
    virtual void on_target_id(size_t /*index*/, std::string_view /*id*/, bool /*too_long*/) {}
};

// What every hook may use: findings and the connector's checkpoint.
class run_services {
public:
    virtual ~run_services() = default;
    virtual void on_finding(const sw_finding& finding) = 0;
    virtual sw_status checkpoint_save(std::string_view token) = 0;
    virtual std::optional<std::string> checkpoint_load() = 0;
    // The host's acquire slot (ABI 1.2): waits for rate-limit permits.
    // SW_CANCELLED when the run is stopping. Default: no limit.
    virtual sw_status acquire(uint32_t permits) {
        (void)permits;
        return SW_OK;
    }
    // The host's retry_wait slot (ABI 1.4): waits the retry policy's
    // backoff before a connector sends a request again. SW_OK: try again;
    // SW_RETRYABLE: give up. Default: give up.
    virtual sw_status retry_wait(uint32_t attempt, uint32_t retry_after_ms) {
        (void)attempt;
        (void)retry_after_ms;
        return SW_RETRYABLE;
    }
    // The host's is_cancelled for an in-process connector.
    virtual bool cancelled() const { return false; }
    // The host's report_layout slot (ABI 1.3): what a source read for an
    // entity. Default: ignored.
    virtual void on_layout(const std::string& entity, const std::string& file, std::vector<std::string> columns) {
        (void)entity, (void)file, (void)columns;
    }
};

// A run_services that drops findings and keeps no checkpoint: for calls
// outside a run (install-time checks, `runs apply` before the run exists).
run_services& no_services();

const char* status_name(sw_status s);

// The outcome of a hook that can fail per item (apply): its status and text.
// `fatal`: the connector's process is gone (crashed, exited, killed after a
// timeout); the run stops, and nothing more reaches the connector.
struct hook_error {
    sw_status status = SW_OK;
    std::string category, message;
    bool fatal = false;
    uint32_t retry_after_ms = 0;  // SW_THROTTLED: how long the vendor asked to wait
};

class connector_session {
public:
    virtual ~connector_session() = default;

    virtual const connector_info& info() const = 0;
    virtual const std::string& who() const = 0;  // "vendor-csv 1.0.0", for messages
    virtual bool has_diff() const = 0;
    virtual bool has_state_token() const = 0;
    // The calls that follow must end by `d` (the phase's deadline). Only a
    // worker session can enforce it; in-process connectors are trusted.
    virtual void set_deadline(std::optional<std::chrono::steady_clock::time_point> d) { (void)d; }

    virtual Result<contract_schema> contract(run_services& rs) = 0;
    // Lets the connector begin the extract that extract() with the same
    // entities then reads, so a source in a worker process reads its input
    // while the kernel reads the target's state. It runs ahead of the
    // kernel by a bounded amount of shared memory, then waits. A session
    // that cannot run ahead ignores it.
    virtual void start_extract(const std::vector<std::string>& entities) { (void)entities; }
    virtual Status extract(const std::vector<std::string>& entities, record_sink& out, run_services& rs) = 0;
    // The token the target reported while reading, if any.
    virtual Result<std::optional<std::string>> read_state(const std::vector<std::string>& entities,
                                                          record_sink& out, run_services& rs) = 0;
    // The target's current token (SW_CAP_STATE_TOKEN), without reading records.
    virtual Result<std::optional<std::string>> state_token(const std::vector<std::string>& entities,
                                                           run_services& rs) = 0;
    // desired == nullptr marks the end of the desired records.
    virtual Status diff(const sw_batch* desired, change_sink& out, run_services& rs) = 0;
    virtual hook_error apply(const sw_change_batch& batch, result_sink& out, run_services& rs) = 0;
    virtual hook_error commit(run_services& rs) = 0;
    // ABI 1.2. The run ends without commit: the target drops what it accepted.
    virtual void abort(run_services& rs) = 0;
    // ABI 1.2. The system the target writes; empty when it does not say.
    virtual Result<std::string> system_id(run_services& rs) = 0;
    bool transactional() const { return (info().capabilities & SW_CAP_TRANSACTIONAL) != 0; }
};

// Creates an instance of `lib` in this process. `settings` is checked
// against the connector's settings schema first; `settings_path` names where
// the settings live in the job file ("job.json: $.target.settings").
Result<std::unique_ptr<connector_session>> open_in_process(std::shared_ptr<const loaded_connector> lib,
                                                           const nlohmann::json& settings,
                                                           const std::string& job_name,
                                                           const std::filesystem::path& base_dir,
                                                           run_services& rs,
                                                           const std::string& settings_path = "settings");

}  // namespace syncwarden::kernel
