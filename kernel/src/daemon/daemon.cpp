#include <syncwarden/kernel/daemon.hpp>
#include <syncwarden/kernel/sandbox.hpp>
#include <syncwarden/kernel/worker.hpp>

#include <syncwarden/kernel/clock.hpp>
#include <syncwarden/kernel/digest.hpp>
#include <syncwarden/kernel/locks.hpp>
#include <syncwarden/kernel/log.hpp>
#include <syncwarden/kernel/pipeline.hpp>
#include <syncwarden/kernel/scheduler.hpp>
#include <syncwarden/kernel/store.hpp>
#include <syncwarden/kernel/text.hpp>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#ifdef SYNCWARDEN_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <pwd.h>
#include <set>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace syncwarden::kernel {

namespace fs = std::filesystem;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using local = asio::local::stream_protocol;
using json = nlohmann::json;
using sys_time = std::chrono::system_clock::time_point;

fs::path control_socket_path(const kernel_config& cfg) {
    return cfg.daemon.socket.empty() ? cfg.data_dir / "syncwarden.sock" : cfg.daemon.socket;
}

Result<control_reply> control_request(const fs::path& socket, const std::string& method, const std::string& target,
                                      const std::string& body) {
    asio::io_context ioc;
    local::socket s(ioc);
    boost::system::error_code ec;
    if (socket.native().size() >= sizeof(sockaddr_un::sun_path))
        return Status::error(error_kind::config, socket.string() + ": the control socket's path is too long for a Unix "
                                                                   "socket (at most 107 bytes); set daemon.socket");
    s.connect(local::endpoint(socket.native()), ec);
    if (ec) return Status::error(error_kind::not_found, "no daemon answers on " + socket.string() + ": " + ec.message());
    http::request<http::string_body> req{method == "POST"     ? http::verb::post
                                         : method == "DELETE" ? http::verb::delete_
                                                              : http::verb::get,
                                         target, 11};
    req.set(http::field::host, "syncwarden");
    req.set(http::field::content_type, "application/json");
    req.body() = body;
    req.prepare_payload();
    http::write(s, req, ec);
    if (ec) return Status::error(error_kind::internal, "the daemon on " + socket.string() + " took no request: " + ec.message());
    beast::flat_buffer buf;
    http::response_parser<http::string_body> parser;
    parser.body_limit(256u << 20);
    http::read(s, buf, parser, ec);
    if (ec)
        return Status::error(error_kind::internal,
                             "the daemon on " + socket.string() + " ended the connection without an answer: " + ec.message());
    return control_reply{parser.get().result_int(), parser.get().body()};
}

namespace {

// What a finished child process left: its exit code (128 + signal when a
// signal ended it), its output and its error output.
struct child_result {
    int exit_code = 0;
    std::string out, err;
};

struct child {
    pid_t pid = 0;
    std::string what;     // "run JOB", "connectors install FILE", ...
    std::string job;      // a scheduler run of this job
    std::string run_id;   // known when the daemon named the run
    bool is_run = false;  // asked to stop (SIGUSR1) when the daemon stops
    sys_time started;
    fs::path out_file, err_file;
    std::function<void(const child_result&)> done;
};

struct job_slot {
    fs::path file;
    fs::file_time_type mtime{};
    uintmax_t size = 0;
    std::optional<job_config> good;  // the last version that parsed
    fs::path snapshot;               // its text, under <data_dir>/daemon/jobs
    std::string error;               // why the file as it is now does not
    struct last_run {
        std::string id, state, finished_at;
        int exit_code = 0;
    };
    std::optional<last_run> last;
};

struct inbox_entry {
    uintmax_t size = 0;
    fs::file_time_type mtime{};
    bool installing = false;
};

std::string read_capped(const fs::path& p, size_t cap = 4u << 20) {
    std::ifstream in(p, std::ios::binary);
    std::string s;
    if (!in) return s;
    s.resize(cap);
    in.read(s.data(), static_cast<std::streamsize>(cap));
    s.resize(static_cast<size_t>(in.gcount()));
    return s;
}

std::string first_line(const std::string& s) {
    size_t b = 0;
    while (b < s.size() && (s[b] == '\n' || s[b] == ' ')) ++b;
    const size_t e = s.find('\n', b);
    return s.substr(b, e == std::string::npos ? std::string::npos : e - b);
}

// A peer that is a connector worker: one of the sandbox's ids (a kernel
// running as root gives each worker one), or a process started as the
// kernel's internal worker command.
bool is_worker_peer(const ucred& cred) {
    const sandbox_config& sb = current_sandbox_config();
    if (cred.uid >= sb.first_id && static_cast<uint64_t>(cred.uid) < uint64_t(sb.first_id) + sb.id_count) return true;
    std::ifstream in("/proc/" + std::to_string(cred.pid) + "/cmdline", std::ios::binary);
    std::string argv0, argv1;
    std::getline(in, argv0, '\0');
    std::getline(in, argv1, '\0');
    return argv1 == k_worker_command;
}

std::string user_name(uid_t uid) {
    if (const passwd* pw = ::getpwuid(uid)) return pw->pw_name;
    return std::to_string(uid);
}

// The per-target limit counts runs against the same target system: the
// connector and its settings, as the job file gives them.
std::string target_of(const job_config& j) {
    sha256 h;
    h.update(j.target.settings.dump());
    return j.target.connector + ":" + h.hex().substr(0, 16);
}

class daemon_process;

// One control API connection: one request, one answer. While a long
// answer is awaited (a run the CLI started), a client that goes away
// cancels what it asked for, as Ctrl-C would on a direct run.
class session : public std::enable_shared_from_this<session> {
public:
    session(local::socket s, daemon_process& d);
    ~session();
    void start();
    void answer(http::response<http::string_body> res);
    std::function<void()> on_gone;  // set while an answer is awaited

private:
    void watch_gone();
    local::socket sock_;
    daemon_process& d_;
    asio::steady_timer idle_;  // until the whole request is in
    beast::flat_buffer buf_;
    http::request<http::string_body> req_;
    bool answered_ = false;
};

class daemon_process {
public:
    daemon_process(const serve_options& o, std::ostream& out, std::ostream& err)
        : opts_(o), cfg_(o.cfg), out_(out), err_(err), signals_(ioc_), wake_(ioc_), poll_(ioc_), watchdog_(ioc_),
          stop_timer_(ioc_), acceptor_(ioc_) {
        if (o.test_clock) test_clock_ = std::make_unique<manual_clock>(*o.test_clock);
        clk_ = test_clock_ ? static_cast<const clock*>(test_clock_.get()) : &sys_clock_;
        sched_ = std::make_unique<scheduler>(*clk_, cfg_.daemon.max_runs, cfg_.daemon.max_runs_per_target);
    }

