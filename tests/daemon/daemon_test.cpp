// `syncwarden serve` as operators run it: the real binary in the
// background, its control API on the Unix socket, runs as child
// processes. Its clock is a test clock (--test-clock) moved through the
// API, so schedules fire when the test says; what the test waits for is a
// condition (a file a held connector creates, a state the API reports),
// never a length of time.
#include "test_support.hpp"

#include <syncwarden/kernel/daemon.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <csignal>
#include <cstring>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/resource.h>
#include <set>
#include <sstream>
#include <fstream>
#include <pwd.h>
#include <unistd.h>
#include <functional>
#include <sys/wait.h>
#include <thread>

namespace fs = std::filesystem;
using nlohmann::json;
using testing::HasSubstr;

namespace {

class served {
public:
    served() { fs::create_directories(jobs()); }
    ~served() {
        // Held connectors let go, so that no run outlives a failed test.
        std::error_code ec;
        for (auto& e : fs::directory_iterator(root(), ec))
            if (e.path().extension() == ".held") release(e.path().stem().string());
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            sw_test::wait_kernel(pid_);
        }
    }
    fs::path root() const { return tmp_.path(); }
    fs::path data() const { return tmp_ / "data"; }
    fs::path jobs() const { return data() / "jobs"; }
    fs::path inbox() const { return data() / "inbox"; }
    fs::path socket() const { return data() / "syncwarden.sock"; }
    pid_t pid() const { return pid_; }

    void install(const std::string& fixture) {
        auto r = sw_test::cli(data(), {"connectors", "install", sw_test::fixture(fixture).string()});
        ASSERT_EQ(r.code, 0) << r.err;
    }

    // A ledger job: `count` items into root/<name>.tsv in batches of `batch`.
    // `target`: more target settings (leading comma); `top`: more top-level
    // members (trailing comma).
    fs::path ledger_job(const std::string& name, int count, int batch, const std::string& target = "",
                        const std::string& top = "", const std::string& version = "^1.0") {
        auto f = jobs() / (name + ".json");
        sw_test::write_file(f, R"({"name": ")" + name + R"(", )" + top + R"(
          "source": {"connector": "items-source", "settings": {"count": )" + std::to_string(count) + R"(}},
          "target": {"connector": "ledger-target", "version": ")" + version + R"(", "settings": {"ledger": ")" +
                                   ledger(name).string() + "\"" + target + R"(}},
          "mapping": {"entities": [{"target": "items", "source": "items", "fields": {"id": "id", "name": "name"}}]},
          "apply": {"batch_size": )" + std::to_string(batch) + "}}");
        return f;
    }
    fs::path ledger(const std::string& job) const { return root() / (job + ".tsv"); }
    // Target settings that hold the apply after `after` calls until
    // release(job) (files root/<job>.held and root/<job>.go).
    std::string hold(const std::string& job, int after) const {
        return R"(, "hold": {"after_calls": )" + std::to_string(after) + R"(, "started": ")" +
               (root() / (job + ".held")).string() + R"(", "until": ")" + (root() / (job + ".go")).string() + "\"}";
    }
    bool wait_held(const std::string& job) const { return sw_test::wait_for_file(root() / (job + ".held")); }
    void release(const std::string& job) const { sw_test::write_file(root() / (job + ".go"), "go\n"); }

    // Global options for the daemon's command line (--config FILE).
    void with_options(std::vector<std::string> opts) { opts_ = std::move(opts); }

    void start(const std::string& clock = "2026-03-08T07:58:00Z", const std::vector<std::string>& env = {}) {
        std::vector<std::string> args = opts_;
        args.insert(args.end(), {"serve", "--test-clock", clock});
        pid_ = sw_test::start_kernel(data(), args, env);
        // Ready when the API answers; a daemon that exits instead fails the test.
        int exited = -1;
        ASSERT_TRUE(until([&] {
            int st = 0;
            if (::waitpid(pid_, &st, WNOHANG) == pid_) {
                exited = st;
                pid_ = -1;
                return true;
            }
            return syncwarden::kernel::control_request(socket(), "GET", "/v1/status", "").is_ok();
        })) << sw_test::read_file(data() / "child.out");
        ASSERT_EQ(exited, -1) << "the daemon exited (wait status " << exited << "): "
                              << sw_test::read_file(data() / "child.out");
    }
    // SIGTERM, then the daemon's exit code.
    int stop() {
        ::kill(pid_, SIGTERM);
        auto r = sw_test::wait_kernel(pid_);
        pid_ = -1;
        return r.code;
    }

