// The synthetic district generator: deterministic for a seed, and its
// OneRoster 1.2 output (roles in roles.csv) runs through the kernel like 1.1.
#include "test_support.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace fs = std::filesystem;
using ::testing::HasSubstr;

namespace {

int generate(const std::vector<std::string>& args) {
    std::string cmd = std::string(SW_BENCH_DIR) + "/sw-generate-district";
    for (auto& a : args) cmd += " '" + a + "'";
    return std::system((cmd + " > /dev/null 2>&1").c_str());
}

}  // namespace

TEST(generator, the_same_seed_writes_the_same_bytes) {
    sw_test::temp_dir tmp;
    ASSERT_EQ(generate({"--size", "small", "--out", (tmp / "a").string()}), 0);
    ASSERT_EQ(generate({"--size", "small", "--out", (tmp / "b").string()}), 0);
    ASSERT_EQ(generate({"--size", "small", "--seed", "7", "--out", (tmp / "c").string()}), 0);
    EXPECT_EQ(sw_test::snapshot(tmp / "a"), sw_test::snapshot(tmp / "b"));
    EXPECT_NE(sw_test::read_file(tmp / "a" / "users.csv"), sw_test::read_file(tmp / "c" / "users.csv"));
    auto users = sw_test::read_file(tmp / "a" / "users.csv");
    EXPECT_EQ(std::count(users.begin(), users.end(), '\n'), 10001);
    EXPECT_NE(users.find("\xC3"), std::string::npos) << "names carry non-ASCII letters";
    EXPECT_NE(generate({"--size", "huge", "--out", (tmp / "d").string()}), 0);
}

TEST(generator, oneroster_1_2_export_with_changes_runs_through_the_kernel) {
    sw_test::temp_dir tmp;
    ASSERT_EQ(generate({"--size", "small", "--version", "1.2", "--out", (tmp / "a").string(), "--change-rate", "0.01",
                        "--changed-out", (tmp / "b").string()}),
              0);
    ASSERT_TRUE(fs::exists(tmp / "a" / "roles.csv"));
    auto data = tmp / "data";
    sw_test::install_shipped(data);
    sw_test::write_file(tmp / "job.json", sw_test::roster_job(tmp / "a", tmp / "drop"));
    auto r = sw_test::cli(data, {"run", (tmp / "job.json").string(), "--plan-out", (tmp / "plan.json").string()});
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    auto plan = nlohmann::json::parse(sw_test::read_file(tmp / "plan.json"));
    EXPECT_EQ(plan["summary"]["people"]["create"], 10000);
    EXPECT_EQ(plan["summary"]["rosters"]["create"], 70000);
    EXPECT_THAT(sw_test::read_file(tmp / "drop" / "people.csv"), HasSubstr(",student\r\n"))
        << "1.2 roles are folded into users";
    // The changed export: about 1% of 10k users and 70k enrollments, split
    // between creates, updates and deletes.
    sw_test::write_file(tmp / "job.json", sw_test::roster_job(tmp / "b", tmp / "drop"));
    r = sw_test::cli(data, {"run", (tmp / "job.json").string(), "--dry-run", "--plan-out", (tmp / "plan.json").string()});
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    plan = nlohmann::json::parse(sw_test::read_file(tmp / "plan.json"));
    for (auto kind : {"create", "update", "delete"}) EXPECT_GT(plan["summary"]["people"][kind].get<int>(), 10) << kind;
    EXPECT_GT(plan["summary"]["rosters"]["create"].get<int>(), 100);
    EXPECT_GT(plan["summary"]["rosters"]["delete"].get<int>(), 100);
    // A changed enrollment differs only in beginDate, which this job does not map.
    EXPECT_EQ(plan["summary"]["rosters"]["update"].get<int>(), 0);
    EXPECT_LT(plan["changes"].size(), 2000u);
}
