// Connectors in worker processes: each misbehaviour fails only its run, with
// the category and a message naming the connector, its version and the
// phase; the target is untouched; the kernel goes on and the next healthy
// run succeeds.
#include "test_support.hpp"

#include <syncwarden/kernel/clock.hpp>

#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

#include <regex>

#include <csignal>
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

using ::testing::HasSubstr;
using ::testing::Not;

namespace {

namespace fs = std::filesystem;

// A data dir with the diff-target fixture installed; jobs from any source
// fixture into it, delivering to applied.log.
struct setup {
    sw_test::temp_dir tmp;
    setup() { install("diff_target"); }
    fs::path data() const { return tmp / "data"; }
    fs::path log() const { return tmp / "applied.log"; }
    void install(const std::string& fixture) {
        auto r = sw_test::cli(data(), {"connectors", "install", sw_test::fixture(fixture).string()});
        ASSERT_EQ(r.code, 0) << r.err;
    }
    // `extra`: top-level job members, each with a trailing comma.
    fs::path job(const std::string& source, const std::string& extra = "",
                 const std::string& source_settings = "{}") const {
        auto file = tmp / ("job-" + source + ".json");
        sw_test::write_file(file, R"({"name": "w", )" + extra + R"(
          "source": {"connector": ")" + source + R"(", "settings": )" + source_settings + R"(},
          "target": {"connector": "diff-target", "settings": {"log": ")" + log().string() + R"("}},
          "mapping": {"entities": [{"target": "items", "source": "items", "fields": {"id": "id", "name": "name"}}]}})");
        return file;
    }
    nlohmann::json last_run() const {
        auto runs = nlohmann::json::parse(sw_test::cli(data(), {"runs", "list", "--json"}).out);
        return nlohmann::json::parse(
            sw_test::cli(data(), {"runs", "show", runs[0]["id"].get<std::string>(), "--json"}).out);
    }
    // A healthy run afterwards, in the same data dir, succeeds.
    void healthy_run_succeeds() {
        install("good");
        auto r = sw_test::cli(data(), {"run", job("good").string()});
        EXPECT_EQ(r.code, 0) << r.out << r.err;
        EXPECT_THAT(sw_test::read_file(log()), HasSubstr("i-1"));
    }
};

struct misbehaviour {
    const char* fixture;   // file stem
    const char* job_extra; // deadlines and limits that make the test quick
    const char* category;
    const char* says;      // what the error says, after "mis-NAME 1.0.0 "
};

void PrintTo(const misbehaviour& m, std::ostream* os) { *os << m.fixture; }

class worker_misbehaviour : public ::testing::TestWithParam<misbehaviour> {};

TEST_P(worker_misbehaviour, fails_only_its_run_with_a_category_and_the_next_run_succeeds) {
    const misbehaviour& m = GetParam();
#if defined(SYNCWARDEN_SANITIZED)
    if (std::string(m.category) == "connector_oom")
        GTEST_SKIP() << "a sanitizer's shadow memory leaves no room for a memory limit";
#endif
    setup s;
    s.install(m.fixture);
    std::string name = std::string("mis-") + (m.fixture + 4);
    std::replace(name.begin(), name.end(), '_', '-');
    auto r = sw_test::cli(s.data(), {"run", s.job(name, m.job_extra).string()});
    EXPECT_EQ(r.code, 4) << r.out << r.err;
    EXPECT_THAT(r.err, HasSubstr(std::string(m.category) + ": " + name + " 1.0.0 " + m.says));
    EXPECT_FALSE(fs::exists(s.log())) << "the target is untouched when the source's worker fails";
    auto run = s.last_run();
    EXPECT_EQ(run["state"], "failed");
    EXPECT_EQ(run["category"], m.category);
    EXPECT_EQ(run["phase"], "extract");
    s.healthy_run_succeeds();
}

