#include <syncwarden/kernel/store.hpp>

#include "test_support.hpp"

#include <gtest/gtest.h>

#include <Poco/Data/SQLite/Connector.h>
#include <Poco/Data/Session.h>
#include <Poco/Exception.h>

using namespace syncwarden::kernel;

TEST(sqlite_store, migrates_and_keeps_runs_findings_results_and_checkpoints_across_reopen) {
    sw_test::temp_dir tmp;
    auto file = tmp / "store" / "sw.db";
    {
        auto s = open_sqlite_store(file);
        ASSERT_TRUE(s.is_ok()) << s.status().message();
        EXPECT_EQ((*s)->schema_version(), 14);
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
        ASSERT_TRUE((*s)->save_apply_batch("r1", {{"c2", "people", "u2", "create", "staged", "", "", 1},
                                                  {"c1", "people", "u1", "create", "staged", "", "", 0}},
                                           {}, "apply/people", "200", "t"));
        ASSERT_TRUE((*s)->finish_apply(r, true, "", ""));
        ASSERT_TRUE((*s)->save_plan({"r1", "/p.json", "abc", 1, 2, 3, "/p.plan", "d1", "", ""}));
    }
    auto s = open_sqlite_store(file);
    ASSERT_TRUE(s.is_ok());
    EXPECT_EQ((*s)->schema_version(), 14);
    auto r = (*s)->get_run("r1");
    ASSERT_TRUE(r.is_ok());
    EXPECT_EQ(r->state, "succeeded");
    EXPECT_EQ(r->summary_json, R"({"applied":3})");
    auto f = (*s)->findings("r1");
    ASSERT_EQ(f->size(), 1u);
    EXPECT_EQ(f->front().line, 4u);
    EXPECT_EQ(f->front().column, 17u);
    auto results = (*s)->change_results("r1");
    ASSERT_EQ(results->size(), 2u);
    EXPECT_EQ(results->front().change_id, "c1") << "results come back in plan order";
    EXPECT_EQ(results->front().status, "applied");
    EXPECT_EQ(*(*s)->load_checkpoint("r1", "apply/people").value(), "200");
    EXPECT_FALSE((*s)->load_checkpoint("r1", "apply/other")->has_value());
    EXPECT_EQ((*s)->get_plan("r1")->value().deletes, 3u);
    EXPECT_EQ((*s)->get_plan("r1")->value().digest, "d1");
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

TEST(sqlite_store, migrates_a_version_1_store_keeping_its_change_results) {
    sw_test::temp_dir tmp;
    auto file = tmp / "v1.db";
    // The version 1 layout, as a store written by the first release holds it.
    const char* v1 = R"(CREATE TABLE schema_version(version INTEGER NOT NULL); INSERT INTO schema_version VALUES(1);
      CREATE TABLE runs(id TEXT PRIMARY KEY, job TEXT NOT NULL, job_file TEXT NOT NULL, state TEXT NOT NULL,
        phase TEXT NOT NULL, dry_run INTEGER NOT NULL, created_at TEXT NOT NULL, finished_at TEXT NOT NULL,
        source_connector TEXT NOT NULL, source_version TEXT NOT NULL, target_connector TEXT NOT NULL,
        target_version TEXT NOT NULL, exit_code INTEGER NOT NULL, error TEXT NOT NULL, summary TEXT NOT NULL);
      CREATE TABLE change_results(run_id TEXT NOT NULL, change_id TEXT NOT NULL, entity TEXT NOT NULL,
        record_key TEXT NOT NULL, kind TEXT NOT NULL, status TEXT NOT NULL, category TEXT NOT NULL,
        message TEXT NOT NULL, PRIMARY KEY(run_id, change_id));
      CREATE TABLE plans(run_id TEXT PRIMARY KEY REFERENCES runs(id), path TEXT NOT NULL,
        sha256 TEXT NOT NULL, creates INTEGER NOT NULL, updates INTEGER NOT NULL, deletes INTEGER NOT NULL);
      INSERT INTO change_results VALUES('r1','cafe','people','u1','create','applied','','');)";
    ASSERT_EQ(std::system(("sqlite3 " + file.string() + " \"" + v1 + "\"").c_str()), 0);
    auto s = open_sqlite_store(file);
    ASSERT_TRUE(s.is_ok()) << s.status().message();
    EXPECT_EQ((*s)->schema_version(), 14);
    auto r = (*s)->change_results("r1");
    ASSERT_TRUE(r.is_ok()) << r.status().message();
    ASSERT_EQ(r->size(), 1u);
    EXPECT_EQ(r->front().change_id, "cafe");
    EXPECT_EQ(r->front().key, "u1");
}

