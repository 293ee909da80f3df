// The installed connector releases under <data_dir>/connectors:
//   <name>/<version>/release.json   what was installed, and when
//   <name>/<version>/<sha256>.so     the immutable library file
#pragma once

#include <syncwarden/kernel/digest.hpp>
#include <syncwarden/kernel/loader.hpp>
#include <syncwarden/kernel/result.hpp>
#include <syncwarden/kernel/semver.hpp>

#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace syncwarden::kernel {

class clock;

struct installed_release {
    connector_info info;
    std::string sha256;
    std::filesystem::path path;
    std::string installed_at;
};

class registry {
public:
    registry(std::filesystem::path root, const clock& clk);

    // Validates the library by loading it, then copies it in. Installing the
    // same build again is a no-op; the same name and version with another
    // build id is refused.
    Result<installed_release> install(const std::filesystem::path& so);
    Result<std::vector<installed_release>> list() const;
    // The newest installed release of `name` that `range` allows.
    Result<installed_release> resolve(const std::string& name, const std::string& range) const;
    // Loads an installed release (cached: each file is opened once).
    Result<std::shared_ptr<const loaded_connector>> open(const installed_release& r);

private:
    std::filesystem::path root_;
    const clock& clock_;
    std::mutex mu_;
    std::map<std::string, std::shared_ptr<const loaded_connector>> open_;
};

}  // namespace syncwarden::kernel
