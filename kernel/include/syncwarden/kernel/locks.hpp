// Locks that die with their process: flock(2) on a file under the data dir.
//
// Every run holds its run lock while its process lives, so a run that the
// store shows as running or applying without a holder was interrupted
// (kill -9, power loss, OOM). Every apply holds the lock of the system its
// target writes, so two applies to one system never interleave.
#pragma once

#include <syncwarden/kernel/result.hpp>
#include <syncwarden/kernel/store.hpp>

#include <filesystem>
#include <optional>
#include <string>

namespace syncwarden::kernel {

class file_lock {
public:
    file_lock() = default;
    ~file_lock();
    file_lock(file_lock&& o) noexcept : fd_(o.fd_), path_(std::move(o.path_)), remove_(o.remove_) { o.fd_ = -1; }
    file_lock& operator=(file_lock&& o) noexcept;
    file_lock(const file_lock&) = delete;
    file_lock& operator=(const file_lock&) = delete;

    // Takes the lock at `path` (creating folders and file), then writes
    // `note` into the file (who holds it). With wait, blocks until it is
    // free; without, returns nullopt when another process holds it.
    static Result<std::optional<file_lock>> take(const std::filesystem::path& path, const std::string& note,
                                                 bool wait);
    // Whether some process holds the lock at `path` now.
    static bool held(const std::filesystem::path& path);
    // What the holder wrote into the file ("" when there is no file).
    static std::string note(const std::filesystem::path& path);

    bool owns() const { return fd_ >= 0; }
    void release();
    // The file goes when the lock is released (a run's lock: nothing is
    // left behind for every run ever made).
    void remove_on_release() { remove_ = true; }

private:
    int fd_ = -1;
    std::filesystem::path path_;
    bool remove_ = false;
};

std::filesystem::path run_lock_path(const std::filesystem::path& data_dir, const std::string& run_id);
std::filesystem::path target_lock_path(const std::filesystem::path& data_dir, const std::string& system_id);

// Runs that the store shows as queued, running or applying but whose process
// is gone are recorded as interrupted. Returns how many.
Result<size_t> mark_interrupted(run_store& store, const std::filesystem::path& data_dir, const std::string& now);

}  // namespace syncwarden::kernel