INSTANTIATE_TEST_SUITE_P(
    worker, worker_misbehaviour,
    ::testing::Values(
        misbehaviour{"mis_segfault", "", "connector_crashed", "crashed with SIGSEGV during extract"},
        misbehaviour{"mis_abort", "", "connector_crashed", "crashed with SIGABRT during extract"},
        misbehaviour{"mis_exit0", "", "connector_exited", "exited with code 0 during extract"},
        misbehaviour{"mis_loop", R"("deadlines": {"stall": "1s", "grace": "100ms"},)", "timeout",
                     "made no progress for 1 s during extract"},
        misbehaviour{"mis_polite_loop", R"("deadlines": {"extract": "1s"},)", "timeout",
                     "did not finish extract before the phase's deadline"},
        misbehaviour{"mis_loop", R"("limits": {"cpu_seconds": 1}, "deadlines": {"stall": "10m"},)", "timeout",
                     "used up its CPU time limit of 1 s during extract"},
        misbehaviour{"mis_memhog", R"("limits": {"memory_mb": 256},)", "connector_oom",
                     "ran out of memory during extract"}),
    [](const ::testing::TestParamInfo<misbehaviour>& i) {
        return std::string(i.param.fixture + 4) + "_" + std::to_string(i.index);
    });

TEST(worker, an_abort_reports_what_the_connector_said_on_stderr) {
    setup s;
    s.install("mis_abort");
    auto r = sw_test::cli(s.data(), {"run", s.job("mis-abort").string()});
    EXPECT_EQ(r.code, 4);
    EXPECT_THAT(r.err, HasSubstr("Its last words on stderr: misbehave: giving up with abort()"));
}

// The connector's stdout and stderr, and its host log() calls, go to the
// run's own log (0600), tagged with the connector, and neither to the
// operator's terminal nor to the shared log, where a name it prints without
// quotes would stay in clear.
TEST(worker, a_connectors_output_goes_to_the_runs_own_log_and_not_to_the_terminal_or_the_shared_log) {
    setup s;
    s.install("mis_stdout");
    auto r = sw_test::run_kernel(s.data(), {"run", s.job("mis-stdout").string()});
    const std::string terminal = sw_test::read_file(s.data() / "child.out");
    EXPECT_EQ(r.code, 0) << terminal;
    EXPECT_THAT(terminal, Not(HasSubstr("GARBAGE")));
    EXPECT_THAT(terminal, Not(HasSubstr("noise on stderr")));
    EXPECT_THAT(terminal, HasSubstr("succeeded"));
    EXPECT_THAT(sw_test::read_logs(s.data()), Not(HasSubstr("Quintana"))) << "nothing a connector says is shared";
    const auto run = s.last_run();
    const auto out = run["summary"]["connector_output"];
    ASSERT_TRUE(out.is_object()) << run.dump(2);
    const fs::path file = s.data() / out["file"].get<std::string>();
    struct stat st {};
    ASSERT_EQ(::stat(file.c_str(), &st), 0) << file;
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    bool stdout_line = false, stderr_line = false, logged = false;
    std::istringstream lines(sw_test::read_file(file));
    for (std::string line; std::getline(lines, line);) {
        auto j = nlohmann::json::parse(line);
        EXPECT_EQ(j["run_id"], run["id"]) << line;
        if (j["connector"] != "mis-stdout 1.0.0") continue;
        if (j["event"] == "connector_stdout" && j["msg"].get<std::string>().find("GARBAGE ON STDOUT") == 0) stdout_line = true;
        if (j["event"] == "connector_stderr" && j["msg"] == "noise on stderr") stderr_line = true;
        if (j["event"] == "connector_log" && j["msg"].get<std::string>().find("looked up") == 0) logged = true;
    }
    EXPECT_TRUE(stdout_line && stderr_line && logged) << sw_test::read_file(file);
    EXPECT_EQ(out["dropped_lines"], 0);
}

