#include <syncwarden/kernel/clock.hpp>
#include <syncwarden/kernel/registry.hpp>
#include <syncwarden/kernel/worker.hpp>

#include <nlohmann/json.hpp>

#include <atomic>
#include <cstdio>
#include <random>
#include <fstream>
#include <cerrno>
#include <cstring>
#include <sys/stat.h>
#include <fcntl.h>
#include <vector>
#include <unistd.h>

namespace fs = std::filesystem;
using nlohmann::json;

namespace syncwarden::kernel {
namespace {

json to_json(const installed_release& r) {
    return {{"name", r.info.name},
            {"version", r.info.version},
            {"build_id", r.info.build_id},
            {"description", r.info.description},
            {"abi", std::to_string(r.info.abi_major) + "." + std::to_string(r.info.abi_minor)},
            {"capabilities", r.info.capabilities},
            {"thread_safety", r.info.thread_safety},
            {"settings_schema", r.info.settings_schema},
            {"sha256", r.sha256},
            {"file", r.path.filename().string()},
            {"installed_at", r.installed_at}};
}

Result<installed_release> read_release(const fs::path& dir) {
    auto file = dir / "release.json";
    std::ifstream in(file);
    if (!in) return Status::error(error_kind::store, "cannot read " + file.string());
    try {
        json j = json::parse(in);
        installed_release r;
        r.info.name = j.at("name");
        r.info.version = j.at("version");
        r.info.build_id = j.at("build_id");
        r.info.description = j.value("description", "");
        std::string abi = j.at("abi");
        r.info.abi_major = static_cast<uint32_t>(std::stoul(abi.substr(0, abi.find('.'))));
        r.info.abi_minor = static_cast<uint32_t>(std::stoul(abi.substr(abi.find('.') + 1)));
        r.info.capabilities = j.at("capabilities");
        r.info.thread_safety = j.value("thread_safety", 0u);
        if (auto s = j.find("settings_schema"); s != j.end() && s->is_string()) {
            r.info.settings_schema = s->get<std::string>();
            r.schema_recorded = true;
        }
        r.sha256 = j.at("sha256");
        const std::string file_name = j.at("file");
        if (file_name.empty() || file_name.find('/') != std::string::npos || file_name[0] == '.')
            throw std::runtime_error("\"file\" is '" + file_name + "', not a file name in its folder");
        r.path = dir / file_name;
        r.installed_at = j.value("installed_at", "");
        return r;
    } catch (const std::exception& e) {
        return Status::error(error_kind::store, file.string() + " is damaged: " + e.what() +
                                                    "; reinstall that release");
    }
}

inline constexpr uintmax_t k_max_library_bytes = uintmax_t(512) << 20;

// Copies `from` to `to` (a new file) in one read, hashing the bytes on the
// way, and syncs it. Returns the SHA-256, or "" with `err` set.
std::string copy_hashed(const fs::path& from, const fs::path& to, std::string& err) {
    // A regular file of a library's size: a device (/dev/zero), a FIFO or a
    // file of gigabytes is refused before anything is copied. What is read
    // is the file checked: the same descriptor.
    const int fd = ::open(from.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        err = "cannot read " + from.string() + " (" + std::strerror(errno) + "); check the path and its permissions";
        return {};
    }
    struct closer {
        int fd;
        ~closer() { ::close(fd); }
    } close_in{fd};
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        err = "not a regular file; give the path of a connector's .so";
        return {};
    }
    if (static_cast<uintmax_t>(st.st_size) > k_max_library_bytes) {
        err = "the file is " + std::to_string(st.st_size >> 20) + " MiB; a connector library may be at most " +
              std::to_string(k_max_library_bytes >> 20) + " MiB";
        return {};
    }
    std::FILE* out = std::fopen(to.c_str(), "wb");
    if (!out) {
        err = "cannot write " + to.string();
        return {};
    }
    sha256 h;
    std::vector<char> buf(1 << 16);
    bool ok = true;
    uintmax_t copied = 0;
    for (;;) {
        const ssize_t n = ::read(fd, buf.data(), buf.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            ok = n == 0;
            break;
        }
        if ((copied += static_cast<uintmax_t>(n)) > k_max_library_bytes) {  // it grew while being read
            std::fclose(out);
            err = "the file grew past " + std::to_string(k_max_library_bytes >> 20) + " MiB while it was read";
            return {};
        }
        h.update(buf.data(), static_cast<size_t>(n));
        if (std::fwrite(buf.data(), 1, static_cast<size_t>(n), out) != static_cast<size_t>(n)) {
            ok = false;
            break;
        }
    }
    ok = ok && std::fflush(out) == 0 && ::fsync(::fileno(out)) == 0;
    ok = std::fclose(out) == 0 && ok;
    if (!ok) {
        err = "copying " + from.string() + " to " + to.string() + " failed (is the disk full?)";
        return {};
    }
    return h.hex();
}

// Writes release.json through a temp file, synced, renamed into place.
Status write_release(const fs::path& dir, const installed_release& r) {
    auto tmp = dir / ("release.json.tmp-" + std::to_string(::getpid()));
    const std::string text = to_json(r).dump(2) + "\n";
    std::FILE* out = std::fopen(tmp.c_str(), "wb");
    bool ok = out && std::fwrite(text.data(), 1, text.size(), out) == text.size() && std::fflush(out) == 0 &&
              ::fsync(::fileno(out)) == 0;
    if (out) ok = std::fclose(out) == 0 && ok;
    std::error_code ec;
    if (ok) fs::rename(tmp, dir / "release.json", ec);
    if (!ok || ec) {
        fs::remove(tmp, ec);
        return Status::error(error_kind::store, "writing " + (dir / "release.json").string() +
                                                    " failed (is the disk full?); the release is not installed");
    }
    return Status::ok();
}

}  // namespace