    std::pair<unsigned, json> api(const std::string& method, const std::string& target, const json& body = {}) {
        auto r = syncwarden::kernel::control_request(socket(), method, target, body.is_null() ? "" : body.dump());
        EXPECT_TRUE(r.is_ok()) << r.status().message();
        if (!r) return {0, {}};
        return {r->status, json::parse(r->body, nullptr, false)};
    }
    json status() { return api("GET", "/v1/status").second; }
    json job(const std::string& name) {
        const json st = status();
        for (auto& j : st["jobs"])
            if (j["name"] == name) return j;
        return {};
    }
    void set_clock(const std::string& t) {
        auto [code, body] = api("POST", "/v1/test/clock", {{"now", t}});
        ASSERT_EQ(code, 200u) << body.dump();
    }
    // Waits (polling the condition, up to two minutes) for `cond`.
    static bool until(const std::function<bool()>& cond) {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(2);
        while (std::chrono::steady_clock::now() < deadline) {
            if (cond()) return true;
            std::this_thread::sleep_for(std::chrono::milliseconds(25));
        }
        return false;
    }
    // The job's last run once it is over (not running).
    json last_run(const std::string& name) {
        json out;
        EXPECT_TRUE(until([&] {
            auto j = job(name);
            if (!j.is_object() || j["running"] == true || !j["last_run"].is_object()) return false;
            out = j["last_run"];
            return true;
        })) << status().dump(2);
        return out;
    }
    json run_record(const std::string& id) {
        auto r = sw_test::cli(data(), {"runs", "show", id, "--json"});
        EXPECT_EQ(r.code, 0) << r.err;
        return json::parse(r.out, nullptr, false);
    }

private:
    sw_test::temp_dir tmp_;
    pid_t pid_ = -1;
    std::vector<std::string> opts_;
};

TEST(Daemon, ScheduleFiresAtTheLocalTimeAcrossDstAndABrokenJobFileKeepsItsLastGoodVersion) {
    served d;
    d.install("items_source");
    d.install("ledger_target");
    // 02:00 Chicago time does not exist on 8 March 2026 (clocks go from
    // 02:00 CST to 03:00 CDT, 08:00 UTC): the fire is at the jump.
    const fs::path f = d.ledger_job("nightly", 5, 10, "", R"("schedule": {"cron": "0 2 * * *", "tz": "America/Chicago"},)");
    d.start("2026-03-08T07:58:00Z");
    EXPECT_EQ(d.job("nightly")["next_fire"], "2026-03-08T08:00:00.000Z");
    d.set_clock("2026-03-08T07:59:59Z");
    EXPECT_EQ(d.job("nightly")["last_run"], json(nullptr)) << "nothing fires before 02:00 local";
    d.set_clock("2026-03-08T08:00:00Z");
    auto first = d.last_run("nightly");
    EXPECT_EQ(first["state"], "succeeded");
    EXPECT_THAT(d.run_record(first["id"])["trigger"].get<std::string>(), HasSubstr("schedule (2026-03-08T08:00:00.000Z)"));
    EXPECT_EQ(sw_test::ledger_state(d.ledger("nightly")).size(), 5u);
    // The next night is daylight time: 02:00 CDT is 07:00 UTC.
    EXPECT_EQ(d.job("nightly")["next_fire"], "2026-03-09T07:00:00.000Z");

    // The file breaks: reported, and the job keeps its schedule. 7 items
    // would show if the broken file were used in any way.
    sw_test::write_file(f, sw_test::read_file(f).replace(sw_test::read_file(f).find("\"count\": 5"), 10, "\"count\": 7,,"));
    ASSERT_EQ(d.api("POST", "/v1/reload").first, 200u);
    auto j = d.job("nightly");
    EXPECT_THAT(j.value("error", ""), HasSubstr("nightly.json:"));
    EXPECT_EQ(j["next_fire"], "2026-03-09T07:00:00.000Z");
    d.set_clock("2026-03-09T07:00:00Z");
    auto second = d.last_run("nightly");
    EXPECT_NE(second["id"], first["id"]);
    EXPECT_EQ(second["state"], "succeeded");
    EXPECT_EQ(sw_test::ledger_state(d.ledger("nightly")).size(), 5u) << "the last good version ran";
    EXPECT_EQ(d.stop(), 0);
}

TEST(Daemon, AFireWhileTheRunStillGoesIsSkippedAndATriggerIsRefused) {
    served d;
    d.install("items_source");
    d.install("ledger_target");
    d.ledger_job("busy", 20, 5, d.hold("busy", 1), R"("schedule": {"cron": "*/5 * * * *"},)");
    d.start("2026-05-01T09:59:00Z");
    d.set_clock("2026-05-01T10:00:00Z");
    ASSERT_TRUE(d.wait_held("busy"));
    d.set_clock("2026-05-01T10:05:00Z");
    auto j = d.job("busy");
    EXPECT_EQ(j["running"], true);
    EXPECT_EQ(j["skipped_overlap"], 1);
    EXPECT_EQ(d.status()["runs"].size(), 1u) << "one run, not two";
    EXPECT_EQ(d.api("POST", "/v1/jobs/busy/trigger").first, 409u);
    auto cli = sw_test::cli(d.data(), {"jobs", "trigger", "busy"});
    EXPECT_NE(cli.code, 0);
    EXPECT_THAT(cli.err, HasSubstr("already running"));
    d.release("busy");
    EXPECT_EQ(d.last_run("busy")["state"], "succeeded");
    EXPECT_EQ(sw_test::ledger_state(d.ledger("busy")).size(), 20u);
    EXPECT_EQ(d.stop(), 0);
}