// Output without end: the run's log keeps limits.output_mb of it, says
// that it stopped there, and counts the rest; the run goes on.
TEST(worker, a_connectors_output_is_capped_per_run_and_what_was_dropped_is_said) {
    setup s;
    s.install("mis_stdout");
    auto r = sw_test::cli(s.data(), {"run", s.job("mis-stdout", R"("limits": {"output_mb": 1},)",
                                                  R"({"chatter": 40000})").string()});
    EXPECT_EQ(r.code, 0) << r.out << r.err;
    const auto run = s.last_run();
    const auto out = run["summary"]["connector_output"];
    ASSERT_TRUE(out.is_object()) << run.dump(2);
    EXPECT_EQ(out["cap_bytes"], 1u << 20);
    EXPECT_GT(out["dropped_lines"].get<uint64_t>(), 10000u);
    EXPECT_LE(out["bytes"].get<uint64_t>(), 1u << 20);
    EXPECT_LT(fs::file_size(s.data() / out["file"].get<std::string>()), (1u << 20) + 4096) << "the cap and its note";
    EXPECT_THAT(sw_test::read_file(s.data() / out["file"].get<std::string>()), HasSubstr("connector_output_capped"));
    EXPECT_THAT(sw_test::read_logs(s.data()), HasSubstr("connector_output_capped")) << "the shared log says so";
    auto shown = sw_test::cli(s.data(), {"runs", "show", run["id"].get<std::string>()});
    EXPECT_THAT(shown.out, HasSubstr("over the cap of 1048576 bytes were not kept"));
    // Retention removes the run's log with its plan.
    syncwarden::kernel::manual_clock later(std::chrono::system_clock::now() + std::chrono::hours(24 * 40));
    auto ret = sw_test::cli(s.data(), {"retention", "apply"}, later);
    EXPECT_EQ(ret.code, 0) << ret.err;
    EXPECT_FALSE(fs::exists(s.data() / out["file"].get<std::string>()));
}

// How much memory and CPU each worker took, and the kernel's own peak: what an
// operator sizes limits.memory_mb and the host by. In-process, no worker.
TEST(worker, each_worker_logs_its_peak_memory_and_cpu_and_the_kernel_its_own) {
    setup s;
    s.install("mis_stdout");
    auto used = [&](const std::string& who) {
        std::vector<nlohmann::json> out;
        std::istringstream lines(sw_test::read_logs(s.data()));
        for (std::string line; std::getline(lines, line);) {
            auto j = nlohmann::json::parse(line);
            if ((who.empty() && j["event"] == "resources") || (!who.empty() && j["event"] == "worker_finished" &&
                                                                j["connector"] == who))
                out.push_back(j);
        }
        return out;
    };
    ASSERT_EQ(sw_test::run_kernel(s.data(), {"run", s.job("mis-stdout").string()}).code, 0);
    const std::regex worker(R"(peak RSS ([0-9]+) MiB, CPU [0-9]+\.[0-9]{2} s)");
    auto w = used("mis-stdout 1.0.0");
    ASSERT_EQ(w.size(), 1u) << sw_test::read_logs(s.data());
    std::smatch m;
    const std::string msg = w[0]["msg"];
    ASSERT_TRUE(std::regex_match(msg, m, worker)) << msg;
    EXPECT_GT(std::stoul(m[1]), 0u) << msg;
    EXPECT_FALSE(w[0]["run_id"].get<std::string>().empty());
    auto k = used("");
    ASSERT_EQ(k.size(), 1u);
    const std::string kmsg = k[0]["msg"];
    EXPECT_TRUE(std::regex_match(kmsg, std::regex(R"(kernel process: peak RSS [1-9][0-9]* MiB, CPU [0-9]+\.[0-9]{2} s)")))
        << kmsg;
    EXPECT_EQ(k[0]["run_id"], w[0]["run_id"]);

    ASSERT_EQ(sw_test::run_kernel(s.data(), {"run", s.job("mis-stdout", R"("isolation": "in-process",)").string()}).code, 0);
    EXPECT_EQ(used("mis-stdout 1.0.0").size(), 1u) << "an in-process connector has no worker to report";
    EXPECT_EQ(used("").size(), 2u);
}

