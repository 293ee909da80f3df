// Confinement of connector workers: what a worker may touch (its grants,
// derived by the kernel from the job's settings as the connector's settings
// schema marks them), and the layers that hold it there (identity, files,
// network, system calls, environment). The kernel builds a sandbox_policy
// per worker; the worker applies it to itself before the library is loaded.
#pragma once

#include <syncwarden/kernel/result.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace syncwarden::kernel {

// The kernel config's "sandbox" block.
struct sandbox_config {
    // A layer the running kernel lacks refuses the run unless it is listed
    // in accept_missing, or require is false (every layer may be missing).
    bool require = true;
    std::vector<std::string> accept_missing;
    // Worker identities when the kernel runs as root: job workers get ids
    // first_id + 1 .. first_id + id_count - 1, one per job and role, kept in
    // <data_dir>/sandbox/ids.json; probes of new libraries get first_id.
    uint32_t first_id = 1879048192;  // 0x70000000, above the ranges containers use
    uint32_t id_count = 1u << 20;
};

// The layers, by the names messages, summaries and accept_missing use.
inline const std::vector<std::string>& sandbox_layers() {
    static const std::vector<std::string> k{"identity", "files", "network", "syscalls", "environment"};
    return k;
}

// One thing a worker may reach, derived from one setting.
struct grant {
    enum class kind { read_path, write_path, write_file, endpoint };
    kind k = kind::read_path;
    std::string value;    // the absolute path, or host:port
    std::string setting;  // the JSON pointer of the setting it came from ("/folder")
    uint16_t port = 0;    // endpoint
};
const char* to_string(grant::kind k);  // "read-path", ...

// The grants of a connector's settings: each string (or array of strings)
// whose schema says "x-syncwarden-grant". Relative paths are taken from
// base_dir, as the shipped connectors do. A value that is not a path or
// URL the grant needs is a config error naming `where` and the pointer.
Result<std::vector<grant>> derive_grants(const std::string& schema_text, const nlohmann::json& settings,
                                         const std::filesystem::path& base_dir, const std::string& where);

nlohmann::json grants_json(const std::vector<grant>& g);  // [{"kind","value","setting"}]
std::string grants_text(const std::vector<grant>& g);     // "read /x; write /y; connect h:443"; "nothing"

// What the kernel hands one worker: applied by confine_self() in the worker.
struct sandbox_policy {
    bool enabled = false;
    std::vector<std::string> read, write, write_files;  // absolute paths
    std::vector<std::string> create_in;                  // folders it may make (and write) files in
    std::vector<uint16_t> ports;                         // TCP ports it may connect to
    bool network = false;                                // false: a network namespace of its own
    uint32_t uid = 0, gid = 0;                           // 0: keep (not root: a user namespace)
    std::string tmp;                                     // its private temporary folder
    std::vector<std::string> off;                        // layers missing here and accepted: not applied
    std::vector<std::string> library;                    // files it loads (the connector, read-only)
    // Kernel side only: folders prepare_sandbox made for write grants,
    // deepest first; release_sandbox removes those still empty.
    std::vector<std::string> made;

    nlohmann::json to_json() const;
    static sandbox_policy from_json(const nlohmann::json& j);
};

// The layers this machine's Linux cannot give (empty when all are there),
// each with why: {"files", "Landlock is not enabled (ABI 0)"}.
std::vector<std::pair<std::string, std::string>> missing_sandbox_layers();

// The Landlock ABI of the running Linux; 0 when none.
int landlock_abi();

// Refuses (a config error naming the layer and the setting) when a layer
// is missing and `cfg` does not accept it; otherwise the layers the run goes
// without, for its summary ("unconfined: network").
Result<std::vector<std::string>> check_sandbox_layers(const sandbox_config& cfg);

// In the worker: confines this process. A layer that fails is an error (the
// worker then refuses to load); the layers in p.off are not applied.
Status confine_self(const sandbox_policy& p);

// The environment a worker starts with: PATH, LANG, LC_*, TZ, and the names
// in `pass` (never SYNCWARDEN_* or CREDENTIALS_DIRECTORY), from `from`.
std::vector<std::string> worker_environment(char** from, const std::vector<std::string>& pass,
                                            const std::string& tmp);

// The kernel's side of one worker's sandbox: its identity (as root, the
// job's and role's own ids, kept in <data_dir>/sandbox/ids.json; a probe
// gets first_id), its private temporary folder (made here, owned by that
// identity), write-path folders made when missing, and access for that
// identity to its grants (POSIX ACL entries where the modes do not give
// it). A grant that reaches into the data dir (but for its drops/ folder) is
// refused. `layers_off` are the layers check_sandbox_layers accepted
// missing. release_sandbox() removes the temporary folder.
struct sandbox_request {
    std::string job, role;  // empty job: a probe of a library
    std::vector<grant> grants;
    std::filesystem::path library;
    std::vector<std::string> layers_off;
};
Result<sandbox_policy> prepare_sandbox(const sandbox_config& cfg, const std::filesystem::path& data_dir,
                                       const sandbox_request& req);
void release_sandbox(const sandbox_policy& p);

// check_sandbox_layers and prepare_sandbox with the process's sandbox
// config: `req.layers_off` is filled from the check.
Result<sandbox_policy> make_sandbox(const std::filesystem::path& data_dir, sandbox_request req);

// The process-wide sandbox settings, from the kernel config (the CLI sets
// them once at start).
sandbox_config current_sandbox_config();
void set_sandbox_config(const sandbox_config& c);

}  // namespace syncwarden::kernel
