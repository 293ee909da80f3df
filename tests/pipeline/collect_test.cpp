// Groups with members (config/README.md): a class becomes a group whose
// members are collected from the enrollments naming it, and each distinct
// role of the users becomes a group of its own. Through the directory
// fixture (tests/fixtures/plugins/directory_target.cpp), with the
// connectors in worker processes and in the kernel process.
#include "test_support.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using ::testing::HasSubstr;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

json rec(const std::string& key, json values, const std::string& state = "active") {
    return {{"key", key}, {"values", std::move(values)}, {"state", state}};
}
json fields(std::initializer_list<const char*> names) {
    json out = json::array();
    for (auto n : names) out.push_back({{"name", n}});
    return out;
}

class collect : public ::testing::TestWithParam<const char*> {
protected:
    void SetUp() override {
        for (auto f : {"json_source", "directory_target"})
            ASSERT_EQ(sw_test::cli(data(), {"connectors", "install", sw_test::fixture(f).string()}).code, 0);
        feed = {{"entities",
                 {{"users",
                   {{"key", "sourcedId"},
                    {"fields", fields({"username", "role"})},
                    {"records", {rec("u1", {"ada", "student"}), rec("u2", {"grace", "student"}),
                                 rec("u3", {"alan", "teacher"}), rec("u4", {"edsger", "student"})}}}},
                  {"classes",
                   {{"key", "sourcedId"},
                    {"fields", fields({"title"})},
                    {"records", {rec("c1", {"Math, Period 1"}), rec("c2", {"Art"})}}}},
                  {"enrollments",
                   {{"key", "sourcedId"},
                    {"fields", fields({"classSourcedId", "userSourcedId", "role"})},
                    {"records", {rec("e1", {"c1", "u2", "student"}), rec("e2", {"c1", "u1", "student"}),
                                 rec("e3", {"c1", "u3", "teacher"}), rec("e4", {"c2", "u4", "student"}),
                                 // the same membership twice counts once
                                 rec("e5", {"c1", "u1", "student"})}}}}}}};
        write_feed();
        write_job(R"({"collect": {"from": "enrollments", "by": "classSourcedId", "value": "userSourcedId",
                                  "where": {"role": "student"}}})");
    }
    // Groups from classes, or (roles) a group per role: a target entity is
    // fed by one mapping.
    void write_job(const std::string& members_rule, bool roles = false) {
        const std::string classes = R"({"target": "groups", "source": "classes",
             "fields": {"sourcedId": {"template": "class-{sourcedId}"}, "name": "title",
                        "members": )" + members_rule + "}}";
        const std::string by_role = R"({"target": "groups", "source": "users", "distinct": "role",
             "fields": {"sourcedId": {"template": "role-{role}"}, "name": {"from": "role", "table": "role_names"},
                        "members": {"collect": {"from": "users", "by": "role"}}}})";
        sw_test::write_file(dir / "job.json", R"({"name": "groups", )" + std::string(GetParam()) + R"(
          "source": {"connector": "json-source", "settings": {"file": ")" + feed_file().string() + R"("}},
          "target": {"connector": "directory-target", "settings": {"state": ")" + state_file().string() + R"("}},
          "gates": {"thresholds": {"*": {"delete": "off", "update": "off"}}},
          "mapping": {
            "tables": {"role_names": {"student": "All students", "teacher": "All teachers"}},
            "entities": [
            {"target": "users", "source": "users",
             "fields": {"sourcedId": "sourcedId", "userName": "username"}},
            )" + (roles ? by_role : classes) + "]}}");
    }
    fs::path data() const { return dir / "data"; }
    fs::path feed_file() const { return dir / "feed.json"; }
    fs::path state_file() const { return dir / "directory.json"; }
    void write_feed() { sw_test::write_file(feed_file(), feed.dump()); }
    sw_test::cli_result run(bool dry = false) {
        std::vector<std::string> a{"run", (dir / "job.json").string()};
        if (dry) a.push_back("--dry-run");
        return sw_test::cli(data(), a);
    }
    json plan_of(const sw_test::cli_result& r) {
        return json::parse(sw_test::read_file(data() / "plans" / (sw_test::run_id_of(r.out) + ".json")));
    }
    // group key -> (name, members as the directory holds them)
    std::map<std::string, std::pair<std::string, std::string>> groups() {
        std::map<std::string, std::pair<std::string, std::string>> out;
        const json state = json::parse(sw_test::read_file(state_file()));
        for (auto& g : state["groups"]) out[g["key"].get<std::string>()] = {g["name"], g["members"]};
        return out;
    }

    sw_test::temp_dir tmp;
    fs::path dir = tmp.path();
    json feed;
};

using group = std::pair<std::string, std::string>;

