// Opening a connector .so and checking it against the ABI before anything
// else touches it.
#pragma once

#include <syncwarden/connector.h>
#include <syncwarden/kernel/result.hpp>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

namespace syncwarden::kernel {

// What the manifest says, copied out of the library.
struct connector_info {
    std::string name, version, build_id, description;
    uint32_t abi_major = 0, abi_minor = 0;
    uint32_t capabilities = 0;
    uint32_t thread_safety = 0;
    std::string settings_schema;  // JSON Schema text (ABI 1.1), empty when none
};

std::string capabilities_text(uint32_t caps);  // "source,target"

// A loaded, checked connector library. Keeps the library mapped while alive.
// Thread: immutable after load; safe to share.
class loaded_connector {
public:
    virtual ~loaded_connector() = default;
    virtual const connector_info& info() const = 0;
    virtual const sw_hooks& hooks() const = 0;
    virtual const std::filesystem::path& path() const = 0;
};

// Loads `path` with RTLD_NOW | RTLD_LOCAL and checks the entry, the ABI
// version, struct sizes, the manifest and the required hooks. Every refusal
// names the file, the field, the expected and the found value.
Result<std::shared_ptr<const loaded_connector>> load_connector(const std::filesystem::path& path);

}  // namespace syncwarden::kernel
