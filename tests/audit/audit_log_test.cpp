// The audit log end to end on a real SQLite store: appends that verify, and
// each way an attacker with the database file could alter it - a changed
// byte, a deleted entry, swapped entries, a truncated log re-signed with a
// new key, a forged proof - detected, with the first bad entry named.
#include "test_support.hpp"

#include <syncwarden/kernel/audit.hpp>
#include <syncwarden/kernel/store.hpp>

#include <Poco/Data/SQLite/Connector.h>
#include <Poco/Data/Session.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

using namespace syncwarden::kernel;
using ::testing::HasSubstr;
using namespace Poco::Data::Keywords;

namespace {

struct log_fixture {
    sw_test::temp_dir dir;
    manual_clock clk{std::chrono::system_clock::time_point(std::chrono::hours(24 * 20000))};
    std::unique_ptr<run_store> store;
    std::unique_ptr<audit_log> log;

    log_fixture() { reopen(); }
    void reopen() {
        log.reset();
        store.reset();
        auto s = open_sqlite_store(dir / "store.db");
        EXPECT_TRUE(s) << s.status().message();
        store = std::move(*s);
        auto l = audit_log::open(*store, dir.path(), clk);
        EXPECT_TRUE(l) << l.status().message();
        log = std::move(*l);
    }
    // One append per run: its summary.
    void runs(int n, int from = 0) {
        for (int i = from; i < from + n; ++i) {
            clk.advance(std::chrono::minutes(1));
            ASSERT_TRUE(log->append({{"run_summary", "r" + std::to_string(i),
                                      {{"outcome", "succeeded"}, {"planned", {{"people", {{"create", i}}}}}}}}));
        }
    }
    verify_key key() const { return std::move(*verify_key::from_pem(log->key().public_pem())); }
    audit_verdict verify(bool all = false) {
        auto v = verify_audit_log(*store, key(), {all});
        EXPECT_TRUE(v) << v.status().message();
        return v ? *v : audit_verdict{};
    }
    // SQL as an attacker with the file would issue it: triggers dropped.
    void attack(const std::vector<std::string>& sql) {
        log.reset();
        store.reset();
        Poco::Data::SQLite::Connector::registerConnector();
        {
            Poco::Data::Session raw("SQLite", (dir / "store.db").string());
            for (const char* t : {"audit_entries_no_update", "audit_entries_no_delete", "audit_signed_heads_no_update",
                                  "audit_signed_heads_no_delete"})
                raw << "DROP TRIGGER IF EXISTS " + std::string(t), now;
            for (auto& s : sql) raw << s, now;
        }
        reopen();
    }
    std::string entry(int seq) { return (*store->audit_entries(seq, 1))[0].entry; }
};

}  // namespace

TEST(audit_log, appends_signed_heads_that_chain_and_verify) {
    log_fixture f;
    EXPECT_TRUE(f.verify().ok) << "an empty log verifies";
    f.runs(3);
    ASSERT_TRUE(f.log->append({{"approval", "r1", {{"by", "ana"}}}, {"note", "r1", {{"text", "ok"}}}}));
    auto v = f.verify(true);
    EXPECT_TRUE(v.ok) << v.message;
    EXPECT_EQ(v.entries, 5u);
    EXPECT_EQ(v.heads, 4u) << "one signed head per append";
    auto heads = *f.store->audit_heads();
    EXPECT_EQ(heads[0].prev, "");
    for (size_t i = 1; i < heads.size(); ++i) EXPECT_EQ(heads[i].prev, head_hash(heads[i - 1]));
    EXPECT_EQ(heads.back().root, v.root);
    // Entries are canonical JSON that record their own position.
    EXPECT_EQ(f.entry(4), R"({"at":"2024-10-04T00:03:00.000Z","data":{"text":"ok"},"kind":"note","run":"r1","seq":4,"v":1})");
    // The log survives a reopen and keeps growing from its frontier.
    f.reopen();
    f.runs(2, 10);
    EXPECT_TRUE(f.verify(true).ok);
}

