// Cron expressions and time zones from job files' schedule blocks: the
// first line is the expression, the second the zone.
#include <syncwarden/kernel/cron.hpp>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    const auto cut = in.find('\n');
    const std::string_view expr = in.substr(0, cut);
    const std::string_view tz = cut == std::string_view::npos ? std::string_view() : in.substr(cut + 1, 64);
    auto c = syncwarden::kernel::cron_schedule::parse(expr, tz);
    if (!c) return 0;
    using namespace std::chrono;
    const auto start = system_clock::time_point(seconds(1767225600));  // 2026-01-01
    auto t = start;
    for (int i = 0; i < 4; ++i) {
        auto next = c->next_after(t);
        if (!next) break;
        if (*next <= t) std::abort();  // time moves on
        t = *next;
    }
    return 0;
}