registry::registry(fs::path root, const clock& clk) : root_(std::move(root)), clock_(clk) {}

Result<installed_release> registry::install(const fs::path& so, bool replace) {
    // One read of the source: it is copied (and hashed) into the registry,
    // and only that copy is checked and published, so what was checked is
    // what gets installed.
    std::error_code ec;
    fs::create_directories(root_, ec);
    if (ec) return Status::error(error_kind::store, "creating " + root_.string() + ": " + ec.message());
    // A name never used before: the dynamic loader caches libraries by path,
    // and a C++ library with unique symbols is never unloaded.
    static std::atomic<unsigned> installs{0};
    const fs::path incoming = root_ / (".incoming-" + std::to_string(::getpid()) + "-" +
                                       std::to_string(installs++) + "-" +
                                       std::to_string(std::random_device{}()) + ".so");
    struct cleanup {
        fs::path p;
        ~cleanup() {
            std::error_code e;
            fs::remove(p, e);
        }
    } remove_incoming{incoming};
    std::string err;
    const std::string sha = copy_hashed(so, incoming, err);
    if (sha.empty()) return Status::error(error_kind::connector, "installing " + so.string() + ": " + err);
    auto checked = inspect(incoming);
    if (!checked) {
        std::string m = checked.status().message();
        for (auto p = m.find(incoming.string()); p != std::string::npos; p = m.find(incoming.string()))
            m.replace(p, incoming.string().size(), so.string());
        return Status::error(checked.status().kind(), "installing " + so.string() + ": " + m + "; it was not installed")
            .with_category(checked.status().category());
    }
    const auto info = *checked;

    auto dir = root_ / info.name / info.version;
    installed_release r{info, sha, dir / (sha.substr(0, 16) + ".so"), iso8601(clock_.now()), false, {}};
    if (fs::exists(dir / "release.json")) {
        auto existing = read_release(dir);
        const bool other_build = existing && (existing->info.build_id != info.build_id || existing->sha256 != sha);
        const auto version = semver::parse(info.version);
        const bool prerelease = version && !version->prerelease.empty();
        if (other_build && replace && !prerelease)
            return Status::error(error_kind::connector,
                                 "installing " + so.string() + " --replace: " + info.name + " " + info.version +
                                     " is a release, and releases are immutable; --replace only replaces a "
                                     "pre-release (such as " + info.version + "-dev). Give the new build a new version");
        if (other_build && replace) {
            r.replaced_build = existing->info.build_id;
        } else if (existing) {
            const std::string hint =
                prerelease ? "; it is a pre-release, so `syncwarden connectors install --replace " + so.string() +
                                 "` replaces it in place"
                           : std::string();
            if (existing->info.build_id != info.build_id)
                return Status::error(
                    error_kind::connector,
                    "installing " + so.string() + ": " + info.name + " " + info.version +
                        " is already installed with build id '" + existing->info.build_id +
                        "', this file has build id '" + info.build_id +
                        "'; releases are immutable, so give the new build a new version" + hint);
            if (existing->sha256 != sha)
                return Status::error(
                    error_kind::connector,
                    "installing " + so.string() + ": " + info.name + " " + info.version + " build '" +
                        info.build_id + "' is already installed with different content (sha256 " +
                        existing->sha256.substr(0, 16) + ", this file " + sha.substr(0, 16) +
                        "); releases are immutable, so give the new build a new version or build id" + hint);
            std::string e2;
            if (existing->path == r.path && sha256_file_hex(existing->path, &e2) == sha) return *existing;
            r.installed_at = existing->installed_at;
            r.repaired = true;  // the installed copy was damaged or missing
        } else {
            r.repaired = true;  // release.json was damaged
        }
    }
    fs::create_directories(dir, ec);
    if (ec) return Status::error(error_kind::store, "creating " + dir.string() + ": " + ec.message());
    fs::permissions(incoming, fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read, ec);
    // A new inode under the library's name: a process that has the old file
    // loaded keeps its mapping.
    if (!ec) fs::rename(incoming, r.path, ec);
    if (ec) return Status::error(error_kind::store, "publishing " + r.path.string() + ": " + ec.message());
    if (auto s = write_release(dir, r); !s) return s;
    return r;
}

