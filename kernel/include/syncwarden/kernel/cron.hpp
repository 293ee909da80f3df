// Cron schedules in an IANA time zone: when a scheduled job fires.
//
// The expression is crontab(5)'s five fields (minute, hour, day of month,
// month, day of week) with lists, ranges, steps, month and day names, 7 for
// Sunday, and the @yearly/@monthly/@weekly/@daily/@hourly shorthands. When
// both day fields are restricted (neither starts with '*'), a day matches if
// either does, as in Vixie cron.
//
// Daylight saving time, as Vixie cron and cronie treat it:
// - A job with a restricted hour field (fixed times, "0 2 * * 1-5") fires
//   once per matching local time: a time the clocks skip (02:30 on the
//   spring-forward night) fires at the first instant after the gap (03:00);
//   a time that happens twice (01:30 on the fall-back night) fires at the
//   first of the two.
// - A job with '*' in the hour field ("*/15 * * * *", "0 * * * *") follows
//   real time: minutes the clocks skip do not exist, and minutes that
//   happen twice fire twice.
// There is no C or C++ cron library in Debian 12, so the expression parser
// is this project's own; ICU (already the kernel's Unicode library) holds
// the time zone rules.
#pragma once

#include <syncwarden/kernel/result.hpp>

#include <bitset>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace syncwarden::kernel {

class cron_schedule {
public:
    using time_point = std::chrono::system_clock::time_point;

    // `expr` such as "0 2 * * 1-5"; `tz` an IANA name such as
    // "America/Chicago" (empty: UTC). An error names the field, the part
    // of it that is wrong and what would be right.
    static Result<cron_schedule> parse(std::string_view expr, std::string_view tz);

    // The first time strictly after `after` at which the job fires, or
    // nothing when no time in the next eight years matches ("0 0 30 2 *").
    // Thread: const, safe to call from several threads.
    std::optional<time_point> next_after(time_point after) const;

    const std::string& expression() const { return expr_; }
    const std::string& zone() const { return tz_; }

private:
    std::optional<int64_t> next_match(int64_t local_minute) const;
    bool day_matches(unsigned m, unsigned d, unsigned wd) const;
    int64_t offset_at(int64_t utc_seconds) const;  // seconds east of UTC

    std::string expr_, tz_;
    std::bitset<60> minutes_;
    std::bitset<24> hours_;
    std::bitset<32> days_;    // 1-31
    std::bitset<13> months_;  // 1-12
    std::bitset<7> weekdays_; // 0 = Sunday
    bool day_star_ = false, weekday_star_ = false, hour_star_ = false;
    struct zone_rules;  // ICU's rules for tz_
    std::shared_ptr<const zone_rules> zone_;
};

}  // namespace syncwarden::kernel
