#include <syncwarden/kernel/semver.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

using namespace syncwarden::kernel;

namespace {
bool in(const char* range, const char* version) {
    auto r = semver_range::parse(range);
    EXPECT_TRUE(r.is_ok()) << range;
    return r->matches(*semver::parse(version));
}
}  // namespace

TEST(semver, parses_and_orders_versions) {
    EXPECT_LT(*semver::parse("1.2.3"), *semver::parse("1.10.0"));
    EXPECT_LT(*semver::parse("1.0.0-rc.1"), *semver::parse("1.0.0"));
    EXPECT_FALSE(semver::parse("1.2").is_ok());
    EXPECT_FALSE(semver::parse("1.x.0").is_ok());
    EXPECT_FALSE(semver::parse("01.2.3").is_ok());
}

// semver 2.0.0 §9-11: what a pre-release may hold, and how they order.
TEST(semver, pre_releases_are_validated_and_ordered_by_identifier) {
    EXPECT_LT(*semver::parse("1.0.0-rc.2"), *semver::parse("1.0.0-rc.10")) << "numeric identifiers compare as numbers";
    EXPECT_LT(*semver::parse("1.0.0-alpha"), *semver::parse("1.0.0-alpha.1"));
    EXPECT_LT(*semver::parse("1.0.0-alpha.1"), *semver::parse("1.0.0-alpha.beta"));
    EXPECT_LT(*semver::parse("1.0.0-alpha.beta"), *semver::parse("1.0.0-beta"));
    EXPECT_LT(*semver::parse("1.0.0-beta.11"), *semver::parse("1.0.0-rc.1"));
    EXPECT_LT(*semver::parse("1.0.0-rc.1"), *semver::parse("1.0.0"));
    EXPECT_EQ(*semver::parse("1.0.0+build.5"), *semver::parse("1.0.0+other")) << "build metadata does not count";
    for (auto bad : {"1.0.0-x/../../../../escaped", "1.0.0-rc..1", "1.0.0-01", "1.0.0-rc_1", "1.0.0-", "1.0.0+",
                     "1.0.0-a b"}) {
        auto v = semver::parse(bad);
        EXPECT_FALSE(v.is_ok()) << bad;
    }
    EXPECT_THAT(semver::parse("1.0.0-x/../../escaped").status().message(),
                ::testing::HasSubstr("may hold only letters, digits and '-'"));
}

TEST(semver, ranges_follow_npm_conventions) {
    EXPECT_TRUE(in("^1.2", "1.9.0"));
    EXPECT_FALSE(in("^1.2", "1.1.9"));
    EXPECT_FALSE(in("^1.2", "2.0.0"));
    EXPECT_TRUE(in("^0.2.1", "0.2.5"));
    EXPECT_FALSE(in("^0.2.1", "0.3.0"));
    EXPECT_TRUE(in("~1.2.3", "1.2.9"));
    EXPECT_FALSE(in("~1.2.3", "1.3.0"));
    EXPECT_TRUE(in("=1.0.3", "1.0.3"));
    EXPECT_FALSE(in("=1.0.3", "1.0.4"));
    EXPECT_TRUE(in("1.0.3", "1.0.3"));
    EXPECT_TRUE(in(">=1.0 <2", "1.5.0"));
    EXPECT_FALSE(in(">=1.0 <2", "2.0.0"));
    EXPECT_TRUE(in("*", "7.0.0"));
    EXPECT_FALSE(in("^1", "1.1.0-beta"));  // pre-releases only when named
}

TEST(semver, a_bad_range_says_what_is_wrong) {
    auto r = semver_range::parse("^one");
    ASSERT_FALSE(r.is_ok());
    EXPECT_NE(r.status().message().find("'one' is not a number"), std::string::npos);
}
