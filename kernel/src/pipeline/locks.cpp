#include <syncwarden/kernel/digest.hpp>
#include <syncwarden/kernel/locks.hpp>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace syncwarden::kernel {

file_lock::~file_lock() { release(); }

file_lock& file_lock::operator=(file_lock&& o) noexcept {
    if (this != &o) {
        release();
        fd_ = o.fd_;
        path_ = std::move(o.path_);
        remove_ = o.remove_;
        o.fd_ = -1;
    }
    return *this;
}

void file_lock::release() {
    if (fd_ < 0) return;
    // Removed while still held, when asked: a process that opened it in the
    // meantime finds, once it has the lock, that the name no longer leads to
    // its file, and takes it again (take()).
    if (remove_) ::unlink(path_.c_str());
    ::close(fd_);
    fd_ = -1;
}

Result<std::optional<file_lock>> file_lock::take(const fs::path& path, const std::string& note, bool wait) {
    std::error_code ec;
    fs::create_directories(path.parent_path(), ec);
    int fd = -1;
    for (;;) {
        // Close-on-exec: a worker process must never inherit, and so keep, a lock.
        fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0)
            return Status::error(error_kind::store, "opening the lock file " + path.string() + ": " + std::strerror(errno));
        int r;
        do r = ::flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB));
        while (r != 0 && errno == EINTR);
        if (r != 0) {
            const int e = errno;
            ::close(fd);
            if (e == EWOULDBLOCK) return std::optional<file_lock>();
            return Status::error(error_kind::store, "locking " + path.string() + ": " + std::strerror(e));
        }
        // The holder before may have removed the file as it let go.
        struct stat mine {}, named {};
        if (::fstat(fd, &mine) == 0 && ::stat(path.c_str(), &named) == 0 && mine.st_ino == named.st_ino &&
            mine.st_dev == named.st_dev)
            break;
        ::close(fd);
    }
    if (::ftruncate(fd, 0) == 0) {
        [[maybe_unused]] auto w = ::pwrite(fd, note.data(), note.size(), 0);
    }
    file_lock l;
    l.fd_ = fd;
    l.path_ = path;
    return std::optional<file_lock>(std::move(l));
}

bool file_lock::held(const fs::path& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    bool busy = ::flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    ::close(fd);
    return busy;
}

std::string file_lock::note(const fs::path& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return {};
    char buf[512];
    ssize_t n = ::pread(fd, buf, sizeof buf, 0);
    ::close(fd);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

fs::path run_lock_path(const fs::path& data_dir, const std::string& run_id) {
    return data_dir / "locks" / "runs" / (run_id + ".lock");
}

fs::path target_lock_path(const fs::path& data_dir, const std::string& system_id) {
    sha256 h;
    h.update(system_id);
    return data_dir / "locks" / "targets" / (h.hex().substr(0, 32) + ".lock");
}

Result<size_t> mark_interrupted(run_store& store, const fs::path& data_dir, const std::string& now) {
    auto runs = store.unfinished_runs();
    if (!runs) return runs.status();
    size_t n = 0;
    for (auto& r : *runs) {
        if (file_lock::held(run_lock_path(data_dir, r.id))) continue;
        // Taken now, so a run that is just starting is not caught in between.
        auto lock = file_lock::take(run_lock_path(data_dir, r.id), "", false);
        if (!lock || !*lock) continue;
        (*lock)->remove_on_release();
        auto fresh = store.get_run(r.id);
        if (!fresh || (fresh->state != "queued" && fresh->state != "running" && fresh->state != "applying")) continue;
        run_record x = *fresh;
        x.state = "interrupted";
        x.category = "interrupted";
        x.finished_at = now;
        x.exit_code = 1;
        x.error = "the process running this run ended without recording an outcome (killed, crashed or lost power) "
                  "during " + (x.phase.empty() ? std::string("its start") : x.phase) +
                  (x.phase == "apply" ? "; `syncwarden runs resume " + x.id + "` continues it from its last checkpoint"
                                      : "; nothing was applied: run the job again");
        if (auto s = store.update_run(x); !s) return s;
        ++n;
    }
    return n;
}

}  // namespace syncwarden::kernel
