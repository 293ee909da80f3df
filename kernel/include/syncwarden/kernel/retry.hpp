// The kernel's retry manager: backoff with full jitter, retry-after, a
// circuit breaker and a rate limit per target. Time comes from an injected
// clock and waiting from an injected sleeper, so tests run without sleeping.
#pragma once

#include <syncwarden/connector.h>
#include <syncwarden/kernel/clock.hpp>
#include <syncwarden/kernel/retry_policy.hpp>
#include <syncwarden/kernel/worker.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <random>
#include <set>
#include <string>

namespace syncwarden::kernel {

using std::chrono::milliseconds;

// Waits. A test sleeper moves a manual clock instead.
class sleeper {
public:
    virtual ~sleeper() = default;
    // Waits `d`; false when the run was cancelled first.
    virtual bool sleep_for(milliseconds d, const cancel_flag* cancel) = 0;
};

class real_sleeper final : public sleeper {
public:
    bool sleep_for(milliseconds d, const cancel_flag* cancel) override;
};

// Advances a manual clock by each wait and records the waits.
class clock_sleeper final : public sleeper {
public:
    explicit clock_sleeper(manual_clock& c) : clock_(c) {}
    bool sleep_for(milliseconds d, const cancel_flag* cancel) override;
    std::vector<milliseconds> waits;

private:
    manual_clock& clock_;
};

// Full jitter: a uniform wait between 0 and min(max_interval, initial *
// coefficient^(attempt-1)). retry_after, when the vendor gave one, wins.
class backoff {
public:
    backoff(const retry_policy& p, uint64_t seed) : p_(p), rng_(seed) {}
    milliseconds delay(uint32_t attempt, uint32_t retry_after_ms);

private:
    const retry_policy& p_;
    std::mt19937_64 rng_;
};

// Whether a failed change may be sent again.
bool retryable(sw_status s, const std::string& category, const retry_policy& p);

// Trips when the target looks sick: many failures in a row, or a high
// failure rate over a window of attempts.
class circuit_breaker {
public:
    explicit circuit_breaker(const retry_policy& p) : p_(p) {}
    // One attempt's outcome: true when it counts as the vendor failing.
    void record(bool failed);
    bool open() const;
    std::string why() const;

private:
    const retry_policy& p_;
    uint32_t consecutive_ = 0;
    std::deque<bool> window_;
    uint32_t failed_in_window_ = 0;
};

// A token bucket: rate_per_second permits a second, up to `burst` saved.
class rate_limiter {
public:
    rate_limiter(const retry_policy& p, const clock& clk, sleeper& s);
    // Waits until `permits` are available and takes them.
    sw_status acquire(uint32_t permits, const cancel_flag* cancel);
    bool limited() const { return p_.rate_per_second > 0; }
    milliseconds waited() const { return waited_; }

private:
    const retry_policy& p_;
    const clock& clock_;
    sleeper& sleeper_;
    double tokens_;
    std::chrono::system_clock::time_point last_;
    milliseconds waited_{0};
};

}  // namespace syncwarden::kernel
