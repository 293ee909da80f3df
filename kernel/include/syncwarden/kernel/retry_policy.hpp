// The retry policy of a job (README, "Retries and rate limits").
#pragma once

#include <chrono>
#include <cstdint>
#include <set>
#include <string>

namespace syncwarden::kernel {

struct retry_policy {
    std::chrono::milliseconds initial{1000};
    double coefficient = 2.0;
    std::chrono::milliseconds max_interval{std::chrono::minutes(5)};
    uint32_t max_attempts = 8;                        // sends of one change, the first included
    std::chrono::milliseconds max_elapsed{std::chrono::minutes(30)};  // from a change's first send
    std::set<std::string> never_retry;               // categories, matched exactly
    // Circuit breaker: so many failed attempts in a row, or this share of
    // the last `window` attempts failed (once the window is full).
    uint32_t breaker_consecutive = 25;
    double breaker_rate = 0.8;
    uint32_t breaker_window = 100;
    // Requests per second to the target and the burst above it; 0 = no limit.
    double rate_per_second = 0;
    uint32_t burst = 1;
};

}  // namespace syncwarden::kernel
