// The worker's side of the sandbox: it confines itself, layer by layer,
// before the connector's library is loaded. Each layer stands alone; none
// trusts that another is there.
#include <syncwarden/kernel/sandbox.hpp>

#include "landlock.hpp"

#include <seccomp.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <grp.h>
#include <linux/capability.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/netlink.h>
#include <linux/seccomp.h>
#include <cstddef>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace syncwarden::kernel {
namespace {

Status layer_error(const std::string& layer, const std::string& what) {
    return Status::error(error_kind::config, "sandbox: the " + layer + " layer could not be applied: " + what)
        .with_category("sandbox_unavailable");
}

// A layer the kernel found missing and the operator accepted: not applied.
bool accepted(const sandbox_policy& p, const std::string& layer) {
    return std::find(p.off.begin(), p.off.end(), layer) != p.off.end();
}

bool write_file(const char* path, const std::string& text) {
    const int fd = ::open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return false;
    const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    ::close(fd);
    return ok;
}

int last_capability() {
    std::ifstream in("/proc/sys/kernel/cap_last_cap");
    int n = CAP_LAST_CAP;
    if (in >> n) return n;
    return CAP_LAST_CAP;
}

// No capability can come back: the bounding and ambient sets emptied (this
// needs CAP_SETPCAP, so it comes first).
Status drop_bounding() {
    const int last = last_capability();
    for (int c = 0; c <= last; ++c)
        if (::prctl(PR_CAPBSET_DROP, c, 0, 0, 0) != 0 && errno != EINVAL)
            return layer_error("identity", std::string("PR_CAPBSET_DROP: ") + std::strerror(errno));
    if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL)
        return layer_error("identity", std::string("PR_CAP_AMBIENT_CLEAR_ALL: ") + std::strerror(errno));
    return Status::ok();
}