// The audit tables are append-only in the store itself: an UPDATE or DELETE
// issued behind the kernel's back is refused by triggers.
TEST(sqlite_store, the_audit_log_is_append_only_even_to_raw_sql) {
    sw_test::temp_dir tmp;
    auto file = tmp / "sw.db";
    {
        auto s = open_sqlite_store(file);
        ASSERT_TRUE(s.is_ok()) << s.status().message();
        ASSERT_TRUE((*s)->append_audit({{0, "run_summary", "r1", R"({"a":1})", "aa"}}, {1, "r1", "t1", "k", "", "sig1", "f1"}));
        ASSERT_TRUE((*s)->append_audit({{1, "approval", "r1", R"({"b":2})", "bb"}}, {2, "r2", "t2", "k", "h1", "sig2", "f2"}));
        auto e = (*s)->audit_entries(0, 10);
        ASSERT_TRUE(e);
        ASSERT_EQ(e->size(), 2u);
        EXPECT_EQ((*e)[1].kind, "approval");
        EXPECT_EQ((*e)[1].entry, R"({"b":2})");
        auto head = (*s)->audit_head();
        ASSERT_TRUE(head && *head);
        EXPECT_EQ((*head)->size, 2u);
        EXPECT_EQ((*head)->signature, "sig2");
        EXPECT_EQ((*head)->prev, "h1");
        EXPECT_EQ((*head)->frontier, "f2");
        EXPECT_EQ((*s)->audit_heads()->size(), 2u);
        // A seq that exists already is refused: entries are never replaced.
        EXPECT_FALSE((*s)->append_audit({{1, "x", "r", "{}", "cc"}}, {3, "r3", "t3", "k", "h2", "s", "f"}));
        EXPECT_EQ((*s)->audit_heads()->size(), 2u) << "the head of a refused entry is not kept either";
    }
    Poco::Data::SQLite::Connector::registerConnector();
    Poco::Data::Session raw("SQLite", file.string());
    using namespace Poco::Data::Keywords;
    for (const char* sql : {"UPDATE audit_entries SET entry='{\"a\":2}' WHERE seq=0", "DELETE FROM audit_entries WHERE seq=1",
                            "UPDATE audit_signed_heads SET root='forged'", "DELETE FROM audit_signed_heads"}) {
        try {
            raw << sql, now;
            ADD_FAILURE() << "the store allowed: " << sql;
        } catch (const Poco::Exception& e) {
            EXPECT_NE(e.displayText().find("the audit log is append-only"), std::string::npos) << e.displayText();
        }
    }
    auto s = open_sqlite_store(file);
    auto e = (*s)->audit_entries(0, 10);
    ASSERT_EQ(e->size(), 2u);
    EXPECT_EQ((*e)[0].entry, R"({"a":1})");
}

// Store calls made inside in_transaction commit together, or not at all:
// the audit log's entry is written with the state it describes.
TEST(sqlite_store, a_transaction_commits_all_of_its_writes_or_none) {
    sw_test::temp_dir tmp;
    auto s = open_sqlite_store(tmp / "sw.db");
    ASSERT_TRUE(s.is_ok());
    auto& st = **s;
    run_record r;
    r.id = "r1";
    r.job = "j";
    r.state = "running";
    ASSERT_TRUE(st.create_run(r));
    // A failing write inside: the run's update before it is not kept.
    r.state = "succeeded";
    auto failed = st.in_transaction([&] {
        if (auto x = st.update_run(r); !x) return x;
        // seq 0 twice: the second insert is refused by the primary key.
        return st.append_audit({{0, "a", "r1", "{}", "aa"}, {0, "b", "r1", "{}", "bb"}}, {2, "x", "t", "k", "", "s", "f"});
    });
    EXPECT_FALSE(failed);
    EXPECT_EQ(st.get_run("r1")->state, "running") << "the update inside the failed transaction was rolled back";
    EXPECT_TRUE(st.audit_entries(0, 10)->empty());
    // A body that returns an error rolls back too.
    EXPECT_FALSE(st.in_transaction([&] {
        (void)st.update_run(r);
        return Status::error(error_kind::internal, "stop");
    }));
    EXPECT_EQ(st.get_run("r1")->state, "running");
    // And a good one commits everything.
    ASSERT_TRUE(st.in_transaction([&] {
        if (auto x = st.update_run(r); !x) return x;
        return st.append_audit({{0, "a", "r1", "{}", "aa"}}, {1, "x", "t", "k", "", "s", "f"});
    }));
    EXPECT_EQ(st.get_run("r1")->state, "succeeded");
    EXPECT_EQ(st.audit_entries(0, 10)->size(), 1u);
    EXPECT_EQ(st.audit_entries_of_run("r1")->size(), 1u);
    EXPECT_EQ(*st.audit_leaves(1), std::vector<std::string>{"aa"});
}