TEST(Daemon, AJobIsPausedAfterFailuresInARowUntilResumedAndCatchesUpAfterARestart) {
    served d;
    d.install("items_source");
    d.install("ledger_target");
    // A ledger in a folder that does not exist: every run fails.
    const fs::path f = d.ledger_job("flaky", 3, 10, "", R"("schedule": {"cron": "* * * * *", "catch_up": "1h", "pause_after_failures": 2},)");
    std::string broken = sw_test::read_file(f);
    const std::string good_ledger = d.ledger("flaky").string();
    sw_test::write_file(f, std::string(broken).replace(broken.find(good_ledger), good_ledger.size(),
                                                       (d.root() / "missing" / "flaky.tsv").string()));
    d.start("2026-05-01T10:00:30Z");
    d.set_clock("2026-05-01T10:01:00Z");
    EXPECT_EQ(d.last_run("flaky")["state"], "failed");
    d.set_clock("2026-05-01T10:02:00Z");
    ASSERT_TRUE(served::until([&] { return d.job("flaky")["failures_in_a_row"] == 2; }));
    EXPECT_EQ(d.job("flaky")["paused"], true);
    const std::string last_id = d.job("flaky")["last_run"]["id"];
    d.set_clock("2026-05-01T10:03:00Z");
    auto j = d.job("flaky");
    EXPECT_EQ(j["skipped_paused"], 1);
    EXPECT_EQ(j["running"], false);
    EXPECT_EQ(j["last_run"]["id"], last_id) << "a paused job does not run on its schedule";

    // Fixed and resumed by an operator: it runs at its next fire.
    sw_test::write_file(f, broken);
    ASSERT_EQ(d.api("POST", "/v1/reload").first, 200u);
    auto r = sw_test::cli(d.data(), {"jobs", "resume", "flaky"});
    ASSERT_EQ(r.code, 0) << r.err;
    d.set_clock("2026-05-01T10:04:00Z");
    EXPECT_EQ(d.last_run("flaky")["state"], "succeeded");
    EXPECT_EQ(d.stop(), 0);

    // Down for 30 minutes: the latest missed fire (10:34) runs once at
    // start, inside the one-hour window; the 29 before it are counted.
    d.start("2026-05-01T10:34:30Z");
    auto caught = d.last_run("flaky");
    EXPECT_EQ(caught["state"], "succeeded");
    EXPECT_THAT(d.run_record(caught["id"])["trigger"].get<std::string>(), HasSubstr("catch-up of 2026-05-01T10:34:00.000Z"));
    EXPECT_EQ(d.job("flaky")["missed"], 29);
    EXPECT_EQ(d.job("flaky")["paused"], false);
    EXPECT_EQ(d.stop(), 0);
}

TEST(Daemon, ANewReleaseDeployedMidApplyLeavesTheRunningRunOnItsReleaseAndTheNextRunTakesIt) {
    served d;
    d.install("items_source");
    d.install("ledger_target");
    d.ledger_job("deploy", 30, 10, d.hold("deploy", 1));
    d.start();
    const pid_t pid = d.status()["pid"];
    auto [code, started] = d.api("POST", "/v1/jobs/deploy/trigger");
    ASSERT_EQ(code, 202u) << started.dump();
    const std::string first = started["run_id"];
    ASSERT_TRUE(d.wait_held("deploy"));
    // Status shows the run in progress: its phase and how far its apply got
    // (one batch of 10 of the 30 changes, the second one held).
    json in_progress;
    const json st = d.status();
    for (auto& r : st["runs"])
        if (r["id"] == first) in_progress = r;
    ASSERT_TRUE(in_progress.is_object()) << st.dump();
    EXPECT_EQ(in_progress["phase"], "apply");
    EXPECT_EQ(in_progress["apply_progress"], json({{"planned", 30}, {"done", 10}})) << in_progress.dump();

    // v1.1.0 dropped into the inbox (written under another name, then
    // renamed in, as a deploy tool would).
    fs::copy_file(sw_test::fixture("ledger_target_v110"), d.inbox() / "ledger.so.part");
    fs::rename(d.inbox() / "ledger.so.part", d.inbox() / "ledger_target_v110.so");
    // Installed by a child process; the daemon takes the file out of the
    // inbox when it reaps that child, a moment after the release is listed.
    ASSERT_TRUE(served::until([&] {
        auto r = sw_test::cli(d.data(), {"connectors", "list", "--json"});
        return r.code == 0 && r.out.find("\"1.1.0\"") != std::string::npos;
    }));
    EXPECT_TRUE(served::until([&] { return !fs::exists(d.inbox() / "ledger_target_v110.so"); }))
        << "taken out of the inbox once installed";
    EXPECT_EQ(d.job("deploy")["running"], true) << "the run in flight was not disturbed";

    d.release("deploy");
    auto done = d.last_run("deploy");
    EXPECT_EQ(done["id"], first);
    EXPECT_EQ(done["state"], "succeeded");
    EXPECT_EQ(d.run_record(first)["target"]["version"], "1.0.0");
    EXPECT_EQ(sw_test::ledger_state(d.ledger("deploy")).size(), 30u);

    // The next run resolves the newest release in the job's range.
    auto [code2, second] = d.api("POST", "/v1/jobs/deploy/trigger");
    ASSERT_EQ(code2, 202u);
    auto next = d.last_run("deploy");
    EXPECT_EQ(next["id"], second["run_id"]);
    EXPECT_EQ(next["state"], "succeeded");
    EXPECT_EQ(d.run_record(next["id"])["target"]["version"], "1.1.0");

    EXPECT_EQ(d.status()["pid"], pid) << "no restart";
    auto audit = sw_test::cli(d.data(), {"audit", "list", "--json"});
    ASSERT_EQ(audit.code, 0) << audit.err;
    bool installed = false;
    for (auto& x : json::parse(audit.out)) {
        json e = x["entry"].is_string() ? json::parse(x["entry"].get<std::string>()) : x["entry"];
        if (e["kind"] == "connector_installed" && e["data"]["version"] == "1.1.0") {
            installed = true;
            EXPECT_EQ(e["data"]["by"], "daemon:inbox");
        }
    }
    EXPECT_TRUE(installed) << audit.out;
    EXPECT_EQ(d.stop(), 0);
}

