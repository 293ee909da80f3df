// Cron schedules: the reference table (fire times computed by an
// independent implementation), daylight saving changes worked out by hand
// for America/Chicago and Europe/Berlin, and the errors a config author
// sees.
#include <syncwarden/kernel/clock.hpp>
#include <syncwarden/kernel/cron.hpp>

#include "test_support.hpp"

#include <gtest/gtest.h>

#include <sstream>

using syncwarden::kernel::cron_schedule;
using syncwarden::kernel::iso8601;
using syncwarden::kernel::parse_iso8601;
using ::testing::HasSubstr;

namespace {

std::chrono::system_clock::time_point at(const std::string& utc) {
    auto t = parse_iso8601(utc);
    EXPECT_TRUE(t.has_value()) << utc;
    return *t;
}

// The next `n` fires after `from`, as ISO 8601 UTC minutes.
std::vector<std::string> fires(const std::string& expr, const std::string& tz, const std::string& from, int n = 3) {
    auto c = cron_schedule::parse(expr, tz);
    EXPECT_TRUE(c.is_ok()) << c.status().message();
    std::vector<std::string> out;
    if (!c) return out;
    auto t = at(from);
    for (int i = 0; i < n; ++i) {
        auto next = c->next_after(t);
        if (!next) break;
        out.push_back(iso8601(*next).substr(0, 16));
        t = *next;
    }
    return out;
}

TEST(cron, agrees_with_the_reference_table) {
    std::istringstream in(sw_test::read_file(std::filesystem::path(SW_SOURCE_DIR) / "tests/schedule/cron_reference.txt"));
    std::string line;
    size_t rows = 0;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') continue;
        const auto a = line.find(" | "), b = line.find(" | ", a + 3);
        const std::string expr = line.substr(0, a), from = line.substr(a + 3, b - a - 3) + ".000Z";
        std::istringstream want_in(line.substr(b + 3));
        std::vector<std::string> want;
        for (std::string w; want_in >> w;) want.push_back(w);
        EXPECT_EQ(fires(expr, "UTC", from), want) << expr << " after " << from;
        ++rows;
    }
    EXPECT_GT(rows, 80u);
}

TEST(cron, names_steps_from_a_start_and_shorthands) {
    EXPECT_EQ(fires("7/20 * * * *", "UTC", "2026-01-01T00:00:00.000Z"),
              (std::vector<std::string>{"2026-01-01T00:07", "2026-01-01T00:27", "2026-01-01T00:47"}));
    EXPECT_EQ(fires("0 0 */10 * *", "UTC", "2026-01-01T00:00:00.000Z", 4),
              (std::vector<std::string>{"2026-01-11T00:00", "2026-01-21T00:00", "2026-01-31T00:00",
                                        "2026-02-01T00:00"}))
        << "steps count from the field's first value, 1 for days";
    EXPECT_EQ(fires("0 9 * jan-feb MON-wed", "UTC", "2026-02-27T00:00:00.000Z", 2),
              (std::vector<std::string>{"2027-01-04T09:00", "2027-01-05T09:00"}));
    EXPECT_EQ(fires("@weekly", "UTC", "2026-11-28T12:00:00.000Z", 1), (std::vector<std::string>{"2026-11-29T00:00"}));
    EXPECT_EQ(fires("@hourly", "UTC", "2026-11-28T12:00:00.000Z", 1), (std::vector<std::string>{"2026-11-28T13:00"}));
    EXPECT_EQ(fires("0 0 29 2 *", "UTC", "2026-03-01T00:00:00.000Z", 1), (std::vector<std::string>{"2028-02-29T00:00"}));
    auto never = cron_schedule::parse("0 0 30 2 *", "UTC");
    ASSERT_TRUE(never.is_ok());
    EXPECT_FALSE(never->next_after(at("2026-01-01T00:00:00.000Z")).has_value()) << "30 February never comes";
}

