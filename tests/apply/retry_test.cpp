// The retry manager: backoff, retry-after, never-retry categories, the
// circuit breaker, the rate limit and the deadline, on an injected clock.
// The ledger-target fixture makes every accepted change durable at once and
// logs every apply call.
#include "test_support.hpp"

#include <syncwarden/kernel/config.hpp>
#include <syncwarden/kernel/locks.hpp>
#include <syncwarden/kernel/pipeline.hpp>
#include <syncwarden/kernel/registry.hpp>
#include <syncwarden/kernel/retry.hpp>
#include <syncwarden/kernel/store.hpp>

#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

#include <csignal>
#include <fstream>
#include <random>
#include <set>

using namespace syncwarden::kernel;
using ::testing::HasSubstr;
using std::chrono::milliseconds;

namespace {

namespace fs = std::filesystem;

std::vector<std::string> lines(const fs::path& p) {
    std::vector<std::string> out;
    std::ifstream in(p);
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
}

struct ledger_setup {
    sw_test::temp_dir tmp;
    manual_clock clk{std::chrono::system_clock::time_point(std::chrono::hours(24 * 365 * 56))};
    clock_sleeper sleeper{clk};
    ledger_setup() {
        for (auto f : {"items_source", "ledger_target"}) {
            auto r = sw_test::cli(data(), {"connectors", "install", sw_test::fixture(f).string()});
            EXPECT_EQ(r.code, 0) << r.err;
        }
    }
    fs::path data() const { return tmp / "data"; }
    fs::path ledger() const { return tmp / "ledger.tsv"; }
    fs::path calls() const { return tmp / "calls.log"; }
    // `target`: extra target settings (leading comma); `top`: top-level
    // members (trailing comma).
    fs::path job(int count, int batch, const std::string& target = "", const std::string& top = "") const {
        auto f = tmp / "job.json";
        sw_test::write_file(f, R"({"name": "ledger", )" + top + R"(
          "source": {"connector": "items-source", "settings": {"count": )" + std::to_string(count) + R"(}},
          "target": {"connector": "ledger-target", "settings": {"ledger": ")" + ledger().string() +
                                   R"(", "calls": ")" + calls().string() + "\"" + target + R"(}},
          "mapping": {"entities": [{"target": "items", "source": "items", "fields": {"id": "id", "name": "name"}}]},
          "apply": {"batch_size": )" + std::to_string(batch) + "}}");
        return f;
    }
    // Runs the job in this process on the manual clock.
    run_outcome run(const fs::path& job_file, const cancel_flag* cancel = nullptr) {
        auto store = open_sqlite_store(data() / "syncwarden.db");
        EXPECT_TRUE(store.is_ok());
        registry reg(data() / "connectors", clk);
        pipeline p(reg, **store, clk, data());
        p.set_sleeper(&sleeper);
        p.set_cancel(cancel);
        auto job = load_job(job_file);
        EXPECT_TRUE(job.is_ok()) << job.status().message();
        return p.run(*job, {});
    }
    nlohmann::json show(const std::string& id) const {
        return nlohmann::json::parse(sw_test::cli(data(), {"runs", "show", id, "--json"}).out);
    }
};

TEST(backoff, full_jitter_stays_under_the_capped_exponential_and_retry_after_wins) {
    retry_policy p;
    p.initial = milliseconds(1000);
    p.coefficient = 2;
    p.max_interval = milliseconds(5000);
    backoff b(p, 42);
    std::set<long long> seen;
    for (int i = 0; i < 200; ++i) {
        for (uint32_t attempt = 1; attempt <= 6; ++attempt) {
            auto d = b.delay(attempt, 0).count();
            const long long cap = std::min<long long>(5000, 1000LL << (attempt - 1));
            EXPECT_GE(d, 0);
            EXPECT_LE(d, cap) << "attempt " << attempt;
            seen.insert(d);
        }
    }
    EXPECT_GT(seen.size(), 100u) << "the waits are spread, not one fixed value";
    EXPECT_EQ(b.delay(3, 7500).count(), 7500) << "a vendor's retry-after is honoured exactly";
}

TEST(circuit_breaker, opens_on_consecutive_failures_or_a_failure_rate) {
    retry_policy p;
    p.breaker_consecutive = 3;
    p.breaker_window = 10;
    p.breaker_rate = 0.5;
    circuit_breaker a(p);
    a.record(true);
    a.record(true);
    a.record(false);
    a.record(true);
    a.record(true);
    EXPECT_FALSE(a.open());
    a.record(true);
    EXPECT_TRUE(a.open());
    EXPECT_THAT(a.why(), HasSubstr("3 attempts in a row failed"));
    circuit_breaker b(p);
    for (int i = 0; i < 10; ++i) b.record(i % 2 == 0);
    EXPECT_TRUE(b.open());
    EXPECT_THAT(b.why(), HasSubstr("5 of the last 10 attempts failed"));
}

TEST(rate_limiter, paces_requests_on_the_injected_clock) {
    manual_clock clk{std::chrono::system_clock::time_point{}};
    clock_sleeper s(clk);
    retry_policy p;
    p.rate_per_second = 10;
    p.burst = 2;
    rate_limiter l(p, clk, s);
    for (int i = 0; i < 12; ++i) ASSERT_EQ(l.acquire(1, nullptr), SW_OK);
    // Two from the burst, then one every 100 ms.
    EXPECT_EQ(l.waited().count(), 1000);
    EXPECT_EQ(s.waits.size(), 10u);
}

// The acceptance case: a fifth of the calls throttled with Retry-After.
TEST(retry, a_target_throttling_a_fifth_of_its_calls_converges_and_every_wait_honours_retry_after) {
    ledger_setup s;
    auto o = s.run(s.job(300, 10, R"(, "throttle_percent": 20, "retry_after_ms": 1500, "seed": 7)"));
    ASSERT_TRUE(o.status.is_ok()) << o.status.message();
    EXPECT_EQ(o.applied, 300u);
    EXPECT_EQ(sw_test::ledger_state(s.ledger()).size(), 300u);
    const size_t calls = lines(s.calls()).size();
    const size_t throttled = calls - 30;  // 30 batches of 10; each throttled call was sent again
    EXPECT_GT(throttled, 0u);
    ASSERT_EQ(s.sleeper.waits.size(), throttled);
    for (auto w : s.sleeper.waits) EXPECT_EQ(w.count(), 1500) << "Retry-After decides the wait";
    auto summary = nlohmann::json::parse(o.run.summary_json);
    EXPECT_EQ(summary["resent"], throttled * 10);
    EXPECT_EQ(summary["retry_wait_ms"], 1500 * throttled);
    auto j = s.show(o.run.id);
    EXPECT_EQ(j["retried_attempts"].size(), throttled * 10);
    EXPECT_EQ(j["retried_attempts"][0]["category"], "http_429");
    EXPECT_EQ(j["retried_attempts"][0]["retry_after_ms"], 1500);
}

TEST(retry, a_transient_failure_is_retried_per_change_with_growing_jittered_waits) {
    ledger_setup s;
    auto o = s.run(s.job(5, 5, R"(, "transient": {"i-000003": 2})"));
    ASSERT_TRUE(o.status.is_ok()) << o.status.message();
    EXPECT_EQ(o.applied, 5u);
    // Only the failing change was sent again, alone, with its attempt number.
    auto c = lines(s.calls());
    ASSERT_EQ(c.size(), 3u);
    EXPECT_THAT(c[1], HasSubstr("attempt=2 ids="));
    EXPECT_EQ(c[1].find(','), std::string::npos) << c[1];
    EXPECT_THAT(c[2], HasSubstr("attempt=3 ids="));
    ASSERT_EQ(s.sleeper.waits.size(), 2u);
    EXPECT_LE(s.sleeper.waits[0].count(), 1000);
    EXPECT_LE(s.sleeper.waits[1].count(), 2000);
    auto j = s.show(o.run.id);
    EXPECT_EQ(j["changes"][2]["attempts"], 3);
    EXPECT_EQ(j["changes"][2]["status"], "applied");
    ASSERT_EQ(j["retried_attempts"].size(), 2u);
    EXPECT_EQ(j["retried_attempts"][0]["category"], "timeout");
}

TEST(retry, permanent_and_never_retry_failures_are_not_retried_and_are_grouped_by_category) {
    ledger_setup s;
    auto o = s.run(s.job(6, 6, R"(, "permanent": ["i-000002"], "transient": {"i-000004": 1})",
                         R"("retry": {"never_retry": ["timeout"]},)"));
    EXPECT_EQ(o.run.state, "partially_failed");
    EXPECT_EQ(o.applied, 4u);
    EXPECT_EQ(o.failed, 2u);
    EXPECT_EQ(lines(s.calls()).size(), 1u) << "nothing was sent twice";
    EXPECT_TRUE(s.sleeper.waits.empty());
    auto text = sw_test::cli(s.data(), {"runs", "show", o.run.id});
    EXPECT_THAT(text.out, HasSubstr("failed changes by category:\n  refused: 1\n"));
    EXPECT_THAT(text.out, HasSubstr("  timeout: 1\n"));
    EXPECT_THAT(text.out, HasSubstr("create items/i-000002: permanent the vendor refused i-000002"));
    // Once the vendor accepts them, a healthy run delivers the two that failed.
    auto healthy = s.run(s.job(6, 6));
    EXPECT_TRUE(healthy.status.is_ok()) << healthy.status.message();
    EXPECT_EQ(healthy.applied, 2u);
    EXPECT_EQ(sw_test::ledger_state(s.ledger()).size(), 6u);
}

TEST(retry, a_change_that_keeps_failing_gives_up_after_max_attempts) {
    ledger_setup s;
    auto o = s.run(s.job(2, 2, R"(, "transient": {"i-000001": 10})", R"("retry": {"max_attempts": 3},)"));
    EXPECT_EQ(o.run.state, "partially_failed");
    EXPECT_EQ(lines(s.calls()).size(), 3u);
    auto j = s.show(o.run.id);
    EXPECT_EQ(j["changes"][0]["status"], "retryable");
    EXPECT_EQ(j["changes"][0]["attempts"], 3);
    EXPECT_THAT(j["changes"][0]["message"].get<std::string>(), HasSubstr("gave up after 3 attempts"));
}

TEST(retry, a_wait_past_the_apply_deadline_ends_the_change_as_failed_retryable) {
    ledger_setup s;
    auto o = s.run(s.job(3, 3, R"(, "throttle_percent": 100, "retry_after_ms": 90000)",
                         R"("deadlines": {"apply": "1m"}, "retry": {"breaker": {"consecutive_failures": 0, "window": 0}},)"));
    EXPECT_EQ(o.run.state, "failed");
    EXPECT_TRUE(s.sleeper.waits.empty()) << "no wait runs past the deadline";
    auto j = s.show(o.run.id);
    for (auto& c : j["changes"]) {
        EXPECT_EQ(c["status"], "failed_retryable");
        EXPECT_THAT(c["message"].get<std::string>(), HasSubstr("past the apply phase's deadline"));
    }
}

TEST(retry, the_circuit_breaker_stops_a_retry_storm_against_a_sick_vendor) {
    ledger_setup s;
    auto o = s.run(s.job(100, 1, R"(, "always_retryable": true)",
                         R"("retry": {"breaker": {"consecutive_failures": 5}},)"));
    EXPECT_EQ(o.run.state, "failed");
    EXPECT_EQ(o.run.category, "target_unavailable");
    EXPECT_THAT(o.status.message(), HasSubstr("target_unavailable: ledger-target 1.0.0 looks unavailable: 5 attempts "
                                              "in a row failed"));
    EXPECT_THAT(o.status.message(), HasSubstr("retryable http_503 (the vendor is down)"));
    EXPECT_EQ(lines(s.calls()).size(), 5u) << "the sixth call never went out";
    EXPECT_EQ(exit_code_for(o.status), 6);
}

TEST(retry, the_rate_limit_paces_apply_calls_and_a_connector_that_acquires_paces_itself) {
    {
        ledger_setup s;
        auto o = s.run(s.job(20, 1, "", R"("rate_limit": {"requests_per_second": 5, "burst": 1},)"));
        ASSERT_TRUE(o.status.is_ok()) << o.status.message();
        long long total = 0;
        for (auto w : s.sleeper.waits) total += w.count();
        EXPECT_EQ(total, 19 * 200) << "20 calls at 5 a second: 19 gaps of 200 ms";
    }
    {
        ledger_setup s;
        auto o = s.run(s.job(20, 20, R"(, "pace": true)", R"("rate_limit": {"requests_per_second": 10, "burst": 1},)"));
        ASSERT_TRUE(o.status.is_ok()) << o.status.message();
        long long total = 0;
        for (auto w : s.sleeper.waits) total += w.count();
        // The kernel's permit for the first call (it cannot know yet that the
        // connector paces itself), then one per change the connector asks for.
        EXPECT_EQ(total, 20 * 100);
    }
}

TEST(retry, bad_retry_settings_name_the_json_path) {
    ledger_setup s;
    auto r = sw_test::cli(s.data(), {"run", s.job(1, 1, "", R"("retry": {"max_attempts": 0},)").string()});
    EXPECT_EQ(r.code, 3);
    EXPECT_THAT(r.err, HasSubstr("$.retry.max_attempts: expected a number from 1 to 1000"));
    r = sw_test::cli(s.data(), {"run", s.job(1, 1, "", R"("rate_limit": {"per_second": 3},)").string()});
    EXPECT_EQ(r.code, 3);
    EXPECT_THAT(r.err, HasSubstr("$.rate_limit.per_second: unknown field"));
}

// A sleeper that cancels the run at its first wait, as a SIGINT would.
struct cancel_at_first_wait final : sleeper {
    cancel_flag& flag;
    explicit cancel_at_first_wait(cancel_flag& f) : flag(f) {}
    bool sleep_for(milliseconds, const cancel_flag*) override {
        flag.signal = SIGINT;
        flag.requested = true;
        return false;
    }
};

TEST(resume, a_cancelled_apply_resumes_without_resending_acknowledged_changes) {
    ledger_setup s;
    cancel_flag flag;
    cancel_at_first_wait cancel(flag);
    auto job = s.job(50, 10, R"(, "transient": {"i-000023": 1})");
    run_outcome first;
    {
        auto store = open_sqlite_store(s.data() / "syncwarden.db");
        registry reg(s.data() / "connectors", s.clk);
        pipeline p(reg, **store, s.clk, s.data());
        p.set_sleeper(&cancel);
        p.set_cancel(&flag);
        first = p.run(*load_job(job), {});
    }
    EXPECT_EQ(first.run.state, "cancelled") << first.status.message();
    EXPECT_EQ(exit_code_for(first.status), 8);
    const size_t before = lines(s.ledger()).size();
    EXPECT_EQ(before, 29u) << "batches 1 and 2, and batch 3 but its failed change";
    const size_t calls_before = lines(s.calls()).size();

    auto r = sw_test::cli(s.data(), {"runs", "resume", first.run.id});
    EXPECT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_THAT(r.out, HasSubstr("run " + first.run.id + " of job ledger: succeeded"));
    EXPECT_THAT(r.out, HasSubstr("applied 50 changes, 0 failed"));
    EXPECT_EQ(sw_test::ledger_state(s.ledger()).size(), 50u);
    EXPECT_EQ(lines(s.ledger()).size(), 50u) << "no change was applied twice";
    auto after = lines(s.calls());
    ASSERT_GT(after.size(), calls_before);
    // The batch in flight goes again with attempt 2, without the 9 changes
    // the target had acknowledged.
    EXPECT_THAT(after[calls_before], HasSubstr("attempt=2 ids="));
    EXPECT_EQ(std::count(after[calls_before].begin(), after[calls_before].end(), ','), 0);
    auto j = s.show(first.run.id);
    EXPECT_EQ(j["state"], "succeeded");
    size_t applied = 0;
    for (auto& c : j["changes"]) applied += c["status"] == "applied";
    EXPECT_EQ(applied, 50u) << "the summary adds up across the resume";
    EXPECT_EQ(j["summary"]["applied"], 50);
    auto again = sw_test::cli(s.data(), {"runs", "resume", first.run.id});
    EXPECT_EQ(again.code, 2);
    EXPECT_THAT(again.err, HasSubstr("ended succeeded"));
}

// Two runs on one system: the second waits, or with --no-wait exits 9.
TEST(target_lock, a_second_apply_to_the_same_system_waits_or_exits_busy) {
    ledger_setup s;
    // A run that holds the lock: stopped by its first throttle's wait...
    // held instead by taking the lock file directly, as a live run does.
    auto job = s.job(3, 3);
    auto probe = sw_test::cli(s.data(), {"run", job.string(), "--dry-run"});
    ASSERT_EQ(probe.code, 0) << probe.err;
    char real[4096];
    ASSERT_TRUE(::realpath(s.ledger().parent_path().c_str(), real));
    // The fixture names its system by the ledger's real path, which exists once written.
    sw_test::write_file(s.ledger(), "");
    ASSERT_TRUE(::realpath(s.ledger().c_str(), real));
    auto held = file_lock::take(target_lock_path(s.data(), real), "run r-other pid 1\n", false);
    ASSERT_TRUE(held.is_ok() && *held);
    auto r = sw_test::cli(s.data(), {"run", job.string(), "--no-wait"});
    EXPECT_EQ(r.code, 9) << r.out << r.err;
    EXPECT_THAT(r.err, HasSubstr("busy: another run (run r-other pid 1) is applying to the system"));
    EXPECT_TRUE(lines(s.calls()).empty()) << "nothing was applied";
    held->reset();
    r = sw_test::cli(s.data(), {"run", job.string(), "--no-wait"});
    EXPECT_EQ(r.code, 0) << r.out << r.err;
}

}  // namespace

namespace {

// SIGKILL of the kernel at 50 random points of a 10,000-change apply, each
// followed by `runs resume`: the target ends as after a clean run, no
// acknowledged change is sent again (only the batch in flight at a kill
// comes back, as attempt 2), and the run's counts add up.
TEST(resume, fifty_kills_during_a_ten_thousand_change_apply_end_as_a_clean_run) {
    ledger_setup clean;
    auto clean_run = sw_test::cli(clean.data(), {"run", clean.job(10000, 20).string()});
    ASSERT_EQ(clean_run.code, 0) << clean_run.err;
    const auto expected = sw_test::ledger_state(clean.ledger());
    ASSERT_EQ(expected.size(), 10000u);

    ledger_setup s;
    // In process: the ledger SIGKILLs the process it runs in, the kernel
    // (a confined worker could not signal the kernel: sandbox_test).
    const auto job = s.job(10000, 20, "", R"("isolation": "in-process",)");
    std::mt19937 rng(20261127);
    auto kill_point = [&] {
        return "SYNCWARDEN_TEST_KILL_KERNEL_AT=" + std::to_string(1 + rng() % 10) + (rng() % 2 ? ":after" : ":before");
    };
    auto first = sw_test::run_kernel(s.data(), {"run", job.string()}, {kill_point()});
    ASSERT_EQ(first.signal, SIGKILL) << sw_test::read_file(s.data() / "child.out");
    auto runs = nlohmann::json::parse(sw_test::cli(s.data(), {"runs", "list", "--json"}).out);
    ASSERT_EQ(runs.size(), 1u);
    const std::string id = runs[0]["id"];
    EXPECT_EQ(runs[0]["state"], "interrupted");
    int kills = 1;
    while (kills < 50) {
        auto r = sw_test::run_kernel(s.data(), {"runs", "resume", id}, {kill_point()});
        if (r.signal != SIGKILL) {
            ADD_FAILURE() << "the plan ran out after " << kills << " kills: " << sw_test::read_file(s.data() / "child.out");
            break;
        }
        ++kills;
    }
    auto last = sw_test::run_kernel(s.data(), {"runs", "resume", id});
    ASSERT_EQ(last.code, 0) << sw_test::read_file(s.data() / "child.out");
    EXPECT_THAT(sw_test::read_file(s.data() / "child.out"), HasSubstr("applied 10000 changes, 0 failed"));

    EXPECT_EQ(sw_test::ledger_state(s.ledger()), expected) << "the target ends as after a clean run";
    EXPECT_EQ(lines(s.ledger()).size(), 10000u) << "every change was applied exactly once";
    // A change the kernel recorded as acknowledged never comes back: what
    // the target sees twice is only ever a batch that was in flight at a
    // kill, re-sent as attempt 2.
    size_t dups = 0;
    for (auto& l : lines(s.calls()))
        if (l.rfind("dup ", 0) == 0) {
            ++dups;
            EXPECT_THAT(l, HasSubstr("attempt=2")) << l;
        }
    EXPECT_GT(dups, 0u) << "kills after the target wrote a batch were exercised";
    EXPECT_LE(dups, 50u * 20u);
    auto j = s.show(id);
    EXPECT_EQ(j["state"], "succeeded");
    EXPECT_EQ(j["summary"]["applied"], 10000);
    EXPECT_EQ(j["summary"]["failed"], 0);
    size_t applied = 0;
    for (auto& c : j["changes"]) applied += c["status"] == "applied";
    EXPECT_EQ(applied, 10000u);
}

}  // namespace

namespace {

TEST(retry_failed, plans_only_the_failed_keys_again_against_the_current_target) {
    ledger_setup s;
    auto first = sw_test::cli(s.data(), {"run", s.job(5, 5, R"(, "permanent": ["i-000002", "i-000004"])").string()});
    ASSERT_EQ(first.code, 6) << first.out << first.err;
    const std::string id = sw_test::run_id_of(first.out);
    EXPECT_EQ(sw_test::ledger_state(s.ledger()).size(), 3u);
    // The vendor fixed its side; one of the two was also added by hand.
    s.job(5, 5);
    sw_test::write_file(s.ledger(), sw_test::read_file(s.ledger()) + "i-000004\tName 4\thand\n");
    auto r = sw_test::cli(s.data(), {"runs", "retry-failed", id});
    EXPECT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_THAT(r.out, HasSubstr("retrying the failed changes of run " + id));
    EXPECT_THAT(r.out, HasSubstr("applied 1 changes, 0 failed")) << "i-000004 is there now: only i-000002 is left";
    EXPECT_EQ(sw_test::ledger_state(s.ledger()).size(), 5u);
    auto again = sw_test::cli(s.data(), {"runs", "retry-failed", sw_test::run_id_of(r.out)});
    EXPECT_EQ(again.code, 2);
    EXPECT_THAT(again.err, HasSubstr("has no failed changes to retry"));
}

}  // namespace
