#include <syncwarden/kernel/store.hpp>

#include "test_support.hpp"

#include <gtest/gtest.h>

using namespace syncwarden::kernel;

TEST(sqlite_store, migrates_and_keeps_runs_findings_results_and_checkpoints_across_reopen) {
    sw_test::temp_dir tmp;
    auto file = tmp / "store" / "sw.db";
    {
        auto s = open_sqlite_store(file);
        ASSERT_TRUE(s.is_ok()) << s.status().message();
        EXPECT_EQ((*s)->schema_version(), 1);
        run_record r;
        r.id = "r1";
        r.job = "j";
        r.job_file = "/j.json";
        r.created_at = "2026-01-01T00:00:00.000Z";
        ASSERT_TRUE((*s)->create_run(r));
        r.state = "succeeded";
        r.summary_json = R"({"applied":3})";
        ASSERT_TRUE((*s)->update_run(r));
        ASSERT_TRUE((*s)->add_findings("r1", {{"warning", "bad_date", "users", "users.csv", 4, 17, "u1", "m"}}));
        ASSERT_TRUE((*s)->add_change_results("r1", {{"c1", "people", "u1", "create", "applied", "", ""}}));
        ASSERT_TRUE((*s)->save_checkpoint("r1", "apply/people", "200", "t"));
        ASSERT_TRUE((*s)->save_plan({"r1", "/p.json", "abc", 1, 2, 3}));
    }
    auto s = open_sqlite_store(file);
    ASSERT_TRUE(s.is_ok());
    EXPECT_EQ((*s)->schema_version(), 1);
    auto r = (*s)->get_run("r1");
    ASSERT_TRUE(r.is_ok());
    EXPECT_EQ(r->state, "succeeded");
    EXPECT_EQ(r->summary_json, R"({"applied":3})");
    auto f = (*s)->findings("r1");
    ASSERT_EQ(f->size(), 1u);
    EXPECT_EQ(f->front().line, 4u);
    EXPECT_EQ(f->front().column, 17u);
    EXPECT_EQ((*s)->change_results("r1")->front().status, "applied");
    EXPECT_EQ(*(*s)->load_checkpoint("r1", "apply/people").value(), "200");
    EXPECT_FALSE((*s)->load_checkpoint("r1", "apply/other")->has_value());
    EXPECT_EQ((*s)->get_plan("r1")->value().deletes, 3u);
    auto missing = (*s)->get_run("nope");
    ASSERT_FALSE(missing.is_ok());
    EXPECT_EQ(missing.status().kind(), error_kind::not_found);
}

TEST(sqlite_store, refuses_a_store_from_a_newer_kernel) {
    sw_test::temp_dir tmp;
    auto file = tmp / "sw.db";
    ASSERT_TRUE(open_sqlite_store(file).is_ok());
    ASSERT_EQ(std::system(("sqlite3 " + file.string() + " 'UPDATE schema_version SET version=99'").c_str()), 0);
    auto s = open_sqlite_store(file);
    ASSERT_FALSE(s.is_ok());
    EXPECT_NE(s.status().message().find("schema version 99"), std::string::npos);
}

TEST(sqlite_store, a_file_that_is_not_a_database_is_a_clear_error) {
    sw_test::temp_dir tmp;
    sw_test::write_file(tmp / "sw.db", "this is not sqlite");
    auto s = open_sqlite_store(tmp / "sw.db");
    ASSERT_FALSE(s.is_ok());
    EXPECT_NE(s.status().message().find("sw.db"), std::string::npos);
}
