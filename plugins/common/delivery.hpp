// All-or-nothing delivery of several files into one folder, also across a
// crash, for file-drop targets.
//
//   folder/.syncwarden.lock          flock'd while a connector reads or commits
//   folder/.<name>.tmp-<pid>         a new file being written (synced before use)
//   folder/.syncwarden-journal       "these temp files replace these files":
//                                    written (to .tmp, synced) and renamed into
//                                    place only once every new file is durable
//
// publish() writes the journal, renames every temp file over its target and
// removes the journal. recover(), called under the lock before anything reads
// the folder, rolls a complete journal forward and removes every leftover
// temp file, so the folder always holds entirely the old delivery or entirely
// the new one.
#pragma once

#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace syncwarden::csv {

// An exclusive flock on folder/.syncwarden.lock for the object's lifetime.
// Throws sdk::error when the lock file cannot be opened.
class folder_lock {
public:
    explicit folder_lock(const std::filesystem::path& folder);
    ~folder_lock();
    folder_lock(const folder_lock&) = delete;
    folder_lock& operator=(const folder_lock&) = delete;

private:
    int fd_ = -1;
};

// Rolls a complete journal forward and removes leftover temp files. Call it
// holding the folder's lock. Returns what it did, for a log line ("" if
// nothing).
std::string recover(const std::filesystem::path& folder);

// Where a new file `name` of this process is written before it is
// published: folder/.<name>.tmp-<pid>, a name recover() knows.
std::filesystem::path temp_path(const std::filesystem::path& folder, const std::string& name);

// A temp file written through a buffer. Every write is checked; finish()
// flushes and fsyncs it. Any failure throws sdk::error naming the file and
// the system's reason (a full disk, a file-size limit), and the temp file is
// removed.
class temp_writer {
public:
    temp_writer(const std::filesystem::path& folder, const std::string& name);
    ~temp_writer();
    temp_writer(const temp_writer&) = delete;
    temp_writer& operator=(const temp_writer&) = delete;
    void write(std::string_view s);
    // Returns the temp file's path; it stays until published or recovered.
    std::filesystem::path finish();

private:
    [[noreturn]] void fail(const char* what);
    std::filesystem::path path_;
    std::FILE* out_ = nullptr;
    std::string buf_;
    bool done_ = false;
};

// Publishes finished temp files: (temp path, final file name) pairs.
void publish(const std::filesystem::path& folder,
             const std::vector<std::pair<std::filesystem::path, std::string>>& files);

// Test hook: with VENDOR_CSV_CRASH_AT=<step> in the environment, the process
// kills itself (SIGKILL) at that step of a delivery: 1 after the first new
// file is written, 2 after all are, 3 after the journal is written, 4 after
// it is in place, 5 after the first rename, 6 after all renames. Tests use it
// to prove that a crash anywhere leaves a folder the next open repairs.
void crash_point(int step);

// SHA-256 of data, hex.
class digest {
public:
    digest();
    ~digest();
    digest(const digest&) = delete;
    digest& operator=(const digest&) = delete;
    void update(std::string_view s);
    std::string hex();

private:
    void* ctx_;
};

}  // namespace syncwarden::csv