TEST(Daemon, AConnectorThatCrashesFailsItsOwnRunWhileAnotherRunAndTheApiCarryOn) {
    served d;
    d.install("items_source");
    d.install("ledger_target");
    d.install("mis_segfault");
    d.ledger_job("healthy", 10, 5, d.hold("healthy", 1));
    sw_test::write_file(d.jobs() / "crashy.json", R"({"name": "crashy",
      "source": {"connector": "mis-segfault", "settings": {}},
      "target": {"connector": "ledger-target", "settings": {"ledger": ")" + (d.root() / "crashy.tsv").string() + R"("}},
      "mapping": {"entities": [{"target": "items", "source": "items", "fields": {"id": "id", "name": "name"}}]}})");
    d.start();
    ASSERT_EQ(d.api("POST", "/v1/jobs/healthy/trigger").first, 202u);
    ASSERT_TRUE(d.wait_held("healthy"));
    ASSERT_EQ(d.api("POST", "/v1/jobs/crashy/trigger").first, 202u);
    auto crashed = d.last_run("crashy");
    EXPECT_EQ(crashed["state"], "failed");
    EXPECT_EQ(d.run_record(crashed["id"])["category"], "connector_crashed");
    EXPECT_EQ(d.job("healthy")["running"], true);
    d.release("healthy");
    EXPECT_EQ(d.last_run("healthy")["state"], "succeeded");
    EXPECT_EQ(sw_test::ledger_state(d.ledger("healthy")).size(), 10u);
    EXPECT_EQ(d.stop(), 0);
}

TEST(Daemon, SigtermMidApplyStopsTheRunAsInterruptedAndTheNextStartResumesItToTheSameEnd) {
    // What a run that was never stopped leaves: the reference.
    served ref;
    ref.install("items_source");
    ref.install("ledger_target");
    ref.ledger_job("roster", 120, 10);
    ref.start();
    ASSERT_EQ(ref.api("POST", "/v1/jobs/roster/trigger").first, 202u);
    ASSERT_EQ(ref.last_run("roster")["state"], "succeeded");
    EXPECT_EQ(ref.stop(), 0);

    served d;
    d.install("items_source");
    d.install("ledger_target");
    d.ledger_job("roster", 120, 10, d.hold("roster", 4) + R"(, "calls": ")" + (d.root() / "calls.log").string() + "\"",
                 R"("resume_interrupted": true,)");
    d.start();
    auto [code, started] = d.api("POST", "/v1/jobs/roster/trigger");
    ASSERT_EQ(code, 202u);
    const std::string id = started["run_id"];
    ASSERT_TRUE(d.wait_held("roster"));
    EXPECT_EQ(d.stop(), 0) << "the daemon waits for its runs to stop, then exits";
    auto stopped = d.run_record(id);
    EXPECT_EQ(stopped["state"], "interrupted") << stopped.dump(2);
    EXPECT_EQ(stopped["category"], "interrupted");
    EXPECT_EQ(sw_test::ledger_state(d.ledger("roster")).size(), 40u) << "four batches applied before the stop";

    d.release("roster");  // the resumed run is not held again
    d.start();
    ASSERT_TRUE(served::until([&] { return d.run_record(id)["state"] == "succeeded"; }))
        << sw_test::read_file(d.data() / "child.out");
    EXPECT_EQ(sw_test::ledger_state(d.ledger("roster")), sw_test::ledger_state(ref.ledger("roster")));
    EXPECT_THAT(sw_test::read_file(d.root() / "calls.log"), testing::Not(HasSubstr("dup ")))
        << "no change applied before the stop was sent again";
    EXPECT_EQ(d.stop(), 0);
}

