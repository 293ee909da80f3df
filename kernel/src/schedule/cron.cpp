#include <syncwarden/kernel/cron.hpp>

#include <unicode/timezone.h>
#include <unicode/unistr.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <mutex>
#include <vector>

namespace syncwarden::kernel {

// ICU's TimeZone::getOffset is const but not documented as thread-safe, so
// each schedule's calls go through a mutex.
struct cron_schedule::zone_rules {
    std::unique_ptr<icu::TimeZone> zone;
    mutable std::mutex m;
};

namespace {

using namespace std::chrono;

constexpr int64_t k_minute = 60, k_day = 86400;
// No DST change moves the clocks more than this (Antarctica's Troll: 2 h).
constexpr int64_t k_max_shift = 3 * 3600;
// How far ahead next_after looks: far enough for a 29 February that only
// a leap year on a given weekday has.
constexpr int64_t k_horizon_days = 8 * 366;

struct field_spec {
    const char* name;
    int lo, hi;
    std::array<const char*, 12> names;  // for months and weekdays
};
constexpr field_spec k_fields[] = {
    {"minute", 0, 59, {}},
    {"hour", 0, 23, {}},
    {"day of month", 1, 31, {}},
    {"month", 1, 12, {"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}},
    {"day of week", 0, 7, {"sun", "mon", "tue", "wed", "thu", "fri", "sat"}},
};

std::vector<std::string> split(std::string_view s, char sep) {
    std::vector<std::string> out;
    std::string cur;
    for (char c : s) {
        if (c == sep) {
            out.push_back(cur);
            cur.clear();
        } else {
            cur += c;
        }
    }
    out.push_back(cur);
    return out;
}

// A number or a name of field `f`; nullopt when it is neither.
std::optional<int> value_of(const std::string& text, const field_spec& f) {
    if (text.empty()) return std::nullopt;
    if (std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isdigit(c); })) {
        if (text.size() > 4) return std::nullopt;
        return std::stoi(text);
    }
    std::string lower;
    for (char c : text) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (size_t i = 0; i < f.names.size() && f.names[i]; ++i)
        if (lower == f.names[i]) return static_cast<int>(i) + (f.lo == 1 ? 1 : 0);
    return std::nullopt;
}

// One field into `bits` (index = value); "" or a message.
std::string parse_field(const std::string& text, const field_spec& f, std::vector<bool>& bits) {
    bits.assign(static_cast<size_t>(f.hi) + 1, false);
    for (const std::string& item : split(text, ',')) {
        if (item.empty()) return "an empty item in '" + text + "' (two commas, or one at an end)";
        std::string range = item;
        int step = 1;
        if (auto slash = item.find('/'); slash != std::string::npos) {
            range = item.substr(0, slash);
            const std::string s = item.substr(slash + 1);
            auto v = value_of(s, field_spec{f.name, 1, 1000, {}});
            if (!v || *v < 1 || !std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); }))
                return "the step in '" + item + "' is not a whole number of 1 or more";
            step = *v;
        }
        int lo = f.lo, hi = f.hi;
        if (range != "*") {
            const auto dash = range.find('-');
            const std::string a = range.substr(0, dash);
            auto first = value_of(a, f);
            if (!first) return "'" + a + "' in '" + item + "' is not a number" + (f.names[0] ? " or a name" : "");
            lo = *first;
            if (dash != std::string::npos) {
                const std::string b = range.substr(dash + 1);
                auto last = value_of(b, f);
                if (!last) return "'" + b + "' in '" + item + "' is not a number" + (f.names[0] ? " or a name" : "");
                hi = *last;
            } else if (item.find('/') == std::string::npos) {
                hi = lo;  // "5"; "5/15" runs from 5 to the field's end
            }
            for (int v : {lo, hi})
                if (v < f.lo || v > f.hi)
                    return std::to_string(v) + " in '" + item + "' is out of range " + std::to_string(f.lo) + "-" +
                           std::to_string(f.hi);
            if (hi < lo) return "'" + item + "' runs backwards; write it as two ranges";
        }
        for (int v = lo; v <= hi; v += step) bits[static_cast<size_t>(v)] = true;
    }
    return {};
}