// The effective, permitted and inheritable sets emptied (a change of uid
// away from root empties the first two by itself; a user namespace's root
// keeps them until this).
Status drop_capabilities() {
    __user_cap_header_struct h{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct d[2]{};
    if (::syscall(SYS_capset, &h, d) != 0)
        return layer_error("identity", std::string("capset: ") + std::strerror(errno));
    return Status::ok();
}

// Identity: as root, the policy's own uid and gid (with no supplementary
// groups); as another user, a user namespace of its own (the only way to
// give up the user's namespace-wide rights without privileges). Either way
// no capabilities are left, and the network namespace, when the worker may
// not use the network, is made while the rights to make it are still held.
Status set_identity(const sandbox_policy& p) {
    const bool root = ::geteuid() == 0;
    const int net = p.network ? 0 : CLONE_NEWNET;
    if (root) {
        if (net && !accepted(p, "network") && ::unshare(net) != 0)
            return layer_error("network", std::string("a network namespace (unshare): ") + std::strerror(errno));
    } else {
        const uid_t uid = ::geteuid();
        const gid_t gid = ::getegid();
        if (::unshare(CLONE_NEWUSER | net) != 0)
            return layer_error("identity", std::string("a user namespace (unshare): ") + std::strerror(errno));
        (void)write_file("/proc/self/setgroups", "deny");
        if (!write_file("/proc/self/uid_map", std::to_string(uid) + " " + std::to_string(uid) + " 1\n") ||
            !write_file("/proc/self/gid_map", std::to_string(gid) + " " + std::to_string(gid) + " 1\n"))
            return layer_error("identity", "cannot write the user namespace's id maps");
    }
    if (auto s = drop_bounding(); !s) return s;
    if (root && p.uid) {
        if (::setgroups(0, nullptr) != 0 || ::setresgid(p.gid, p.gid, p.gid) != 0 ||
            ::setresuid(p.uid, p.uid, p.uid) != 0)
            return layer_error("identity", "cannot take uid " + std::to_string(p.uid) + ": " + std::strerror(errno));
        if (::setuid(0) == 0) return layer_error("identity", "uid 0 could be taken back");
    }
    return drop_capabilities();
}

// The read-only places a process needs to load shared libraries, resolve
// names, trust TLS certificates and know the time zone.
const std::vector<std::string>& system_read_paths() {
    static const std::vector<std::string> k{
        "/usr", "/lib", "/lib64", "/lib32", "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d",
        "/etc/ssl", "/etc/ca-certificates", "/etc/pki", "/etc/localtime", "/etc/timezone",
        "/etc/nsswitch.conf", "/etc/hosts", "/etc/host.conf", "/etc/resolv.conf", "/etc/gai.conf",
        "/etc/services", "/etc/protocols", "/etc/passwd", "/etc/group", "/etc/mime.types",
        "/sys/devices/system/cpu", "/proc/sys/kernel/ngroups_max", "/proc/sys/vm/overcommit_memory"};
    return k;
}

Status set_files(const sandbox_policy& p, int abi) {
    using namespace landlock;
    if (abi <= 0) return layer_error("files", "Landlock is not enabled in this Linux");
    ruleset rs(abi);
    if (!rs.ok()) return layer_error("files", std::string("landlock_create_ruleset: ") + std::strerror(errno));
    const uint64_t read = k_read_file | k_read_dir;
    const uint64_t write = read | k_write_file | k_remove_dir | k_remove_file | k_make_dir | k_make_reg | k_make_sym |
                           k_refer | k_truncate;
    for (auto& path : system_read_paths()) rs.allow_path(path, read, true);
    for (const char* dev : {"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"})
        rs.allow_path(dev, k_read_file | k_write_file, true);
    // Its own /proc entries (glibc and the sanitizers read them), not others'.
    rs.allow_path("/proc/" + std::to_string(::getpid()), read, true);
    for (auto& f : p.library)
        if (!rs.allow_path(f, k_read_file, false)) return layer_error("files", rs.error());
    // A path to read that does not exist gets no rule: the connector finds
    // it missing and says so, as it would anywhere.
    for (auto& path : p.read)
        if (!rs.allow_path(path, read, true)) return layer_error("files", rs.error());
    for (auto& path : p.write)
        if (!rs.allow_path(path, write, false)) return layer_error("files", rs.error());
    for (auto& path : p.write_files)
        if (!rs.allow_path(path, read | k_write_file | k_truncate, false)) return layer_error("files", rs.error());
    for (auto& path : p.create_in)
        if (!rs.allow_path(path, read | k_write_file | k_make_reg | k_truncate, false))
            return layer_error("files", rs.error());
    if (!p.tmp.empty() && !rs.allow_path(p.tmp, write, false)) return layer_error("files", rs.error());
    if (p.network) {
        if (abi < 4 && !p.ports.empty() && !accepted(p, "network"))
            return layer_error("network", "Landlock ABI " + std::to_string(abi) +
                                              " has no TCP rules (ABI 4, Linux 6.7, has them)");
        for (uint16_t port : p.ports)
            if (!rs.allow_port(port)) return layer_error("network", rs.error());
    }
    if (!rs.restrict_self()) return layer_error("files", std::string("landlock_restrict_self: ") + std::strerror(errno));
    return Status::ok();
}

#define SW_DENY(name) {SCMP_SYS(name), #name}

struct named_syscall {
    int nr;
    const char* name;
};

// What no connector needs: tracing and reading other processes, mounts and
// namespaces, the kernel's keyring, BPF and perf, modules and kexec,
// userfaultfd and io_uring (which bypasses this filter), and the like.
const std::vector<named_syscall>& denied_syscalls() {
    static const std::vector<named_syscall> k{
        SW_DENY(ptrace), SW_DENY(process_vm_readv), SW_DENY(process_vm_writev), SW_DENY(mount), SW_DENY(umount2),
        SW_DENY(pivot_root), SW_DENY(chroot), SW_DENY(move_mount), SW_DENY(open_tree), SW_DENY(fsopen),
        SW_DENY(fsconfig), SW_DENY(fsmount), SW_DENY(fspick), SW_DENY(mount_setattr), SW_DENY(setns),
        SW_DENY(unshare), SW_DENY(bpf), SW_DENY(perf_event_open), SW_DENY(keyctl), SW_DENY(add_key),
        SW_DENY(request_key), SW_DENY(init_module), SW_DENY(finit_module), SW_DENY(delete_module),
        SW_DENY(kexec_load), SW_DENY(kexec_file_load), SW_DENY(userfaultfd), SW_DENY(io_uring_setup),
        SW_DENY(io_uring_enter), SW_DENY(io_uring_register), SW_DENY(swapon), SW_DENY(swapoff), SW_DENY(reboot),
        SW_DENY(syslog), SW_DENY(acct), SW_DENY(settimeofday), SW_DENY(clock_settime), SW_DENY(clock_adjtime),
        SW_DENY(adjtimex), SW_DENY(iopl), SW_DENY(ioperm), SW_DENY(open_by_handle_at), SW_DENY(name_to_handle_at),
        SW_DENY(quotactl), SW_DENY(lookup_dcookie), SW_DENY(vhangup), SW_DENY(kcmp), SW_DENY(pidfd_getfd),
        SW_DENY(pidfd_send_signal), SW_DENY(fanotify_init), SW_DENY(sethostname), SW_DENY(setdomainname),
        SW_DENY(uselib), SW_DENY(listen), SW_DENY(accept), SW_DENY(accept4), SW_DENY(tkill),
        // Its processes stay in its process group, which dies with it.
        SW_DENY(setsid), SW_DENY(setpgid)};
    return k;
}

#undef SW_DENY

// kill(pid, sig) only for pid 0 (its own process group), its own pid, or
// -its own pid; any other pid is refused. The pid's low 32 bits are
// compared, whether it reached the kernel zero- or sign-extended.
Status load_kill_filter() {
    const uint32_t me = static_cast<uint32_t>(::getpid());
    const uint32_t group = static_cast<uint32_t>(-::getpid());
    sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),  // other architectures: the first filter decides
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_kill, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, args[0])),  // low half (little-endian)
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 3, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, me, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, group, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    sock_fprog prog{static_cast<unsigned short>(sizeof code / sizeof code[0]), code};
    if (::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) != 0)
        return layer_error("syscalls", std::string("the kill filter: ") + std::strerror(errno));
    return Status::ok();
}

