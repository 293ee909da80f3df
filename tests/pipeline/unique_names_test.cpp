// Identity rules: a generated user name is unique in the target, with a
// counter from 2 for the second person who would get the same name, and
// each person keeps their name at every later run, whatever order the
// source sends them in (config/README.md, "Identity rules"). Through the
// directory fixture, which assigns ids, so a rename shows as an update.
#include "test_support.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using ::testing::HasSubstr;
using ::testing::Not;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

class unique_names : public ::testing::Test {
protected:
    void SetUp() override {
        for (auto f : {"json_source", "directory_target"})
            ASSERT_EQ(sw_test::cli(data(), {"connectors", "install", sw_test::fixture(f).string()}).code, 0);
        sw_test::write_file(dir / "job.json", R"({"name": "names",
          "source": {"connector": "json-source", "settings": {"file": ")" + (dir / "feed.json").string() + R"("}},
          "target": {"connector": "directory-target", "settings": {"state": ")" + state_file().string() + R"("}},
          "gates": {"thresholds": {"*": {"delete": "off", "update": "off"}}},
          "mapping": {"entities": [{"target": "users", "source": "users", "fields": {
            "sourcedId": "sourcedId",
            "userName": {"template": "{givenName}.{familyName}@district.org", "transform": "username",
                         "unique": true}}}]}})");
    }
    void feed(const std::vector<std::array<std::string, 3>>& people) {
        json records = json::array();
        for (auto& [key, given, family] : people) records.push_back({{"key", key}, {"values", {given, family}}});
        json f{{"entities",
                {{"users",
                  {{"key", "sourcedId"},
                   {"fields", {{{"name", "givenName"}}, {{"name", "familyName"}}}},
                   {"records", records}}}}}};
        sw_test::write_file(dir / "feed.json", f.dump());
    }
    fs::path data() const { return dir / "data"; }
    fs::path state_file() const { return dir / "directory.json"; }
    sw_test::cli_result run(bool dry = false) {
        std::vector<std::string> a{"run", (dir / "job.json").string()};
        if (dry) a.push_back("--dry-run");
        return sw_test::cli(data(), a);
    }
    // key -> (id, userName), as the directory holds them
    std::map<std::string, std::pair<std::string, std::string>> users() {
        std::map<std::string, std::pair<std::string, std::string>> out;
        const json state = json::parse(sw_test::read_file(state_file()));
        for (auto& u : state["users"]) out[u["key"].get<std::string>()] = {u["id"], u["userName"]};
        return out;
    }

    sw_test::temp_dir tmp;
    fs::path dir = tmp.path();
};

using account = std::pair<std::string, std::string>;

TEST_F(unique_names, the_same_name_gets_a_counter_from_two_and_everyone_keeps_theirs) {
    feed({{"u1", "Zoë", "García"}, {"u2", "Zoe", "Garcia"}, {"u3", "ZOË", "GARCÍA"}});
    auto r = run();
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_EQ(users(), (std::map<std::string, account>{{"u1", {"u-1", "zoe.garcia@district.org"}},
                                                       {"u2", {"u-2", "zoe.garcia2@district.org"}},
                                                       {"u3", {"u-3", "zoe.garcia3@district.org"}}}));
    r = run(true);
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    const json plan = json::parse(sw_test::read_file(data() / "plans" / (sw_test::run_id_of(r.out) + ".json")));
    EXPECT_EQ(plan["changes"].size(), 0u) << plan.dump(1);

    // Another order, the first Zoë gone, a new one: the others keep their
    // names, and the name of the one who left is given to no one else.
    feed({{"u4", "Zoé", "Garcia"}, {"u3", "ZOË", "GARCÍA"}, {"u2", "Zoe", "Garcia"}});
    r = run();
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_EQ(users(), (std::map<std::string, account>{{"u2", {"u-2", "zoe.garcia2@district.org"}},
                                                       {"u3", {"u-3", "zoe.garcia3@district.org"}},
                                                       {"u4", {"u-4", "zoe.garcia4@district.org"}}}));

    // A rename gives the same account a new name.
    feed({{"u4", "Zoé", "Garcia"}, {"u3", "ZOË", "GARCÍA"}, {"u2", "Zoe", "Smith"}});
    r = run();
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_EQ(users()["u2"], (account{"u-2", "zoe.smith@district.org"}));
}

TEST_F(unique_names, a_dry_run_gives_no_name_away) {
    feed({{"u1", "Ada", "Lovelace"}});
    ASSERT_EQ(run().code, 0);
    feed({{"u1", "Ada", "Lovelace"}, {"u2", "Ada", "Lovelace"}});
    auto r = run(true);
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_THAT(r.out, HasSubstr("ada.lovelace2@district.org"));
    // u2 never came; u3 does, and gets the name the dry run showed for u2.
    feed({{"u1", "Ada", "Lovelace"}, {"u3", "Ada", "Lovelace"}});
    ASSERT_EQ(run().code, 0);
    EXPECT_EQ(users()["u3"].second, "ada.lovelace2@district.org");
}

TEST_F(unique_names, the_store_keeps_keyed_hashes_and_no_name) {
    feed({{"u1", "Zoë", "García"}, {"u2", "Zoe", "Garcia"}});
    ASSERT_EQ(run().code, 0);
    const std::string db = (data() / "syncwarden.db").string();
    FILE* p = ::popen(("sqlite3 '" + db + "' \"SELECT * FROM assigned_names\"").c_str(), "r");
    ASSERT_NE(p, nullptr);
    std::string rows;
    char buf[512];
    while (std::fgets(buf, sizeof buf, p)) rows += buf;
    ::pclose(p);
    EXPECT_EQ(std::count(rows.begin(), rows.end(), '\n'), 2) << rows;
    EXPECT_THAT(rows, Not(HasSubstr("zoe")));
    EXPECT_THAT(rows, Not(HasSubstr("u1")));
}

TEST_F(unique_names, unique_on_a_constant_or_the_key_is_refused) {
    sw_test::write_file(dir / "job2.json", R"({"name": "names2",
      "source": {"connector": "json-source", "settings": {"file": "x"}},
      "target": {"connector": "directory-target", "settings": {"state": "y"}},
      "mapping": {"entities": [{"target": "users", "source": "users", "fields": {
        "sourcedId": "sourcedId", "userName": {"const": "x", "unique": true}}}]}})");
    auto r = sw_test::cli(data(), {"run", (dir / "job2.json").string(), "--dry-run"});
    EXPECT_NE(r.code, 0);
    EXPECT_THAT(r.out + r.err, HasSubstr("$.mapping.entities[0].fields.userName.unique: a constant is the same for "
                                         "every record"));
}

}  // namespace
