#include <syncwarden/kernel/loader.hpp>
#include <syncwarden/kernel/semver.hpp>

#define BOOST_DLL_USE_STD_FS
#include <boost/dll/shared_library.hpp>

#include <algorithm>
#include <array>
#include <cstring>
#include <cstddef>
#include <fstream>
#include <regex>

namespace syncwarden::kernel {
namespace {

class dll_connector final : public loaded_connector {
public:
    dll_connector(boost::dll::shared_library lib, const sw_connector* c, connector_info info,
                  std::filesystem::path path)
        : lib_(std::move(lib)), info_(std::move(info)), path_(std::move(path)) {
        // A connector built for an older minor has a shorter table: copy what
        // it has, and the slots it does not know stay NULL.
        std::memcpy(&hooks_, c->hooks, std::min<size_t>(c->hooks->struct_size, sizeof hooks_));
        hooks_.struct_size = sizeof hooks_;
    }
    const connector_info& info() const override { return info_; }
    const sw_hooks& hooks() const override { return hooks_; }
    const std::filesystem::path& path() const override { return path_; }

private:
    boost::dll::shared_library lib_;
    sw_hooks hooks_{};
    connector_info info_;
    std::filesystem::path path_;
};

std::string text(sw_str s) { return s.ptr ? std::string(s.ptr, s.len) : std::string(); }

// The sizes of the 1.0 structs: a 1.0 connector is still loaded.
constexpr size_t k_manifest_v10 = offsetof(sw_manifest, settings_schema);
constexpr size_t k_hooks_v10 = offsetof(sw_hooks, state_token);

Status refuse(const std::filesystem::path& p, const std::string& why) {
    return Status::error(error_kind::connector, "loading " + p.string() + ": " + why);
}

Status check_elf(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in) return refuse(p, "cannot open the file; check the path and its permissions");
    std::array<unsigned char, 18> head{};
    in.read(reinterpret_cast<char*>(head.data()), head.size());
    if (in.gcount() < 18 || head[0] != 0x7f || head[1] != 'E' || head[2] != 'L' || head[3] != 'F')
        return refuse(p, "not an ELF shared object (the file does not start with the ELF magic "
                         "bytes); build the connector with add_library(NAME MODULE ...)");
    unsigned type = head[5] == 1 ? head[16] | (head[17] << 8) : (head[16] << 8) | head[17];
    if (type != 3 /* ET_DYN */)
        return refuse(p, "ELF type is " + std::to_string(type) +
                             ", expected 3 (shared object); build it as a MODULE library");
    return Status::ok();
}

// Checks what the kernel needs of the manifest and hook table.
Status check_tables(const std::filesystem::path& p, const sw_connector* c, connector_info& info) {
    const size_t abi_end = offsetof(sw_connector, abi_minor) + sizeof(uint32_t);
    if (c->struct_size < abi_end)
        return refuse(p, "sw_connector.struct_size is " + std::to_string(c->struct_size) +
                             ", expected at least " + std::to_string(sizeof(sw_connector)) +
                             "; rebuild against the SDK headers");
    info.abi_major = c->abi_major;
    info.abi_minor = c->abi_minor;
    if (c->abi_major != SW_ABI_MAJOR)
        return refuse(p, "ABI major is " + std::to_string(c->abi_major) + ", the kernel speaks " +
                             std::to_string(SW_ABI_MAJOR) +
                             "; rebuild the connector against a matching SDK");
    if (c->abi_minor > SW_ABI_MINOR)
        return refuse(p, "ABI minor is " + std::to_string(c->abi_minor) +
                             ", newer than the kernel's " + std::to_string(SW_ABI_MAJOR) + "." +
                             std::to_string(SW_ABI_MINOR) +
                             "; upgrade the kernel or build against an older SDK");
    if (c->struct_size < sizeof(sw_connector))
        return refuse(p, "sw_connector.struct_size is " + std::to_string(c->struct_size) +
                             ", expected at least " + std::to_string(sizeof(sw_connector)) +
                             " for ABI 1.0; rebuild against the SDK headers");
    const sw_manifest* m = c->manifest;
    if (!m) return refuse(p, "sw_connector.manifest is NULL, expected a pointer to a static sw_manifest");
    if (m->struct_size < k_manifest_v10)
        return refuse(p, "sw_manifest.struct_size is " + std::to_string(m->struct_size) +
                             ", expected at least " + std::to_string(k_manifest_v10));
    info.name = text(m->name);
    info.version = text(m->version);
    info.build_id = text(m->build_id);
    info.description = text(m->description);
    info.capabilities = m->capabilities;
    info.thread_safety = m->thread_safety;
    if (m->struct_size >= sizeof(sw_manifest)) info.settings_schema = text(m->settings_schema);
    static const std::regex name_re("[a-z0-9][a-z0-9-]{0,63}");
    if (!std::regex_match(info.name, name_re))
        return refuse(p, "manifest name is '" + info.name +
                             "', expected lower-case letters, digits and '-' (at most 64)");
    if (auto v = semver::parse(info.version); !v)
        return refuse(p, "manifest version: " + v.status().message());
    if (info.build_id.empty()) return refuse(p, "manifest build_id is empty, expected a build stamp");
    if ((info.capabilities & (SW_CAP_SOURCE | SW_CAP_TARGET)) == 0)
        return refuse(p, "manifest capabilities is " + std::to_string(info.capabilities) +
                             ", expected SW_CAP_SOURCE and/or SW_CAP_TARGET");
    const sw_hooks* h = c->hooks;
    if (!h) return refuse(p, "sw_connector.hooks is NULL, expected a pointer to a static sw_hooks");
    if (h->struct_size < k_hooks_v10)
        return refuse(p, "sw_hooks.struct_size is " + std::to_string(h->struct_size) +
                             ", expected at least " + std::to_string(k_hooks_v10));
    auto need = [&](const void* fn, const char* hook, const char* why) -> Status {
        if (fn) return Status::ok();
        return refuse(p, std::string("required hook '") + hook + "' is NULL" + why);
    };
    for (auto s : {need(reinterpret_cast<const void*>(h->create), "create", ""),
                   need(reinterpret_cast<const void*>(h->destroy), "destroy", ""),
                   need(reinterpret_cast<const void*>(h->contract), "contract", "")})
        if (!s) return s;
    if (info.capabilities & SW_CAP_SOURCE)
        if (auto s = need(reinterpret_cast<const void*>(h->extract), "extract",
                          " but the manifest declares SW_CAP_SOURCE"); !s)
            return s;
    if (info.capabilities & SW_CAP_TARGET) {
        if (auto s = need(reinterpret_cast<const void*>(h->read_state), "read_state",
                          " but the manifest declares SW_CAP_TARGET"); !s)
            return s;
        if (auto s = need(reinterpret_cast<const void*>(h->apply), "apply",
                          " but the manifest declares SW_CAP_TARGET"); !s)
            return s;
    }
    if (info.capabilities & SW_CAP_CUSTOM_DIFF)
        if (auto s = need(reinterpret_cast<const void*>(h->diff), "diff",
                          " but the manifest declares SW_CAP_CUSTOM_DIFF"); !s)
            return s;
    if (info.capabilities & SW_CAP_STATE_TOKEN) {
        // The 1.1 table ends with state_token.
        constexpr size_t hooks_v11 = offsetof(sw_hooks, state_token) + sizeof(h->state_token);
        if (h->struct_size < hooks_v11)
            return refuse(p, "the manifest declares SW_CAP_STATE_TOKEN (ABI 1.1) but sw_hooks.struct_size is " +
                                 std::to_string(h->struct_size) + ", expected at least " + std::to_string(hooks_v11));
        if (auto s = need(reinterpret_cast<const void*>(h->state_token), "state_token",
                          " but the manifest declares SW_CAP_STATE_TOKEN"); !s)
            return s;
    }
    return Status::ok();
}

}  // namespace

