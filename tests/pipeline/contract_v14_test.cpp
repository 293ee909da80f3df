// ABI 1.4 end to end, through a directory that behaves like a SCIM or LDAP
// server (fixtures/plugins/directory_target.cpp): items lists, compare
// policies, the apply order of dependent entities, and the ids the target
// assigns, kept by the kernel and handed back on later runs. Each test runs
// with the connectors in worker processes and in the kernel process.
#include "test_support.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using ::testing::HasSubstr;
using ::testing::Not;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

json user(const std::string& key, const std::string& name, const std::vector<std::string>& emails,
          const std::string& state = "active", json nickname = nullptr) {
    return {{"key", key}, {"values", {name, "pw-" + key, emails, nickname}}, {"state", state}};
}
json group(const std::string& key, const std::string& name, const std::vector<std::string>& members) {
    return {{"key", key}, {"values", {name, members}}};
}

class contract_v14 : public ::testing::TestWithParam<const char*> {
protected:
    void SetUp() override {
        for (auto f : {"json_source", "directory_target"})
            ASSERT_EQ(sw_test::cli(data(), {"connectors", "install", sw_test::fixture(f).string()}).code, 0);
        // The job maps groups before users: the order of the apply comes
        // from the target's dependencies, not from the job.
        sw_test::write_file(dir / "job.json", R"({"name": "dir", )" + std::string(GetParam()) + R"(
          "source": {"connector": "json-source", "settings": {"file": ")" + feed_file().string() + R"("}},
          "target": {"connector": "directory-target", "settings": {"state": ")" + state_file().string() +
                                                  R"(", "ops": ")" + ops_file().string() + R"("}},
          "mapping": {"entities": [
            {"target": "groups", "source": "groups", "fields": {"sourcedId": "sourcedId", "name": "name", "members": "members"}},
            {"target": "users", "source": "users",
             "fields": {"sourcedId": "sourcedId", "userName": "userName", "password": "password", "emails": "emails",
                        "nickname": "nickname"}}]}})");
        feed = {{"entities",
                 {{"users",
                   {{"key", "sourcedId"},
                    {"fields", {{{"name", "userName"}}, {{"name", "password"}}, {{"name", "emails"}, {"type", "items"}},
                                {{"name", "nickname"}, {"empty_is_value", true}}}},
                    {"records", {user("s1", "Ada.Lovelace", {"ada@x.org", "a.lovelace@x.org"}),
                                 user("s2", "Grace.Hopper", {"grace@x.org"})}}}},
                  {"groups",
                   {{"key", "sourcedId"},
                    {"fields", {{{"name", "name"}}, {{"name", "members"}, {"type", "items"}}}},
                    // A display name with a comma: an items list keeps it whole.
                    {"records", {group("g1", "Math, Period 1", {"s2", "s1"})}}}}}}};
        write_feed();
    }
    fs::path data() const { return dir / "data"; }
    fs::path feed_file() const { return dir / "feed.json"; }
    fs::path state_file() const { return dir / "directory.json"; }
    fs::path ops_file() const { return dir / "ops.log"; }
    void write_feed() { sw_test::write_file(feed_file(), feed.dump()); }
    sw_test::cli_result run(bool dry = false) {
        std::vector<std::string> a{"run", (dir / "job.json").string()};
        if (dry) a.push_back("--dry-run");
        return sw_test::cli(data(), a);
    }
    json plan_of(const sw_test::cli_result& r) {
        return json::parse(sw_test::read_file(data() / "plans" / (sw_test::run_id_of(r.out) + ".json")));
    }
    std::vector<std::string> ops() {
        std::vector<std::string> out;
        std::istringstream in(sw_test::read_file(ops_file()));
        for (std::string line; std::getline(in, line);) out.push_back(line);
        fs::remove(ops_file());
        return out;
    }
    json directory() { return json::parse(sw_test::read_file(state_file())); }

    sw_test::temp_dir tmp;
    fs::path dir = tmp.path();
    json feed;
};