Result<std::vector<installed_release>> registry::list() const {
    std::vector<installed_release> out;
    warnings_.clear();
    std::error_code ec;
    if (!fs::exists(root_, ec)) return out;
    for (auto& name : fs::directory_iterator(root_, ec)) {
        if (!name.is_directory()) continue;
        for (auto& ver : fs::directory_iterator(name.path(), ec)) {
            if (!fs::exists(ver.path() / "release.json")) continue;
            auto r = read_release(ver.path());
            if (!r) {
                warnings_.push_back(r.status().message() + "; that release is skipped");
                continue;
            }
            if (!semver::parse(r->info.version) || r->info.name != name.path().filename().string() ||
                r->info.version != ver.path().filename().string()) {
                warnings_.push_back((ver.path() / "release.json").string() + " names " + r->info.name + " " +
                                    r->info.version + ", which is not where it lies; that release is skipped. "
                                    "Reinstall the release");
                continue;
            }
            out.push_back(std::move(*r));
        }
    }
    std::sort(out.begin(), out.end(), [](auto& a, auto& b) {
        if (a.info.name != b.info.name) return a.info.name < b.info.name;
        return *semver::parse(a.info.version) < *semver::parse(b.info.version);
    });
    return out;
}

Result<installed_release> registry::resolve(const std::string& name, const std::string& range) const {
    auto rng = semver_range::parse(range);
    if (!rng) return rng.status();
    auto all = list();
    if (!all) return all.status();
    const installed_release* best = nullptr;
    std::string seen;
    for (auto& r : *all) {
        if (r.info.name != name) continue;
        seen += (seen.empty() ? "" : ", ") + r.info.version;
        auto v = semver::parse(r.info.version);
        if (v && rng->matches(*v)) best = &r;  // list() is sorted ascending
    }
    if (!best)
        return Status::error(error_kind::not_found,
                             "no installed release of connector '" + name + "' matches '" + range +
                                 "' (installed: " + (seen.empty() ? "none" : seen) +
                                 "); install one with `syncwarden connectors install FILE.so`");
    return *best;
}

Result<registry::pin_map> registry::pins() const {
    pin_map out;
    std::ifstream in(root_ / "pins.json");
    if (!in) return out;
    json j = json::parse(in, nullptr, false);
    if (j.is_discarded() || !j.is_object())
        return Status::error(error_kind::config, (root_ / "pins.json").string() +
                                                     " is damaged; pin the jobs again with `syncwarden connectors pin`");
    for (auto& [job, m] : j.items())
        if (m.is_object())
            for (auto& [conn, v] : m.items())
                if (v.is_string()) out[job][conn] = v.get<std::string>();
    return out;
}