TEST(audit_log, one_changed_byte_is_found_and_the_entry_named) {
    log_fixture f;
    f.runs(5);
    std::string e = f.entry(2);
    e[e.find("\"create\":2") + 9] = '9';
    f.attack({"UPDATE audit_entries SET entry='" + e + "' WHERE seq=2"});
    auto v = f.verify();
    EXPECT_FALSE(v.ok);
    EXPECT_EQ(v.bad_entry, 2u);
    EXPECT_THAT(v.message, HasSubstr("entry 2 (run_summary, run r2) was altered"));
}

TEST(audit_log, a_change_with_its_leaf_recomputed_still_breaks_the_signed_tree) {
    log_fixture f;
    f.runs(5);
    std::string e = f.entry(3);
    e[e.find("\"create\":3") + 9] = '7';
    f.attack({"UPDATE audit_entries SET entry='" + e + "', leaf='" + merkle::to_hex(merkle::leaf_hash(e)) +
              "' WHERE seq=3"});
    auto v = f.verify();
    EXPECT_FALSE(v.ok);
    EXPECT_EQ(v.bad_entry, 3u);
    EXPECT_THAT(v.message, HasSubstr("entry 3 was altered: the tree no longer matches the head signed at size 4"));
}

TEST(audit_log, an_entry_deleted_behind_the_triggers_is_named) {
    log_fixture f;
    f.runs(5);
    f.attack({"DELETE FROM audit_entries WHERE seq=1"});
    auto v = f.verify();
    EXPECT_FALSE(v.ok);
    EXPECT_EQ(v.bad_entry, 1u);
    EXPECT_THAT(v.message, HasSubstr("entry 1 is missing: the next stored entry is 2"));

    log_fixture g;
    g.runs(4);
    g.attack({"DELETE FROM audit_entries WHERE seq=3"});
    v = g.verify();
    EXPECT_FALSE(v.ok);
    EXPECT_EQ(v.bad_entry, 3u);
    EXPECT_THAT(v.message, HasSubstr("entry 3 onward was deleted"));
    // And the kernel appends nothing more to a log whose head no longer matches.
    auto s = g.log->append({{"note", "r0", {{"text", "x"}}}});
    EXPECT_FALSE(s);
    EXPECT_EQ(s.kind(), error_kind::tampered);
    EXPECT_THAT(s.message(), HasSubstr("syncwarden audit verify"));
}

TEST(audit_log, swapped_entries_are_named) {
    log_fixture f;
    f.runs(5);
    f.attack({"UPDATE audit_entries SET seq=100 WHERE seq=1", "UPDATE audit_entries SET seq=1 WHERE seq=3",
              "UPDATE audit_entries SET seq=3 WHERE seq=100"});
    auto v = f.verify();
    EXPECT_FALSE(v.ok);
    EXPECT_EQ(v.bad_entry, 1u);
    EXPECT_THAT(v.message, HasSubstr("entry 1 records position 3: entries were moved or swapped"));
}