// A library whose static constructor crashes is checked in a throw-away
// worker: install fails cleanly and installs nothing.
TEST(worker, installing_a_library_whose_constructor_crashes_fails_cleanly) {
    setup s;
    auto r = sw_test::cli(s.data(), {"connectors", "install", sw_test::fixture("mis_ctor_crash").string()});
    EXPECT_EQ(r.code, 4) << r.out << r.err;
    EXPECT_THAT(r.err, HasSubstr("connector_crashed"));
    EXPECT_THAT(r.err, HasSubstr("crashed with SIGSEGV during loading"));
    EXPECT_THAT(r.err, HasSubstr("it was not installed"));
    auto list = sw_test::cli(s.data(), {"connectors", "list"});
    EXPECT_THAT(list.out, Not(HasSubstr("mis-ctor-crash")));
    s.healthy_run_succeeds();
}

// A bad limits or deadlines value is a config error naming the JSON path.
TEST(worker, bad_limits_and_deadlines_name_the_json_path) {
    setup s;
    auto r = sw_test::cli(s.data(), {"run", s.job("good", R"("deadlines": {"stall": "soon"},)").string()});
    EXPECT_EQ(r.code, 3);
    EXPECT_THAT(r.err, HasSubstr("$.deadlines.stall: expected a duration such as"));
    r = sw_test::cli(s.data(), {"run", s.job("good", R"("limits": {"memory_mb": 3},)").string()});
    EXPECT_EQ(r.code, 3);
    EXPECT_THAT(r.err, HasSubstr("$.limits.memory_mb: expected 0 (no limit) or a whole number of at least 64"));
    r = sw_test::cli(s.data(), {"run", s.job("good", R"("limits": {"read_ahead_mb": 4096},)").string()});
    EXPECT_EQ(r.code, 3);
    EXPECT_THAT(r.err, HasSubstr("$.limits.read_ahead_mb: expected a whole number of MiB from 0 (off) to 1024, found 4096"));
    r = sw_test::cli(s.data(), {"run", s.job("good", R"("isolation": "container",)").string()});
    EXPECT_EQ(r.code, 3);
    EXPECT_THAT(r.err, HasSubstr("$.isolation: expected \"worker\" (the default) or \"in-process\""));
}

// In-process isolation stays available: the same job runs in the kernel.
TEST(worker, in_process_isolation_runs_the_connector_in_the_kernel) {
    setup s;
    s.install("mis_stdout");
    auto r = sw_test::run_kernel(s.data(), {"run", s.job("mis-stdout", R"("isolation": "in-process",)").string()});
    EXPECT_EQ(r.code, 0);
    // In the kernel's process, the connector's output is the kernel's.
    EXPECT_THAT(sw_test::read_file(s.data() / "child.out"), HasSubstr("GARBAGE ON STDOUT"));
}

}  // namespace

namespace {

// A run whose source works until it is told to stop; `started` appears once
// it is working.
struct running {
    setup s;
    fs::path started;
    pid_t pid = -1;
    explicit running(const std::string& fixture, const std::string& extra = "") {
        s.install(fixture);
        started = s.tmp / "started";
        std::string name = "mis-" + fixture.substr(4);
        std::replace(name.begin(), name.end(), '_', '-');
        auto job = s.job(name, extra, R"({"started": ")" + started.string() + "\"}");
        pid = sw_test::start_kernel(s.data(), {"run", job.string()});
        EXPECT_TRUE(sw_test::wait_for_file(started)) << sw_test::read_file(s.data() / "child.out");
    }
    std::string output() const { return sw_test::read_file(s.data() / "child.out"); }
};

TEST(cancel, sigint_asks_the_connector_to_stop_and_the_run_ends_cancelled) {
    running r("mis_polite_loop");
    ASSERT_EQ(::kill(r.pid, SIGINT), 0);
    auto done = sw_test::wait_kernel(r.pid);
    EXPECT_EQ(done.code, 8) << r.output();
    EXPECT_THAT(r.output(),
                HasSubstr("cancelled: the run was cancelled (SIGINT) during extract of mis-polite-loop 1.0.0"));
    auto run = r.s.last_run();
    EXPECT_EQ(run["state"], "cancelled");
    EXPECT_EQ(run["category"], "cancelled");
    r.s.healthy_run_succeeds();
}

