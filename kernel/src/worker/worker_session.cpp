// The kernel's side of a connector worker: spawning it, talking to it, and
// telling what happened when it dies, hangs or exits.
#include <syncwarden/kernel/log.hpp>
#include <syncwarden/kernel/text.hpp>
#include <syncwarden/kernel/pii.hpp>
#include <syncwarden/kernel/sandbox.hpp>
#include <syncwarden/kernel/worker.hpp>

#include "../session/settings_schema.hpp"
#include "wire.hpp"

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <deque>
#include <mutex>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

extern char** environ;

namespace fs = std::filesystem;

namespace syncwarden::kernel {
namespace {

using wire::op;
using steady = std::chrono::steady_clock;
using std::chrono::milliseconds;

fs::path& worker_exe() {
    static fs::path p = "/proc/self/exe";
    return p;
}

// Moves fd to a number above the worker's fixed descriptors, close-on-exec,
// so that posix_spawn's dup2 actions can never overwrite one another.
int lift(int fd) {
    if (fd < 0 || fd > 16) return fd;
    int h = ::fcntl(fd, F_DUPFD_CLOEXEC, 17);
    ::close(fd);
    return h;
}

int make_memfd(const char* name, size_t size, unsigned seals) {
    int fd = ::memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) return -1;
    if (::ftruncate(fd, static_cast<off_t>(size)) != 0 || ::fcntl(fd, F_ADD_SEALS, seals) != 0) {
        ::close(fd);
        return -1;
    }
    return lift(fd);
}

std::string duration_text(milliseconds d) {
    auto ms = d.count();
    if (ms % 3600000 == 0) return std::to_string(ms / 3600000) + " h";
    if (ms % 60000 == 0) return std::to_string(ms / 60000) + " min";
    if (ms % 1000 == 0) return std::to_string(ms / 1000) + " s";
    return std::to_string(ms) + " ms";
}

// Turns the worker's stdout and stderr into log lines tagged with the
// connector, and keeps the end of stderr for crash reports.
class output_drain {
public:
    output_drain(int out, int err, log_fields fields) : out_(out), err_(err), fields_(std::move(fields)) {
        int p[2];
        if (::pipe2(p, O_CLOEXEC) == 0) {
            stop_r_ = p[0];
            stop_w_ = p[1];
        }
        thread_ = std::thread([this] { run(); });
    }
    ~output_drain() { stop(); }

    // Stops reading once nothing more is waiting (the worker is gone).
    void stop() {
        if (!thread_.joinable()) return;
        if (stop_w_ >= 0) [[maybe_unused]] auto w = ::write(stop_w_, "x", 1);
        thread_.join();
        for (int fd : {out_, err_, stop_r_, stop_w_})
            if (fd >= 0) ::close(fd);
    }