TEST_P(collect, classes_become_groups_with_their_students_and_a_rerun_is_quiet) {
    auto r = run();
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_EQ(groups(), (std::map<std::string, group>{{"class-c1", {"Math, Period 1", "u1\x1fu2"}},
                                                       {"class-c2", {"Art", "u4"}}}))
        << r.out;
    r = run(true);
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_EQ(plan_of(r)["changes"].size(), 0u) << plan_of(r)["changes"].dump(1);
}

TEST_P(collect, each_role_becomes_a_group_of_the_users_holding_it) {
    write_job("", true);
    auto r = run();
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_EQ(groups(), (std::map<std::string, group>{{"role-student", {"All students", "u1\x1fu2\x1fu4"}},
                                                       {"role-teacher", {"All teachers", "u3"}}}));
    r = run(true);
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_EQ(plan_of(r)["changes"].size(), 0u) << plan_of(r)["changes"].dump(1);

    // Alan becomes a student: the teachers' group has no member left, and
    // no user holds the role: the group goes.
    feed["entities"]["users"]["records"][2] = rec("u3", {"alan", "student"});
    write_feed();
    r = run(true);
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    std::map<std::string, std::string> kinds;
    const json plan = plan_of(r);
    for (auto& c : plan["changes"])
        if (c["entity"] == "groups") kinds[c["key"]] = c["kind"];
    EXPECT_EQ(kinds, (std::map<std::string, std::string>{{"role-student", "update"}, {"role-teacher", "delete"}}));
}

TEST_P(collect, a_changed_enrollment_changes_the_members_of_that_group_only) {
    ASSERT_EQ(run().code, 0);
    auto& enr = feed["entities"]["enrollments"]["records"];
    enr[0] = rec("e1", {"c1", "u2", "student"}, "tobedeleted");  // grace leaves Math
    enr.push_back(rec("e6", {"c2", "u1", "student"}));           // ada joins Art
    feed["entities"]["users"]["records"][3] = rec("u4", {"edsger", "teacher"});
    write_feed();
    auto r = run(true);
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    std::map<std::string, std::string> changed;
    const json plan = plan_of(r);
    for (auto& c : plan["changes"])
        if (c["entity"] == "groups") changed[c["key"]] = c["fields"]["members"]["new"];
    // (Edsger, now a teacher, stays in Art: his enrollment says student.)
    EXPECT_EQ(changed, (std::map<std::string, std::string>{{"class-c1", "u1"}, {"class-c2", "u1\x1fu4"}}));
    ASSERT_EQ(run().code, 0);
    EXPECT_EQ(groups()["class-c1"].second, "u1");
}

TEST_P(collect, mistakes_in_the_rule_name_the_path_and_what_exists) {
    write_job(R"({"collect": {"from": "enrolments", "by": "classSourcedId"}})");
    auto r = run(true);
    EXPECT_NE(r.code, 0);
    EXPECT_THAT(r.out + r.err, HasSubstr("$.mapping.entities[1].fields.members.collect.from: 'enrolments' is not an "
                                         "entity of json-source"));
    EXPECT_THAT(r.out + r.err, HasSubstr("(entities: "));
    write_job(R"({"collect": {"from": "enrollments", "by": "class"}})");
    r = run(true);
    EXPECT_THAT(r.out + r.err, HasSubstr("$.mapping.entities[1].fields.members.collect.by: 'class' is not a field of "
                                         "source entity 'enrollments' (fields: sourcedId, classSourcedId, "
                                         "userSourcedId, role)"));
    write_job(R"({"collect": {"from": "enrollments", "by": "classSourcedId", "sort": true}})");
    r = run(true);
    EXPECT_THAT(r.out + r.err, HasSubstr("$.mapping.entities[1].fields.members.collect"));
    EXPECT_THAT(r.out + r.err, HasSubstr("sort"));
}

TEST_P(collect, a_delta_of_the_collected_entity_is_refused_and_nothing_applied) {
    ASSERT_EQ(run().code, 0);
    const std::string before = sw_test::read_file(state_file());
    feed["entities"]["enrollments"]["mode"] = "delta";
    feed["entities"]["enrollments"]["records"] = {rec("e6", {"c2", "u1", "student"})};
    write_feed();
    auto r = run();
    EXPECT_NE(r.code, 0);
    EXPECT_THAT(r.out + r.err, HasSubstr("the mapping collects every record of 'enrollments', but the source sent a "
                                         "delta of it; run it with a full export"));
    EXPECT_EQ(sw_test::read_file(state_file()), before) << "a delta would have emptied the other groups";
}

INSTANTIATE_TEST_SUITE_P(isolation, collect, ::testing::Values("", R"("isolation": "in-process",)"),
                         [](const auto& info) { return std::string(info.index == 0 ? "worker" : "in_process"); });

}  // namespace