// In process, the connector sees is_cancelled too and the run ends the same way.
TEST(cancel, sigint_reaches_an_in_process_connector_through_is_cancelled) {
    running r("mis_polite_loop", R"("isolation": "in-process",)");
    ASSERT_EQ(::kill(r.pid, SIGINT), 0);
    auto done = sw_test::wait_kernel(r.pid);
    EXPECT_EQ(done.code, 8) << r.output();
    EXPECT_THAT(r.output(), HasSubstr("cancelled: the run was cancelled (SIGINT) during extract"));
    EXPECT_EQ(r.s.last_run()["state"], "cancelled");
}

// A connector that never looks at is_cancelled is killed after the grace
// period; the run still ends cancelled, not crashed.
TEST(cancel, sigterm_kills_a_connector_that_does_not_stop_after_the_grace_period) {
    running r("mis_loop", R"("deadlines": {"grace": "200ms"},)");
    ASSERT_EQ(::kill(r.pid, SIGTERM), 0);
    auto done = sw_test::wait_kernel(r.pid);
    EXPECT_EQ(done.code, 8) << r.output();
    EXPECT_THAT(r.output(), HasSubstr("the run was cancelled (SIGTERM) during extract of mis-loop 1.0.0"));
    EXPECT_EQ(r.s.last_run()["state"], "cancelled");
}

TEST(cancel, runs_cancel_stops_a_run_from_another_terminal_and_waits_for_its_outcome) {
    running r("mis_polite_loop");
    auto runs = nlohmann::json::parse(sw_test::cli(r.s.data(), {"runs", "list", "--json"}).out);
    ASSERT_EQ(runs.size(), 1u);
    EXPECT_EQ(runs[0]["state"], "running");
    const std::string id = runs[0]["id"];
    auto c = sw_test::cli(r.s.data(), {"runs", "cancel", id});
    EXPECT_EQ(c.code, 0) << c.out << c.err;
    EXPECT_THAT(c.out, HasSubstr("asked run " + id));
    EXPECT_THAT(c.out, HasSubstr("run " + id + ": cancelled"));
    EXPECT_EQ(sw_test::wait_kernel(r.pid).code, 8);
    auto again = sw_test::cli(r.s.data(), {"runs", "cancel", id});
    EXPECT_EQ(again.code, 2);
    EXPECT_THAT(again.err, HasSubstr("is not in progress (it is cancelled)"));
}

// kill -9 of the kernel: the run is shown as interrupted, never running,
// and its worker does not outlive it.
TEST(cancel, a_run_whose_kernel_was_killed_is_shown_as_interrupted) {
    running r("mis_polite_loop");
    ASSERT_EQ(::kill(r.pid, SIGKILL), 0);
    EXPECT_EQ(sw_test::wait_kernel(r.pid).signal, SIGKILL);
    auto run = r.s.last_run();
    EXPECT_EQ(run["state"], "interrupted");
    EXPECT_EQ(run["category"], "interrupted");
    EXPECT_THAT(run["error"].get<std::string>(), HasSubstr("ended without recording an outcome"));
    EXPECT_THAT(run["error"].get<std::string>(), HasSubstr("during extract; nothing was applied: run the job again"));
    r.s.healthy_run_succeeds();
}

// ---- the source starts while the target's state is read ---------------------

