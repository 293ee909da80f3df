// Time comes from a clock object so that tests can set it.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace syncwarden::kernel {

class clock {
public:
    virtual ~clock() = default;
    virtual std::chrono::system_clock::time_point now() const = 0;
};

class system_clock final : public clock {
public:
    std::chrono::system_clock::time_point now() const override {
        return std::chrono::system_clock::now();
    }
};

// A clock that only moves when told to.
class manual_clock final : public clock {
public:
    explicit manual_clock(std::chrono::system_clock::time_point t) : t_(t) {}
    std::chrono::system_clock::time_point now() const override { return t_; }
    void advance(std::chrono::milliseconds d) { t_ += d; }

private:
    std::chrono::system_clock::time_point t_;
};

// "2026-11-26T14:06:42.123Z"
std::string iso8601(std::chrono::system_clock::time_point t);
// The inverse of iso8601(); nullopt for anything else.
std::optional<std::chrono::system_clock::time_point> parse_iso8601(const std::string& text);

}  // namespace syncwarden::kernel