    int run();
    void handle(const http::request<http::string_body>& req, uid_t peer, const std::shared_ptr<session>& s);
    // Connections open now; one that closes lets a waiting one in.
    void session_opened() { ++sessions_; }
    void session_closed() {
        --sessions_;
        if (accept_waiting_ && !stopping_) {
            accept_waiting_ = false;
            accept();
        }
    }
    std::chrono::milliseconds idle_timeout() const { return cfg_.daemon.idle_timeout; }
    asio::io_context& io() { return ioc_; }

private:
    // --- paths
    fs::path daemon_dir() const { return cfg_.data_dir / "daemon"; }
    fs::path jobs_dir() const { return cfg_.daemon.jobs_dir.empty() ? cfg_.data_dir / "jobs" : cfg_.daemon.jobs_dir; }
    fs::path inbox_dir() const { return cfg_.daemon.inbox_dir.empty() ? cfg_.data_dir / "inbox" : cfg_.daemon.inbox_dir; }

    void say(const std::string& msg, bool warn = false) {
        err_ << iso8601(std::chrono::system_clock::now()) << " syncwarden serve: " << printable(msg) << std::endl;
        if (warn) log_warn({"", "", "", "", "daemon"}, msg);
        else log_info({"", "", "", "", "daemon"}, msg);
    }
    void notify(const std::string& state) {
#ifdef SYNCWARDEN_HAVE_SYSTEMD
        ::sd_notify(0, state.c_str());
#else
        (void)state;
#endif
    }

    Status start_listening();
    void accept();
    void on_signal(int sig);
    void reap();
    void reload(bool force);
    void reload_kernel_config(bool force);
    void scan_inbox();
    void tick();
    void arm_wake();
    void arm_poll();
    void arm_watchdog();
    void begin_stop();
    void maybe_exit();

    // Starts `syncwarden ARGS` as a child; nullopt and the reason when it could not.
    // `peer`: the uid of the control socket's client the command is for, if
    // any; the child records it as the operating-system user (os_user.hpp).
    Result<pid_t> spawn(const std::vector<std::string>& args, const fs::path& cwd, const std::string& user, child c,
                        uid_t peer = static_cast<uid_t>(-1));
    std::vector<std::string> base_args() const {
        std::vector<std::string> a{"--data-dir", cfg_.data_dir.string()};
        if (!opts_.config_file.empty()) a.insert(a.end(), {"--config", fs::absolute(opts_.config_file).string()});
        return a;
    }
    Status start_job_run(const std::string& job, const std::string& trigger, std::string* run_id,
                         const std::string& actor = "daemon:scheduler");
    void job_run_ended(const std::string& job, const std::string& run_id, const child_result& r);
    void resume_stopped_runs();

    json status_json();
    json apply_progress(const std::string& run_id);
    void load_state();
    void save_state();