    std::string stderr_tail() {
        std::lock_guard lock(mu_);
        return tail_;
    }

private:
    void run() {
        std::string line[2];
        bool open[2] = {out_ >= 0, err_ >= 0};
        bool stopping = false;
        char buf[8192];
        while (open[0] || open[1]) {
            pollfd p[3] = {{out_, POLLIN, 0}, {err_, POLLIN, 0}, {stop_r_, POLLIN, 0}};
            if (!open[0]) p[0].fd = -1;
            if (!open[1]) p[1].fd = -1;
            if (stopping) p[2].fd = -1;
            int r = ::poll(p, 3, stopping ? 0 : -1);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) break;  // stopping, and nothing more waits
            if (p[2].revents) stopping = true;
            for (int k = 0; k < 2; ++k) {
                if (!(p[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
                ssize_t n = ::read(k ? err_ : out_, buf, sizeof buf);
                if (n <= 0) {
                    open[k] = false;
                    continue;
                }
                take(k, line[k], std::string_view(buf, static_cast<size_t>(n)));
            }
        }
        for (int k = 0; k < 2; ++k)
            if (!line[k].empty()) say(k, line[k]);
    }

    void take(int k, std::string& line, std::string_view data) {
        for (char c : data) {
            if (c == '\n' || line.size() >= 8192) {
                say(k, line);
                line.clear();
                if (c == '\n') continue;
            }
            line += c;
        }
    }

    void say(int k, const std::string& line) {
        log_fields f = fields_;
        f.event = k ? "connector_stderr" : "connector_stdout";
        log_connector_output(f, SW_LOG_WARN, printable(line));
        if (k) {
            std::lock_guard lock(mu_);
            tail_ += line + "\n";
            if (tail_.size() > 1024) tail_.erase(0, tail_.size() - 1024);
        }
    }

    int out_, err_, stop_r_ = -1, stop_w_ = -1;
    log_fields fields_;
    std::mutex mu_;
    std::string tail_;
    std::thread thread_;
};

// A started worker process and the kernel's ends of its descriptors.
struct child {
    pid_t pid = -1;
    int pidfd = -1, sock = -1;
    wire::arena up, down;
    wire::control_page* page = nullptr;
    std::unique_ptr<output_drain> drain;
    bool reaped = false;
    int wait_status = 0;
    long maxrss_kb = 0;
    uint64_t cpu_seconds = 0;
    double cpu = 0;  // user + system, seconds
    bool killed = false;  // by the kernel
    sandbox_policy sandbox;  // its temporary folder goes with it

    child() = default;
    child(const child&) = delete;
    child& operator=(const child&) = delete;
    ~child() {
        if (sock >= 0) ::close(sock);
        finish(milliseconds(0));
        if (drain) drain->stop();
        if (page) ::munmap(page, sizeof(wire::control_page));
        if (pidfd >= 0) ::close(pidfd);
        release_sandbox(sandbox);
    }

    // Waits up to `patience` for the process to end, then kills it; reaps it.
    void finish(milliseconds patience) {
        if (pid <= 0 || reaped) return;
        if (pidfd >= 0) {
            pollfd p{pidfd, POLLIN, 0};
            int r;
            do r = ::poll(&p, 1, static_cast<int>(patience.count()));
            while (r < 0 && errno == EINTR);
            if (r == 0) kill();
        } else {
            kill();
        }
        rusage ru{};
        while (::wait4(pid, &wait_status, 0, &ru) < 0 && errno == EINTR) {
        }
        // What the connector started dies with it: its process group (it
        // cannot leave it: setsid and setpgid are refused in the sandbox).
        ::kill(-pid, SIGKILL);
        maxrss_kb = ru.ru_maxrss;
        cpu_seconds = static_cast<uint64_t>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec);
        cpu = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
              static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
        reaped = true;
    }

    void kill() {
        if (pid > 0 && !reaped) {
            killed = true;
            ::kill(-pid, SIGKILL);
            ::kill(pid, SIGKILL);
        }
    }
};

struct spawn_request {
    fs::path so;
    bool probe = false;
    worker_limits limits;
    log_fields fields;
    // When set, the worker checks the library's SHA-256 before it loads it
    // (the kernel has not); `release` names it in a refusal.
    std::string sha256, release;
    // What confines it (prepared by the caller: its temporary folder is
    // removed with the worker), and the environment variables its job
    // passes on to it.
    sandbox_policy sandbox;
    std::vector<std::string> env;
};

Result<std::unique_ptr<child>> spawn(const spawn_request& req) {
    auto c = std::make_unique<child>();
    c->sandbox = req.sandbox;  // released with c, whatever fails below
    auto sys_fail = [&](const char* what) {
        return Status::error(error_kind::internal,
                             std::string("starting a worker for ") + req.so.string() + ": " + what + ": " +
                                 std::strerror(errno));
    };
    int sv[2], out[2], err[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) return sys_fail("socketpair");
    c->sock = lift(sv[0]);
    int theirs = lift(sv[1]);
    struct closer {
        std::vector<int> fds;
        ~closer() {
            for (int fd : fds)
                if (fd >= 0) ::close(fd);
        }
    } close_after{{theirs}};
    if (::pipe2(out, O_CLOEXEC) != 0) return sys_fail("pipe");
    out[0] = lift(out[0]);
    out[1] = lift(out[1]);
    close_after.fds.push_back(out[1]);
    if (::pipe2(err, O_CLOEXEC) != 0) {
        ::close(out[0]);
        return sys_fail("pipe");
    }
    err[0] = lift(err[0]);
    err[1] = lift(err[1]);
    close_after.fds.push_back(err[1]);
    int up = make_memfd("syncwarden-up", 1 << 20, F_SEAL_SHRINK);
    int down = make_memfd("syncwarden-down", 1 << 20, F_SEAL_SHRINK);
    int page = make_memfd("syncwarden-page", 4096, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
    // The arenas keep their descriptors; the worker gets duplicates.
    c->up = wire::arena(up, false);
    c->down = wire::arena(down, true);
    close_after.fds.push_back(page);
    if (up < 0 || down < 0 || page < 0) {
        ::close(out[0]);
        ::close(err[0]);
        return sys_fail("memfd");
    }
    void* pg = ::mmap(nullptr, sizeof(wire::control_page), PROT_READ | PROT_WRITE, MAP_SHARED, page, 0);
    if (pg == MAP_FAILED) {
        ::close(out[0]);
        ::close(err[0]);
        return sys_fail("mmap");
    }
    c->page = static_cast<wire::control_page*>(pg);
    // The worker loads the library through this descriptor: it needs no
    // way to the file through the (private) data dir.
    const int lib = lift(::open(req.so.c_str(), O_RDONLY | O_CLOEXEC));
    if (lib < 0) {
        ::close(out[0]);
        ::close(err[0]);
        return sys_fail(("opening " + req.so.string()).c_str());
    }
    close_after.fds.push_back(lib);

    std::vector<std::string> args{"syncwarden-worker", k_worker_command, "--so", req.so.string(),
                                  "--parent", std::to_string(::getpid()),
                                  "--memory-mb", std::to_string(req.limits.memory_mb),
                                  "--cpu-seconds", std::to_string(req.limits.cpu_seconds),
                                  "--open-files", std::to_string(req.limits.open_files),
                                  "--processes", std::to_string(req.limits.processes)};
    if (req.probe) args.push_back("--probe");
    if (req.sandbox.enabled) args.insert(args.end(), {"--sandbox", req.sandbox.to_json().dump()});
    if (!req.sha256.empty()) args.insert(args.end(), {"--sha256", req.sha256, "--release", req.release});
    char mask[8];
    std::snprintf(mask, sizeof mask, "%03o", static_cast<unsigned>(pii::operator_umask()));
    args.insert(args.end(), {"--umask", mask});
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, err[1], 2);
    posix_spawn_file_actions_adddup2(&fa, theirs, wire::k_fd_control);
    posix_spawn_file_actions_adddup2(&fa, up, wire::k_fd_up);
    posix_spawn_file_actions_adddup2(&fa, down, wire::k_fd_down);
    posix_spawn_file_actions_adddup2(&fa, page, wire::k_fd_page);
    posix_spawn_file_actions_adddup2(&fa, lib, wire::k_fd_library);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    // The worker starts with default signal handling and nothing blocked,
    // whatever the kernel has set up for itself.
    sigset_t all, none;
    sigfillset(&all);
    sigemptyset(&none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setsigmask(&attr, &none);
    // A process group of its own: Ctrl-C at the terminal reaches only the
    // kernel, which then cancels the run in order.
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP);
    // Only what the allow-list names: never the kernel's own variables.
    std::vector<std::string> env = worker_environment(environ, req.env, req.sandbox.tmp);
    std::vector<char*> envp;
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    pid_t pid = -1;
    int rc = ::posix_spawn(&pid, worker_exe().c_str(), &fa, &attr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) {
        ::close(out[0]);
        ::close(err[0]);
        errno = rc;
        return sys_fail(("running " + worker_exe().string()).c_str());
    }
    c->pid = pid;
    c->pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));  // -1 on an old kernel: deaths are then seen on the socket
    c->drain = std::make_unique<output_drain>(out[0], err[0], req.fields);
    return c;
}

