#include "mapped_file.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <stdexcept>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace syncwarden::csv {

mapped_file mapped_file::own(std::string content) {
    mapped_file m;
    m.owned_ = std::move(content);
    m.view_ = m.owned_;
    return m;
}

mapped_file mapped_file::open(const std::string& path) {
    mapped_file m;
    m.map_path(path);
    return m;
}

void mapped_file::map_path(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw std::runtime_error("cannot read " + path + ": " + std::strerror(errno));
    struct stat st{};
    if (::fstat(fd, &st) != 0) {
        ::close(fd);
        throw std::runtime_error("cannot stat " + path + ": " + std::strerror(errno));
    }
    size_ = static_cast<size_t>(st.st_size);
    if (size_ > 0) {
        map_ = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map_ == MAP_FAILED) {
            map_ = nullptr;
            ::close(fd);
            throw std::runtime_error("cannot map " + path + ": " + std::strerror(errno));
        }
        ::madvise(map_, size_, MADV_SEQUENTIAL);
        view_ = std::string_view(static_cast<const char*>(map_), size_);
    }
    ::close(fd);
}

mapped_file::~mapped_file() { reset(); }

mapped_file::mapped_file(mapped_file&& o) noexcept { *this = std::move(o); }

mapped_file& mapped_file::operator=(mapped_file&& o) noexcept {
    if (this == &o) return *this;
    reset();
    owned_ = std::move(o.owned_);
    map_ = o.map_;
    size_ = o.size_;
    released_ = o.released_;
    view_ = map_ ? o.view_ : std::string_view(owned_);
    o.map_ = nullptr;
    o.view_ = {};
    o.size_ = 0;
    return *this;
}

void mapped_file::reset() {
    if (map_) ::munmap(map_, size_);
    map_ = nullptr;
    view_ = {};
}

void mapped_file::release_before(size_t offset) {
    if (!map_) return;
    const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
    size_t end = offset / page * page;
    if (end <= released_ + (16u << 20)) return;  // in steps of at least 16 MiB
    ::madvise(static_cast<char*>(map_) + released_, end - released_, MADV_DONTNEED);
    released_ = end;
}

}  // namespace syncwarden::csv
