// Landlock, the Linux security module any process may use to confine itself.
// Debian 12's headers know only ABI 1-2; the later constants are part of
// Linux's stable ABI (include/uapi/linux/landlock.h) and are defined here.
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace syncwarden::kernel::landlock {

#ifndef __NR_landlock_create_ruleset
inline constexpr long k_sys_create = 444, k_sys_add_rule = 445, k_sys_restrict = 446;
#else
inline constexpr long k_sys_create = __NR_landlock_create_ruleset, k_sys_add_rule = __NR_landlock_add_rule,
                      k_sys_restrict = __NR_landlock_restrict_self;
#endif

inline constexpr uint64_t k_execute = 1ull << 0, k_write_file = 1ull << 1, k_read_file = 1ull << 2,
                          k_read_dir = 1ull << 3, k_remove_dir = 1ull << 4, k_remove_file = 1ull << 5,
                          k_make_char = 1ull << 6, k_make_dir = 1ull << 7, k_make_reg = 1ull << 8,
                          k_make_sock = 1ull << 9, k_make_fifo = 1ull << 10, k_make_block = 1ull << 11,
                          k_make_sym = 1ull << 12,
                          k_refer = 1ull << 13,      // ABI 2
                          k_truncate = 1ull << 14,   // ABI 3
                          k_ioctl_dev = 1ull << 15;  // ABI 5
// The rights a rule on a file (not a directory) may carry.
inline constexpr uint64_t k_file_rights = k_execute | k_write_file | k_read_file | k_truncate | k_ioctl_dev;
inline constexpr uint64_t k_bind_tcp = 1ull << 0, k_connect_tcp = 1ull << 1;           // ABI 4
inline constexpr uint64_t k_scope_abstract_unix = 1ull << 0, k_scope_signal = 1ull << 1;  // ABI 6

inline uint64_t fs_rights(int abi) {
    uint64_t r = (k_make_sym << 1) - 1;  // ABI 1: execute .. make_sym
    if (abi >= 2) r |= k_refer;
    if (abi >= 3) r |= k_truncate;
    if (abi >= 5) r |= k_ioctl_dev;
    return r;
}

inline int abi_version() {
    long v = ::syscall(k_sys_create, nullptr, 0, 1u /* LANDLOCK_CREATE_RULESET_VERSION */);
    return v < 0 ? 0 : static_cast<int>(v);
}

// A ruleset that handles every right the ABI knows, so that whatever is
// not allowed by a rule is denied: files, TCP (ABI 4), and signals and
// abstract Unix sockets scoped to the domain (ABI 6).
class ruleset {
public:
    explicit ruleset(int abi) {
        struct {
            uint64_t fs, net, scoped;
        } attr{fs_rights(abi), abi >= 4 ? (k_bind_tcp | k_connect_tcp) : 0,
               abi >= 6 ? (k_scope_abstract_unix | k_scope_signal) : 0};
        handled_ = attr.fs;
        const size_t size = abi >= 6 ? 24 : abi >= 4 ? 16 : 8;
        fd_ = static_cast<int>(::syscall(k_sys_create, &attr, size, 0));
    }
    ~ruleset() {
        if (fd_ >= 0) ::close(fd_);
    }
    ruleset(const ruleset&) = delete;
    ruleset& operator=(const ruleset&) = delete;

    bool ok() const { return fd_ >= 0; }
    const std::string& error() const { return error_; }

    // Allows `rights` beneath `path` (only file rights on a file). A path
    // that does not exist is an error unless `optional`.
    bool allow_path(const std::string& path, uint64_t rights, bool optional) {
        const int fd = ::open(path.c_str(), O_PATH | O_CLOEXEC);
        if (fd < 0) {
            if (optional) return true;
            error_ = path + ": " + std::strerror(errno);
            return false;
        }
        struct stat st {};
        ::fstat(fd, &st);
        rights &= handled_;
        if (!S_ISDIR(st.st_mode)) rights &= k_file_rights;
        struct __attribute__((packed)) {
            uint64_t allowed;
            int32_t parent_fd;
        } rule{rights, fd};
        const long rc = ::syscall(k_sys_add_rule, fd_, 1 /* LANDLOCK_RULE_PATH_BENEATH */, &rule, 0);
        const int e = errno;
        ::close(fd);
        if (rc != 0) {
            error_ = path + ": landlock_add_rule: " + std::strerror(e);
            return optional;
        }
        return true;
    }

    bool allow_port(uint16_t port) {
        struct {
            uint64_t allowed, port;
        } rule{k_connect_tcp, port};
        if (::syscall(k_sys_add_rule, fd_, 2 /* LANDLOCK_RULE_NET_PORT */, &rule, 0) != 0) {
            error_ = "TCP port " + std::to_string(port) + ": landlock_add_rule: " + std::strerror(errno);
            return false;
        }
        return true;
    }

    bool restrict_self() { return ::syscall(k_sys_restrict, fd_, 0) == 0; }

private:
    int fd_ = -1;
    uint64_t handled_ = 0;
    std::string error_;
};

}  // namespace syncwarden::kernel::landlock
