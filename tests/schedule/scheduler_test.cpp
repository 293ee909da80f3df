// The scheduler's decisions against a clock the test moves: when jobs fire,
// overlap, catch-up after a restart, pause after failures, and the
// concurrency limits.
#include <syncwarden/kernel/scheduler.hpp>

#include <gtest/gtest.h>

using namespace syncwarden::kernel;
using namespace std::chrono_literals;

namespace {

std::chrono::system_clock::time_point at(const std::string& utc) { return *parse_iso8601(utc); }

cron_schedule cron(const std::string& expr) {
    auto c = cron_schedule::parse(expr, "UTC");
    EXPECT_TRUE(c.is_ok()) << c.status().message();
    return c.value();
}

std::vector<std::string> names(const std::vector<scheduled_run>& runs) {
    std::vector<std::string> out;
    for (auto& r : runs) out.push_back(r.job);
    return out;
}

TEST(scheduler, fires_at_the_cron_time_and_says_when_to_wake) {
    manual_clock clk(at("2026-03-02T01:00:00.000Z"));
    scheduler s(clk, 0, 0);
    s.set_job("nightly", cron("0 2 * * *"), {}, std::nullopt);
    EXPECT_EQ(s.next_wake(), at("2026-03-02T02:00:00.000Z"));
    clk.advance(59min);
    EXPECT_TRUE(s.take_due().empty());
    clk.advance(1min);
    auto runs = s.take_due();
    ASSERT_EQ(runs.size(), 1u);
    EXPECT_EQ(runs[0].job, "nightly");
    EXPECT_EQ(runs[0].due, at("2026-03-02T02:00:00.000Z"));
    EXPECT_FALSE(runs[0].catch_up);
    EXPECT_EQ(s.next_wake(), at("2026-03-03T02:00:00.000Z"));
    EXPECT_TRUE(s.state("nightly")->running);
    s.finished("nightly", true);
    EXPECT_FALSE(s.state("nightly")->running);
    EXPECT_EQ(s.state("nightly")->last_fire, at("2026-03-02T02:00:00.000Z"));
}

TEST(scheduler, a_fire_during_a_run_is_skipped_by_default) {
    manual_clock clk(at("2026-03-02T00:00:00.000Z"));
    scheduler s(clk, 0, 0);
    s.set_job("roster", cron("*/5 * * * *"), {}, std::nullopt);
    clk.advance(5min);
    EXPECT_EQ(names(s.take_due()), std::vector<std::string>{"roster"});
    clk.advance(5min);
    EXPECT_TRUE(s.take_due().empty()) << "still running at 00:10";
    EXPECT_EQ(s.state("roster")->skipped_overlap, 1u);
    s.finished("roster", true);
    clk.advance(2min);
    EXPECT_TRUE(s.take_due().empty()) << "the skipped fire is not made up";
    clk.advance(3min);
    EXPECT_EQ(names(s.take_due()), std::vector<std::string>{"roster"});
}

TEST(scheduler, with_overlap_queue_one_run_waits_for_the_running_one) {
    manual_clock clk(at("2026-03-02T00:00:00.000Z"));
    scheduler s(clk, 0, 0);
    schedule_policy p;
    p.on_overlap = schedule_policy::overlap::queue;
    s.set_job("roster", cron("*/5 * * * *"), p, std::nullopt);
    clk.advance(5min);
    ASSERT_EQ(s.take_due().size(), 1u);
    clk.advance(5min);
    EXPECT_TRUE(s.take_due().empty());
    EXPECT_TRUE(s.state("roster")->queued);
    clk.advance(5min);
    EXPECT_TRUE(s.take_due().empty());
    EXPECT_EQ(s.state("roster")->skipped_overlap, 1u) << "one run is queued at most";
    s.finished("roster", true);
    auto runs = s.take_due();
    ASSERT_EQ(runs.size(), 1u);
    EXPECT_EQ(runs[0].due, at("2026-03-02T00:10:00.000Z")) << "the queued run stands for the 00:10 fire";
    EXPECT_FALSE(s.state("roster")->queued);
}

TEST(scheduler, after_a_restart_the_latest_missed_fire_runs_once_inside_the_catch_up_window) {
    schedule_policy p;
    p.catch_up = 1h;
    {
        // Down from 01:00 to 02:30: the 02:00 fire, half an hour old, runs.
        manual_clock clk(at("2026-03-02T02:30:00.000Z"));
        scheduler s(clk, 0, 0);
        s.set_job("hourly", cron("0 * * * *"), p, at("2026-03-02T01:00:00.000Z"));
        auto runs = s.take_due();
        ASSERT_EQ(runs.size(), 1u);
        EXPECT_TRUE(runs[0].catch_up);
        EXPECT_EQ(runs[0].due, at("2026-03-02T02:00:00.000Z"));
        EXPECT_EQ(s.state("hourly")->missed, 0u);
    }
    {
        // Down for five hours: one run (for 06:00), four fires missed.
        manual_clock clk(at("2026-03-02T06:30:00.000Z"));
        scheduler s(clk, 0, 0);
        s.set_job("hourly", cron("0 * * * *"), p, at("2026-03-02T01:00:00.000Z"));
        auto runs = s.take_due();
        ASSERT_EQ(runs.size(), 1u);
        EXPECT_EQ(runs[0].due, at("2026-03-02T06:00:00.000Z"));
        EXPECT_EQ(s.state("hourly")->missed, 4u);
    }
    {
        // The latest missed fire is older than the window: nothing runs.
        manual_clock clk(at("2026-03-02T06:30:00.000Z"));
        scheduler s(clk, 0, 0);
        schedule_policy narrow;
        narrow.catch_up = 10min;
        s.set_job("hourly", cron("0 * * * *"), narrow, at("2026-03-02T01:00:00.000Z"));
        EXPECT_TRUE(s.take_due().empty());
        EXPECT_EQ(s.state("hourly")->missed, 5u);
        EXPECT_EQ(s.next_wake(), at("2026-03-02T07:00:00.000Z"));
    }
    {
        // No catch-up (the default): missed fires are only counted.
        manual_clock clk(at("2026-03-02T02:30:00.000Z"));
        scheduler s(clk, 0, 0);
        s.set_job("hourly", cron("0 * * * *"), {}, at("2026-03-02T01:00:00.000Z"));
        EXPECT_TRUE(s.take_due().empty());
        EXPECT_EQ(s.state("hourly")->missed, 1u);
    }
}

TEST(scheduler, a_job_that_keeps_failing_pauses_until_resumed) {
    manual_clock clk(at("2026-03-02T00:00:00.000Z"));
    scheduler s(clk, 0, 0);
    schedule_policy p;
    p.pause_after = 2;
    s.set_job("vendor", cron("0 * * * *"), p, std::nullopt);
    for (int i = 0; i < 2; ++i) {
        clk.advance(1h);
        ASSERT_EQ(s.take_due().size(), 1u);
        s.finished("vendor", false);
    }
    EXPECT_TRUE(s.state("vendor")->paused);
    EXPECT_EQ(s.state("vendor")->failures_in_a_row, 2u);
    clk.advance(1h);
    EXPECT_TRUE(s.take_due().empty()) << "paused";
    EXPECT_EQ(s.state("vendor")->skipped_paused, 1u);
    EXPECT_EQ(s.start_now("vendor"), scheduler::trigger::started) << "an operator may still run it by hand";
    s.finished("vendor", false);
    s.resume("vendor");
    EXPECT_FALSE(s.state("vendor")->paused);
    clk.advance(1h);
    EXPECT_EQ(s.take_due().size(), 1u);
    s.finished("vendor", true);
    EXPECT_EQ(s.state("vendor")->failures_in_a_row, 0u);
}

TEST(scheduler, runs_beyond_the_global_and_per_target_limits_wait_their_turn) {
    manual_clock clk(at("2026-03-02T00:00:00.000Z"));
    scheduler s(clk, 2, 1);
    auto on = [](const std::string& target) {
        schedule_policy p;
        p.target = target;
        return p;
    };
    s.set_job("a1", cron("0 * * * *"), on("scim vendor-a"), std::nullopt);
    s.set_job("a2", cron("0 * * * *"), on("scim vendor-a"), std::nullopt);
    s.set_job("b1", cron("0 * * * *"), on("ldap district"), std::nullopt);
    s.set_job("c1", cron("0 * * * *"), on("csv drop"), std::nullopt);
    clk.advance(1h);
    EXPECT_EQ(names(s.take_due()), (std::vector<std::string>{"a1", "b1"})) << "a2 waits for vendor-a, c1 for a slot";
    EXPECT_TRUE(s.state("a2")->waiting);
    s.finished("b1", true);
    EXPECT_EQ(names(s.take_due()), std::vector<std::string>{"c1"}) << "a2 still waits for vendor-a";
    s.finished("a1", true);
    EXPECT_EQ(names(s.take_due()), std::vector<std::string>{"a2"});
    EXPECT_EQ(s.start_now("b1"), scheduler::trigger::queued) << "two runs are going";
    s.finished("c1", true);
    EXPECT_EQ(names(s.take_due()), std::vector<std::string>{"b1"});
    EXPECT_EQ(s.start_now("b1"), scheduler::trigger::already_running);
    EXPECT_EQ(s.start_now("nope"), scheduler::trigger::unknown_job);
}

TEST(scheduler, a_changed_job_keeps_its_running_run_and_a_removed_one_ends_after_it) {
    manual_clock clk(at("2026-03-02T00:00:00.000Z"));
    scheduler s(clk, 0, 0);
    s.set_job("roster", cron("0 * * * *"), {}, std::nullopt);
    clk.advance(1h);
    ASSERT_EQ(s.take_due().size(), 1u);
    s.set_job("roster", cron("30 * * * *"), {}, std::nullopt);
    EXPECT_TRUE(s.state("roster")->running);
    EXPECT_EQ(s.next_wake(), at("2026-03-02T01:30:00.000Z"));
    s.remove_job("roster");
    EXPECT_TRUE(s.state("roster").has_value()) << "kept until its run ends";
    EXPECT_FALSE(s.next_wake().has_value());
    s.finished("roster", true);
    EXPECT_FALSE(s.state("roster").has_value());
}

}  // namespace