TEST(Daemon, TheCliGoesThroughARunningDaemonAndWorksDirectlyWithoutOne) {
    served d;
    d.install("items_source");
    d.install("ledger_target");
    const fs::path f = d.ledger_job("direct", 4, 10);
    d.start();
    auto r = sw_test::cli(d.data(), {"run", f.string()});
    ASSERT_EQ(r.code, 0) << r.err;
    const std::string id = sw_test::run_id_of(r.out);
    // Carried out by a child of the daemon: the run says who asked through it.
    EXPECT_EQ(d.run_record(id)["trigger"], std::string("cli:") + ::getpwuid(::geteuid())->pw_name);
    auto st = sw_test::cli(d.data(), {"status"});
    EXPECT_EQ(st.code, 0);
    EXPECT_THAT(st.out, HasSubstr("daemon pid " + std::to_string(d.pid())));
    EXPECT_THAT(st.out, HasSubstr("direct"));
    EXPECT_EQ(d.stop(), 0);
    EXPECT_FALSE(fs::exists(d.socket())) << "the socket goes with the daemon";
    auto after = sw_test::cli(d.data(), {"status"});
    EXPECT_THAT(after.out, HasSubstr("no daemon serves"));
    auto direct = sw_test::cli(d.data(), {"runs", "list"});
    EXPECT_EQ(direct.code, 0);
    EXPECT_THAT(direct.out, HasSubstr(id));
}

TEST(Releases, ListShowsWhoUsesEachPinRollsBackAndRetireRefusesWhatIsStillUsed) {
    served d;
    d.install("items_source");
    d.install("ledger_target");
    d.install("ledger_target_v110");
    const fs::path f = d.ledger_job("roster", 6, 10, d.hold("roster", 0));
    auto list = [&] { return json::parse(sw_test::cli(d.data(), {"connectors", "list", "--json"}).out); };
    auto release = [&](const std::string& version) {
        for (auto& r : list())
            if (r["name"] == "ledger-target" && r["version"] == version) return r;
        return json();
    };
    EXPECT_EQ(release("1.1.0")["jobs"], json::array({"roster"})) << "the newest in ^1.0";
    EXPECT_EQ(release("1.0.0")["jobs"], json::array());

    // Rolled back: the job's runs take 1.0.0 until unpinned. Both of its
    // connectors have a 1.0.0, so it says which.
    auto ambiguous = sw_test::cli(d.data(), {"connectors", "pin", "roster", "1.0.0"});
    EXPECT_NE(ambiguous.code, 0);
    EXPECT_THAT(ambiguous.err, HasSubstr("say which with --connector NAME"));
    auto pin = sw_test::cli(d.data(), {"connectors", "pin", "roster", "1.0.0", "--connector", "ledger-target"});
    ASSERT_EQ(pin.code, 0) << pin.err;
    EXPECT_THAT(pin.out, HasSubstr("pinned job roster to ledger-target 1.0.0"));
    EXPECT_EQ(release("1.0.0")["jobs"], json::array({"roster"}));
    EXPECT_EQ(release("1.1.0")["jobs"], json::array());
    auto unknown = sw_test::cli(d.data(), {"connectors", "pin", "roster", "9.9.9"});
    EXPECT_NE(unknown.code, 0);
    EXPECT_THAT(unknown.err, HasSubstr("neither has version 9.9.9 installed"));

    // While a run uses 1.0.0 (held mid-apply, through the daemon), retire
    // names the job, the pin and the run.
    d.start();
    auto [code, started] = d.api("POST", "/v1/jobs/roster/trigger");
    ASSERT_EQ(code, 202u);
    ASSERT_TRUE(d.wait_held("roster"));
    auto [rc, refused] = d.api("DELETE", "/v1/releases/ledger-target/1.0.0");
    ASSERT_EQ(rc, 200u);
    EXPECT_NE(refused["exit_code"], 0);
    const std::string why = refused["stderr"];
    EXPECT_THAT(why, HasSubstr("jobs that resolve to it: roster"));
    EXPECT_THAT(why, HasSubstr("jobs pinned to it: roster"));
    EXPECT_THAT(why, HasSubstr("runs using it: " + started["run_id"].get<std::string>() + " (applying)"));
    EXPECT_EQ(release("1.0.0")["runs"].size(), 1u);
    d.release("roster");
    EXPECT_EQ(d.last_run("roster")["state"], "succeeded");
    EXPECT_EQ(d.run_record(started["run_id"])["target"]["version"], "1.0.0");
    EXPECT_EQ(d.stop(), 0);

    // Unpinned and idle: it goes, files and all, and the log says so.
    ASSERT_EQ(sw_test::cli(d.data(), {"connectors", "unpin", "roster"}).code, 0) << "the one pinned connector";
    const fs::path dir = fs::path(release("1.0.0")["path"].get<std::string>()).parent_path();
    auto retired = sw_test::cli(d.data(), {"connectors", "retire", "ledger-target", "1.0.0"});
    ASSERT_EQ(retired.code, 0) << retired.err;
    EXPECT_FALSE(fs::exists(dir));
    EXPECT_TRUE(release("1.0.0").is_null());
    auto audit = sw_test::cli(d.data(), {"audit", "list", "--json"});
    std::vector<std::string> kinds;
    for (auto& x : json::parse(audit.out)) {
        json e = x["entry"].is_string() ? json::parse(x["entry"].get<std::string>()) : x["entry"];
        kinds.push_back(e["kind"]);
    }
    EXPECT_THAT(kinds, testing::IsSupersetOf({"connector_pinned", "connector_unpinned", "connector_retired"}));
    EXPECT_EQ(sw_test::cli(d.data(), {"run", f.string()}).code, 0) << "the job runs on 1.1.0";
}