std::string capabilities_text(uint32_t caps) {
    std::string out;
    auto add = [&](const char* w) { out += out.empty() ? w : std::string(",") + w; };
    if (caps & SW_CAP_SOURCE) add("source");
    if (caps & SW_CAP_TARGET) add("target");
    if (caps & SW_CAP_CUSTOM_DIFF) add("diff");
    if (caps & SW_CAP_STATE_TOKEN) add("state-token");
    if (caps & SW_CAP_TRANSACTIONAL) add("transactional");
    return out;
}

Result<std::shared_ptr<const loaded_connector>> load_connector(const std::filesystem::path& path) {
    if (auto s = check_elf(path); !s) return s;
    boost::dll::shared_library lib;
    try {
        lib.load(path, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
    } catch (const std::exception& e) {
        return refuse(path, std::string("the dynamic loader refused it: ") + e.what());
    }
    if (!lib.has(SW_ENTRY_SYMBOL))
        return refuse(path, std::string("no entry symbol '") + SW_ENTRY_SYMBOL +
                                "'; export it with SW_CONNECTOR(...) or SW_EXPORT");
    const sw_connector* c = nullptr;
    try {
        c = lib.get<const sw_connector*()>(SW_ENTRY_SYMBOL)();
    } catch (const std::exception& e) {
        return refuse(path, std::string("entry ") + SW_ENTRY_SYMBOL + " threw: " + e.what());
    } catch (...) {
        return refuse(path, std::string("entry ") + SW_ENTRY_SYMBOL + " threw an exception");
    }
    if (!c)
        return refuse(path, std::string("entry ") + SW_ENTRY_SYMBOL +
                                " returned NULL, expected a pointer to a static sw_connector");
    connector_info info;
    if (auto s = check_tables(path, c, info); !s) return s;
    return std::shared_ptr<const loaded_connector>(
        std::make_shared<dll_connector>(std::move(lib), c, std::move(info), path));
}

}  // namespace syncwarden::kernel