std::string signal_name(int sig) {
    const char* abbrev = ::sigabbrev_np(sig);
    return abbrev ? std::string("SIG") + abbrev : "signal " + std::to_string(sig);
}

// What a worker's end means, as a status naming the connector and the phase.
Status death_status(child& c, const std::string& who, const std::string& hook, const worker_limits& lim) {
    c.finish(milliseconds(2000));
    std::string tail = c.drain ? (c.drain->stop(), c.drain->stderr_tail()) : "";
    while (!tail.empty() && tail.back() == '\n') tail.pop_back();
    const std::string last = tail.empty() ? "" : " Its last words on stderr: " + printable(tail);
    const std::string during = hook.empty() ? "" : " during " + hook;
    const int st = c.wait_status;
    const bool near_limit = lim.memory_mb && static_cast<uint64_t>(c.maxrss_kb) >= lim.memory_mb * 1024 / 2;
    auto error = [](const char* cat, const std::string& msg) {
        return Status::error(error_kind::connector, std::string(cat) + ": " + msg).with_category(cat);
    };
    const std::string mem = "its memory limit is " + std::to_string(lim.memory_mb) +
                            " MiB (limits.memory_mb in the job)";
    if (WIFEXITED(st) && WEXITSTATUS(st) == wire::k_exit_oom)
        return error("connector_oom", who + " ran out of memory" + during + "; " + mem + ". The run stopped; the "
                                      "kernel is unharmed");
    if (WIFEXITED(st))
        return error("connector_exited",
                     who + " exited with code " + std::to_string(WEXITSTATUS(st)) + during +
                         " instead of returning from the hook. A connector must never end its process; the run "
                         "stopped and the kernel is unharmed." + last);
    if (WIFSIGNALED(st)) {
        const int sig = WTERMSIG(st);
        if (sig == SIGXCPU || (sig == SIGKILL && !c.killed && lim.cpu_seconds && c.cpu_seconds >= lim.cpu_seconds))
            return error("timeout", who + " used up its CPU time limit of " + std::to_string(lim.cpu_seconds) +
                                        " s" + during + " (limits.cpu_seconds in the job)");
        if (sig == SIGKILL && !c.killed && near_limit)
            return error("connector_oom", who + " was killed with SIGKILL" + during +
                                              " near its memory limit, most likely by the system's out-of-memory "
                                              "killer; " + mem + ". The run stopped; the kernel is unharmed");
        if (sig == SIGKILL && !c.killed)
            return error("connector_crashed", who + " was killed with SIGKILL" + during +
                                                  " by something outside the kernel. The run stopped; the kernel is "
                                                  "unharmed." + last);
        if (near_limit)
            return error("connector_oom", who + " crashed with " + signal_name(sig) + during +
                                              " after reaching its memory limit; " + mem + "." + last);
        return error("connector_crashed", who + " crashed with " + signal_name(sig) + during +
                                              ". The run stopped; the kernel is unharmed. Report it to the "
                                              "connector's authors." + last);
    }
    return error("connector_crashed", who + " ended" + during + " in an unknown way." + last);
}

struct done_info {
    sw_status status = SW_OK;
    uint32_t retry_after_ms = 0;
    std::string category, message;
    uint64_t payload = 0;
};

// The sinks of one hook call; null where the hook may not call back.
struct sinks {
    run_services* rs = nullptr;
    record_sink* records = nullptr;
    change_sink* changes = nullptr;
    result_sink* results = nullptr;
    std::optional<std::string>* token = nullptr;
};

class worker_session final : public connector_session {
public:
    worker_session(std::unique_ptr<child> c, connector_info info, uint32_t hook_bits, worker_options opts)
        : c_(std::move(c)), info_(std::move(info)), who_(info_.name + " " + info_.version), hooks_(hook_bits),
          opts_(std::move(opts)) {}

    ~worker_session() override {
        if (!c_->reaped && !gone_) {
            // A connector stopped by a deadline or a cancel still gets its
            // destroy, within the grace period.
            stopped_.reset();
            deadline_ = steady::now() + opts_.grace;
            sinks none;
            none.rs = &no_services();
            (void)converse(op::destroy, {}, none, "destroy");
        }
        const bool was_reaped = c_->reaped;
        c_->finish(opts_.grace);
        // What the worker used, to size limits.memory_mb and limits.cpu_seconds.
        if (!was_reaped && c_->reaped) {
            char msg[96];
            std::snprintf(msg, sizeof msg, "peak RSS %ld MiB, CPU %.2f s", c_->maxrss_kb / 1024, c_->cpu);
            log_info({opts_.run_id, opts_.job, who_, "", "worker_finished"}, msg);
        }
    }

    const connector_info& info() const override { return info_; }
    const std::string& who() const override { return who_; }
    bool has_diff() const override { return hooks_ & 1u; }
    bool has_state_token() const override { return hooks_ & 2u; }
    void set_deadline(deadline d) override { deadline_ = d; }

