// The daemon's memory across many scheduled runs (bench/README.md,
// "Daemon memory").
//
//   sw-bench-daemon --kernel build/kernel/syncwarden --work DIR [--runs 1000]
//
// Installs the shipped OneRoster and vendor-csv connectors into DIR/data,
// puts the demo job into the daemon's jobs folder with a schedule of every
// minute, and starts `syncwarden serve` on a test clock. Then, run after
// run, it moves the clock one minute through the control API and waits for
// that run to end, reading the daemon's resident memory (VmRSS) at set
// points. Prints one "key value" line per figure; exits 1 when a run did
// not succeed.
#include <syncwarden/kernel/daemon.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace fs = std::filesystem;
using nlohmann::json;
using syncwarden::kernel::control_request;

namespace {

long rss_kib(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(in, line);)
        if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
    return -1;
}

std::string minute(int i) {
    // 2026-01-05T00:00:00Z plus i minutes
    char buf[64];
    const std::time_t t = 1767571200 + static_cast<std::time_t>(i) * 60;
    std::tm tm{};
    gmtime_r(&t, &tm);
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

int sh(const std::string& cmd) { return std::system(cmd.c_str()); }

// A path as one shell word, whatever it holds.
std::string shell_word(const std::string& s) {
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

}  // namespace

int main(int argc, char** argv) {
    std::string kernel, work;
    int runs = 1000;
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string a = argv[i];
        if (a == "--kernel") kernel = argv[i + 1];
        else if (a == "--work") work = argv[i + 1];
        else if (a == "--runs") runs = std::atoi(argv[i + 1]);
    }
    if (kernel.empty() || work.empty() || runs < 10) {
        std::cerr << "usage: sw-bench-daemon --kernel SYNCWARDEN --work DIR [--runs N (10 or more)]\n";
        return 2;
    }
    const fs::path root = fs::absolute(fs::path(kernel)).parent_path().parent_path();  // the build folder
    const fs::path src = fs::path(SW_SOURCE_DIR);
    const fs::path data = fs::absolute(work) / "data";
    fs::remove_all(data);
    fs::create_directories(data / "jobs");
    for (auto so : {"liboneroster-csv.so", "libvendor-csv.so"})
        if (sh(shell_word(kernel) + " --data-dir " + shell_word(data.string()) + " connectors install " +
               shell_word((root / "plugins" / so).string()) + " > /dev/null") != 0) {
            std::cerr << "cannot install " << so << "\n";
            return 1;
        }
    // The demo job, every minute, its export read from the source tree.
    std::ifstream in(src / "config" / "jobs" / "demo-roster.json");
    std::string job((std::istreambuf_iterator<char>(in)), {});
    job.replace(job.find("\"../demo/district\""), 18, "\"" + (src / "config" / "demo" / "district").string() + "\"");
    job.replace(job.find('{'), 1, "{\"schedule\": {\"cron\": \"* * * * *\"},");
    std::ofstream(data / "jobs" / "demo.json") << job;

    const pid_t pid = ::fork();
    if (pid == 0) {
        const std::string log = (fs::absolute(work) / "daemon.log").string();
        std::freopen(log.c_str(), "w", stdout);
        std::freopen(log.c_str(), "a", stderr);
        ::execl(kernel.c_str(), kernel.c_str(), "--data-dir", data.c_str(), "serve", "--test-clock",
                minute(0).c_str(), static_cast<char*>(nullptr));
        ::_exit(127);
    }
    const fs::path sock = data / "syncwarden.sock";
    auto status = [&]() -> json {
        auto r = control_request(sock, "GET", "/v1/status", "");
        return r ? json::parse(r->body, nullptr, false) : json();
    };
    auto wait_until = [&](auto&& cond) {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(2);
        while (std::chrono::steady_clock::now() < deadline) {
            if (cond()) return true;
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
        return false;
    };
    if (!wait_until([&] { return status().is_object(); })) {
        std::cerr << "the daemon did not answer; see " << work << "/daemon.log\n";
        ::kill(pid, SIGKILL);
        return 1;
    }
    std::cout << "idle_rss_kib_at_start " << rss_kib(pid) << "\n";
    const std::set<int> marks{1, 10, 100, runs / 4, runs / 2, 3 * runs / 4, runs};
    std::string last_id;
    int failed = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 1; i <= runs; ++i) {
        auto r = control_request(sock, "POST", "/v1/test/clock", json{{"now", minute(i)}}.dump());
        if (!r || r->status != 200) {
            std::cerr << "could not move the clock to " << minute(i) << "\n";
            failed = runs;
            break;
        }
        json job_state;
        const bool ended = wait_until([&] {
            auto st = status();
            if (!st.is_object() || st["jobs"].empty()) return false;
            job_state = st["jobs"][0];
            return job_state["running"] == false && job_state["last_run"].is_object() &&
                   job_state["last_run"]["id"] != last_id;
        });
        if (!ended) {
            std::cerr << "run " << i << " did not end\n";
            failed = runs;
            break;
        }
        last_id = job_state["last_run"]["id"];
        if (job_state["last_run"]["state"] != "succeeded") ++failed;
        if (marks.count(i)) std::cout << "rss_kib_after_" << i << "_runs " << rss_kib(pid) << "\n";
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::cout << "runs " << runs << "\nfailed_runs " << failed << "\nseconds " << secs << "\n";
    std::cout << "idle_rss_kib_at_end " << rss_kib(pid) << "\n";
    ::kill(pid, SIGTERM);
    int st = 0;
    ::waitpid(pid, &st, 0);
    std::cout << "daemon_exit " << (WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st)) << "\n";
    return failed ? 1 : 0;
}
