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
    bool repaired = false;  // install replaced a damaged copy of this release
    std::string replaced_build;  // install --replace: the build id this pre-release had before
    // release.json holds the settings schema (the kernel derives a worker's
    // grants from it before the library runs); releases installed before
    // it did not record it.
    bool schema_recorded = false;
};

class registry {
public:
    registry(std::filesystem::path root, const clock& clk);

    // Copies the library in (one read), checks the copy by loading it, and
    // publishes it with a rename. Installing the same build again is a no-op,
    // or repairs the installed copy when it was damaged; the same name and
    // version with another build id is refused, unless `replace` is set and
    // the version is a pre-release (1.2.0-dev): then the new build takes its
    // place (a new file; the old one stays for runs that have it loaded).
    Result<installed_release> install(const std::filesystem::path& so, bool replace = false);
    // Releases whose release.json is damaged or misplaced are skipped, and
    // said in warnings().
    Result<std::vector<installed_release>> list() const;
    const std::vector<std::string>& warnings() const { return warnings_; }
    // The newest installed release of `name` that `range` allows.
    Result<installed_release> resolve(const std::string& name, const std::string& range) const;
    // Pins, kept in <root>/pins.json: job name -> connector -> version. A
    // pinned job's connector is that release whatever its range says.
    using pin_map = std::map<std::string, std::map<std::string, std::string>>;
    Result<pin_map> pins() const;
    // "" as version: unpinned.
    Status pin(const std::string& job, const std::string& connector, const std::string& version);
    // The release a job's connector resolves to: its pin, else the newest
    // installed release the range allows.
    Result<installed_release> resolve_for(const std::string& job, const std::string& name,
                                          const std::string& range) const;
    // Removes an installed release's folder (every build of it). The caller
    // checks that nothing uses it.
    Status retire(const std::string& name, const std::string& version);
    // Loads an installed release (cached: each file is opened once), after
    // checking the file's SHA-256 and that its manifest matches release.json.
    Result<std::shared_ptr<const loaded_connector>> open(const installed_release& r);
    // Checks the installed file's SHA-256 without loading it: for a worker
    // process, which loads it and reports its manifest.
    Status verify(const installed_release& r) const;
    // Install-time checks load the library in a throw-away worker process
    // (the default), or in this process.
    void check_in_process(bool yes) { check_in_process_ = yes; }

private:
    Result<connector_info> inspect(const std::filesystem::path& so) const;
    std::filesystem::path root_;
    const clock& clock_;
    std::mutex mu_;
    std::map<std::string, std::shared_ptr<const loaded_connector>> open_;
    mutable std::vector<std::string> warnings_;
    bool check_in_process_ = false;
};

// Whether the library at `so` still has the SHA-256 it was installed with
// (`release` names it, "NAME VERSION", in the refusal). Checked before a
// library is loaded, by the kernel or by the worker that will load it.
Status verify_library(const std::filesystem::path& so, const std::string& sha256, const std::string& release);

}  // namespace syncwarden::kernel