Status registry::pin(const std::string& job, const std::string& connector, const std::string& version) {
    auto all = pins();
    if (!all) return all.status();
    if (version.empty()) {
        (*all)[job].erase(connector);
        if ((*all)[job].empty()) all->erase(job);
    } else {
        (*all)[job][connector] = version;
    }
    std::error_code ec;
    fs::create_directories(root_, ec);
    const fs::path tmp = root_ / ("pins.json.tmp" + std::to_string(::getpid()));
    {
        std::ofstream o(tmp, std::ios::trunc);
        o << json(*all).dump(2) << "\n";
        if (!o.flush()) return Status::error(error_kind::store, tmp.string() + ": cannot write the pins");
    }
    fs::rename(tmp, root_ / "pins.json", ec);
    if (ec) return Status::error(error_kind::store, (root_ / "pins.json").string() + ": " + ec.message());
    return Status::ok();
}

Result<installed_release> registry::resolve_for(const std::string& job, const std::string& name,
                                                const std::string& range) const {
    auto all = pins();
    if (!all) return all.status();
    if (auto j = all->find(job); j != all->end())
        if (auto p = j->second.find(name); p != j->second.end()) {
            auto r = resolve(name, "=" + p->second);
            if (!r)
                return r.status().context("job " + job + " is pinned to " + name + " " + p->second +
                                          " (`syncwarden connectors pin` moves the pin, `connectors unpin` removes it)");
            return r;
        }
    return resolve(name, range);
}

Status registry::retire(const std::string& name, const std::string& version) {
    auto all = list();
    if (!all) return all.status();
    for (auto& r : *all)
        if (r.info.name == name && r.info.version == version) {
            std::error_code ec;
            // Moved aside first, so that no one resolves a half-removed release.
            const fs::path dir = r.path.parent_path();
            const fs::path gone = root_ / (".retired-" + name + "-" + version + "-" + std::to_string(::getpid()));
            fs::rename(dir, gone, ec);
            if (ec) return Status::error(error_kind::store, dir.string() + ": cannot remove it: " + ec.message());
            fs::remove_all(gone, ec);
            if (fs::is_empty(dir.parent_path(), ec)) fs::remove(dir.parent_path(), ec);
            return Status::ok();
        }
    return Status::error(error_kind::not_found, "no installed release " + name + " " + version +
                                                    "; `syncwarden connectors list` shows the installed ones");
}

Result<connector_info> registry::inspect(const fs::path& so) const {
    if (!check_in_process_) return probe_in_worker(so, worker_limits{}, root_.parent_path());
    auto loaded = load_connector(so);
    if (!loaded) return loaded.status();
    return (*loaded)->info();
}

Status verify_library(const fs::path& so, const std::string& sha256, const std::string& release) {
    // The file is checked against what was installed before it is loaded:
    // a patched or appended-to library never runs.
    std::string err;
    const auto sha = sha256_file_hex(so, &err);
    std::string why = err;
    if (!sha.empty() && sha != sha256)
        why = "its SHA-256 is " + sha.substr(0, 16) + ", but " + sha256.substr(0, 16) +
              " was installed: the file was changed after it was installed";
    else if (!sha.empty())
        return Status::ok();
    return Status::error(error_kind::connector, "refusing " + release + " (" + so.string() + "): " + why +
                                                    "; reinstall it with `syncwarden connectors install FILE.so`");
}

Status registry::verify(const installed_release& r) const {
    return verify_library(r.path, r.sha256, r.info.name + " " + r.info.version);
}

Result<std::shared_ptr<const loaded_connector>> registry::open(const installed_release& r) {
    std::lock_guard lock(mu_);
    auto key = r.path.string();
    if (auto it = open_.find(key); it != open_.end()) return it->second;
    auto refuse = [&](const std::string& why) {
        return Status::error(error_kind::connector, "refusing " + r.info.name + " " + r.info.version + " (" +
                                                        r.path.string() + "): " + why +
                                                        "; reinstall it with `syncwarden connectors install FILE.so`");
    };
    if (auto s = verify(r); !s) return s;
    auto loaded = load_connector(r.path);
    if (!loaded) return loaded.status();
    const auto& in = (*loaded)->info();
    if (in.name != r.info.name || in.version != r.info.version || in.build_id != r.info.build_id)
        return refuse("the library says it is " + in.name + " " + in.version + " build '" + in.build_id +
                      "', but release.json says " + r.info.name + " " + r.info.version + " build '" +
                      r.info.build_id + "'");
    open_[key] = *loaded;
    return *loaded;
}

}  // namespace syncwarden::kernel