TEST(audit_log, a_truncated_log_resigned_with_a_new_key_is_caught_against_an_exported_head) {
    log_fixture f;
    f.runs(4);
    const auto kept = f.dir / "head-kept-by-the-auditor.json";
    sw_test::write_file(kept, export_head(**f.store->audit_head(), f.log->key().public_pem()));
    auto old = read_exported_head(kept);
    ASSERT_TRUE(old) << old.status().message();
    // Honest growth extends the kept head.
    f.runs(2, 4);
    auto ok = verify_against(*f.store, *old, nullptr);
    ASSERT_TRUE(ok);
    EXPECT_TRUE(ok->ok) << ok->message;
    // The attacker empties the log, makes a new key and writes a shorter
    // history: it verifies on its own, with its own key.
    f.attack({"DELETE FROM audit_entries", "DELETE FROM audit_signed_heads", "DELETE FROM audit_frontier"});
    std::filesystem::remove(audit_key_file(f.dir.path()));
    f.reopen();
    f.runs(2);
    EXPECT_TRUE(f.verify().ok) << "a rewritten log is self-consistent";
    auto v = verify_against(*f.store, *old, nullptr);
    ASSERT_TRUE(v);
    EXPECT_FALSE(v->ok);
    EXPECT_EQ(v->bad_entry, 2u);
    EXPECT_THAT(v->message, HasSubstr("today's log has 2 entries, but the exported head"));
    EXPECT_THAT(v->message, HasSubstr("the log was truncated"));
    // Grown back past the kept size, it still does not extend it.
    f.runs(5, 2);
    v = verify_against(*f.store, *old, nullptr);
    EXPECT_FALSE(v->ok);
    EXPECT_THAT(v->message, HasSubstr("today's log does not extend the exported head (size 4"));
    EXPECT_THAT(v->message, HasSubstr("signed by another key"));
    // A kept head is checked with the key the auditor kept, not the log's.
    const verify_key today = f.key();
    auto wrong = verify_against(*f.store, *old, &today);
    EXPECT_FALSE(wrong->ok);
    EXPECT_THAT(wrong->message, HasSubstr("is not a head this log's key signed"));
}

TEST(audit_log, inclusion_proofs_check_offline_and_forgeries_do_not) {
    log_fixture f;
    f.runs(7);
    auto p = run_inclusion_proof(*f.store, "r4");
    ASSERT_TRUE(p) << p.status().message();
    const auto key = f.key();
    auto ok = check_inclusion_proof(*p, key);
    EXPECT_TRUE(ok.ok) << ok.message;
    EXPECT_THAT(ok.message, HasSubstr("entry 4 (run_summary of run r4) is in the audit log of 7 entries"));

    auto forged = [&](auto&& edit) {
        nlohmann::json q = *p;
        edit(q);
        return check_inclusion_proof(q, key);
    };
    // The entry's numbers changed: the path no longer leads to the root.
    auto v = forged([](nlohmann::json& q) {
        std::string e = q["entry"];
        e[e.find("\"create\":4") + 9] = '0';
        q["entry"] = e;
    });
    EXPECT_FALSE(v.ok);
    EXPECT_THAT(v.message, HasSubstr("does not lead from $.entry to the signed root"));
    // Another entry of the log presented under the same index and path.
    v = forged([&](nlohmann::json& q) { q["entry"] = f.entry(5); });
    EXPECT_FALSE(v.ok);
    // A hash of the path changed, dropped or added; the index moved.
    v = forged([](nlohmann::json& q) { q["proof"][0] = std::string(64, 'a'); });
    EXPECT_FALSE(v.ok);
    v = forged([](nlohmann::json& q) { q["proof"].erase(q["proof"].size() - 1); });
    EXPECT_FALSE(v.ok);
    v = forged([](nlohmann::json& q) { q["proof"].push_back(q["proof"][0]); });
    EXPECT_FALSE(v.ok);
    v = forged([](nlohmann::json& q) { q["index"] = 5; });
    EXPECT_FALSE(v.ok);
    EXPECT_THAT(v.message, HasSubstr("does not record position 5"));
    // A tree of another size, or a root the key never signed.
    v = forged([](nlohmann::json& q) { q["tree_size"] = 8; });
    EXPECT_FALSE(v.ok);
    EXPECT_THAT(v.message, HasSubstr("$.tree_size is 8 but the signed head is of size 7"));
    v = forged([](nlohmann::json& q) { q["head"]["root"] = std::string(64, '0'); });
    EXPECT_FALSE(v.ok);
    EXPECT_THAT(v.message, HasSubstr("$.head.signature does not verify"));
    v = forged([](nlohmann::json& q) { q["proof"][1] = "xyz"; });
    EXPECT_THAT(v.message, HasSubstr("$.proof[1] is not a 64-digit hex hash"));
    v = forged([](nlohmann::json& q) { q.erase("head"); });
    EXPECT_THAT(v.message, HasSubstr("the proof is incomplete"));
    // A whole proof made by another key: a fresh, consistent log the
    // attacker signed. It checks with their key and not with the real one.
    log_fixture attacker;
    attacker.runs(7);
    auto theirs = run_inclusion_proof(*attacker.store, "r4");
    EXPECT_TRUE(check_inclusion_proof(*theirs, attacker.key()).ok);
    v = check_inclusion_proof(*theirs, key);
    EXPECT_FALSE(v.ok);
    EXPECT_THAT(v.message, HasSubstr("not by the key given"));
    // Their head relabelled with the real key's id: the signature fails.
    v = forged([&](nlohmann::json& q) { q["head"] = (*theirs)["head"]; q["head"]["key_id"] = key.key_id(); });
    EXPECT_FALSE(v.ok);
    EXPECT_THAT(v.message, HasSubstr("$.head.signature does not verify"));
}