namespace {
// A run "r1" in a new store, to hang change results on.
run_record first_run(run_store& s) {
    run_record r;
    r.id = "r1";
    r.job = "j";
    r.job_file = "/j.json";
    r.created_at = "2026-01-01T00:00:00.000Z";
    EXPECT_TRUE(s.create_run(r));
    return r;
}
}  // namespace

// A clean batch (one entity, consecutive plan positions, one status, first
// send) is stored as one row of packed changes. Read back, it is the same
// results as per-change rows would be, in plan order among them; a commit
// makes its staged changes applied; a later result for one of its
// positions replaces that one alone; retention counts and purges them.
TEST(sqlite_store, a_clean_batch_is_kept_as_one_row_and_reads_back_change_by_change) {
    sw_test::temp_dir tmp;
    auto file = tmp / "sw.db";
    auto s = open_sqlite_store(file);
    ASSERT_TRUE(s.is_ok()) << s.status().message();
    run_record r = first_run(**s);
    std::vector<change_result_record> clean;
    for (uint64_t i = 0; i < 5; ++i)
        clean.push_back({"id" + std::to_string(i), "people", "key,\xc3\xa9" + std::to_string(i),
                         i == 2 ? "update" : "create", "staged", "", "", i});
    ASSERT_TRUE((*s)->save_apply_batch("r1", clean, {}, "apply", "5", "t"));
    ASSERT_TRUE((*s)->save_apply_batch("r1",
                                       {{"id5", "people", "k5", "create", "staged", "", "", 5},
                                        {"id6", "people", "k6", "create", "SW_PERMANENT", "schema", "bad", 6}},
                                       {}, "apply", "7", "t"));
    auto rows = [&](const std::string& sql) {
        std::string out;
        EXPECT_EQ(std::system(("sqlite3 " + file.string() + " \"" + sql + "\" > " + (tmp / "q").string()).c_str()), 0);
        return sw_test::read_file(tmp / "q");
    };
    EXPECT_EQ(rows("SELECT COUNT(*) FROM change_batches"), "1\n");
    EXPECT_EQ(rows("SELECT COUNT(*) FROM change_results"), "2\n") << "the batch with a failure keeps a row each";

    r.state = "succeeded";
    r.finished_at = "2026-01-02T00:00:00.000Z";
    ASSERT_TRUE((*s)->finish_apply(r, true, "", ""));
    auto back = (*s)->change_results("r1");
    ASSERT_TRUE(back.is_ok()) << back.status().message();
    ASSERT_EQ(back->size(), 7u);
    for (uint64_t i = 0; i < 7; ++i) EXPECT_EQ((*back)[i].seq, i);
    EXPECT_EQ((*back)[2].change_id, "id2");
    EXPECT_EQ((*back)[2].key, "key,\xc3\xa9" "2");
    EXPECT_EQ((*back)[2].kind, "update");
    EXPECT_EQ((*back)[2].entity, "people");
    EXPECT_EQ((*back)[2].status, "applied") << "the commit made the batch's staged changes applied";
    EXPECT_EQ((*back)[2].attempts, 1u);
    EXPECT_EQ((*back)[5].status, "applied");
    EXPECT_EQ((*back)[6].status, "SW_PERMANENT");

    // A later result for position 3 (as a resumed run might send it again).
    ASSERT_TRUE((*s)->save_apply_batch("r1", {{"id3", "people", "key,\xc3\xa9" "3", "create", "SW_RETRYABLE", "net",
                                              "timeout", 3}},
                                       {}, "apply", "7", "t"));
    back = (*s)->change_results("r1");
    ASSERT_EQ(back->size(), 7u);
    EXPECT_EQ((*back)[3].status, "SW_RETRYABLE");
    EXPECT_EQ((*back)[4].change_id, "id4");
    EXPECT_EQ((*back)[4].status, "applied") << "the batch's other results stay";
    for (uint64_t i = 0; i < 7; ++i) EXPECT_EQ((*back)[i].seq, i);

    auto old = (*s)->finished_before("2026-02-01T00:00:00.000Z");
    ASSERT_TRUE(old.is_ok());
    ASSERT_EQ(old->size(), 1u);
    EXPECT_EQ(old->front().change_results, 7u);
    ASSERT_TRUE((*s)->purge({}, {"r1"}, "t"));
    EXPECT_TRUE((*s)->change_results("r1")->empty());
}