// What systemd sees (config/syncwarden.service, Type=notify): READY=1 once
// the API answers, WATCHDOG=1 while it runs, STOPPING=1 on SIGTERM. The
// test stands in for systemd's notify socket.
TEST(Daemon, TellsSystemdItIsReadyKeepsTheWatchdogFedAndSaysWhenItStops) {
    served d;
    const fs::path sock = d.root() / "notify.sock";
    const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, sock.c_str(), sizeof addr.sun_path - 1);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    // Reads datagrams until one holds `what` (or two minutes pass).
    auto wait_for = [&](const std::string& what) {
        std::string all;
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(2);
        while (std::chrono::steady_clock::now() < deadline) {
            pollfd p{fd, POLLIN, 0};
            if (::poll(&p, 1, 1000) <= 0) continue;
            char buf[4096];
            const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
            if (n <= 0) continue;
            all += std::string(buf, static_cast<size_t>(n)) + "\n";
            if (all.find(what) != std::string::npos) return all;
        }
        return all;
    };
    d.start("2026-03-08T07:58:00Z", {"NOTIFY_SOCKET=" + sock.string(), "WATCHDOG_USEC=200000"});
    EXPECT_THAT(wait_for("READY=1"), HasSubstr("READY=1"));
    EXPECT_THAT(wait_for("WATCHDOG=1"), HasSubstr("WATCHDOG=1"));
    ::kill(d.pid(), SIGTERM);
    EXPECT_THAT(wait_for("STOPPING=1"), HasSubstr("STOPPING=1"));
    EXPECT_EQ(d.stop(), 0);
    ::close(fd);
}

TEST(Daemon, TheShippedUnitFileIsOneSystemdAccepts) {
    // systemd-analyze checks every directive and that ExecStart's program
    // exists: here the binary just built.
    served d;
    std::string unit = sw_test::read_file(fs::path(SW_SOURCE_DIR) / "config" / "syncwarden.service");
    const std::string shipped = "/usr/local/bin/syncwarden";
    ASSERT_NE(unit.find(shipped), std::string::npos);
    unit.replace(unit.find(shipped), shipped.size(), SW_KERNEL_BIN);
    sw_test::write_file(d.root() / "syncwarden.service", unit);
    const std::string cmd = "systemd-analyze verify " + (d.root() / "syncwarden.service").string() + " > " +
                            (d.root() / "verify.txt").string() + " 2>&1";
    EXPECT_EQ(std::system(cmd.c_str()), 0) << sw_test::read_file(d.root() / "verify.txt");
    EXPECT_THAT(unit, HasSubstr("Type=notify"));
    EXPECT_THAT(unit, HasSubstr("WatchdogSec="));
    EXPECT_THAT(unit, HasSubstr("KillMode=mixed"));
}

TEST(Daemon, AnEditedKernelConfigAppliesWithoutASignalAndABrokenOneKeepsTheLastGood) {
    served d;
    const fs::path cfg = d.root() / "kernel.json";
    sw_test::write_file(cfg, R"({"daemon": {"max_runs": 1, "max_runs_per_target": 1, "poll": "100ms"}})");
    d.with_options({"--config", cfg.string()});
    d.start();
    EXPECT_EQ(d.status()["limits"]["max_runs"], 1);

    // Edited in place, no SIGHUP: the next poll reads it.
    sw_test::write_file(cfg, R"({"daemon": {"max_runs": 3, "max_runs_per_target": 2, "poll": "100ms"}})");
    ASSERT_TRUE(served::until([&] { return d.status()["limits"]["max_runs"] == 3; })) << d.status()["limits"].dump();
    EXPECT_EQ(d.status()["limits"]["max_runs_per_target"], 2);

    // A config that no longer loads is reported; the one in force stays.
    sw_test::write_file(cfg, R"({"daemon": {"max_runs": "many"}})");
    ASSERT_TRUE(served::until([&] {
        const std::string out = sw_test::read_file(d.data() / "child.out");
        return out.find("the kernel config as it was keeps applying") != std::string::npos &&
               out.find("$.daemon.max_runs") != std::string::npos;
    })) << sw_test::read_file(d.data() / "child.out");
    EXPECT_EQ(d.status()["limits"]["max_runs"], 3);
    EXPECT_EQ(d.stop(), 0);
}