std::string expand_macro(std::string_view expr) {
    static const std::pair<const char*, const char*> k_macros[] = {
        {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
        {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
        {"@hourly", "0 * * * *"}};
    for (auto& [name, fields] : k_macros)
        if (expr == name) return fields;
    return std::string(expr);
}

int64_t to_seconds(system_clock::time_point t) { return duration_cast<seconds>(t.time_since_epoch()).count(); }

}  // namespace

Result<cron_schedule> cron_schedule::parse(std::string_view expr_in, std::string_view tz) {
    cron_schedule c;
    c.expr_ = std::string(expr_in);
    c.tz_ = tz.empty() ? std::string("UTC") : std::string(tz);
    auto fail = [&](const std::string& what) {
        return Status::error(error_kind::config, "cron '" + c.expr_ + "': " + what);
    };
    std::vector<std::string> fields;
    {
        std::string cur;
        for (char ch : expand_macro(expr_in)) {
            if (std::isspace(static_cast<unsigned char>(ch))) {
                if (!cur.empty()) fields.push_back(cur);
                cur.clear();
            } else {
                cur += ch;
            }
        }
        if (!cur.empty()) fields.push_back(cur);
    }
    if (!fields.empty() && fields[0].front() == '@')
        return fail("'" + fields[0] + "' is not a shorthand this scheduler knows (@yearly, @annually, @monthly, "
                    "@weekly, @daily, @midnight, @hourly; @reboot has no meaning for a daemon's jobs)");
    if (fields.size() != 5)
        return fail("has " + std::to_string(fields.size()) +
                    " fields; it needs five: minute hour day-of-month month day-of-week (\"0 2 * * 1-5\")");
    std::vector<bool> bits;
    for (size_t i = 0; i < 5; ++i) {
        if (auto why = parse_field(fields[i], k_fields[i], bits); !why.empty())
            return fail("the " + std::string(k_fields[i].name) + " field: " + why);
        for (size_t v = 0; v < bits.size(); ++v) {
            if (!bits[v]) continue;
            switch (i) {
                case 0: c.minutes_.set(v); break;
                case 1: c.hours_.set(v); break;
                case 2: c.days_.set(v); break;
                case 3: c.months_.set(v); break;
                default: c.weekdays_.set(v % 7); break;
            }
        }
    }
    c.hour_star_ = fields[1].front() == '*';
    c.day_star_ = fields[2].front() == '*';
    c.weekday_star_ = fields[4].front() == '*';

    auto rules = std::make_shared<zone_rules>();
    rules->zone.reset(icu::TimeZone::createTimeZone(icu::UnicodeString::fromUTF8(c.tz_)));
    icu::UnicodeString id;
    rules->zone->getID(id);
    if (!rules->zone || id == icu::UnicodeString(UCAL_UNKNOWN_ZONE_ID))
        return Status::error(error_kind::config, "time zone '" + c.tz_ +
                                                     "' is not an IANA time zone name; use one such as "
                                                     "\"America/Chicago\" or \"Europe/Berlin\" (or \"UTC\")");
    c.zone_ = std::move(rules);
    return c;
}

int64_t cron_schedule::offset_at(int64_t utc_seconds) const {
    std::lock_guard<std::mutex> lock(zone_->m);
    int32_t raw = 0, dst = 0;
    UErrorCode err = U_ZERO_ERROR;
    zone_->zone->getOffset(static_cast<UDate>(utc_seconds) * 1000.0, false, raw, dst, err);
    return U_FAILURE(err) ? 0 : (static_cast<int64_t>(raw) + dst) / 1000;
}

bool cron_schedule::day_matches(unsigned m, unsigned d, unsigned wd) const {
    if (!months_.test(m)) return false;
    const bool by_day = days_.test(d), by_weekday = weekdays_.test(wd);
    if (!day_star_ && !weekday_star_) return by_day || by_weekday;
    return by_day && by_weekday;
}

// The first local minute (seconds since the epoch, read as local time) at
// or after `local` that the fields match, within the horizon.
std::optional<int64_t> cron_schedule::next_match(int64_t local) const {
    const int64_t end = local + k_horizon_days * k_day;
    int64_t t = (local + k_minute - 1) / k_minute * k_minute;
    while (t < end) {
        const int64_t day = (t >= 0 ? t : t - k_day + 1) / k_day;
        const sys_days sd{days{day}};
        const year_month_day ymd{sd};
        const unsigned wd = weekday{sd}.c_encoding();
        if (!day_matches(unsigned(ymd.month()), unsigned(ymd.day()), wd)) {
            t = (day + 1) * k_day;
            continue;
        }
        const int64_t in_day = t - day * k_day;
        const auto hour = static_cast<size_t>(in_day / 3600);
        if (!hours_.test(hour)) {
            t = day * k_day + static_cast<int64_t>(hour + 1) * 3600;
            continue;
        }
        const auto minute = static_cast<size_t>(in_day % 3600 / 60);
        if (!minutes_.test(minute)) {
            t += k_minute;
            continue;
        }
        return t;
    }
    return std::nullopt;
}

std::optional<cron_schedule::time_point> cron_schedule::next_after(time_point after_tp) const {
    const int64_t after = to_seconds(after_tp);
    // Local minutes are scanned from a little before `after`'s local time:
    // across a fall-back change, the local times just before it come round
    // again later in real time.
    int64_t local = after + offset_at(after) - k_max_shift;
    std::optional<int64_t> best;
    std::optional<int64_t> best_local;
    for (;;) {
        auto m = next_match(local);
        if (!m) break;
        if (best_local && *m > *best_local + k_max_shift) break;  // later local times are later in real time
        // The real instants this local time names: one, two (the clocks
        // went back) or none (they jumped over it).
        const int64_t before = offset_at(*m - k_day), after_off = offset_at(*m + k_day);
        std::vector<int64_t> real;
        for (int64_t off : {before, after_off}) {
            const int64_t u = *m - off;
            if (offset_at(u) == off && std::find(real.begin(), real.end(), u) == real.end()) real.push_back(u);
        }
        std::sort(real.begin(), real.end());
        if (real.empty() && !hour_star_) {
            // Skipped by the clocks: the first instant after the gap, found
            // by halving between the two readings of this local time.
            int64_t lo = std::min(*m - before, *m - after_off), hi = std::max(*m - before, *m - after_off);
            const int64_t off_lo = offset_at(lo);
            while (hi - lo > 1) {
                const int64_t mid = lo + (hi - lo) / 2;
                (offset_at(mid) == off_lo ? lo : hi) = mid;
            }
            real.push_back(hi);
        }
        if (!hour_star_ && real.size() > 1) real.resize(1);  // fixed times fire once, at the first
        for (int64_t u : real) {
            if (u > after && (!best || u < *best)) {
                best = u;
                best_local = *m;
            }
        }
        local = *m + k_minute;
    }
    if (!best) return std::nullopt;
    return time_point(seconds(*best));
}

}  // namespace syncwarden::kernel