    const serve_options opts_;
    kernel_config cfg_;
    std::ostream& out_;
    std::ostream& err_;
    asio::io_context ioc_;
    asio::signal_set signals_;
    asio::steady_timer wake_, poll_, watchdog_, stop_timer_;
    local::acceptor acceptor_;
    system_clock sys_clock_;
    std::unique_ptr<manual_clock> test_clock_;
    const clock* clk_ = nullptr;
    std::unique_ptr<scheduler> sched_;
    std::unique_ptr<run_store> store_;
    std::optional<file_lock> lock_;
    std::map<std::string, job_slot> jobs_;       // by job name
    std::map<fs::path, std::string> bad_files_;  // job files that never parsed: why
    std::map<pid_t, child> children_;
    std::map<fs::path, inbox_entry> inbox_;
    std::vector<std::string> to_resume_;         // runs this daemon stopped, for its next start
    std::map<std::string, sys_time> pending_last_fire_;                    // from state.json
    std::map<std::string, std::pair<unsigned, bool>> pending_pause_;       // from state.json
    std::string saved_state_;
    std::pair<fs::file_time_type, uintmax_t> config_seen_{};  // the kernel config file as last read
    bool stopping_ = false;
    uint64_t spawned_ = 0;
    // The control socket's connections: how many are open; whether the
    // accept waits for one to close; failed accepts (out of descriptors)
    // and the back-off before the next try.
    size_t sessions_ = 0;
    bool accept_waiting_ = false;
    uint64_t accept_failures_ = 0;
    std::chrono::milliseconds accept_backoff_{0};
    std::unique_ptr<asio::steady_timer> accept_timer_;
    std::string last_reload_error_;  // the jobs folder's, while it cannot be read
    sys_time started_at_;
    std::chrono::microseconds watchdog_usec_{0};
};

// --- the control API connection

http::response<http::string_body> problem(http::status st, const std::string& msg);

session::session(local::socket s, daemon_process& d) : sock_(std::move(s)), d_(d), idle_(d.io()) {
    d_.session_opened();
}
session::~session() { d_.session_closed(); }

void session::start() {
    auto self = shared_from_this();
    // A client that does not send its whole request in time is let go: it
    // holds a descriptor and a connection slot.
    std::weak_ptr<session> weak = self;
    idle_.expires_after(d_.idle_timeout());
    idle_.async_wait([weak](beast::error_code ec) {
        if (ec) return;
        if (auto me = weak.lock()) {
            beast::error_code ignored;
            me->sock_.close(ignored);
        }
    });
    http::async_read(sock_, buf_, req_, [self](beast::error_code ec, size_t) {
        self->idle_.cancel();
        if (ec) return;
        ucred cred{};
        socklen_t len = sizeof cred;
        uid_t peer = static_cast<uid_t>(-1);
        if (::getsockopt(self->sock_.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) peer = cred.uid;
        // A connector's worker is never a person: refused, whatever it sends.
        if (peer != static_cast<uid_t>(-1) && is_worker_peer(cred)) {
            self->answer(problem(http::status::forbidden,
                                 "a connector's worker process may not use the control socket (peer pid " +
                                     std::to_string(cred.pid) + ", uid " + std::to_string(cred.uid) + ")"));
            return;
        }
        self->d_.handle(self->req_, peer, self);
        if (!self->answered_) self->watch_gone();
    });
}

void session::watch_gone() {
    auto self = shared_from_this();
    sock_.async_wait(local::socket::wait_read, [self](beast::error_code ec) {
        if (ec || self->answered_) return;
        char c;
        const ssize_t n = ::recv(self->sock_.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n > 0) return;  // more bytes from a client that is still there: not ours to read
        if (self->on_gone) {
            auto f = std::move(self->on_gone);
            self->on_gone = nullptr;
            f();
        }
    });
}

void session::answer(http::response<http::string_body> res) {
    if (answered_) return;
    answered_ = true;
    on_gone = nullptr;
    res.set(http::field::content_type, "application/json");
    res.keep_alive(false);
    res.prepare_payload();
    auto self = shared_from_this();
    auto sp = std::make_shared<http::response<http::string_body>>(std::move(res));
    beast::error_code ignored;
    sock_.cancel(ignored);
    http::async_write(sock_, *sp, [self, sp](beast::error_code, size_t) {
        beast::error_code e;
        self->sock_.shutdown(local::socket::shutdown_send, e);
    });
}

http::response<http::string_body> reply(http::status st, const json& body) {
    http::response<http::string_body> r{st, 11};
    r.body() = body.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
    return r;
}

http::response<http::string_body> problem(http::status st, const std::string& msg) {
    return reply(st, {{"error", msg}});
}

// --- the daemon

Status daemon_process::start_listening() {
    const fs::path sock = control_socket_path(cfg_);
    if (sock.native().size() >= sizeof(sockaddr_un::sun_path))
        return Status::error(error_kind::config, sock.string() + ": the control socket's path is too long for a Unix "
                                                                 "socket (at most 107 bytes); set daemon.socket in the "
                                                                 "kernel config to a shorter one");
    std::error_code fec;
    fs::create_directories(sock.parent_path(), fec);
    // A socket file left by a daemon that died: the daemon lock says no
    // other daemon has this data dir, so it can go.
    fs::remove(sock, fec);
    boost::system::error_code ec;
    acceptor_.open(local(), ec);
    if (!ec) {
        const mode_t old = ::umask(0077);  // only the owner may connect
        acceptor_.bind(local::endpoint(sock.native()), ec);
        ::umask(old);
    }
    if (!ec) ::chmod(sock.c_str(), 0600);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return Status::error(error_kind::internal, sock.string() + ": cannot listen on the control socket: " + ec.message());
    accept();
    return Status::ok();
}

void daemon_process::accept() {
    if (sessions_ >= cfg_.daemon.max_connections) {
        // At the cap: the next connection waits in the backlog until one
        // of these closes.
        accept_waiting_ = true;
        return;
    }
    acceptor_.async_accept([this](boost::system::error_code ec, local::socket s) {
        if (ec == asio::error::operation_aborted || (stopping_ && !acceptor_.is_open())) return;
        if (ec) {
            // Out of descriptors (or memory): trying again at once would
            // spin. Back off, 50 ms doubling to 2 s, and say so once.
            ++accept_failures_;
            if (accept_backoff_.count() == 0)
                say("the control socket cannot accept connections (" + ec.message() +
                        "); trying again with a back-off. Raise LimitNOFILE or close what holds descriptors",
                    true);
            accept_backoff_ = std::min<std::chrono::milliseconds>(
                std::chrono::milliseconds(2000),
                accept_backoff_.count() ? accept_backoff_ * 2 : std::chrono::milliseconds(50));
            if (!accept_timer_) accept_timer_ = std::make_unique<asio::steady_timer>(ioc_);
            accept_timer_->expires_after(accept_backoff_);
            accept_timer_->async_wait([this](boost::system::error_code e) {
                if (!e && !stopping_) accept();
            });
            return;
        }
        if (accept_backoff_.count()) {
            say("the control socket accepts connections again");
            accept_backoff_ = std::chrono::milliseconds(0);
        }
        std::make_shared<session>(std::move(s), *this)->start();
        accept();
    });
}

Result<pid_t> daemon_process::spawn(const std::vector<std::string>& args, const fs::path& cwd, const std::string& user,
                                    child c, uid_t peer) {
    static const fs::path self = fs::read_symlink("/proc/self/exe");
    std::error_code ec;
    fs::create_directories(daemon_dir() / "out", ec);
    const std::string n = std::to_string(::getpid()) + "-" + std::to_string(++spawned_);
    c.out_file = daemon_dir() / "out" / (n + ".out");
    c.err_file = daemon_dir() / "out" / (n + ".err");
    std::vector<std::string> full{self.string()};
    auto base = base_args();
    full.insert(full.end(), base.begin(), base.end());
    full.insert(full.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : full) argv.push_back(a.data());
    argv.push_back(nullptr);
    // The environment: the daemon's, marked so that the child's CLI works
    // directly instead of asking this daemon, and naming who asked.
    std::vector<std::string> env_s;
    for (char** e = environ; *e; ++e) {
        std::string_view v(*e);
        if (v.rfind("SYNCWARDEN_DAEMON_CHILD=", 0) == 0 || v.rfind("SYNCWARDEN_USER=", 0) == 0 ||
            v.rfind("SYNCWARDEN_PEER_UID=", 0) == 0 ||
            v.rfind("NOTIFY_SOCKET=", 0) == 0 || v.rfind("WATCHDOG_", 0) == 0)
            continue;
        env_s.emplace_back(v);
    }
    env_s.push_back("SYNCWARDEN_DAEMON_CHILD=" + std::to_string(::getpid()));
    if (!user.empty()) env_s.push_back("SYNCWARDEN_USER=" + user);
    if (peer != static_cast<uid_t>(-1)) env_s.push_back("SYNCWARDEN_PEER_UID=" + std::to_string(peer));
    std::vector<char*> envp;
    for (auto& e : env_s) envp.push_back(e.data());
    envp.push_back(nullptr);

    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, c.out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&fa, 2, c.err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (!cwd.empty()) posix_spawn_file_actions_addchdir_np(&fa, cwd.c_str());
    // Its own process group: a Ctrl-C at the daemon's terminal is the
    // daemon's to handle, not each run's. Signals back to their defaults,
    // none blocked.
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    for (int s : {SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGCHLD, SIGPIPE}) sigaddset(&defaults, s);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
    pid_t pid = 0;
    const int rc = ::posix_spawn(&pid, self.c_str(), &fa, &attr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) {
        // The child may have made its output files before it failed.
        std::error_code rm;
        fs::remove(c.out_file, rm);
        fs::remove(c.err_file, rm);
        return Status::error(error_kind::internal, "could not start `syncwarden " + c.what + "`" +
                                                       (cwd.empty() ? "" : " in " + cwd.string()) + ": " +
                                                       std::strerror(rc));
    }
    c.pid = pid;
    c.started = std::chrono::system_clock::now();
    children_.emplace(pid, std::move(c));
    return pid;
}

void daemon_process::reap() {
    for (;;) {
        int st = 0;
        const pid_t pid = ::waitpid(-1, &st, WNOHANG);
        if (pid <= 0) break;
        auto it = children_.find(pid);
        if (it == children_.end()) continue;
        child c = std::move(it->second);
        children_.erase(it);
        child_result r;
        r.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
        r.out = read_capped(c.out_file);
        r.err = read_capped(c.err_file);
        if (WIFSIGNALED(st))
            r.err += "syncwarden serve: `syncwarden " + c.what + "` (process " + std::to_string(pid) + ") ended by signal " +
                     std::to_string(WTERMSIG(st)) + "\n";
        std::error_code ec;
        fs::remove(c.out_file, ec);
        fs::remove(c.err_file, ec);
        if (c.done) c.done(r);
    }
    if (stopping_) maybe_exit();
}

Status daemon_process::start_job_run(const std::string& job, const std::string& trigger, std::string* run_id,
                                     const std::string& actor) {
    auto it = jobs_.find(job);
    if (it == jobs_.end() || !it->second.good)
        return Status::error(error_kind::not_found, "no job named '" + job + "' in " + jobs_dir().string());
    const std::string id = new_run_id(sys_clock_);
    child c;
    c.what = "run " + it->second.good->file.string();
    c.job = job;
    c.run_id = id;
    c.is_run = true;
    c.done = [this, job, id](const child_result& r) { job_run_ended(job, id, r); };
    std::vector<std::string> args{"run", it->second.good->file.string(), "--run-id", id, "--trigger", trigger};
    // A job file broken since it was loaded: the run uses the last good
    // version, its relative paths still from the job's own folder.
    if (!it->second.error.empty())
        args = {"run", it->second.snapshot.string(), "--job-dir", it->second.good->base_dir.string(), "--run-id", id,
                "--trigger", trigger + ", with the last good version of " + it->second.file.filename().string()};
    auto pid = spawn(args,
                     it->second.good->base_dir, actor, std::move(c));
    if (!pid) return pid.status();
    if (run_id) *run_id = id;
    say("started run " + id + " of job " + job + " (" + trigger + ", process " + std::to_string(*pid) + ")");
    return Status::ok();
}

void daemon_process::job_run_ended(const std::string& job, const std::string& run_id, const child_result& r) {
    std::string state = "failed";
    if (store_) {
        if (auto rec = store_->get_run(run_id)) {
            state = rec->state;
            if (auto it = jobs_.find(job); it != jobs_.end())
                it->second.last = job_slot::last_run{rec->id, rec->state, rec->finished_at, r.exit_code};
        } else if (auto it = jobs_.find(job); it != jobs_.end()) {
            // The run never got as far as recording itself (a job file
            // that no longer loads, a store it could not open).
            it->second.last = job_slot::last_run{run_id, "failed", iso8601(std::chrono::system_clock::now()), r.exit_code};
        }
    }
    // Held waits for an operator and is not a failure; a run the daemon
    // stopped is not one either.
    const bool ok = state == "succeeded" || state == "held" || (stopping_ && state == "interrupted");
    say("run " + run_id + " of job " + job + " ended " + state + " (exit " + std::to_string(r.exit_code) + ")" +
            (ok ? "" : ": " + first_line(r.err)),
        !ok);
    if (stopping_ && state == "interrupted") to_resume_.push_back(run_id);
    sched_->finished(job, ok);
    if (auto st = sched_->state(job); st && st->paused && !ok)
        say("job " + job + " is paused after " + std::to_string(st->failures_in_a_row) +
                " failed runs in a row; `syncwarden jobs resume " + job + "` (POST /v1/jobs/" + job +
                "/resume) starts its schedule again",
            true);
    save_state();
    tick();
}

void daemon_process::tick() {
    if (stopping_) return;
    for (auto& due : sched_->take_due()) {
        const std::string trigger = due.catch_up ? "schedule (catch-up of " + iso8601(due.due) + ")"
                                                 : "schedule (" + iso8601(due.due) + ")";
        if (auto s = start_job_run(due.job, trigger, nullptr); !s) {
            say("job " + due.job + ": " + s.message(), true);
            sched_->finished(due.job, false);
        }
    }
    save_state();
    arm_wake();
}

void daemon_process::arm_wake() {
    wake_.cancel();
    if (test_clock_ || stopping_) return;  // the test clock moves only through the API
    auto next = sched_->next_wake();
    auto wait = std::chrono::steady_clock::duration(std::chrono::minutes(1));
    if (next) {
        auto d = *next - clk_->now();
        if (d < wait) wait = std::max<std::chrono::steady_clock::duration>(d, std::chrono::milliseconds(0));
    }
    // At most a minute: a clock that jumps (NTP, a suspended machine) is
    // noticed within one.
    wake_.expires_after(wait + std::chrono::milliseconds(5));
    wake_.async_wait([this](boost::system::error_code ec) {
        if (!ec) tick();
    });
}

void daemon_process::arm_poll() {
    poll_.expires_after(cfg_.daemon.poll);
    poll_.async_wait([this](boost::system::error_code ec) {
        if (ec || stopping_) return;
        reload_kernel_config(false);
        reload(false);
        scan_inbox();
        arm_poll();
    });
}

void daemon_process::arm_watchdog() {
    if (watchdog_usec_.count() <= 0) return;
    watchdog_.expires_after(watchdog_usec_ / 2);
    watchdog_.async_wait([this](boost::system::error_code ec) {
        if (ec) return;
        notify("WATCHDOG=1");
        arm_watchdog();
    });
}

void daemon_process::reload(bool force) {
    std::error_code ec;
    const fs::path dir = jobs_dir();
    std::map<fs::path, std::pair<fs::file_time_type, uintmax_t>> present;
    // A folder that cannot be read whole (out of descriptors, a permission
    // error) says nothing about which jobs are there: everything stays as
    // it is, nothing is unscheduled and nothing is saved.
    auto unreadable = [&](const std::error_code& e) {
        say("cannot read the jobs folder " + dir.string() + ": " + e.message() +
                "; the jobs stay as they were until it can be read",
            true);
        last_reload_error_ = e.message();
    };
    if (fs::exists(dir, ec)) {
        if (ec) return unreadable(ec);
        fs::directory_iterator it(dir, ec);
        if (ec) return unreadable(ec);
        for (; it != fs::directory_iterator(); it.increment(ec)) {
            if (ec) return unreadable(ec);
            std::error_code fe;
            const bool regular = it->is_regular_file(fe);
            if (fe) return unreadable(fe);
            if (it->path().extension() != ".json" || !regular) continue;
            auto mtime = it->last_write_time(fe);
            auto size = fe ? 0 : it->file_size(fe);
            if (fe) return unreadable(fe);
            present[fs::absolute(it->path())] = {mtime, size};
        }
        if (ec) return unreadable(ec);
    } else if (ec) {
        return unreadable(ec);
    }
    last_reload_error_.clear();
    // Files gone: their jobs stop being scheduled (a running run ends first).
    for (auto it = jobs_.begin(); it != jobs_.end();) {
        if (!present.count(it->second.file)) {
            say("job " + it->first + ": " + it->second.file.string() + " was removed; the job is no longer scheduled");
            sched_->remove_job(it->first);
            it = jobs_.erase(it);
        } else {
            ++it;
        }
    }
    for (auto it = bad_files_.begin(); it != bad_files_.end();)
        it = present.count(it->first) ? std::next(it) : bad_files_.erase(it);
    for (auto& [file, stamp] : present) {
        job_slot* slot = nullptr;
        for (auto& [name, s] : jobs_)
            if (s.file == file) slot = &s;
        if (!force && slot && slot->mtime == stamp.first && slot->size == stamp.second) continue;
        if (!force && !slot && bad_files_.count(file) && bad_files_[file].rfind(std::to_string(stamp.second) + "|", 0) == 0)
            continue;
        const std::string content = read_capped(file, 64u << 20);
        auto job = load_job(file);
        if (!job) {
            if (slot) {
                if (slot->error != job.status().message())
                    say("job " + slot->good->name + ": " + job.status().message() +
                            "; the last good version of the job keeps running",
                        true);
                slot->error = job.status().message();
                slot->mtime = stamp.first;
                slot->size = stamp.second;
            } else {
                if (!bad_files_.count(file)) say(job.status().message(), true);
                bad_files_[file] = std::to_string(stamp.second) + "|" + job.status().message();
            }
            continue;
        }
        const std::string name = job->name;
        if (auto other = jobs_.find(name); other != jobs_.end() && other->second.file != file) {
            const std::string why = file.string() + ": job name '" + name + "' is already the name of " +
                                    other->second.file.string() + "; each job in the folder needs its own name";
            if (!bad_files_.count(file)) say(why, true);
            bad_files_[file] = std::to_string(stamp.second) + "|" + why;
            continue;
        }
        if (slot && slot->good && slot->good->name != name) {
            // Renamed inside the file: the old name goes.
            sched_->remove_job(slot->good->name);
            job_slot moved = std::move(*slot);
            jobs_.erase(moved.good->name);
            slot = &jobs_[name];
            *slot = std::move(moved);
        }
        bad_files_.erase(file);
        if (!slot) slot = &jobs_[name];
        slot->file = file;
        slot->mtime = stamp.first;
        slot->size = stamp.second;
        slot->error.clear();
        schedule_policy p;
        std::optional<cron_schedule> cron;
        if (job->schedule) {
            p = job->schedule->policy;
            cron = job->schedule->cron;
        }
        p.target = target_of(*job);
        const bool is_new = !slot->good;
        slot->good = std::move(*job);
        // The version that parsed, kept for the runs while the file is broken.
        slot->snapshot = daemon_dir() / "jobs" / (name + ".json");
        fs::create_directories(slot->snapshot.parent_path(), ec);
        {
            std::ofstream o(slot->snapshot, std::ios::binary | std::ios::trunc);
            o << content;
            if (!o.flush()) say("cannot keep a copy of job " + name + " in " + slot->snapshot.string(), true);
        }
        std::optional<sys_time> last_fire = pending_last_fire_.count(name) ? std::optional(pending_last_fire_[name])
                                                                           : std::nullopt;
        sched_->set_job(name, cron, p, last_fire);
        if (is_new) {
            if (auto st = pending_pause_.find(name); st != pending_pause_.end())
                sched_->restore(name, st->second.first, st->second.second);
            say("job " + name + " loaded from " + file.string() +
                (cron ? " (cron \"" + cron->expression() + "\" in " + cron->zone() + ")" : " (no schedule: runs when triggered)"));
        } else {
            say("job " + name + " reloaded from " + file.string());
        }
    }
    save_state();
    arm_wake();
}

void daemon_process::scan_inbox() {
    std::error_code ec;
    const fs::path dir = inbox_dir();
    if (!fs::is_directory(dir, ec)) return;
    std::set<fs::path> seen;
    for (auto& e : fs::directory_iterator(dir, ec)) {
        if (e.path().extension() != ".so" || !e.is_regular_file(ec)) continue;
        const fs::path p = e.path();
        seen.insert(p);
        auto size = e.file_size(ec);
        auto mtime = e.last_write_time(ec);
        auto& entry = inbox_[p];
        // Taken when it has stopped changing for one poll: a copy in
        // progress is not installed half-written.
        const bool settled = entry.size == size && entry.mtime == mtime && size > 0;
        entry.size = size;
        entry.mtime = mtime;
        if (!settled || entry.installing || stopping_) continue;
        entry.installing = true;
        child c;
        c.what = "connectors install " + p.string();
        c.done = [this, p](const child_result& r) {
            inbox_.erase(p);
            std::error_code e2;
            if (r.exit_code == 0) {
                fs::remove(p, e2);
                say("inbox: " + p.filename().string() + ": " + first_line(r.out));
                return;
            }
            // Refused: moved aside with the reason, so it is not tried again.
            const fs::path rejected = p.parent_path() / "rejected";
            fs::create_directories(rejected, e2);
            fs::rename(p, rejected / p.filename(), e2);
            std::ofstream(rejected / (p.filename().string() + ".error.txt")) << r.err;
            say("inbox: " + p.filename().string() + " was not installed: " + first_line(r.err) + " (moved to " +
                    rejected.string() + ")",
                true);
        };
        if (auto pid = spawn({"connectors", "install", p.string()}, {}, "daemon:inbox", std::move(c)); !pid) {
            entry.installing = false;
            say("inbox: " + pid.status().message(), true);
        }
    }
    for (auto it = inbox_.begin(); it != inbox_.end();)
        it = seen.count(it->first) || it->second.installing ? std::next(it) : inbox_.erase(it);
}

// --- state kept across restarts: last fires (catch-up), pauses, runs to resume

void daemon_process::load_state() {
    std::ifstream in(daemon_dir() / "state.json");
    if (!in) return;
    json j = json::parse(in, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
        say((daemon_dir() / "state.json").string() + " is damaged; starting without it (no catch-up this time)", true);
        return;
    }
    const json jobs = j.value("jobs", json::object());
    for (auto& [name, s] : jobs.items()) {
        if (!s.is_object()) continue;
        if (auto t = parse_iso8601(s.value("last_fire", std::string()))) pending_last_fire_[name] = *t;
        pending_pause_[name] = {s.value("failures_in_a_row", 0u), s.value("paused", false)};
    }
    for (auto& id : j.value("to_resume", json::array()))
        if (id.is_string()) to_resume_.push_back(id.get<std::string>());
}

void daemon_process::save_state() {
    json jobs = json::object();
    for (auto& name : sched_->jobs()) {
        auto st = sched_->state(name);
        if (!st) continue;
        json s{{"failures_in_a_row", st->failures_in_a_row}, {"paused", st->paused}};
        if (st->last_fire) s["last_fire"] = iso8601(*st->last_fire);
        jobs[name] = s;
    }
    // Jobs whose files are broken right now keep what they had.
    for (auto& [name, t] : pending_last_fire_)
        if (!jobs.contains(name)) jobs[name] = {{"last_fire", iso8601(t)}};
    json j{{"jobs", jobs}, {"to_resume", to_resume_}};
    const std::string text = j.dump(2) + "\n";
    if (text == saved_state_) return;
    std::error_code ec;
    fs::create_directories(daemon_dir(), ec);
    const fs::path tmp = daemon_dir() / "state.json.tmp";
    {
        std::ofstream o(tmp, std::ios::trunc);
        o << text;
        if (!o.flush()) {
            say("cannot write " + tmp.string() + ": schedules will not catch up after a restart", true);
            return;
        }
    }
    fs::rename(tmp, daemon_dir() / "state.json", ec);
    if (!ec) saved_state_ = text;
}

// Runs this daemon stopped last time, of jobs that consent: resumed from
// their checkpoint when they were applying, else run again.
void daemon_process::resume_stopped_runs() {
    auto ids = std::move(to_resume_);
    to_resume_.clear();
    for (auto& id : ids) {
        auto r = store_ ? store_->get_run(id) : Result<run_record>(Status::error(error_kind::not_found, ""));
        if (!r || r->state != "interrupted") continue;
        auto slot = jobs_.find(r->job);
        if (slot == jobs_.end() || !slot->second.good || !slot->second.good->resume_interrupted) {
            say("run " + id + " of job " + r->job + " was stopped with the daemon; the job does not say "
                "resume_interrupted, so it waits for `syncwarden runs resume " + id + "`");
            continue;
        }
        if (r->phase != "apply") {
            say("run " + id + " was stopped during " + r->phase + ", before applying: job " + r->job + " runs again");
            if (sched_->start_now(r->job) == scheduler::trigger::started)
                if (auto s = start_job_run(r->job, "resume after the daemon restarted (run " + id + ")", nullptr); !s) {
                    say(s.message(), true);
                    sched_->finished(r->job, false);
                }
            continue;
        }
        if (sched_->start_now(r->job) != scheduler::trigger::started) continue;
        child c;
        c.what = "runs resume " + id;
        c.job = r->job;
        c.run_id = id;
        c.is_run = true;
        const std::string job = r->job;
        c.done = [this, job, id](const child_result& res) { job_run_ended(job, id, res); };
        if (auto pid = spawn({"runs", "resume", id}, slot->second.good->base_dir, "daemon:restart", std::move(c)); !pid) {
            say(pid.status().message(), true);
            sched_->finished(job, false);
        } else {
            say("resuming run " + id + " of job " + job + ", stopped with the daemon (process " + std::to_string(*pid) + ")");
        }
    }
    save_state();
}

// --- stopping

void daemon_process::begin_stop() {
    if (stopping_) return;
    stopping_ = true;
    notify("STOPPING=1");
    say("stopping: no new runs; " + std::to_string(children_.size()) + " running processes asked to stop at their next "
        "checkpoint");
    wake_.cancel();
    poll_.cancel();
    for (auto& [pid, c] : children_)
        if (c.is_run) ::kill(pid, SIGUSR1);
    stop_timer_.expires_after(cfg_.daemon.stop_timeout);
    stop_timer_.async_wait([this](boost::system::error_code ec) {
        if (ec) return;
        for (auto& [pid, c] : children_) {
            say("`syncwarden " + c.what + "` (process " + std::to_string(pid) + ") did not stop within " +
                    std::to_string(std::chrono::duration_cast<std::chrono::seconds>(cfg_.daemon.stop_timeout).count()) +
                    " s; killed",
                true);
            ::kill(pid, SIGKILL);
        }
    });
    maybe_exit();
}

void daemon_process::maybe_exit() {
    if (!stopping_ || !children_.empty()) return;
    save_state();
    stop_timer_.cancel();
    watchdog_.cancel();
    boost::system::error_code ec;
    acceptor_.close(ec);
    std::error_code fec;
    fs::remove(control_socket_path(cfg_), fec);
    say("stopped");
    ioc_.stop();
}

// The kernel config, read again on SIGHUP and when its file changes: the
// limits, poll and stop timeout apply at once (runs read it themselves).
// One that no longer loads is reported, and the one in force stays.
void daemon_process::reload_kernel_config(bool force) {
    if (opts_.config_file.empty()) return;
    std::error_code ec;
    const std::pair<fs::file_time_type, uintmax_t> now{fs::last_write_time(opts_.config_file, ec),
                                                       fs::file_size(opts_.config_file, ec)};
    if (!force && now == config_seen_) return;
    config_seen_ = now;
    auto k = load_kernel_config(opts_.config_file, cfg_.data_dir);
    if (!k) {
        say(k.status().message() + "; the kernel config as it was keeps applying", true);
        return;
    }
    const bool changed = k->daemon.max_runs != cfg_.daemon.max_runs ||
                         k->daemon.max_runs_per_target != cfg_.daemon.max_runs_per_target ||
                         k->daemon.poll != cfg_.daemon.poll || k->daemon.stop_timeout != cfg_.daemon.stop_timeout;
    cfg_.daemon.max_runs = k->daemon.max_runs;
    cfg_.daemon.max_runs_per_target = k->daemon.max_runs_per_target;
    cfg_.daemon.poll = k->daemon.poll;
    cfg_.daemon.stop_timeout = k->daemon.stop_timeout;
    sched_->set_limits(k->daemon.max_runs, k->daemon.max_runs_per_target);
    if (changed) say("kernel config " + opts_.config_file.string() + " read again: max_runs " +
                     std::to_string(cfg_.daemon.max_runs) + ", max_runs_per_target " +
                     std::to_string(cfg_.daemon.max_runs_per_target));
    tick();
}

void daemon_process::on_signal(int sig) {
    if (sig == SIGCHLD) reap();
    else if (sig == SIGHUP) {
        say("SIGHUP: reading the kernel config and the jobs folder again");
        reload_kernel_config(true);
        reload(true);
        tick();
    } else {
        begin_stop();
    }
}

// --- the control API

// How far a run's apply has got: the changes its plan holds, and how many
// of them are behind its apply checkpoint (the applier saves it with each
// batch's results, and the plan file is in apply order).
json daemon_process::apply_progress(const std::string& run_id) {
    json p{{"planned", nullptr}, {"done", 0}};
    if (auto pr = store_->get_plan(run_id); pr && *pr)
        p["planned"] = (*pr)->creates + (*pr)->updates + (*pr)->deletes;
    if (auto cp = store_->load_checkpoint(run_id, "apply"); cp && *cp) {
        char* end = nullptr;
        const unsigned long long n = std::strtoull((*cp)->c_str(), &end, 10);
        if (end && *end == '\0' && !(*cp)->empty()) p["done"] = n;
    }
    return p;
}

json daemon_process::status_json() {
    json jobs = json::array();
    for (auto& [name, s] : jobs_) {
        json j{{"name", name}, {"file", s.file.string()}};
        if (!s.error.empty()) j["error"] = s.error;
        if (s.good && s.good->schedule)
            j["schedule"] = {{"cron", s.good->schedule->cron.expression()}, {"tz", s.good->schedule->cron.zone()}};
        else
            j["schedule"] = nullptr;
        if (auto st = sched_->state(name)) {
            j["next_fire"] = st->next_fire ? json(iso8601(*st->next_fire)) : json(nullptr);
            j["last_fire"] = st->last_fire ? json(iso8601(*st->last_fire)) : json(nullptr);
            j["running"] = st->running;
            j["queued"] = st->queued || st->waiting;
            j["paused"] = st->paused;
            j["failures_in_a_row"] = st->failures_in_a_row;
            j["skipped_overlap"] = st->skipped_overlap;
            j["skipped_paused"] = st->skipped_paused;
            j["missed"] = st->missed;
        }
        if (s.last)
            j["last_run"] = {{"id", s.last->id}, {"state", s.last->state}, {"finished_at", s.last->finished_at},
                             {"exit_code", s.last->exit_code}};
        else
            j["last_run"] = nullptr;
        jobs.push_back(j);
    }
    json bad = json::array();
    for (auto& [file, why] : bad_files_) bad.push_back({{"file", file.string()}, {"error", why.substr(why.find('|') + 1)}});
    json runs = json::array();
    if (store_)
        if (auto u = store_->unfinished_runs())
            for (auto& r : *u) {
                json x{{"id", r.id}, {"job", r.job}, {"state", r.state}, {"phase", r.phase}, {"trigger", r.trigger},
                       {"created_at", r.created_at}, {"dry_run", r.dry_run}};
                auto sum = json::parse(r.summary_json, nullptr, false);
                if (!sum.is_discarded() && sum.is_object() && !sum.empty()) x["progress"] = sum;
                if (r.phase == "apply") x["apply_progress"] = apply_progress(r.id);
                runs.push_back(x);
            }
    json procs = json::array();
    for (auto& [pid, c] : children_)
        procs.push_back({{"pid", pid}, {"command", c.what}, {"job", c.job}, {"run_id", c.run_id},
                         {"started_at", iso8601(c.started)}});
    json inbox = json::array();
    for (auto& [p, e] : inbox_) inbox.push_back({{"file", p.string()}, {"installing", e.installing}});
    return {{"pid", ::getpid()},
            {"version", SYNCWARDEN_VERSION},
            {"data_dir", cfg_.data_dir.string()},
            {"jobs_dir", jobs_dir().string()},
            {"inbox_dir", inbox_dir().string()},
            {"started_at", iso8601(started_at_)},
            {"now", iso8601(clk_->now())},
            {"test_clock", test_clock_ != nullptr},
            {"stopping", stopping_},
            {"limits", {{"max_runs", cfg_.daemon.max_runs}, {"max_runs_per_target", cfg_.daemon.max_runs_per_target}}},
            {"jobs", jobs},
            {"job_file_errors", bad},
            {"jobs_dir_error", last_reload_error_.empty() ? json(nullptr) : json(last_reload_error_)},
            {"connections", {{"open", sessions_}, {"max", cfg_.daemon.max_connections},
                             {"accept_failures", accept_failures_}, {"accept_backoff_ms", accept_backoff_.count()}}},
            {"runs", runs},
            {"processes", procs},
            {"inbox", inbox}};
}

void daemon_process::handle(const http::request<http::string_body>& req, uid_t peer,
                            const std::shared_ptr<session>& s) {
    // The socket is the owner's alone (mode 0600); root may also ask.
    if (peer != ::geteuid() && peer != 0)
        return s->answer(problem(http::status::forbidden, "only the daemon's owner may use its control socket"));
    const std::string user = "cli:" + user_name(peer);
    const std::string target(req.target());
    const auto verb = req.method();
    json body = json::object();
    if (!req.body().empty()) {
        body = json::parse(req.body(), nullptr, false);
        if (body.is_discarded() || !body.is_object())
            return s->answer(problem(http::status::bad_request, "the request body is not a JSON object"));
    }
    std::vector<std::string> parts;
    for (size_t p = 1; p <= target.size();) {
        size_t e = target.find('/', p);
        if (e == std::string::npos) e = target.size();
        parts.push_back(target.substr(p, e - p));
        p = e + 1;
    }
    if (!parts.empty() && !parts.back().empty() && parts.back().find('?') != std::string::npos)
        parts.back() = parts.back().substr(0, parts.back().find('?'));
    if (parts.size() < 2 || parts[0] != "v1")
        return s->answer(problem(http::status::not_found, "no such endpoint: " + target + " (they start with /v1/)"));

    // A command carried out by a child process: the answer is its exit
    // code and output; a client that leaves first cancels it (SIGINT).
    auto run_command = [&](std::vector<std::string> args, const fs::path& cwd, bool is_run, const std::string& job) {
        child c;
        std::string what;
        for (auto& a : args) what += (what.empty() ? "" : " ") + a;
        c.what = what;
        c.is_run = is_run;
        c.job = job;
        std::weak_ptr<session> ws = s;
        c.done = [ws](const child_result& r) {
            if (auto sp = ws.lock())
                sp->answer(reply(http::status::ok, {{"exit_code", r.exit_code}, {"stdout", r.out}, {"stderr", r.err}}));
        };
        auto pid = spawn(args, cwd, user, std::move(c), peer);
        if (!pid) return s->answer(problem(http::status::internal_server_error, pid.status().message()));
        const pid_t p = *pid;
        s->on_gone = [this, p]() {
            if (children_.count(p)) ::kill(p, SIGINT);
        };
    };

    if (parts[1] == "status" && verb == http::verb::get) return s->answer(reply(http::status::ok, status_json()));

    if (parts[1] == "cli" && verb == http::verb::post) {
        // The CLI's commands, carried out here while a daemon serves the
        // data dir: they count as this daemon's processes.
        if (!body.contains("args") || !body["args"].is_array() || body["args"].empty())
            return s->answer(problem(http::status::bad_request, "$.args: expected the command's arguments, a list of strings"));
        std::vector<std::string> args;
        for (auto& a : body["args"]) {
            if (!a.is_string()) return s->answer(problem(http::status::bad_request, "$.args: expected strings only"));
            args.push_back(a.get<std::string>());
        }
        static const std::set<std::string> allowed{"run", "runs", "connectors", "status", "audit", "retention"};
        if (!allowed.count(args[0]))
            return s->answer(problem(http::status::bad_request, "'" + args[0] + "' is not carried out by the daemon"));
        const bool is_run = args[0] == "run" || (args[0] == "runs" && args.size() > 1 &&
                                                 (args[1] == "resume" || args[1] == "approve" || args[1] == "apply" ||
                                                  args[1] == "retry-failed"));
        if (stopping_ && (is_run || (args[0] == "connectors" && args.size() > 1 && args[1] == "install")))
            return s->answer(problem(http::status::service_unavailable, "the daemon is stopping: it starts nothing new"));
        // The folder the command's relative paths are read from: the
        // client's. Checked here, so a folder that is gone is the client's
        // error (400), not a failed start.
        fs::path cwd;
        if (body.contains("cwd")) {
            if (!body["cwd"].is_string())
                return s->answer(problem(http::status::bad_request, "$.cwd: expected a folder's absolute path, a string"));
            cwd = body["cwd"].get<std::string>();
            std::error_code ec;
            if (!cwd.is_absolute())
                return s->answer(problem(http::status::bad_request,
                                         "$.cwd: '" + cwd.string() + "' is not an absolute path; give the folder the "
                                         "command's relative paths are read from"));
            if (!fs::is_directory(cwd, ec))
                return s->answer(problem(http::status::bad_request,
                                         "$.cwd: '" + cwd.string() + "' is not a folder" +
                                             (ec ? " (" + ec.message() + ")" : std::string()) +
                                             "; run the command from a folder that exists"));
        }
        return run_command(args, cwd, is_run, "");
    }

    if (parts[1] == "jobs" && parts.size() == 4 && verb == http::verb::post) {
        const std::string& job = parts[2];
        if (!jobs_.count(job)) return s->answer(problem(http::status::not_found, "no job named '" + job + "'"));
        if (parts[3] == "trigger") {
            if (stopping_) return s->answer(problem(http::status::service_unavailable, "the daemon is stopping"));
            switch (sched_->start_now(job)) {
                case scheduler::trigger::started: {
                    std::string id;
                    if (auto st = start_job_run(job, "trigger by " + user, &id, user); !st) {
                        sched_->finished(job, false);
                        return s->answer(problem(http::status::internal_server_error, st.message()));
                    }
                    return s->answer(reply(http::status::accepted, {{"job", job}, {"run_id", id}, {"started", true}}));
                }
                case scheduler::trigger::queued:
                    return s->answer(reply(http::status::accepted,
                                           {{"job", job}, {"started", false},
                                            {"queued", "a concurrency limit is reached; it starts when a run ends"}}));
                case scheduler::trigger::already_running:
                    return s->answer(problem(http::status::conflict, "job " + job + " is already running or waiting"));
                case scheduler::trigger::unknown_job: break;
            }
            return s->answer(problem(http::status::not_found, "no job named '" + job + "'"));
        }
        if (parts[3] == "resume") {
            sched_->resume(job);
            save_state();
            say("job " + job + " resumed by " + user);
            return s->answer(reply(http::status::ok, {{"job", job}, {"paused", false}}));
        }
    }

    if (parts[1] == "runs" && parts.size() == 4 && verb == http::verb::post) {
        const std::string& id = parts[2];
        const std::string& action = parts[3];
        if (!valid_run_id(id)) return s->answer(problem(http::status::bad_request, "'" + id + "' is not a run id"));
        std::vector<std::string> args{"runs", action, id};
        if (action == "approve" || action == "reject") {
            if (!body.contains("as") || !body["as"].is_string())
                return s->answer(problem(http::status::bad_request, "$.as: expected who decides, a name"));
            args.insert(args.end(), {"--as", body["as"].get<std::string>()});
            if (body.contains("reason")) args.insert(args.end(), {"--reason", body.value("reason", std::string())});
            if (body.contains("plan")) args.insert(args.end(), {"--plan", body.value("plan", std::string())});
        } else if (action != "cancel" && action != "resume") {
            return s->answer(problem(http::status::not_found, "runs/" + action + ": expected cancel, resume, approve or reject"));
        }
        const bool is_run = action == "resume" || action == "approve";
        if (stopping_ && is_run) return s->answer(problem(http::status::service_unavailable, "the daemon is stopping"));
        return run_command(args, {}, is_run, "");
    }

    if (parts[1] == "releases") {
        if (parts.size() == 2 && verb == http::verb::get) return run_command({"connectors", "list", "--json"}, {}, false, "");
        if (parts.size() == 2 && verb == http::verb::post) {
            if (!body.contains("file") || !body["file"].is_string())
                return s->answer(problem(http::status::bad_request, "$.file: expected the path of a connector .so"));
            std::vector<std::string> args{"connectors", "install", body["file"].get<std::string>()};
            if (body.value("replace", false)) args.push_back("--replace");
            return run_command(args, {}, false, "");
        }
        if (parts.size() == 4 && verb == http::verb::delete_)
            return run_command({"connectors", "retire", parts[2], parts[3]}, {}, false, "");
    }

    if (parts[1] == "reload" && verb == http::verb::post) {
        on_signal(SIGHUP);
        return s->answer(reply(http::status::ok, status_json()));
    }

    if (parts[1] == "test" && parts.size() == 3 && parts[2] == "clock" && verb == http::verb::post) {
        if (!test_clock_)
            return s->answer(problem(http::status::not_found, "the daemon was not started with --test-clock"));
        auto t = parse_iso8601(body.value("now", std::string()));
        if (!t || *t < test_clock_->now())
            return s->answer(problem(http::status::bad_request, "$.now: expected a time (ISO 8601) not before the clock's"));
        test_clock_->advance(std::chrono::duration_cast<std::chrono::milliseconds>(*t - test_clock_->now()));
        tick();
        return s->answer(reply(http::status::ok, status_json()));
    }
    return s->answer(problem(http::status::not_found, "no such endpoint: " + std::string(req.method_string()) + " " + target));
}

int daemon_process::run() {
    started_at_ = std::chrono::system_clock::now();
    // One daemon per data dir.
    auto lock = file_lock::take(daemon_dir() / "daemon.lock", "pid " + std::to_string(::getpid()) + "\n", false);
    if (!lock) {
        err_ << "error: " << lock.status().message() << "\n";
        return 1;
    }
    if (!*lock) {
        err_ << "error: a daemon already serves " << cfg_.data_dir.string() << " ("
             << first_line(file_lock::note(daemon_dir() / "daemon.lock")) << "); stop it first\n";
        return 9;
    }
    lock_ = std::move(**lock);
    // A small page cache: the daemon reads run rows only, and its memory
    // must not grow with the database (bench/README.md, "Daemon memory").
    auto store = open_sqlite_store(cfg_.data_dir / "syncwarden.db", 2048);
    if (!store) {
        err_ << "error: " << store.status().message() << "\n";
        return 1;
    }
    store_ = std::move(*store);
    if (auto n = mark_interrupted(*store_, cfg_.data_dir, iso8601(std::chrono::system_clock::now())); n && *n)
        say(std::to_string(*n) + " runs whose process had gone are now recorded as interrupted");
    std::error_code ec;
    fs::create_directories(jobs_dir(), ec);
    fs::create_directories(inbox_dir(), ec);
    if (auto s = start_listening(); !s) {
        err_ << "error: " << s.message() << "\n";
        return 1;
    }
    signals_.add(SIGHUP);
    signals_.add(SIGTERM);
    signals_.add(SIGINT);
    signals_.add(SIGCHLD);
    std::function<void()> wait_signal = [&] {
        signals_.async_wait([&](boost::system::error_code e, int sig) {
            if (e) return;
            on_signal(sig);
            wait_signal();
        });
    };
    wait_signal();
    load_state();
    reload(true);
    resume_stopped_runs();
    tick();
    arm_poll();
#ifdef SYNCWARDEN_HAVE_SYSTEMD
    uint64_t usec = 0;
    if (::sd_watchdog_enabled(0, &usec) > 0) watchdog_usec_ = std::chrono::microseconds(usec);
#endif
    arm_watchdog();
    say("serving " + cfg_.data_dir.string() + ": " + std::to_string(jobs_.size()) + " jobs from " + jobs_dir().string() +
        ", inbox " + inbox_dir().string() + ", control socket " + control_socket_path(cfg_).string() +
        (test_clock_ ? ", test clock at " + iso8601(clk_->now()) : ""));
    out_ << "syncwarden serve: ready (pid " << ::getpid() << ", control socket " << control_socket_path(cfg_).string()
         << ")" << std::endl;
    notify("READY=1\nSTATUS=serving " + std::to_string(jobs_.size()) + " jobs");
    ioc_.run();
    return 0;
}

}  // namespace

int serve(const serve_options& o, std::ostream& out, std::ostream& err) {
    daemon_process d(o, out, err);
    return d.run();
}

}  // namespace syncwarden::kernel