TEST_P(contract_v14, parents_are_created_first_and_a_rerun_plans_nothing_despite_what_the_server_rewrites) {
    auto r = run();
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    // Users before the group that lists them, although the job names the
    // group first; the directory refuses a member it does not hold.
    EXPECT_EQ(ops(), (std::vector<std::string>{"create users s1 id=u-1", "create users s2 id=u-2",
                                               "create groups g1 id=g-3"}));
    auto d = directory();
    EXPECT_EQ(d["groups"][0]["name"], "Math, Period 1");
    EXPECT_EQ(d["groups"][0]["members"], "s1\x1fs2");
    EXPECT_EQ(d["users"][0]["userName"], "ada.lovelace");

    // The directory lowercased the user name, sorted the lists, never
    // returns the password and stamped lastModified: none of that is a
    // difference under the contract's compare policies.
    r = run(true);
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_EQ(plan_of(r)["changes"].size(), 0u) << plan_of(r)["changes"].dump(1);
}

TEST_P(contract_v14, a_rename_updates_the_same_account_by_the_id_the_target_gave_it) {
    ASSERT_EQ(run().code, 0);
    ops();
    feed["entities"]["users"]["records"][0] = user("s1", "Ada.King", {"a.lovelace@x.org", "ada@x.org"});
    // A new password alone is not a change: it is only ever set on create.
    feed["entities"]["users"]["records"][1]["values"][1] = "a-new-password";
    write_feed();
    auto r = run();
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_EQ(ops(), (std::vector<std::string>{"update users s1 id=u-1 userName"}));
    auto d = directory();
    ASSERT_EQ(d["users"].size(), 2u) << "a rename must not create a second account";
    EXPECT_EQ(d["users"][0]["userName"], "ada.king");
}

TEST_P(contract_v14, deletes_go_children_first_and_forget_the_id) {
    ASSERT_EQ(run().code, 0);
    ops();
    feed["entities"]["users"]["records"] = json::array();
    feed["entities"]["groups"]["records"] = json::array();
    write_feed();
    auto r = run();
    // (the deletion gate holds a plan that removes every record)
    if (r.code != 0) {
        ASSERT_THAT(r.out + r.err, HasSubstr("held"));
        r = sw_test::cli(data(), {"runs", "approve", sw_test::run_id_of(r.out), "--as", "tester", "--reason", "test"});
        ASSERT_EQ(r.code, 0) << r.out << r.err;
    }
    EXPECT_EQ(ops(), (std::vector<std::string>{"delete groups g1 id=g-3", "delete users s1 id=u-1",
                                               "delete users s2 id=u-2"}));
    // The same key again is a new account, not an update of the deleted id.
    feed["entities"]["users"]["records"] = {user("s1", "Ada.Lovelace", {"ada@x.org"})};
    write_feed();
    r = run();
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_EQ(ops(), (std::vector<std::string>{"create users s1 id=u-4"}));
}

TEST_P(contract_v14, an_account_made_by_hand_is_adopted_and_its_id_kept) {
    sw_test::write_file(state_file(), json{{"users", {{{"id", "u-77"}, {"userName", "grace.hopper"}, {"emails", ""},
                                                       {"lastModified", "0"}}}},
                                           {"groups", json::array()},
                                           {"next", 100}}
                                          .dump());
    // The dry run's plan shows the adoption, and which account it takes.
    auto r = run(true);
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    bool shown = false;
    const json plan = plan_of(r);
    for (auto& c : plan["changes"])
        if (c["kind"] == "adopt") {
            shown = true;
            EXPECT_EQ(c["key"], "s2");
            EXPECT_EQ(c["adopts"], "u-77");
            EXPECT_EQ(c["fields"]["emails"]["new"], "grace@x.org");
            EXPECT_FALSE(c["fields"].contains("userName")) << "Grace.Hopper is grace.hopper under its policy";
        }
    EXPECT_TRUE(shown) << plan.dump(1);
    EXPECT_THAT(r.out, HasSubstr("adopt"));
    r = run();
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    auto o = ops();
    EXPECT_THAT(o, ::testing::Contains("adopt users s2 id=u-77 emails"));
    EXPECT_EQ(directory()["users"].size(), 2u);
    r = run(true);
    EXPECT_EQ(plan_of(r)["changes"].size(), 0u) << plan_of(r)["changes"].dump(1);
    // The adopted id is the one later changes name.
    feed["entities"]["users"]["records"][1] = user("s2", "Grace.B.Hopper", {"grace@x.org"});
    write_feed();
    ASSERT_EQ(run().code, 0);
    EXPECT_EQ(ops(), (std::vector<std::string>{"update users s2 id=u-77 userName"}));
}

