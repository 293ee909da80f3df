#include <syncwarden/kernel/clock.hpp>

#include <cstdio>
#include <ctime>

namespace syncwarden::kernel {

std::string iso8601(std::chrono::system_clock::time_point t) {
    auto secs = std::chrono::system_clock::to_time_t(t);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count() % 1000;
    if (ms < 0) ms += 1000;
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
    return buf;
}

std::optional<std::chrono::system_clock::time_point> parse_iso8601(const std::string& text) {
    std::tm tm{};
    int ms = 0;
    int used = 0;
    // With milliseconds (what iso8601() writes) or whole seconds.
    if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                    &tm.tm_min, &tm.tm_sec, &ms, &used) != 7 ||
        static_cast<size_t>(used) != text.size()) {
        ms = 0;
        used = 0;
        if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2dZ%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                        &tm.tm_min, &tm.tm_sec, &used) != 6 ||
            static_cast<size_t>(used) != text.size())
            return std::nullopt;
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    const time_t secs = timegm(&tm);
    if (secs == static_cast<time_t>(-1)) return std::nullopt;
    return std::chrono::system_clock::from_time_t(secs) + std::chrono::milliseconds(ms);
}

}  // namespace syncwarden::kernel