    Status create(const nlohmann::json& settings, const std::string& job, const fs::path& base, run_services& rs) {
        std::string args;
        wire::writer w(args);
        w.str(settings.dump());
        w.str(job);
        w.str(base.string());
        sinks s;
        s.rs = &rs;
        auto d = converse(op::create, args, s, "create");
        if (!d) return d.status();
        if (d->payload == 1)
            return Status::error(error_kind::connector, who_ + ": create returned ok but no instance; fix the connector");
        return to_status("create", *d, error_kind::config);
    }

    Result<contract_schema> contract(run_services& rs) override {
        sinks s;
        s.rs = &rs;
        auto d = converse(op::contract, {}, s, "contract");
        if (!d) return d.status();
        if (d->status != SW_OK && d->payload == 1)
            return Status::error(error_kind::connector, d->message);  // the contract's own checks
        if (auto st = to_status("contract", *d, error_kind::connector); !st) return st;
        if (!c_->up.view(d->payload)) return protocol_error("contract", "a contract longer than its shared memory");
        wire::reader r(c_->up.data(), d->payload);
        contract_schema out;
        uint32_t n = r.u32();
        for (uint32_t i = 0; i < n && r.ok(); ++i) {
            entity_schema e;
            e.name = r.str();
            e.key_name = r.str();
            uint32_t nf = r.u32();
            for (uint32_t k = 0; k < nf && r.ok(); ++k) {
                field_schema f;
                f.name = r.str();
                f.type = static_cast<sw_field_type>(r.u32());
                f.required = r.u32() != 0;
                const uint32_t nv = r.u32();
                for (uint32_t v = 0; v < nv && r.ok(); ++v) f.allowed.emplace_back(r.str());
                f.extension_prefix = r.str();
                const uint32_t compare = r.u32();
                if (compare > SW_COMPARE_IGNORE) return protocol_error("contract", "a compare policy out of range");
                f.compare = static_cast<sw_compare>(compare);
                const uint32_t flags = r.u32();
                f.unordered = (flags & 1u) != 0;
                f.match = (flags & 2u) != 0;
                f.keeps_empty = (flags & 4u) != 0;
                e.fields.push_back(std::move(f));
            }
            const uint32_t nd = r.u32();
            for (uint32_t k = 0; k < nd && r.ok(); ++k) e.depends_on.emplace_back(r.str());
            out.entities.push_back(std::move(e));
        }
        if (!r.ok()) return protocol_error("contract", "a contract that is cut short");
        return out;
    }

    void start_extract(const std::vector<std::string>& entities) override {
        if (started_ || stopped_) return;
        std::string args = entity_args(entities);
        wire::writer(args).u64(read_ahead());
        if (auto st = send_call(op::extract, args, "extract"); !st) return;  // extract() reports it
        started_ = entities;
    }

    Status extract(const std::vector<std::string>& entities, record_sink& out, run_services& rs) override {
        sinks s;
        s.rs = &rs;
        s.records = &out;
        if (started_ && *started_ != entities) abandon_started();
        Result<done_info> d = Status::ok();
        if (started_) {
            started_.reset();
            d = await_done(s, "extract");
        } else {
            std::string args = entity_args(entities);
            wire::writer(args).u64(0);
            d = converse(op::extract, args, s, "extract");
        }
        if (!d) return d.status();
        return to_status("extract", *d, error_kind::input);
    }

    Result<std::optional<std::string>> read_state(const std::vector<std::string>& entities, record_sink& out,
                                                  run_services& rs) override {
        std::optional<std::string> token;
        sinks s;
        s.rs = &rs;
        s.records = &out;
        s.token = &token;
        std::string args = entity_args(entities);
        wire::writer(args).u64(std::min<size_t>(read_ahead(), k_state_read_ahead));
        auto d = converse(op::read_state, args, s, "read_state");
        if (!d) return d.status();
        if (auto st = to_status("read_state", *d, error_kind::target); !st) return st;
        return token;
    }

    Result<std::optional<std::string>> state_token(const std::vector<std::string>& entities,
                                                   run_services& rs) override {
        std::optional<std::string> token;
        if (!has_state_token()) return token;
        sinks s;
        s.rs = &rs;
        s.token = &token;
        auto d = converse(op::state_token, entity_args(entities), s, "state_token");
        if (!d) return d.status();
        if (auto st = to_status("state_token", *d, error_kind::target); !st) return st;
        return token;
    }

    Status diff(const sw_batch* desired, change_sink& out, run_services& rs) override {
        std::string args;
        if (desired) {
            args.resize(wire::encoded_size(*desired));
            wire::encode(*desired, args.data());
        }
        sinks s;
        s.rs = &rs;
        s.changes = &out;
        auto d = converse(op::diff, args, s, "diff");
        if (!d) return d.status();
        return to_status("diff", *d, error_kind::target);
    }

    hook_error apply(const sw_change_batch& batch, result_sink& out, run_services& rs) override {
        sinks s;
        s.rs = &rs;
        s.results = &out;
        const size_t n = wire::encoded_size(batch);
        if (!c_->down.reserve(n))
            return {SW_INTERNAL, "worker", "a batch of " + std::to_string(n) + " bytes does not fit shared memory", true};
        wire::encode(batch, c_->down.data());
        auto d = converse_placed(op::apply, n, s, "apply");
        if (!d) return fatal(d.status());
        return {d->status, d->category, d->message, false, d->status == SW_THROTTLED ? d->retry_after_ms : 0};
    }

    hook_error commit(run_services& rs) override {
        sinks s;
        s.rs = &rs;
        auto d = converse(op::commit, {}, s, "commit");
        if (!d) return fatal(d.status());
        return {d->status, d->category, d->message};
    }