TEST(Daemon, ACliRequestFromAFolderThatIsGoneIsTheClientsErrorAndLeavesNoOutputBehind) {
    served d;
    d.start();
    const fs::path out = d.data() / "daemon" / "out";
    auto count_out = [&] {
        std::error_code ec;
        size_t n = 0;
        for (auto it = fs::directory_iterator(out, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) ++n;
        return n;
    };
    const size_t before = count_out();
    for (const json& cwd : {json((d.root() / "gone").string()), json("relative/folder"), json(7)}) {
        auto [code, body] = d.api("POST", "/v1/cli", {{"args", {"runs", "list"}}, {"cwd", cwd}});
        EXPECT_EQ(code, 400u) << cwd << ": " << body.dump();
        EXPECT_THAT(body.value("error", body.dump()), HasSubstr("$.cwd")) << body.dump();
    }
    // A folder that is there: the command runs there.
    auto [ok, body] = d.api("POST", "/v1/cli", {{"args", {"runs", "list"}}, {"cwd", d.root().string()}});
    EXPECT_EQ(ok, 200u) << body.dump();
    EXPECT_EQ(body["exit_code"], 0) << body.dump();
    EXPECT_EQ(count_out(), before) << "every request's output files are gone once it is answered";
    EXPECT_EQ(d.status()["pid"], d.pid()) << "the daemon still answers";
    EXPECT_EQ(d.stop(), 0);
}

TEST(Daemon, ASecondDaemonForTheSameDataDirIsRefused) {
    served d;
    d.start();
    auto second = sw_test::run_kernel(d.data(), {"serve"});
    EXPECT_EQ(second.code, 9);
    EXPECT_EQ(d.status()["pid"], d.pid());
    EXPECT_EQ(d.stop(), 0);
}

}  // namespace

namespace {

// A raw connection to the control socket, as a client holds it.
struct raw_conn {
    int fd = -1;
    explicit raw_conn(const fs::path& sock) {
        fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::strncpy(a.sun_path, sock.c_str(), sizeof a.sun_path - 1);
        if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
            ::close(fd);
            fd = -1;
        }
    }
    ~raw_conn() {
        if (fd >= 0) ::close(fd);
    }
    // Sends a request and reads the answer's JSON body (null when none came
    // within two minutes).
    json ask(const std::string& method, const std::string& target) {
        const std::string req = method + " " + target + " HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n";
        if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) return nullptr;
        std::string got;
        char buf[65536];
        for (;;) {
            pollfd p{fd, POLLIN, 0};
            if (::poll(&p, 1, 120000) <= 0) return nullptr;
            const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
            if (n <= 0) break;
            got.append(buf, static_cast<size_t>(n));
        }
        const auto at = got.find("\r\n\r\n");
        return at == std::string::npos ? json(nullptr) : json::parse(got.substr(at + 4), nullptr, false);
    }
    // Whether the daemon closed it (within two minutes).
    bool closed_by_peer() {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 120000) <= 0) return false;
        char c;
        return ::recv(fd, &c, 1, 0) == 0;
    }
};

