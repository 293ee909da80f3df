// Semantic versions and the ranges jobs use to pick a connector release.
#pragma once

#include <syncwarden/kernel/result.hpp>

#include <compare>
#include <string>
#include <string_view>
#include <vector>

namespace syncwarden::kernel {

struct semver {
    unsigned major = 0, minor = 0, patch = 0;
    std::string prerelease;  // "" for a release
    std::string build;       // build metadata after '+'; ignored in comparisons

    static Result<semver> parse(std::string_view text);
    std::string str() const;
    std::strong_ordering operator<=>(const semver& o) const;
    bool operator==(const semver& o) const { return (*this <=> o) == 0; }
};

// "^1.2", "~1.2.3", "=1.0.3", "1.0.3", ">=1.0 <2", "*". Space means "and".
class semver_range {
public:
    static Result<semver_range> parse(std::string_view text);
    bool matches(const semver& v) const;
    const std::string& text() const { return text_; }

private:
    enum class op { eq, lt, le, gt, ge };
    struct bound { op o; semver v; };
    std::vector<bound> bounds_;
    std::string text_;
};

}  // namespace syncwarden::kernel