    void abort(run_services& rs) override {
        if (!(hooks_ & 8u)) return;
        sinks s;
        s.rs = &rs;
        (void)converse(op::abort, {}, s, "abort");
    }

    Result<std::string> system_id(run_services& rs) override {
        if (!(hooks_ & 16u)) return std::string();
        sinks s;
        s.rs = &rs;
        auto d = converse(op::system_id, {}, s, "system_id");
        if (!d) return d.status();
        if (auto st = to_status("system_id", *d, error_kind::target); !st) return st;
        if (d->payload > 4096 || !c_->up.view(d->payload))
            return protocol_error("system_id", "a system id longer than 4 KiB");
        return std::string(c_->up.data(), d->payload);
    }

    // Waits for the worker's manifest, the first thing it sends.
    static Result<std::pair<connector_info, uint32_t>> await_manifest(child& c, const std::string& what,
                                                                      const worker_limits& lim,
                                                                      milliseconds patience) {
        std::vector<char> buf;
        std::vector<wire::frame> frames;
        pollfd p[2] = {{c.sock, POLLIN, 0}, {c.pidfd, POLLIN, 0}};
        int r;
        do r = ::poll(p, c.pidfd >= 0 ? 2 : 1, static_cast<int>(patience.count()));
        while (r < 0 && errno == EINTR);
        long n = (r > 0 && (p[0].revents & POLLIN)) ? wire::recv_packet(c.sock, buf) : 0;
        if (r == 0) {
            c.kill();
            Status s = Status::error(error_kind::connector,
                                     "timeout: " + what + " did not finish loading within " + duration_text(patience) +
                                         " (its static constructors or entry function hang)")
                           .with_category("timeout");
            c.finish(milliseconds(0));
            return s;
        }
        if (n <= 0) return death_status(c, what, "loading (static constructors and entry function)", lim);
        if (!wire::split(buf.data(), static_cast<size_t>(n), frames) || frames.empty())
            return Status::error(error_kind::connector, what + ": the worker sent a malformed first message");
        wire::reader rd(frames[0].p, frames[0].n);
        if (frames[0].o == op::load_failed) {
            Status s = Status::error(error_kind::connector, std::string(rd.str()));
            c.finish(milliseconds(2000));
            return s;
        }
        if (frames[0].o != op::manifest)
            return Status::error(error_kind::connector, what + ": the worker sent something else than its manifest");
        connector_info i;
        i.name = rd.str();
        i.version = rd.str();
        i.build_id = rd.str();
        i.description = rd.str();
        i.abi_major = rd.u32();
        i.abi_minor = rd.u32();
        i.capabilities = rd.u32();
        i.thread_safety = rd.u32();
        i.settings_schema = rd.str();
        uint32_t bits = rd.u32();
        if (!rd.ok()) return Status::error(error_kind::connector, what + ": the worker sent a manifest cut short");
        return std::make_pair(std::move(i), bits);
    }

private:
    static std::string entity_args(const std::vector<std::string>& entities) {
        std::string args;
        wire::writer w(args);
        w.u32(static_cast<uint32_t>(entities.size()));
        for (auto& e : entities) w.str(e);
        return args;
    }

    static hook_error fatal(const Status& s) {
        return {SW_INTERNAL, s.category().empty() ? "worker" : s.category(), s.message(), true};
    }

    Status to_status(const char* hook, const done_info& d, error_kind schema_kind) const {
        if (d.status == SW_OK) return Status::ok();
        error_kind k = error_kind::connector;
        if (d.status == SW_CONFIG) k = error_kind::config;
        else if (d.status == SW_SCHEMA) k = schema_kind;
        std::string msg = d.message.empty() ? "no message" : d.message;
        return Status::error(k, who_ + ": " + hook + " failed (" + status_name(d.status) +
                                    (d.category.empty() ? "" : ", " + d.category) + "): " + msg);
    }

    Status protocol_error(const std::string& hook, const std::string& what) {
        c_->kill();
        c_->finish(milliseconds(0));
        gone_ = true;
        Status s = Status::error(error_kind::connector,
                                 "connector_crashed: " + who_ + " sent " + what + " during " + hook +
                                     "; its worker was stopped. The connector corrupted its worker process; report "
                                     "it to the connector's authors")
                       .with_category("connector_crashed");
        stopped_ = s;
        return s;
    }

    Result<done_info> converse(op o, const std::string& args, sinks& s, const char* hook) {
        if (auto st = send_call(o, args, hook); !st) return st;
        return await_done(s, hook);
    }

    // Sends a hook call whose arguments are already in the down arena, and
    // serves the worker's host calls until the hook returns.
    Result<done_info> converse_placed(op o, size_t arg_size, sinks& s, const char* hook) {
        if (auto st = send_placed(o, arg_size, hook); !st) return st;
        return await_done(s, hook);
    }

    Status send_call(op o, const std::string& args, const char* hook) {
        if (started_) abandon_started();  // it may still read its arguments
        if (!args.empty()) {
            if (!c_->down.reserve(args.size())) return protocol_error(hook, "arguments larger than shared memory");
            std::memcpy(c_->down.data(), args.data(), args.size());
        }
        return send_placed(o, args.size(), hook);
    }

    Status send_placed(op o, size_t arg_size, const char* hook) {
        if (started_) abandon_started();
        if (stopped_) return *stopped_;
        out_.clear();
        {
            wire::writer w(out_.begin(o));
            w.u64(arg_size);
            out_.end();
        }
        if (!wire::send_packet(c_->sock, out_.bytes())) return gone(hook);
        return Status::ok();
    }

