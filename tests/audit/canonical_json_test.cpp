// RFC 8785 (JCS): the examples of the RFC, and what it refuses.
#include <syncwarden/kernel/canonical_json.hpp>

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

using namespace syncwarden::kernel;
using nlohmann::json;

namespace {

std::string jcs(const json& j) {
    auto r = canonical_json(j);
    EXPECT_TRUE(r) << r.status().message();
    return r ? *r : std::string();
}

}  // namespace

TEST(canonical_json, members_are_sorted_by_utf16_code_units_without_whitespace) {
    // RFC 8785 3.2.3: the sort order of its example.
    json j = json::parse(R"({"\u20ac":"Euro Sign","\r":"Carriage Return","\ufb33":"Hebrew Letter Dalet With Dagesh",
                             "1":"One","\ud83d\ude00":"Emoji: Grinning Face","\u0080":"Control",
                             "\u00f6":"Latin Small Letter O With Diaeresis"})");
    const std::string out = jcs(j);
    std::vector<std::string> order{"\"\\r\"", "\"1\"", "\"\u0080\"", "\"\u00f6\"", "\"\u20ac\"", "\"\U0001F600\"",
                                   "\"\ufb33\""};
    size_t at = 0;
    for (auto& k : order) {
        auto p = out.find(k + ":", at);
        ASSERT_NE(p, std::string::npos) << k << " in " << out;
        at = p;
    }
    EXPECT_EQ(jcs(json::parse(R"({ "b" : [ 1 , 2 ], "a" : { "d" : null, "c" : true } })")),
              R"({"a":{"c":true,"d":null},"b":[1,2]})");
}

TEST(canonical_json, numbers_are_written_as_ecmascript_writes_them) {
    EXPECT_EQ(jcs(json(1e30)), "1e+30");
    EXPECT_EQ(jcs(json(4.50)), "4.5");
    EXPECT_EQ(jcs(json(2e-3)), "0.002");
    EXPECT_EQ(jcs(json(0.000001)), "0.000001");
    EXPECT_EQ(jcs(json(1e-7)), "1e-7");
    EXPECT_EQ(jcs(json(333333333.33333329)), "333333333.3333333");
    EXPECT_EQ(jcs(json(1e21)), "1e+21");
    EXPECT_EQ(jcs(json(1e20)), "100000000000000000000");
    EXPECT_EQ(jcs(json(-0.0)), "0");
    EXPECT_EQ(jcs(json(-1.5)), "-1.5");
    EXPECT_EQ(jcs(json(5e-324)), "5e-324");
    EXPECT_EQ(jcs(json(1.7976931348623157e308)), "1.7976931348623157e+308");
    EXPECT_EQ(jcs(json(9007199254740992)), "9007199254740992");
    EXPECT_EQ(jcs(json(-9007199254740992)), "-9007199254740992");
}

TEST(canonical_json, strings_escape_only_what_json_requires) {
    EXPECT_EQ(jcs(json("a\"b\\c\n\t\x01\x1f/é€")), "\"a\\\"b\\\\c\\n\\t\\u0001\\u001f/é€\"");
    EXPECT_EQ(jcs(json("\u2028")), "\"\u2028\"");
}

TEST(canonical_json, refuses_what_it_cannot_write_exactly_and_says_where) {
    auto nan = canonical_json(json{{"a", {1, std::numeric_limits<double>::quiet_NaN()}}});
    ASSERT_FALSE(nan);
    EXPECT_NE(nan.status().message().find("$.a[1]"), std::string::npos) << nan.status().message();
    EXPECT_FALSE(canonical_json(json(std::numeric_limits<double>::infinity())));
    EXPECT_FALSE(canonical_json(json(9007199254740993ULL)));
    EXPECT_FALSE(canonical_json(json(std::string("\xff"))));
    EXPECT_FALSE(canonical_json(json{{std::string("k\xc3"), 1}}));
}
