#include <syncwarden/kernel/retry.hpp>

#include <algorithm>
#include <cmath>
#include <thread>

namespace syncwarden::kernel {

bool real_sleeper::sleep_for(milliseconds d, const cancel_flag* cancel) {
    // In slices, so that a cancel is seen within a tenth of a second.
    const auto until = std::chrono::steady_clock::now() + d;
    for (;;) {
        if (cancel && cancel->requested.load()) return false;
        auto left = until - std::chrono::steady_clock::now();
        if (left <= std::chrono::steady_clock::duration::zero()) return true;
        std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(left, milliseconds(100)));
    }
}

bool clock_sleeper::sleep_for(milliseconds d, const cancel_flag* cancel) {
    if (cancel && cancel->requested.load()) return false;
    waits.push_back(d);
    clock_.advance(d);
    return true;
}

milliseconds backoff::delay(uint32_t attempt, uint32_t retry_after_ms) {
    if (retry_after_ms) return milliseconds(retry_after_ms);
    const double exp = std::pow(p_.coefficient, static_cast<double>(attempt > 0 ? attempt - 1 : 0));
    const double cap = std::min<double>(static_cast<double>(p_.max_interval.count()),
                                        static_cast<double>(p_.initial.count()) * exp);
    std::uniform_real_distribution<double> jitter(0.0, std::max(0.0, cap));
    return milliseconds(static_cast<long long>(jitter(rng_)));
}

bool retryable(sw_status s, const std::string& category, const retry_policy& p) {
    return (s == SW_RETRYABLE || s == SW_THROTTLED) && !p.never_retry.count(category);
}

void circuit_breaker::record(bool failed) {
    consecutive_ = failed ? consecutive_ + 1 : 0;
    window_.push_back(failed);
    failed_in_window_ += failed;
    if (window_.size() > p_.breaker_window) {
        failed_in_window_ -= window_.front();
        window_.pop_front();
    }
}

bool circuit_breaker::open() const {
    if (p_.breaker_consecutive && consecutive_ >= p_.breaker_consecutive) return true;
    return p_.breaker_window && window_.size() >= p_.breaker_window &&
           static_cast<double>(failed_in_window_) >= p_.breaker_rate * static_cast<double>(window_.size());
}

std::string circuit_breaker::why() const {
    if (p_.breaker_consecutive && consecutive_ >= p_.breaker_consecutive)
        return std::to_string(consecutive_) + " attempts in a row failed (retry.breaker.consecutive_failures: " +
               std::to_string(p_.breaker_consecutive) + ")";
    return std::to_string(failed_in_window_) + " of the last " + std::to_string(window_.size()) +
           " attempts failed (retry.breaker.failure_rate: " + std::to_string(static_cast<int>(p_.breaker_rate * 100)) +
           "%)";
}

rate_limiter::rate_limiter(const retry_policy& p, const clock& clk, sleeper& s)
    : p_(p), clock_(clk), sleeper_(s), tokens_(std::max<uint32_t>(1, p.burst)), last_(clk.now()) {}

sw_status rate_limiter::acquire(uint32_t permits, const cancel_flag* cancel) {
    if (!limited() || permits == 0) return SW_OK;
    const double cap = std::max<double>(std::max<uint32_t>(1, p_.burst), permits);
    for (;;) {
        const auto now = clock_.now();
        const double elapsed = std::chrono::duration<double>(now - last_).count();
        tokens_ = std::min(cap, tokens_ + std::max(0.0, elapsed) * p_.rate_per_second);
        last_ = now;
        if (tokens_ >= permits) {
            tokens_ -= permits;
            return SW_OK;
        }
        const double missing = static_cast<double>(permits) - tokens_;
        auto wait = milliseconds(static_cast<long long>(std::ceil(missing / p_.rate_per_second * 1000.0)));
        if (wait.count() < 1) wait = milliseconds(1);
        waited_ += wait;
        if (!sleeper_.sleep_for(wait, cancel)) return SW_CANCELLED;
    }
}

}  // namespace syncwarden::kernel