    // How far a started extract may run ahead of the kernel: limits.read_ahead_mb
    // (256 MiB), or a quarter of the worker's memory limit when that is less.
    // A target's state read runs ahead too, by at most k_state_read_ahead:
    // enough that the target's reading and the kernel's indexing do not
    // take turns batch by batch (the kernel is the slower of the two, so a
    // larger ring would only fill).
    static constexpr size_t k_state_read_ahead = size_t(32) << 20;
    size_t read_ahead() const {
        uint64_t bytes = opts_.limits.read_ahead_mb << 20;
        if (opts_.limits.memory_mb) bytes = std::min<uint64_t>(bytes, (opts_.limits.memory_mb << 20) / 4);
        return static_cast<size_t>(bytes);
    }

    // An extract started and never read (the target's state could not be
    // read, say): the connector is asked to stop, its records are refused,
    // and it is killed if it has not ended within the grace period.
    void abandon_started() {
        started_.reset();
        if (stopped_) return;
        sinks none;
        none.rs = &no_services();
        const auto saved = deadline_;
        deadline_ = steady::now() + opts_.grace;
        (void)await_done(none, "extract", true);
        deadline_ = saved;
        if (!gone_) {
            stopped_.reset();
            c_->page->cancel.store(0, std::memory_order_relaxed);
        }
    }

    // Serves the worker's host calls until the hook it runs returns.
    // `abandoning`: the hook's outcome is of no interest; it is asked to stop now.
    Result<done_info> await_done(sinks& s, const char* hook, bool abandoning = false) {
        if (stopped_) return *stopped_;
        uint64_t seen = c_->page->progress.load(std::memory_order_relaxed);
        auto last_progress = steady::now();
        std::optional<steady::time_point> kill_at;
        Status why_stopping;
        if (abandoning) {
            c_->page->cancel.store(1, std::memory_order_relaxed);
            why_stopping = Status::error(error_kind::connector, who_ + ": its extract was stopped unread");
            kill_at = steady::now() + opts_.grace;
        }
        for (;;) {
            auto now = steady::now();
            auto wake = now + milliseconds(200);
            if (!kill_at && opts_.stall.count() > 0) wake = std::min(wake, last_progress + opts_.stall);
            if (!kill_at && deadline_) wake = std::min(wake, *deadline_);
            if (kill_at) wake = std::min(wake, *kill_at);
            int timeout = static_cast<int>(
                std::max<long>(0, std::chrono::duration_cast<milliseconds>(wake - now).count()));
            pollfd p[2] = {{c_->sock, static_cast<short>(POLLIN | (backlog_.empty() ? 0 : POLLOUT)), 0},
                           {c_->pidfd, POLLIN, 0}};
            int r = ::poll(p, c_->pidfd >= 0 ? 2 : 1, timeout);
            if (r < 0 && errno != EINTR) return gone(hook);
            if (r > 0 && (p[0].revents & POLLOUT) && !send_backlog()) return gone(hook);
            if (r > 0 && (p[0].revents & (POLLIN | POLLHUP | POLLERR))) {
                long n = wire::recv_packet(c_->sock, rbuf_);
                if (n <= 0) return gone(hook);
                last_progress = steady::now();
                if (!wire::split(rbuf_.data(), static_cast<size_t>(n), frames_))
                    return protocol_error(hook, "a malformed message");
                for (const wire::frame& f : frames_) {
                    if (f.o == op::done) {
                        wire::reader rd(f.p, f.n);
                        done_info d;
                        d.status = static_cast<sw_status>(rd.u32());
                        d.retry_after_ms = rd.u32();
                        d.category = rd.str();
                        d.message = rd.str();
                        d.payload = rd.u64();
                        if (!rd.ok() || d.status > SW_CANCELLED) return protocol_error(hook, "a malformed reply");
                        // A worker takes every acknowledgement before it ends a hook.
                        if (!backlog_.empty()) return protocol_error(hook, "an outcome before it took every answer");
                        if (kill_at) {
                            stopped_ = why_stopping;
                            return why_stopping;
                        }
                        return d;
                    }
                    if (auto st = serve(f, s, hook, kill_at.has_value()); !st) return st;
                }
                // Time the kernel spent serving (a rate-limit wait) is not the connector's.
                last_progress = steady::now();
                continue;
            }
            if (r > 0 && c_->pidfd >= 0 && (p[1].revents & POLLIN)) return gone(hook);
            now = steady::now();
            uint64_t prog = c_->page->progress.load(std::memory_order_relaxed);
            if (prog != seen) {
                seen = prog;
                last_progress = now;
            }
            if (kill_at) {
                if (now >= *kill_at) {
                    c_->kill();
                    c_->finish(milliseconds(0));
                    gone_ = true;
                    stopped_ = why_stopping;
                    return why_stopping;
                }
                continue;
            }
            std::string reason;
            Status stop;
            if (opts_.cancel && opts_.cancel->requested.load()) {
                stop = cancelled_status(*opts_.cancel, std::string("during ") + hook + " of " + who_);
            } else if (deadline_ && now >= *deadline_) {
                stop = Status::error(error_kind::connector, "timeout: " + who_ + " did not finish " + hook +
                                                                " before the phase's deadline (deadlines in the job)")
                           .with_category("timeout");
            } else if (opts_.stall.count() > 0 && now - last_progress >= opts_.stall) {
                stop = Status::error(error_kind::connector,
                                     "timeout: " + who_ + " made no progress for " + duration_text(opts_.stall) +
                                         " during " + hook + " (no records, results, logs or is_cancelled calls; "
                                         "deadlines.stall in the job)")
                           .with_category("timeout");
            }
            if (!stop) {
                // Ask first; kill after the grace period.
                c_->page->cancel.store(1, std::memory_order_relaxed);
                why_stopping = stop;
                kill_at = now + opts_.grace;
            }
        }
    }

