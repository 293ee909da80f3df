#include <syncwarden/kernel/private_file.hpp>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace syncwarden::kernel {

Status create_private_file(const fs::path& file, const std::string& content, const std::string& what) {
    std::error_code ec;
    fs::create_directories(file.parent_path(), ec);
    ::chmod(file.parent_path().c_str(), 0700);
    const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        if (errno == EEXIST) return Status::ok();
        return Status::error(error_kind::store, file.string() + ": cannot create " + what + ": " + std::strerror(errno));
    }
    const bool ok = ::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size()) &&
                    ::fsync(fd) == 0;
    ::close(fd);
    if (!ok) return Status::error(error_kind::store, file.string() + ": cannot write " + what);
    return Status::ok();
}

Result<std::string> read_private_file(const fs::path& file, const std::string& what, size_t max) {
    const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return Status::error(error_kind::store, file.string() + ": cannot read " + what + ": " + std::strerror(errno));
    struct stat st {};
    ::fstat(fd, &st);
    if (st.st_mode & 077) {
        ::close(fd);
        char mode[8];
        std::snprintf(mode, sizeof mode, "%03o", static_cast<unsigned>(st.st_mode & 0777));
        return Status::error(error_kind::config, file.string() + ": " + what + " can be read by others (mode " + mode +
                                                     "); make it private: chmod 600 " + file.string());
    }
    std::string out(max, '\0');
    const ssize_t n = ::read(fd, out.data(), out.size());
    ::close(fd);
    if (n < 0) return Status::error(error_kind::store, file.string() + ": cannot read " + what + ": " + std::strerror(errno));
    out.resize(static_cast<size_t>(n));
    return out;
}

}  // namespace syncwarden::kernel
