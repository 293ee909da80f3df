#include <syncwarden/kernel/clock.hpp>
#include <syncwarden/kernel/registry.hpp>

#include <nlohmann/json.hpp>

#include <fstream>
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
        r.sha256 = j.at("sha256");
        r.path = dir / j.at("file").get<std::string>();
        r.installed_at = j.value("installed_at", "");
        return r;
    } catch (const std::exception& e) {
        return Status::error(error_kind::store, file.string() + " is damaged: " + e.what() +
                                                    "; reinstall that release");
    }
}

}  // namespace

registry::registry(fs::path root, const clock& clk) : root_(std::move(root)), clock_(clk) {}

Result<installed_release> registry::install(const fs::path& so) {
    auto loaded = load_connector(so);
    if (!loaded) return loaded.status();
    const auto& info = (*loaded)->info();
    std::string err;
    auto sha = sha256_file_hex(so, &err);
    if (sha.empty()) return Status::error(error_kind::connector, err);

    auto dir = root_ / info.name / info.version;
    if (fs::exists(dir / "release.json")) {
        auto existing = read_release(dir);
        if (!existing) return existing.status();
        if (existing->info.build_id != info.build_id)
            return Status::error(
                error_kind::connector,
                "installing " + so.string() + ": " + info.name + " " + info.version +
                    " is already installed with build id '" + existing->info.build_id +
                    "', this file has build id '" + info.build_id +
                    "'; releases are immutable, so give the new build a new version");
        if (existing->sha256 != sha)
            return Status::error(
                error_kind::connector,
                "installing " + so.string() + ": " + info.name + " " + info.version + " build '" +
                    info.build_id + "' is already installed with different content (sha256 " +
                    existing->sha256.substr(0, 16) + ", this file " + sha.substr(0, 16) +
                    "); releases are immutable, so give the new build a new version or build id");
        return *existing;
    }
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return Status::error(error_kind::store, "creating " + dir.string() + ": " + ec.message());
    installed_release r{info, sha, dir / (sha.substr(0, 16) + ".so"), iso8601(clock_.now())};
    // Copy then rename, so a half-copied library is never visible.
    auto tmp = dir / (".install-" + std::to_string(::getpid()));
    fs::copy_file(so, tmp, fs::copy_options::overwrite_existing, ec);
    if (!ec) fs::permissions(tmp, fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read, ec);
    if (!ec) fs::rename(tmp, r.path, ec);
    if (ec) return Status::error(error_kind::store, "copying " + so.string() + " to " + r.path.string() + ": " + ec.message());
    std::ofstream out(dir / "release.json.tmp");
    out << to_json(r).dump(2) << "\n";
    out.close();
    fs::rename(dir / "release.json.tmp", dir / "release.json", ec);
    if (ec) return Status::error(error_kind::store, "writing release.json in " + dir.string() + ": " + ec.message());
    return r;
}

Result<std::vector<installed_release>> registry::list() const {
    std::vector<installed_release> out;
    std::error_code ec;
    if (!fs::exists(root_, ec)) return out;
    for (auto& name : fs::directory_iterator(root_, ec)) {
        if (!name.is_directory()) continue;
        for (auto& ver : fs::directory_iterator(name.path(), ec)) {
            if (!fs::exists(ver.path() / "release.json")) continue;
            auto r = read_release(ver.path());
            if (!r) return r.status();
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

Result<std::shared_ptr<const loaded_connector>> registry::open(const installed_release& r) {
    std::lock_guard lock(mu_);
    auto key = r.path.string();
    if (auto it = open_.find(key); it != open_.end()) return it->second;
    auto loaded = load_connector(r.path);
    if (!loaded) return loaded.status();
    if ((*loaded)->info().build_id != r.info.build_id)
        return Status::error(error_kind::connector, r.path.string() + ": build id changed on disk; reinstall it");
    open_[key] = *loaded;
    return *loaded;
}

}  // namespace syncwarden::kernel