    Status serve(const wire::frame& f, sinks& s, const char* hook, bool stopping) {
        wire::reader rd(f.p, f.n);
        switch (f.o) {
            case op::log: {
                uint32_t level = rd.u32();
                std::string_view msg = rd.str();
                if (!rd.ok()) break;
                log_connector_output({opts_.run_id, opts_.job, who_, hook, "connector_log"}, level, msg);
                return Status::ok();
            }
            case op::finding: {
                sw_finding fd{};
                fd.struct_size = sizeof fd;
                auto sv = [](std::string_view v) { return sw_str{v.data(), v.size()}; };
                fd.severity = rd.u32();
                fd.code = sv(rd.str());
                fd.entity = sv(rd.str());
                fd.file = sv(rd.str());
                fd.line = rd.u64();
                fd.column = rd.u64();
                fd.key = sv(rd.str());
                fd.message = sv(rd.str());
                if (!rd.ok()) break;
                if (s.rs) s.rs->on_finding(fd);
                return Status::ok();
            }
            case op::layout: {
                std::string entity(rd.str()), file(rd.str());
                const uint32_t n = rd.u32();
                std::vector<std::string> cols;
                for (uint32_t i = 0; i < n && rd.ok(); ++i) cols.emplace_back(rd.str());
                if (!rd.ok()) break;
                if (s.rs) s.rs->on_layout(entity, file, std::move(cols));
                return Status::ok();
            }
            case op::result: {
                uint64_t index = rd.u64();
                uint32_t st = rd.u32();
                std::string_view cat = rd.str(), msg = rd.str();
                if (!rd.ok()) break;
                if (s.results) s.results->on_result(static_cast<size_t>(index), static_cast<sw_status>(st), cat, msg);
                return Status::ok();
            }
            case op::target_id: {
                uint64_t index = rd.u64();
                uint32_t too_long = rd.u32();
                std::string_view id = rd.str();
                if (!rd.ok()) break;
                if (s.results) s.results->on_target_id(static_cast<size_t>(index), id, too_long != 0);
                return Status::ok();
            }
            case op::token: {
                uint32_t too_long = rd.u32();
                std::string_view t = rd.str();
                if (!rd.ok()) break;
                if (too_long)
                    return protocol_error(hook, "a state token longer than " +
                                                    std::to_string(wire::k_max_inline_text / 1024) + " KiB");
                if (s.token) *s.token = std::string(t);
                return Status::ok();
            }
            case op::records:
            case op::changes: {
                uint64_t offset = rd.u64(), size = rd.u64();
                const uint32_t flags = rd.u32();
                if (!rd.ok() || offset > wire::k_max_arena || size > wire::k_max_arena || !c_->up.view(offset + size))
                    break;
                const char* at = c_->up.data() + offset;
                sw_status verdict = SW_INTERNAL;
                std::string why;
                if (f.o == op::records) {
                    sw_batch b;
                    if (!decoder_.decode(at, size, b, why)) return protocol_error(hook, "a record batch in which " + why);
                    if (stopping) verdict = SW_CANCELLED;
                    else if (s.records) verdict = s.records->on_records(b);
                } else {
                    sw_change_batch b;
                    if (!decoder_.decode(at, size, b, why)) return protocol_error(hook, "a change batch in which " + why);
                    if (stopping) verdict = SW_CANCELLED;
                    else if (s.changes) verdict = s.changes->on_changes(b);
                }
                // A batch from the ring of an extract that ran ahead: this
                // process lets go of its pages (the worker keeps them for
                // the ring's next round), so the ring is held once.
                if (flags & wire::k_release_after_use) {
                    const uintptr_t from = reinterpret_cast<uintptr_t>(at) & ~uintptr_t(4095);
                    (void)::madvise(reinterpret_cast<void*>(from), size + (reinterpret_cast<uintptr_t>(at) - from),
                                    MADV_DONTNEED);
                }
                return reply(op::ack, [&](wire::writer& w) { w.u32(verdict); }, hook);
            }
            case op::checkpoint_save: {
                std::string_view token = rd.str();
                if (!rd.ok()) break;
                sw_status st = s.rs ? s.rs->checkpoint_save(token) : SW_INTERNAL;
                return reply(op::reply_status, [&](wire::writer& w) { w.u32(st); }, hook);
            }
            case op::retry_wait: {
                uint32_t attempt = rd.u32(), after = rd.u32();
                if (!rd.ok()) break;
                sw_status st = stopping ? SW_CANCELLED : s.rs ? s.rs->retry_wait(attempt, after) : SW_RETRYABLE;
                return reply(op::reply_status, [&](wire::writer& w) { w.u32(st); }, hook);
            }
            case op::acquire: {
                uint32_t permits = rd.u32();
                if (!rd.ok()) break;
                sw_status st = stopping ? SW_CANCELLED : s.rs ? s.rs->acquire(permits) : SW_OK;
                return reply(op::reply_status, [&](wire::writer& w) { w.u32(st); }, hook);
            }
            case op::checkpoint_load: {
                std::optional<std::string> t = s.rs ? s.rs->checkpoint_load() : std::nullopt;
                return reply(op::reply_checkpoint, [&](wire::writer& w) {
                    w.u32(s.rs ? SW_OK : SW_INTERNAL);
                    w.str(t.value_or(""));
                }, hook);
            }
            default: break;
        }
        return protocol_error(hook, "a malformed or unexpected message");
    }

