// What a worker's sandbox is made of, how it crosses to the worker, and
// which of its layers this machine's Linux can give.
#include <syncwarden/kernel/sandbox.hpp>

#include "landlock.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sys/prctl.h>
#include <unistd.h>

using nlohmann::json;

namespace syncwarden::kernel {

json sandbox_policy::to_json() const {
    return {{"enabled", enabled}, {"read", read},   {"write", write}, {"write_files", write_files}, {"create_in", create_in},
            {"ports", ports},     {"network", network}, {"uid", uid},     {"gid", gid},
            {"tmp", tmp},         {"off", off},     {"library", library}};
}

sandbox_policy sandbox_policy::from_json(const json& j) {
    sandbox_policy p;
    p.enabled = j.value("enabled", false);
    p.read = j.value("read", std::vector<std::string>{});
    p.write = j.value("write", std::vector<std::string>{});
    p.write_files = j.value("write_files", std::vector<std::string>{});
    p.create_in = j.value("create_in", std::vector<std::string>{});
    p.ports = j.value("ports", std::vector<uint16_t>{});
    p.network = j.value("network", false);
    p.uid = j.value("uid", 0u);
    p.gid = j.value("gid", 0u);
    p.tmp = j.value("tmp", "");
    p.off = j.value("off", std::vector<std::string>{});
    p.library = j.value("library", std::vector<std::string>{});
    return p;
}

int landlock_abi() { return landlock::abi_version(); }

namespace {

long read_number(const char* file, long fallback) {
    std::ifstream in(file);
    long v = fallback;
    if (in >> v) return v;
    return fallback;
}

}  // namespace

std::vector<std::pair<std::string, std::string>> missing_sandbox_layers() {
    std::vector<std::pair<std::string, std::string>> out;
    // Tests make a layer look missing to check the refusal and the marks.
    std::vector<std::string> pretend;
    if (const char* p = std::getenv("SYNCWARDEN_SANDBOX_PRETEND_MISSING")) {
        std::string s = p, cur;
        for (char c : s + ",")
            if (c == ',') {
                if (!cur.empty()) pretend.push_back(cur);
                cur.clear();
            } else {
                cur += c;
            }
    }
    auto pretended = [&](const char* layer) {
        return std::find(pretend.begin(), pretend.end(), layer) != pretend.end();
    };
    // As root a worker takes an id of its own; as another user, a user
    // namespace of its own (which needs user namespaces to be on).
    if (pretended("identity"))
        out.emplace_back("identity", "made to look missing by SYNCWARDEN_SANDBOX_PRETEND_MISSING");
    else if (::geteuid() != 0 && read_number("/proc/sys/user/max_user_namespaces", 1) == 0)
        out.emplace_back("identity", "the kernel does not run as root and user namespaces are off "
                                     "(user.max_user_namespaces = 0)");
    else if (::geteuid() != 0 && read_number("/proc/sys/kernel/unprivileged_userns_clone", 1) == 0)
        out.emplace_back("identity", "the kernel does not run as root and unprivileged user namespaces are off "
                                     "(kernel.unprivileged_userns_clone = 0)");
    const int abi = landlock_abi();
    if (pretended("files"))
        out.emplace_back("files", "made to look missing by SYNCWARDEN_SANDBOX_PRETEND_MISSING");
    else if (abi == 0)
        out.emplace_back("files", "Landlock is not enabled in this Linux (it needs 5.13 and \"landlock\" in the lsm= "
                                  "boot list)");
    if (pretended("network"))
        out.emplace_back("network", "made to look missing by SYNCWARDEN_SANDBOX_PRETEND_MISSING");
    else if (abi < 4)
        out.emplace_back("network", "Landlock ABI " + std::to_string(abi) +
                                        " has no TCP rules (ABI 4, Linux 6.7); a connector with an endpoint could "
                                        "reach any port");
    if (pretended("syscalls"))
        out.emplace_back("syscalls", "made to look missing by SYNCWARDEN_SANDBOX_PRETEND_MISSING");
    else if (::prctl(PR_GET_SECCOMP, 0, 0, 0, 0) < 0 && errno == EINVAL)
        out.emplace_back("syscalls", "this Linux has no seccomp filters (CONFIG_SECCOMP_FILTER)");
    return out;
}

Result<std::vector<std::string>> check_sandbox_layers(const sandbox_config& cfg) {
    std::vector<std::string> off;
    for (auto& [layer, why] : missing_sandbox_layers()) {
        const bool ok = !cfg.require || std::find(cfg.accept_missing.begin(), cfg.accept_missing.end(), layer) !=
                                            cfg.accept_missing.end();
        if (!ok)
            return Status::error(error_kind::config,
                                 "sandbox: the " + layer + " layer of the connector sandbox is missing: " + why +
                                     ". Runs are refused until it is there; to run connectors without it, accept "
                                     "the risk in the kernel config: \"sandbox\": {\"accept_missing\": [\"" +
                                     layer + "\"]} (or \"require\": false for every layer)")
                .with_category("sandbox_unavailable");
        off.push_back(layer);
    }
    return off;
}

std::vector<std::string> worker_environment(char** from, const std::vector<std::string>& pass, const std::string& tmp) {
    std::vector<std::string> out;
    auto allowed = [&](const std::string& name) {
        if (name.rfind("SYNCWARDEN_", 0) == 0 || name == "CREDENTIALS_DIRECTORY") return false;
        if (name == "PATH" || name == "LANG" || name == "TZ" || name == "LANGUAGE" || name.rfind("LC_", 0) == 0)
            return true;
#if defined(SYNCWARDEN_SANITIZED) || defined(__SANITIZE_ADDRESS__)
        if (name == "ASAN_OPTIONS" || name == "UBSAN_OPTIONS" || name == "LSAN_OPTIONS") return true;
#endif
        return std::find(pass.begin(), pass.end(), name) != pass.end();
    };
    for (char** e = from; e && *e; ++e) {
        const char* eq = std::strchr(*e, '=');
        if (!eq) continue;
        const std::string name(*e, static_cast<size_t>(eq - *e));
        if (name == "TMPDIR" && !tmp.empty()) continue;
        if (allowed(name)) out.emplace_back(*e);
    }
    if (!tmp.empty()) out.push_back("TMPDIR=" + tmp);
    return out;
}

namespace {
std::mutex& config_mutex() {
    static std::mutex m;
    return m;
}
sandbox_config& config_slot() {
    static sandbox_config c;
    return c;
}
}  // namespace

sandbox_config current_sandbox_config() {
    std::lock_guard lock(config_mutex());
    return config_slot();
}

void set_sandbox_config(const sandbox_config& c) {
    std::lock_guard lock(config_mutex());
    config_slot() = c;
}

}  // namespace syncwarden::kernel
