// The retention policy: old plans, change results and log files go; run
// records, summaries, digests and the audit log stay, and the log still
// verifies. Held runs keep their plans. Time moves on an injected clock.
#include "../gates/demo_district.hpp"

#include <syncwarden/kernel/clock.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

using ::testing::HasSubstr;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

class retention : public sw_test::demo_district {
protected:
    size_t plan_files() {
        size_t n = 0;
        for (auto& e : fs::directory_iterator(data() / "plans")) n += e.is_regular_file();
        return n;
    }
    size_t log_files() {
        size_t n = 0;
        for (auto& e : fs::directory_iterator(data() / "logs")) n += e.path().extension() == ".jsonl";
        return n;
    }
};

}  // namespace

TEST_F(retention, old_plans_results_and_logs_go_and_the_audit_trail_stays) {
    auto a = run();
    ASSERT_EQ(a.code, 0);
    const std::string applied = sw_test::run_id_of(a.out);
    auto d = run({"--dry-run"});
    ASSERT_EQ(d.code, 0);
    const std::string dry = sw_test::run_id_of(d.out);
    keep_users(10);
    auto h = run();
    ASSERT_EQ(h.code, 10);
    const std::string held = sw_test::run_id_of(h.out);
    ASSERT_EQ(plan_files(), 6u) << "a .plan and a .json per run";
    ASSERT_GE(log_files(), 1u);
    const size_t results = show(applied)["changes"].size();
    ASSERT_GT(results, 0u);

    syncwarden::kernel::manual_clock later(std::chrono::system_clock::now() + 24h * 40);
    auto preview = sw_test::cli(data(), {"retention", "apply", "--dry-run"}, later);
    ASSERT_EQ(preview.code, 0) << preview.err;
    EXPECT_THAT(preview.out, HasSubstr("would remove"));
    EXPECT_THAT(preview.out, HasSubstr("plans of 2 runs"));
    EXPECT_EQ(plan_files(), 6u) << "a dry run removes nothing";

    auto r = sw_test::cli(data(), {"retention", "apply"}, later);
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_THAT(r.out, HasSubstr("plans of 2 runs"));
    EXPECT_THAT(r.out, HasSubstr("0 change results of 0 runs")) << "results are kept 90 days";
    EXPECT_THAT(r.out, HasSubstr("kept the plan of held run " + held));
    EXPECT_EQ(plan_files(), 2u) << "only the held run's plan is left";
    EXPECT_EQ(log_files(), 0u) << "the logs of 40 days ago are past their 30 days";
    // What is gone is said clearly; what stays still works.
    auto apply = sw_test::cli(data(), {"runs", "apply", dry});
    EXPECT_EQ(apply.code, 7);
    EXPECT_THAT(apply.err, HasSubstr("the retention policy removed it on"));
    auto changes = sw_test::cli(data(), {"runs", "show", applied, "--changes"});
    EXPECT_EQ(changes.code, 7);
    EXPECT_THAT(changes.err, HasSubstr("audit report " + applied));
    EXPECT_FALSE(show(applied)["plan"]["purged_at"].get<std::string>().empty());
    EXPECT_FALSE(show(applied)["plan"]["digest"].get<std::string>().empty()) << "the digest stays";
    EXPECT_EQ(show(applied)["changes"].size(), results);
    auto v = sw_test::cli(data(), {"audit", "verify"});
    EXPECT_EQ(v.code, 0) << v.err;
    auto report = sw_test::cli(data(), {"audit", "report", applied, "--format", "json"});
    ASSERT_EQ(report.code, 0) << report.err;
    EXPECT_EQ(nlohmann::json::parse(report.out)["summary"]["outcome"]["state"], "succeeded");
    auto list = sw_test::cli(data(), {"audit", "list", "--json"});
    bool recorded = false;
    for (auto& e : nlohmann::json::parse(list.out)) {
        auto entry = nlohmann::json::parse(e["entry"].get<std::string>());
        if (entry["kind"] == "retention_applied") {
            recorded = true;
            EXPECT_EQ(entry["data"]["plans_of"], nlohmann::json::array({applied, dry}));
        }
    }
    EXPECT_TRUE(recorded);

    syncwarden::kernel::manual_clock much_later(std::chrono::system_clock::now() + 24h * 100);
    r = sw_test::cli(data(), {"retention", "apply"}, much_later);
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_THAT(r.out, HasSubstr(std::to_string(results) + " change results of 1 runs"));
    EXPECT_TRUE(show(applied)["changes"].empty());
    EXPECT_EQ(show(applied)["state"], "succeeded") << "the run record stays";
    EXPECT_EQ(sw_test::cli(data(), {"audit", "verify"}).code, 0);
}

TEST_F(retention, the_policy_comes_from_the_kernel_config_and_bad_values_name_their_path) {
    ASSERT_EQ(run().code, 0);
    const fs::path cfg = tmp_ / "kernel.json";
    sw_test::write_file(cfg, R"({"retention": {"plans_days": "forever", "logs_days": 365}})");
    syncwarden::kernel::manual_clock later(std::chrono::system_clock::now() + 24h * 200);
    auto r = sw_test::cli(data(), {"--config", cfg.string(), "retention", "apply"}, later);
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_THAT(r.out, HasSubstr("plans kept forever"));
    EXPECT_THAT(r.out, HasSubstr("plans of 0 runs"));
    EXPECT_EQ(plan_files(), 2u);
    sw_test::write_file(cfg, R"({"retention": {"plans_days": 0}})");
    auto bad = sw_test::cli(data(), {"--config", cfg.string(), "retention", "apply"});
    EXPECT_EQ(bad.code, 3);
    EXPECT_THAT(bad.err, HasSubstr("kernel.json: $.retention.plans_days: expected a number of days"));
}

// Defect: retention deleted files by the absolute paths kept in the run
// store, so in a copy of a data dir it deleted the original's plans and
// marked the copy's purged. Only files in the data dir it runs on go.
TEST_F(retention, in_a_copied_data_dir_only_the_copys_plans_go) {
    auto d = run({"--dry-run"});
    ASSERT_EQ(d.code, 0) << d.out << d.err;
    ASSERT_EQ(plan_files(), 2u);
    const fs::path copy = data().parent_path() / "copy";
    sw_test::copy_tree(data(), copy);
    syncwarden::kernel::manual_clock later(std::chrono::system_clock::now() + 24h * 40);
    auto r = sw_test::cli(copy, {"retention", "apply"}, later);
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(plan_files(), 2u) << "the original's plans are not the copy's to remove";
    size_t left = 0;
    for (auto& e : fs::directory_iterator(copy / "plans")) left += e.is_regular_file();
    EXPECT_EQ(left, 0u) << "the copy's own plans went";
}