TEST_P(contract_v14, the_empty_string_and_absent_stay_apart_where_both_contracts_say_so) {
    auto& users = feed["entities"]["users"]["records"];
    users[0] = user("s1", "Ada.Lovelace", {"ada@x.org"}, "active", "");
    users[1] = user("s2", "Grace.Hopper", {"grace@x.org"}, "active", nullptr);
    // (two more, so that changing two of them passes the update gate)
    users.push_back(user("s3", "Alan.Turing", {"alan@x.org"}));
    users.push_back(user("s4", "Edsger.Dijkstra", {"ewd@x.org"}));
    write_feed();
    auto r = run();
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    auto d = directory();
    EXPECT_EQ(d["users"][0]["key"], "s1");
    EXPECT_EQ(d["users"][0].value("nickname", json("absent")), "") << "the empty string is set";
    EXPECT_FALSE(d["users"][1].contains("nickname")) << "absent is not set";
    ops();

    // The directory hands back "" and absent as it holds them: quiet.
    r = run(true);
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_EQ(plan_of(r)["changes"].size(), 0u) << plan_of(r)["changes"].dump(1);

    // Swapped, each is a change, and the plan shows null for absent.
    users[0] = user("s1", "Ada.Lovelace", {"ada@x.org"}, "active", nullptr);
    users[1] = user("s2", "Grace.Hopper", {"grace@x.org"}, "active", "");
    write_feed();
    r = run(true);
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    const json plan = plan_of(r);
    ASSERT_EQ(plan["changes"].size(), 2u) << plan.dump(1);
    EXPECT_THAT(r.out, HasSubstr("update users/s1: nickname '' -> null"));
    for (auto& c : plan["changes"]) {
        const json& nick = c["fields"]["nickname"];
        if (c["key"] == "s1") EXPECT_EQ(nick, (json{{"new", nullptr}, {"old", ""}})) << c.dump();
        else EXPECT_EQ(nick, (json{{"new", ""}, {"old", nullptr}})) << c.dump();
    }
    r = run();
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_EQ(ops(), (std::vector<std::string>{"update users s1 id=u-1 nickname=null",
                                               "update users s2 id=u-2 nickname=\"\""}));
    d = directory();
    EXPECT_FALSE(d["users"][0].contains("nickname"));
    EXPECT_EQ(d["users"][1].value("nickname", json("absent")), "");

    // One NUL byte is how the kernel marks the empty string inside: a value
    // holding NUL is refused, naming the field, and nothing is applied.
    users[0] = user("s1", "Ada.Lovelace", {"ada@x.org"}, "active", std::string("a\0", 2));
    write_feed();
    r = run();
    EXPECT_NE(r.code, 0);
    EXPECT_THAT(r.out + r.err, HasSubstr("nickname holds a NUL byte at byte 2"));
    EXPECT_TRUE(ops().empty());
}

TEST_P(contract_v14, the_store_keeps_ids_by_keyed_hash_and_never_the_key) {
    ASSERT_EQ(run().code, 0);
    const std::string db = (data() / "syncwarden.db").string();
    FILE* p = ::popen(("sqlite3 '" + db + "' \"SELECT entity, key_hash, id FROM target_ids ORDER BY id\"").c_str(), "r");
    ASSERT_NE(p, nullptr);
    std::string rows;
    char buf[256];
    while (std::fgets(buf, sizeof buf, p)) rows += buf;
    ::pclose(p);
    EXPECT_THAT(rows, ::testing::MatchesRegex("groups\\|h:[0-9a-f]{16}\\|g-3\n"
                                              "users\\|h:[0-9a-f]{16}\\|u-1\n"
                                              "users\\|h:[0-9a-f]{16}\\|u-2\n"));
}

INSTANTIATE_TEST_SUITE_P(isolation, contract_v14, ::testing::Values("", R"("isolation": "in-process",)"),
                         [](const auto& info) { return std::string(info.index == 0 ? "worker" : "in_process"); });

}  // namespace