Status set_syscalls() {
    scmp_filter_ctx ctx = ::seccomp_init(SCMP_ACT_ALLOW);
    if (!ctx) return layer_error("syscalls", "seccomp_init failed");
    struct freer {
        scmp_filter_ctx c;
        ~freer() { ::seccomp_release(c); }
    } f{ctx};
    const uint32_t deny = SCMP_ACT_ERRNO(EPERM);
    std::string failed;
    auto check = [&](int rc, const char* what) {
        if (rc != 0 && failed.empty()) failed = std::string(what) + ": " + std::strerror(-rc);
    };
    for (auto& s : denied_syscalls()) {
#if defined(SYNCWARDEN_SANITIZED) || defined(__SANITIZE_ADDRESS__)
        // LeakSanitizer stops this process's own threads with ptrace at
        // exit; the other layers still keep a worker from tracing others.
        if (s.nr == SCMP_SYS(ptrace)) continue;
#endif
        check(::seccomp_rule_add(ctx, deny, s.nr, 0), s.name);
    }
    // clone3 takes its flags in memory, where a filter cannot look: callers
    // fall back to clone, whose namespace flags are refused.
    check(::seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0), "clone3");
    for (uint64_t flag : std::initializer_list<uint64_t>{CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWNET, CLONE_NEWPID,
                                                         CLONE_NEWIPC, CLONE_NEWUTS, CLONE_NEWCGROUP,
                                                         0x00000080 /* CLONE_NEWTIME */})
        check(::seccomp_rule_add(ctx, deny, SCMP_SYS(clone), 1, SCMP_A0(SCMP_CMP_MASKED_EQ, flag, flag)), "clone");
    // Signals only to itself and its own process group: kill() in a filter
    // of its own below (one rule may not compare an argument three times).
    const uint64_t self = static_cast<uint32_t>(::getpid());
    const uint64_t low = 0xffffffffu;
    for (int nr : {SCMP_SYS(tgkill), SCMP_SYS(rt_sigqueueinfo), SCMP_SYS(rt_tgsigqueueinfo)})
        check(::seccomp_rule_add(ctx, deny, nr, 1, SCMP_A0(SCMP_CMP_NE, self)), "a signal to another process");
    // Sockets: the internet families and routing netlink (getaddrinfo asks
    // it which addresses exist); not Unix sockets, through which a worker
    // could reach the daemon's control socket or a system service.
    for (int family : {AF_UNIX, AF_PACKET, AF_KEY, AF_ALG, AF_VSOCK, AF_BLUETOOTH, AF_XDP})
        check(::seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(socket), 1,
                                 SCMP_A0(SCMP_CMP_MASKED_EQ, low, static_cast<uint64_t>(family))),
              "socket");
    check(::seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(socket), 2,
                             SCMP_A0(SCMP_CMP_MASKED_EQ, low, static_cast<uint64_t>(AF_NETLINK)),
                             SCMP_A2(SCMP_CMP_NE, static_cast<uint64_t>(NETLINK_ROUTE))),
          "socket");
    check(::seccomp_rule_add(ctx, deny, SCMP_SYS(personality), 1, SCMP_A0(SCMP_CMP_NE, 0xffffffffu)), "personality");
    if (!failed.empty()) return layer_error("syscalls", failed);
    if (int rc = ::seccomp_load(ctx); rc != 0)
        return layer_error("syscalls", std::string("seccomp_load: ") + std::strerror(-rc));
    return load_kill_filter();
}

}  // namespace

Status confine_self(const sandbox_policy& p) {
    if (!p.enabled) return Status::ok();
    if (!accepted(p, "identity")) {
        if (auto s = set_identity(p); !s) return s;
    } else if (!p.network && !accepted(p, "network") && ::unshare(CLONE_NEWNET) != 0) {
        return layer_error("network", std::string("a network namespace (unshare): ") + std::strerror(errno));
    }
    // Without it a filter needs privileges; with it nothing this process
    // starts can gain any.
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return layer_error("identity", std::string("PR_SET_NO_NEW_PRIVS: ") + std::strerror(errno));
    if (!accepted(p, "files"))
        if (auto s = set_files(p, landlock_abi()); !s) return s;
    if (accepted(p, "syscalls")) return Status::ok();
    return set_syscalls();
}

}  // namespace syncwarden::kernel