double cpu_seconds_of(pid_t pid) {
    std::string stat = sw_test::read_file("/proc/" + std::to_string(pid) + "/stat");
    std::istringstream in(stat.substr(stat.rfind(')') + 2));
    std::string field;
    double ticks = 0;
    for (int i = 3; i <= 15 && in >> field; ++i)
        if (i == 14 || i == 15) ticks += std::stod(field);
    return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// The lowest descriptor number the process has free: a limit of that
// leaves it none.
rlim_t lowest_free_fd(pid_t pid) {
    std::set<long> used;
    for (auto& e : fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd"))
        used.insert(std::stol(e.path().filename().string()));
    rlim_t n = 0;
    while (used.count(static_cast<long>(n))) ++n;
    return n;
}

}  // namespace

// Out of file descriptors: the daemon backs off instead of spinning on
// accept, a jobs folder it cannot read changes nothing (no job is taken for
// removed, a paused job stays paused, and so does what it saves), and it
// answers again once descriptors are free.
TEST(Daemon, OutOfDescriptorsItBacksOffKeepsItsJobsAndTheirPausesAndRecovers) {
    served d;
    d.install("items_source");
    d.install("ledger_target");
    const fs::path f = d.ledger_job("flaky", 3, 10, "", R"("schedule": {"cron": "* * * * *", "pause_after_failures": 1},)");
    std::string text = sw_test::read_file(f);
    const std::string ledger = d.ledger("flaky").string();
    sw_test::write_file(f, text.replace(text.find(ledger), ledger.size(), (d.root() / "missing" / "f.tsv").string()));
    d.ledger_job("steady", 3, 10);
    d.start("2026-05-01T10:00:30Z");
    d.set_clock("2026-05-01T10:01:00Z");
    ASSERT_TRUE(served::until([&] { return d.job("flaky")["paused"] == true; })) << d.status().dump(2);

    std::vector<std::unique_ptr<raw_conn>> held;
    for (int i = 0; i < 8; ++i) held.push_back(std::make_unique<raw_conn>(d.socket()));
    ASSERT_TRUE(served::until([&] { return d.status()["connections"]["open"].get<size_t>() >= 9; }));
    rlimit was{};
    ASSERT_EQ(::prlimit(d.pid(), RLIMIT_NOFILE, nullptr, &was), 0);
    const rlimit tight{lowest_free_fd(d.pid()), was.rlim_max};
    ASSERT_EQ(::prlimit(d.pid(), RLIMIT_NOFILE, &tight, nullptr), 0);

    raw_conn waiting(d.socket());  // in the backlog: the daemon cannot accept it
    const auto wall0 = std::chrono::steady_clock::now();
    const double cpu0 = cpu_seconds_of(d.pid());
    auto reloaded = held[0]->ask("POST", "/v1/reload");
    ASSERT_TRUE(reloaded.is_object()) << "a connection accepted before still gets its answer";
    EXPECT_FALSE(reloaded["jobs_dir_error"].is_null()) << reloaded.dump(2);
    std::set<std::string> names;
    for (auto& j : reloaded["jobs"]) names.insert(j["name"].get<std::string>());
    EXPECT_EQ(names, (std::set<std::string>{"flaky", "steady"})) << "a folder it cannot read removes no job";
    json st;
    for (size_t i = 1; i < held.size(); ++i) {
        st = held[i]->ask("GET", "/v1/status");
        ASSERT_TRUE(st.is_object());
        if (st["connections"]["accept_failures"].get<uint64_t>() >= 4) break;
    }
    ASSERT_GE(st["connections"]["accept_failures"].get<uint64_t>(), 1u) << st.dump(2);
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
    const double cpu = cpu_seconds_of(d.pid()) - cpu0;
    EXPECT_LT(cpu, 0.5 * wall + 0.05) << "it spun: " << cpu << " s of CPU in " << wall << " s";
    for (auto& j : st["jobs"]) {
        if (j["name"] == "flaky") {
            EXPECT_EQ(j["paused"], true);
        }
    }
    EXPECT_THAT(sw_test::read_file(d.data() / "daemon" / "state.json"), HasSubstr("\"paused\": true"));

    ASSERT_EQ(::prlimit(d.pid(), RLIMIT_NOFILE, &was, nullptr), 0);
    auto late = waiting.ask("GET", "/v1/status");
    ASSERT_TRUE(late.is_object()) << "the waiting client is answered once descriptors are free";
    EXPECT_EQ(d.job("flaky")["paused"], true);
    EXPECT_EQ(d.job("steady")["name"], "steady");
    EXPECT_EQ(d.stop(), 0);
}

// Connections are capped, and one that never sends its request is let go.
TEST(Daemon, ConnectionsAreCappedAndAnIdleOneIsClosed) {
    served d;
    sw_test::write_file(d.root() / "kernel.json", R"({"daemon": {"max_connections": 3, "idle_timeout": "500ms"}})");
    d.with_options({"--config", (d.root() / "kernel.json").string()});
    d.start();
    raw_conn a(d.socket()), b(d.socket()), c(d.socket());
    raw_conn fourth(d.socket());
    EXPECT_TRUE(a.closed_by_peer()) << "an idle connection is closed";
    EXPECT_TRUE(b.closed_by_peer());
    EXPECT_TRUE(c.closed_by_peer());
    auto st = fourth.ask("GET", "/v1/status");
    ASSERT_TRUE(st.is_object()) << "the connection over the cap waited, and was served when one closed";
    EXPECT_EQ(st["connections"]["max"], 3);
    EXPECT_EQ(d.stop(), 0);
}

// A worker is never a person: even with every confinement layer switched
// off (so that it can reach the socket at all, as the kernel's own uid),
// the daemon refuses what a connector asks of it.
TEST(Daemon, AWorkerThatReachesTheControlSocketIsRefused) {
    served d;
    sw_test::install_shipped(d.data());
    d.install("probe");
    sw_test::write_file(d.root() / "kernel.json", R"({"sandbox": {"require": false}})");
    d.with_options({"--config", (d.root() / "kernel.json").string()});
    const fs::path drop = d.root() / "drop";
    sw_test::write_file(d.jobs() / "probe.json", R"({"name": "probe",
      "source": {"connector": "probe", "settings": {"data_dir": ")" + d.data().string() + R"(", "kernel_uid": )" +
                                                     std::to_string(::getuid()) + R"(, "spare_kernel": true}},
      "target": {"connector": "vendor-csv", "settings": {"folder": ")" + drop.string() + R"(",
        "files": [{"entity": "probes", "file": "probes.csv", "key": "try", "columns": ["try", "outcome"]}]}},
      "mapping": {"entities": [{"target": "probes", "source": "probes", "fields": {"try": "try", "outcome": "outcome"}}]}})");
    d.start("2026-05-01T10:00:00Z", {"SYNCWARDEN_SANDBOX_PRETEND_MISSING=identity,files,network,syscalls"});
    auto [code, body] = d.api("POST", "/v1/jobs/probe/trigger");
    ASSERT_EQ(code, 202u) << body.dump();
    EXPECT_EQ(d.last_run("probe")["state"], "succeeded");
    const std::string csv = sw_test::read_file(drop / "probes.csv");
    const auto at = csv.find("connect to the control socket");
    ASSERT_NE(at, std::string::npos) << csv;
    const std::string row = csv.substr(at, csv.find('\n', at) - at);
    EXPECT_THAT(row, HasSubstr("ALLOWED: connected")) << "the layers were off: the socket was reachable";
    EXPECT_THAT(row, HasSubstr("403")) << "and the daemon refused the worker: " << row;
    EXPECT_EQ(d.stop(), 0);
}