// items-source into ledger-target. The source writes a byte to a FIFO each
// time an emit returned; the target's read_state counts them before it
// reads, so the test sees how far the source got while the state was read.
struct ahead_setup {
    sw_test::temp_dir tmp;
    int hold = -1;  // keeps the FIFO open for reading, so the source's writes never fail
    ahead_setup() {
        for (auto f : {"items_source", "ledger_target"}) {
            auto r = sw_test::cli(data(), {"connectors", "install", sw_test::fixture(f).string()});
            EXPECT_EQ(r.code, 0) << r.err;
        }
        EXPECT_EQ(::mkfifo(fifo().c_str(), 0600), 0);
        hold = ::open(fifo().c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
        EXPECT_GE(hold, 0);
    }
    ~ahead_setup() {
        if (hold >= 0) ::close(hold);
    }
    fs::path data() const { return tmp / "data"; }
    fs::path fifo() const { return tmp / "emitted.fifo"; }
    fs::path seen() const { return tmp / "seen.txt"; }
    fs::path ledger() const { return tmp / "ledger.tsv"; }
    // `wait`: how many emits the target waits for (within `wait_ms`);
    // `source`: extra source settings, `top`: top-level members (trailing comma).
    fs::path job(int count, int batch, int wait, int wait_ms, const std::string& source = "",
                 const std::string& target = "", const std::string& top = "") const {
        auto f = tmp / "job.json";
        sw_test::write_file(f, R"({"name": "ahead", )" + top + R"(
          "source": {"connector": "items-source", "settings": {"count": )" + std::to_string(count) +
                                   R"(, "batch": )" + std::to_string(batch) + R"(, "emitted": ")" + fifo().string() +
                                   "\"" + source + R"(}},
          "target": {"connector": "ledger-target", "settings": {"ledger": ")" + ledger().string() +
                                   R"(", "read_waits": {"fifo": ")" + fifo().string() + R"(", "count": )" +
                                   std::to_string(wait) + R"(, "ms": )" + std::to_string(wait_ms) +
                                   R"(, "seen": ")" + seen().string() + "\"}" + target + R"(}},
          "mapping": {"entities": [{"target": "items", "source": "items", "fields": {"id": "id", "name": "name"}}]},
          "apply": {"batch_size": 1000}})");
        return f;
    }
    int emits_seen() const { return std::stoi(sw_test::read_file(seen())); }
};

// Fifty batches are emitted before the kernel reads one: the target's
// read waits for all fifty, which it could not if the source started only
// after the state was read. Every record still arrives, once.
TEST(read_ahead, the_source_emits_while_the_targets_state_is_read) {
    ahead_setup a;
    auto r = sw_test::cli(a.data(), {"run", a.job(5000, 100, 50, 60000).string()});
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_EQ(a.emits_seen(), 50);
    auto state = sw_test::ledger_state(a.ledger());
    EXPECT_EQ(state.size(), 5000u);
    EXPECT_EQ(state["i-000001"], "Name 1");
    EXPECT_EQ(state["i-005000"], "Name 5000");
}

// limits.read_ahead_mb bounds it: with 1 MiB and batches of about 110 KiB,
// the source gets two batches into the slots and nine or so into the ring,
// then waits; with 0 it stops after the two slots.
TEST(read_ahead, the_source_runs_ahead_by_at_most_read_ahead_mb) {
    {
        ahead_setup a;
        auto job = a.job(5000, 100, 50, 2000, R"(, "pad": 1000)", "", R"("limits": {"read_ahead_mb": 1},)");
        auto r = sw_test::cli(a.data(), {"run", job.string()});
        ASSERT_EQ(r.code, 0) << r.out << r.err;
        EXPECT_GT(a.emits_seen(), 2);
        EXPECT_LE(a.emits_seen(), 2 + 10 + 1);
        EXPECT_EQ(sw_test::ledger_state(a.ledger()).size(), 5000u);
    }
    {
        ahead_setup a;
        auto job = a.job(5000, 100, 50, 1000, "", "", R"("limits": {"read_ahead_mb": 0},)");
        auto r = sw_test::cli(a.data(), {"run", job.string()});
        ASSERT_EQ(r.code, 0) << r.out << r.err;
        EXPECT_LE(a.emits_seen(), 2);
        EXPECT_EQ(sw_test::ledger_state(a.ledger()).size(), 5000u);
    }
}

// Twelve thousand one-record batches ahead: the worker queues their
// notices into packets of thousands, and the kernel answers each batch,
// more answers than the socket holds, while the worker still sends. If
// either waited for the other to read, both would wait forever; the run
// completes with every record.
TEST(read_ahead, thousands_of_small_batches_ahead_do_not_stall_the_run) {
    ahead_setup a;
    auto r = sw_test::cli(a.data(), {"run", a.job(12000, 1, 12000, 1000).string()});
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_GT(a.emits_seen(), 1000);
    EXPECT_EQ(sw_test::ledger_state(a.ledger()).size(), 12000u);
}

// The target cannot be read while the source runs ahead: the run fails
// with the target's error, the source is stopped (its records dropped
// unread, its worker ended), and the next run works.
TEST(read_ahead, a_target_that_cannot_be_read_stops_the_source_that_ran_ahead) {
    ahead_setup a;
    auto r = sw_test::cli(a.data(), {"run", a.job(5000, 100, 20, 60000, "", R"(, "read_fails": true)").string()});
    EXPECT_NE(r.code, 0);
    EXPECT_THAT(r.out + r.err, HasSubstr("the ledger cannot be read"));
    EXPECT_GE(a.emits_seen(), 20);
    const std::string logs = sw_test::read_logs(a.data());
    EXPECT_THAT(logs, HasSubstr(R"("connector":"items-source 1.0.0","event":"worker_finished")"));
    EXPECT_FALSE(fs::exists(a.ledger()) && !sw_test::ledger_state(a.ledger()).empty());
    auto again = sw_test::cli(a.data(), {"run", a.job(5000, 100, 0, 1000).string()});
    EXPECT_EQ(again.code, 0) << again.out << again.err;
    EXPECT_EQ(sw_test::ledger_state(a.ledger()).size(), 5000u);
}


// The target's state read runs ahead of the kernel too. The kernel is
// stopped (SIGSTOP) while the target emits its state a hundred records a
// batch: with only the two slots the third emit would wait for the kernel;
// here more return, and once the kernel goes on the run finds no change.
TEST(read_ahead, the_targets_state_read_runs_ahead_of_the_kernel) {
    ahead_setup a;
    ASSERT_EQ(sw_test::cli(a.data(), {"run", a.job(5000, 100, 0, 1000).string()}).code, 0);
    ASSERT_EQ(sw_test::ledger_state(a.ledger()).size(), 5000u);
    const fs::path ready = a.tmp / "state-ready", go = a.tmp / "state-go.fifo", emitted = a.tmp / "state-emitted.fifo";
    ASSERT_EQ(::mkfifo(go.c_str(), 0600), 0);
    ASSERT_EQ(::mkfifo(emitted.c_str(), 0600), 0);
    auto job = a.job(5000, 100, 0, 1000, "",
                     R"(, "state_emits": {"batch": 100, "ready": ")" + ready.string() + R"(", "go": ")" + go.string() +
                         R"(", "emitted": ")" + emitted.string() + R"("})");
    const pid_t pid = sw_test::start_kernel(a.data(), {"run", job.string(), "--dry-run"});
    ASSERT_TRUE(sw_test::wait_for_file(ready)) << sw_test::read_file(a.data() / "child.out");
    ASSERT_EQ(::kill(pid, SIGSTOP), 0);
    const int from = ::open(emitted.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    const int to = ::open(go.c_str(), O_WRONLY | O_CLOEXEC);
    ASSERT_GE(from, 0);
    ASSERT_GE(to, 0);
    ASSERT_EQ(::write(to, "g", 1), 1);
    // Three emits returned while the kernel read nothing (a minute at most:
    // the failure case never gets there).
    int returned = 0;
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (returned < 3 && std::chrono::steady_clock::now() < until) {
        pollfd p{from, POLLIN, 0};
        if (::poll(&p, 1, 1000) <= 0) continue;
        char buf[64];
        const ssize_t n = ::read(from, buf, sizeof buf);
        if (n > 0) returned += static_cast<int>(n);
    }
    ASSERT_EQ(::kill(pid, SIGCONT), 0);
    EXPECT_GE(returned, 3);
    auto done = sw_test::wait_kernel(pid);
    ::close(from);
    ::close(to);
    EXPECT_EQ(done.code, 0) << sw_test::read_file(a.data() / "child.out");
    EXPECT_THAT(sw_test::read_file(a.data() / "child.out"), HasSubstr("no changes"));
}
}  // namespace