// Results are read a page at a time from both tables and merged: across
// many batches and more rows than a page, each comes once, in plan order.
TEST(sqlite_store, change_results_are_read_in_plan_order_across_pages) {
    sw_test::temp_dir tmp;
    auto s = open_sqlite_store(tmp / "sw.db");
    ASSERT_TRUE(s.is_ok()) << s.status().message();
    first_run(**s);
    std::vector<uint64_t> expected;
    auto batch = [&](uint64_t first, uint64_t n, const std::string& status) {
        std::vector<change_result_record> rs;
        for (uint64_t i = first; i < first + n; ++i) {
            rs.push_back({"id" + std::to_string(i), "people", "k" + std::to_string(i), "create", status,
                          status == "applied" ? "" : "net", "", i});
            expected.push_back(i);
        }
        ASSERT_TRUE((*s)->save_apply_batch("r1", rs, {}, "apply", std::to_string(first + n), "t"));
    };
    for (uint64_t b = 0; b < 10; ++b) batch(b * 3, 3, "applied");          // 10 clean batches
    batch(30, 5000, "SW_RETRYABLE");                                         // more rows than a page
    for (uint64_t b = 0; b < 6; ++b) batch(5030 + b * 7, 7, "applied");    // clean again
    batch(5072, 2, "SW_RETRYABLE");
    std::vector<uint64_t> seen;
    ASSERT_TRUE((*s)->each_change_result("r1", [&](const change_result_record& x) {
        seen.push_back(x.seq);
        EXPECT_EQ(x.change_id, "id" + std::to_string(x.seq));
    }));
    EXPECT_EQ(seen, expected);
}

// Retried changes at scattered positions (1 and 7) land in two packed
// batches and across a third: the retried results replace those two
// positions, and every other result stays, once.
TEST(sqlite_store, results_for_scattered_positions_replace_only_those_in_packed_batches) {
    sw_test::temp_dir tmp;
    auto s = open_sqlite_store(tmp / "sw.db");
    ASSERT_TRUE(s.is_ok()) << s.status().message();
    first_run(**s);
    for (uint64_t b = 0; b < 3; ++b) {
        std::vector<change_result_record> rs;
        for (uint64_t i = b * 3; i < b * 3 + 3; ++i)
            rs.push_back({"id" + std::to_string(i), "people", "k" + std::to_string(i), "create", "applied", "", "", i});
        ASSERT_TRUE((*s)->save_apply_batch("r1", rs, {}, "apply", "9", "t"));
    }
    ASSERT_TRUE((*s)->save_apply_batch("r1",
                                       {{"id1", "people", "k1", "create", "SW_PERMANENT", "schema", "no", 1},
                                        {"id7", "people", "k7", "create", "SW_PERMANENT", "schema", "no", 7}},
                                       {}, "retry", "", "t"));
    auto back = (*s)->change_results("r1");
    ASSERT_TRUE(back.is_ok()) << back.status().message();
    ASSERT_EQ(back->size(), 9u);
    for (uint64_t i = 0; i < 9; ++i) {
        EXPECT_EQ((*back)[i].seq, i);
        EXPECT_EQ((*back)[i].status, i == 1 || i == 7 ? "SW_PERMANENT" : "applied") << i;
        EXPECT_EQ((*back)[i].key, "k" + std::to_string(i));
    }
}