TEST(audit_log, the_verifier_fails_on_altered_heads_and_unsigned_entries) {
    {
        log_fixture f;
        f.runs(4);
        f.attack({"UPDATE audit_signed_heads SET signature='" + std::string(128, '0') + "' WHERE size=4"});
        auto v = f.verify();
        EXPECT_FALSE(v.ok);
        EXPECT_THAT(v.message, HasSubstr("the head signed at size 4"));
        EXPECT_THAT(v.message, HasSubstr("does not carry a valid signature"));
    }
    {
        // An older head's signature: the chain of heads breaks at the next.
        log_fixture f;
        f.runs(4);
        f.attack({"UPDATE audit_signed_heads SET signature='" + std::string(128, '0') + "' WHERE size=2"});
        auto v = f.verify();
        EXPECT_FALSE(v.ok);
        EXPECT_THAT(v.message, HasSubstr("the head signed at size 3"));
        EXPECT_THAT(v.message, HasSubstr("does not name the head before it"));
        auto all = f.verify(true);
        EXPECT_THAT(all.message, HasSubstr("the head signed at size 2")) << "each signature, when asked";
    }
    {
        // A head removed from the middle.
        log_fixture f;
        f.runs(4);
        f.attack({"DELETE FROM audit_signed_heads WHERE size=2"});
        EXPECT_THAT(f.verify().message, HasSubstr("does not name the head before it"));
    }
    {
        // An entry added behind the kernel's back, with a correct leaf.
        log_fixture f;
        f.runs(2);
        const std::string e = R"({"at":"x","data":{},"kind":"note","run":"r9","seq":2,"v":1})";
        f.attack({"INSERT INTO audit_entries VALUES(2,'note','r9','" + e + "','" + merkle::to_hex(merkle::leaf_hash(e)) +
                  "')"});
        auto v = f.verify();
        EXPECT_FALSE(v.ok);
        EXPECT_EQ(v.bad_entry, 2u);
        EXPECT_THAT(v.message, HasSubstr("entries 2..2 are signed by no head"));
    }
    {
        // Checked with another key.
        log_fixture f, other;
        f.runs(2);
        auto v = verify_audit_log(*f.store, other.key());
        EXPECT_FALSE(v->ok);
        EXPECT_THAT(v->message, HasSubstr("is signed by key " + f.log->key().key_id() + ", not by the key given"));
    }
}

TEST(audit_log, a_damaged_frontier_is_rebuilt_from_the_leaves) {
    log_fixture f;
    f.runs(5);
    f.attack({"UPDATE audit_frontier SET nodes='00'"});
    f.runs(1, 5);
    EXPECT_TRUE(f.verify(true).ok);
}
