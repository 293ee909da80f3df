// `syncwarden serve`: the long-running kernel process (README.md, "Running the daemon").
//
// One Boost.Asio io_context drives everything: the schedules, the jobs
// folder and the connector inbox (polled), signals (SIGHUP reloads,
// SIGTERM stops gracefully, SIGCHLD reaps runs) and the control API, HTTP
// with JSON on a Unix socket only the daemon's owner can open (Boost.Beast).
// Every run and every command the daemon carries out is a child process of
// this same program (`syncwarden run ...`), which hosts connectors in
// worker processes of its own: a crash stays in its run, the daemon's
// memory does not grow with runs, and a run keeps the connector release it
// loaded until it ends, whatever is installed meanwhile.
#pragma once

#include <syncwarden/kernel/config.hpp>
#include <syncwarden/kernel/result.hpp>

#include <chrono>
#include <filesystem>
#include <optional>
#include <ostream>
#include <string>

namespace syncwarden::kernel {

struct serve_options {
    kernel_config cfg;                   // data_dir absolute
    std::filesystem::path config_file;   // --config, handed on to the runs
    // The daemon's clock stands still at this time and moves only through
    // the control API (POST /v1/test/clock): for tests of schedules.
    std::optional<std::chrono::system_clock::time_point> test_clock;
};

// Runs until SIGTERM or SIGINT; the exit code.
int serve(const serve_options& o, std::ostream& out, std::ostream& err);

// The control socket of a kernel config: daemon.socket, else
// <data_dir>/syncwarden.sock.
std::filesystem::path control_socket_path(const kernel_config& cfg);

struct control_reply {
    unsigned status = 0;  // HTTP status
    std::string body;
};
// One request to the daemon's control API. not_found: no daemon answers
// on that socket (none, or a stale socket file).
Result<control_reply> control_request(const std::filesystem::path& socket, const std::string& method,
                                      const std::string& target, const std::string& body);

}  // namespace syncwarden::kernel