    template <class F>
    Status reply(op o, F&& fill, const char* hook) {
        out_.clear();
        wire::writer w(out_.begin(o));
        fill(w);
        out_.end();
        if (out_.size() > wire::k_max_packet) return protocol_error(hook, "a request whose answer is too long");
        // Never waits: with an extract running ahead, the worker may be
        // blocked sending its batches while this answers them.
        if (backlog_.empty()) {
            for (;;) {
                ssize_t w = ::send(c_->sock, out_.bytes().data(), out_.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
                if (w == static_cast<ssize_t>(out_.size())) return Status::ok();
                if (w < 0 && errno == EINTR) continue;
                if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
                return gone(hook);
            }
        }
        backlog_.push_back(out_.bytes());
        return Status::ok();
    }

    // Sends the answers queued while the socket was full, as far as it takes
    // them now; false when the worker is gone.
    bool send_backlog() {
        while (!backlog_.empty()) {
            const std::string& b = backlog_.front();
            ssize_t w = ::send(c_->sock, b.data(), b.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
            if (w < 0 && errno == EINTR) continue;
            if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
            if (w != static_cast<ssize_t>(b.size())) return false;
            backlog_.pop_front();
        }
        return true;
    }

    Status gone(const char* hook) {
        gone_ = true;
        Status s = death_status(*c_, who_, hook, opts_.limits);
        stopped_ = s;
        return s;
    }

    std::unique_ptr<child> c_;
    connector_info info_;
    std::string who_;
    uint32_t hooks_;
    worker_options opts_;
    deadline deadline_;
    std::optional<Status> stopped_;
    bool gone_ = false;
    std::optional<std::vector<std::string>> started_;
    std::deque<std::string> backlog_;  // answers the socket had no room for yet, in order  // the entities of an extract started and not yet read
    wire::packet out_;
    std::vector<char> rbuf_;
    std::vector<wire::frame> frames_;
    wire::batch_decoder decoder_;
};

}  // namespace

void set_worker_executable(const fs::path& exe) { worker_exe() = exe; }

Status cancelled_status(const cancel_flag& c, const std::string& where) {
    const int sig = c.signal.load();
    // The daemon stopping (SIGTERM to `syncwarden serve`) asks its runs
    // with SIGUSR1: they stop as interrupted, to be resumed.
    if (sig == SIGUSR1)
        return Status::error(error_kind::cancelled, "interrupted: the daemon stopped " + where +
                                                        "; its checkpoints are kept, and `syncwarden runs resume` "
                                                        "(or the daemon's next start, when the job says "
                                                        "resume_interrupted) continues it")
            .with_category("interrupted");
    return Status::error(error_kind::cancelled, std::string("cancelled: the run was cancelled") +
                                                    (sig ? " (" + signal_name(sig) + ")" : "") + " " + where +
                                                    "; its checkpoints are kept")
        .with_category("cancelled");
}

Result<connector_info> probe_in_worker(const fs::path& so, const worker_limits& limits, const fs::path& data_dir) {
    // Confined as a run's worker is, with no grants at all.
    sandbox_request sr;
    sr.library = so;
    auto policy = make_sandbox(data_dir, sr);
    if (!policy) return policy.status();
    auto c = spawn({so, true, limits, {"", "", so.filename().string(), "install", ""}, "", "", *policy, {}});
    if (!c) return c.status();
    auto m = worker_session::await_manifest(**c, so.string(), limits, milliseconds(60000));
    if (!m) return m.status();
    (*c)->finish(milliseconds(5000));
    return m->first;
}

struct started_worker {
    fs::path so;
    std::unique_ptr<child> c;
};

Result<std::shared_ptr<started_worker>> start_worker(const fs::path& so, const connector_info& expected,
                                                     const std::string& sha256, const worker_options& opts) {
    const std::string who = expected.name + " " + expected.version;
    auto c = spawn({so, false, opts.limits, {opts.run_id, opts.job, who, "", ""}, sha256, who, opts.sandbox, opts.env});
    if (!c) return c.status();
    auto w = std::make_shared<started_worker>();
    w->so = so;
    w->c = std::move(*c);
    return w;
}

Result<std::unique_ptr<connector_session>> open_in_worker(const fs::path& so, const connector_info& expected,
                                                          const nlohmann::json& settings,
                                                          const std::string& job_name, const fs::path& base_dir,
                                                          run_services& rs, const std::string& settings_path,
                                                          const worker_options& opts,
                                                          std::shared_ptr<started_worker> started) {
    const std::string who = expected.name + " " + expected.version;
    Result<std::unique_ptr<child>> c = std::unique_ptr<child>();
    if (started && started->c && started->so == so) c = std::move(started->c);
    else c = spawn({so, false, opts.limits, {opts.run_id, opts.job, who, "", ""}, "", "", opts.sandbox, opts.env});
    if (!c) return c.status();
    auto m = worker_session::await_manifest(**c, who, opts.limits, milliseconds(60000));
    if (!m) return m.status();
    const connector_info& in = m->first;
    if (in.name != expected.name || in.version != expected.version || in.build_id != expected.build_id)
        return Status::error(error_kind::connector,
                             "refusing " + who + " (" + so.string() + "): the library says it is " + in.name + " " +
                                 in.version + " build '" + in.build_id + "', but release.json says " + expected.name +
                                 " " + expected.version + " build '" + expected.build_id +
                                 "'; reinstall it with `syncwarden connectors install FILE.so`");
    if (!in.settings_schema.empty())
        if (auto st = validate_settings(in.settings_schema, settings, settings_path, who); !st) return st;
    auto s = std::make_unique<worker_session>(std::move(*c), in, m->second, opts);
    if (auto st = s->create(settings, job_name, base_dir, rs); !st) return st;
    return std::unique_ptr<connector_session>(std::move(s));
}

}  // namespace syncwarden::kernel