// America/Chicago, 2026: clocks go from 02:00 CST to 03:00 CDT on Sunday
// 8 March (08:00 UTC) and from 02:00 CDT back to 01:00 CST on Sunday
// 1 November (07:00 UTC).
TEST(cron, fixed_times_fire_once_across_both_dst_changes) {
    // 02:30 does not exist on 8 March: the job fires when the gap ends.
    EXPECT_EQ(fires("30 2 * * *", "America/Chicago", "2026-03-07T00:00:00.000Z"),
              (std::vector<std::string>{"2026-03-07T08:30", "2026-03-08T08:00", "2026-03-09T07:30"}));
    // 01:30 happens twice on 1 November: the job fires at the first.
    EXPECT_EQ(fires("30 1 * * *", "America/Chicago", "2026-10-31T00:00:00.000Z"),
              (std::vector<std::string>{"2026-10-31T06:30", "2026-11-01T06:30", "2026-11-02T07:30"}));
    // Weekdays at 02:00 local: Friday in CST, Monday in CDT.
    EXPECT_EQ(fires("0 2 * * 1-5", "America/Chicago", "2026-03-06T00:00:00.000Z", 2),
              (std::vector<std::string>{"2026-03-06T08:00", "2026-03-09T07:00"}));
    // The same schedule after the fall-back change: 02:00 CST is 08:00 UTC.
    EXPECT_EQ(fires("0 2 * * 1-5", "America/Chicago", "2026-10-30T00:00:00.000Z", 2),
              (std::vector<std::string>{"2026-10-30T07:00", "2026-11-02T08:00"}));
}

TEST(cron, jobs_with_any_hour_follow_real_time_across_dst_changes) {
    // Spring forward: 02:00 and 02:30 CST never happen; 03:00 CDT is 08:00 UTC.
    EXPECT_EQ(fires("*/30 * * * *", "America/Chicago", "2026-03-08T07:15:00.000Z"),
              (std::vector<std::string>{"2026-03-08T07:30", "2026-03-08T08:00", "2026-03-08T08:30"}));
    // Fall back: 01:00 and 01:30 happen twice, an hour apart, and fire twice.
    EXPECT_EQ(fires("*/30 * * * *", "America/Chicago", "2026-11-01T05:45:00.000Z", 5),
              (std::vector<std::string>{"2026-11-01T06:00", "2026-11-01T06:30", "2026-11-01T07:00",
                                        "2026-11-01T07:30", "2026-11-01T08:00"}));
    // Hourly at :00, in Berlin (02:00 CET -> 03:00 CEST on 29 March, 01:00 UTC).
    EXPECT_EQ(fires("0 * * * *", "Europe/Berlin", "2026-03-29T00:30:00.000Z", 2),
              (std::vector<std::string>{"2026-03-29T01:00", "2026-03-29T02:00"}));
}

TEST(cron, a_time_zone_moves_the_fire_by_its_offset) {
    EXPECT_EQ(fires("0 6 * * *", "Asia/Kolkata", "2026-06-01T00:00:00.000Z", 1),
              (std::vector<std::string>{"2026-06-01T00:30"}));
    EXPECT_EQ(fires("0 6 * * *", "", "2026-06-01T00:00:00.000Z", 1), (std::vector<std::string>{"2026-06-01T06:00"}))
        << "no zone is UTC";
}

TEST(cron, errors_name_the_field_and_what_would_be_right) {
    auto msg = [](const std::string& expr, const std::string& tz = "UTC") {
        auto c = cron_schedule::parse(expr, tz);
        EXPECT_FALSE(c.is_ok()) << expr;
        return c.status().message();
    };
    EXPECT_THAT(msg("0 25 * * *"), HasSubstr("cron '0 25 * * *': the hour field: 25 in '25' is out of range 0-23"));
    EXPECT_THAT(msg("0 2 * *"), HasSubstr("has 4 fields; it needs five: minute hour day-of-month month day-of-week"));
    EXPECT_THAT(msg("*/0 * * * *"), HasSubstr("the minute field: the step in '*/0' is not a whole number of 1 or more"));
    EXPECT_THAT(msg("0 0 * foo *"), HasSubstr("the month field: 'foo' in 'foo' is not a number or a name"));
    EXPECT_THAT(msg("0 0 * * 5-1"), HasSubstr("'5-1' runs backwards"));
    EXPECT_THAT(msg("0 0 L * *"), HasSubstr("the day of month field: 'L' in 'L' is not a number"));
    EXPECT_THAT(msg("1,,2 * * * *"), HasSubstr("an empty item"));
    EXPECT_THAT(msg("@reboot"), HasSubstr("@reboot has no meaning for a daemon's jobs"));
    EXPECT_THAT(msg("0 2 * * *", "America/Chicag"),
                HasSubstr("time zone 'America/Chicag' is not an IANA time zone name"));
}

}  // namespace
