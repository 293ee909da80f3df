// End to end through the CLI: apply, re-run, a changed feed, run history,
// exit codes, and a target with its own diff hook.
#include "test_support.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <functional>
#include <map>
#include <set>
#include <sys/stat.h>

using ::testing::HasSubstr;
namespace fs = std::filesystem;

namespace {

class pipeline_e2e : public ::testing::Test {
protected:
    void SetUp() override {
        sw_test::install_shipped(data());
        src_ = tmp_ / "district";
        sw_test::copy_tree(fs::path(SW_SOURCE_DIR) / "config/demo/district", src_);
        sw_test::write_file(job(), sw_test::roster_job(src_, drop()));
    }
    fs::path data() const { return tmp_ / "data"; }
    fs::path drop() const { return tmp_ / "drop"; }
    fs::path job() const { return tmp_ / "job.json"; }
    sw_test::cli_result run(bool dry) {
        std::vector<std::string> a{"run", job().string(), "--plan-out", (tmp_ / "plan.json").string()};
        if (dry) a.push_back("--dry-run");
        return sw_test::cli(data(), a);
    }
    nlohmann::json plan() const { return nlohmann::json::parse(sw_test::read_file(tmp_ / "plan.json")); }
    void edit_users(const std::function<void(std::string&)>& f) {
        auto u = sw_test::read_file(src_ / "users.csv");
        f(u);
        sw_test::write_file(src_ / "users.csv", u);
    }

    sw_test::temp_dir tmp_;
    fs::path src_;
};

}  // namespace

TEST_F(pipeline_e2e, apply_then_rerun_plans_nothing) {
    auto r = run(false);
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_THAT(r.out, HasSubstr("applied 69 changes, 0 failed"));
    auto people = sw_test::read_file(drop() / "people.csv");
    EXPECT_THAT(people, HasSubstr("s-1001,zoë.garcía,Zoë,García,student"));
    auto changes = sw_test::read_file(drop() / "changes.csv");
    EXPECT_THAT(changes, HasSubstr("people,create,s-1001,"));
    auto before = sw_test::snapshot(drop());

    r = run(false);
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_EQ(plan()["changes"].size(), 0u);
    EXPECT_THAT(r.out, HasSubstr("applied 0 changes"));
    EXPECT_EQ(sw_test::snapshot(drop()), before) << "an empty plan must not rewrite the drop";
}

TEST_F(pipeline_e2e, a_changed_feed_plans_exactly_its_three_changes) {
    ASSERT_EQ(run(false).code, 0);
    edit_users([](std::string& u) {
        u += "s-2001,,,TRUE,org-north,student,new.kid,,Nadia,Novak,,,,,,,09,\r\n";     // added
        u.replace(u.find(",Marcus,"), 8, ",Mark,");                                 // renamed
        u.replace(u.find("s-1003,,"), 8, "s-1003,tobedeleted,");                      // tobedeleted
    });
    auto r = run(true);
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    auto p = plan();
    ASSERT_EQ(p["changes"].size(), 3u) << p["changes"].dump(1);
    std::map<std::string, nlohmann::json> by_kind;
    for (auto& c : p["changes"]) by_kind[c["kind"]] = c;
    EXPECT_EQ(by_kind["create"]["key"], "s-2001");
    EXPECT_EQ(by_kind["update"]["key"], "t-102");
    ASSERT_EQ(by_kind["update"]["fields"].size(), 1u);
    EXPECT_EQ(by_kind["update"]["fields"]["first_name"]["old"], "Marcus");
    EXPECT_EQ(by_kind["update"]["fields"]["first_name"]["new"], "Mark");
    EXPECT_EQ(by_kind["delete"]["key"], "s-1003");
    for (auto& c : p["changes"]) EXPECT_EQ(c["id"].get<std::string>().size(), 24u);
    EXPECT_THAT(r.out, HasSubstr("update people/t-102: first_name 'Marcus' -> 'Mark'"));
    // The dry run left the target alone; applying it delivers exactly that.
    EXPECT_THAT(sw_test::read_file(drop() / "people.csv"), HasSubstr("Marcus"));
    r = run(false);
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    auto people = sw_test::read_file(drop() / "people.csv");
    EXPECT_THAT(people, HasSubstr("t-102,marcus.whitfield,Mark,Whitfield"));
    EXPECT_THAT(people, HasSubstr("s-2001,new.kid,Nadia,Novak"));
    EXPECT_EQ(people.find("s-1003,"), std::string::npos);
    auto delta = sw_test::read_file(drop() / "changes.csv");
    EXPECT_THAT(delta, HasSubstr("people,update,t-102,first_name"));
    EXPECT_THAT(delta, HasSubstr("people,delete,s-1003,"));
}

TEST_F(pipeline_e2e, runs_list_and_show_read_the_store) {
    auto r = run(true);
    ASSERT_EQ(r.code, 0);
    auto id = sw_test::run_id_of(r.out);
    auto list = sw_test::cli(data(), {"runs", "list"});
    ASSERT_EQ(list.code, 0);
    EXPECT_THAT(list.out, HasSubstr(id));
    EXPECT_THAT(list.out, HasSubstr("test-roster"));
    auto show = sw_test::cli(data(), {"runs", "show", id, "--json"});
    ASSERT_EQ(show.code, 0) << show.err;
    auto j = nlohmann::json::parse(show.out);
    EXPECT_EQ(j["state"], "succeeded");
    EXPECT_EQ(j["dry_run"], true);
    EXPECT_EQ(j["source"]["version"], "1.0.0");
    EXPECT_EQ(j["summary"]["planned"]["people"]["create"], 29);
    EXPECT_TRUE(fs::exists(j["plan"]["path"].get<std::string>()));
    auto missing = sw_test::cli(data(), {"runs", "show", "r-nope"});
    EXPECT_EQ(missing.code, 7);
    EXPECT_THAT(missing.err, HasSubstr("no run with id 'r-nope'"));
}

// --plan-out names the run's stored report (read-only; a plan of 8M changes
// is 2 GB, so no copy is made on the same file system), and a later run's
// --plan-out to the same name replaces the name: it never writes into the
// earlier run's report.
TEST_F(pipeline_e2e, plan_out_is_a_second_name_of_the_stored_report_and_never_rewrites_an_earlier_one) {
    auto r = run(true);
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    const fs::path first = data() / "plans" / (sw_test::run_id_of(r.out) + ".json");
    const std::string first_text = sw_test::read_file(first);
    struct stat out {}, stored {};
    ASSERT_EQ(::stat((tmp_ / "plan.json").c_str(), &out), 0);
    ASSERT_EQ(::stat(first.c_str(), &stored), 0);
    EXPECT_EQ(out.st_ino, stored.st_ino) << "--plan-out made a copy";
    EXPECT_EQ(out.st_dev, stored.st_dev);
    EXPECT_EQ(stored.st_mode & 0222, 0u) << "the stored report is writable";
    EXPECT_EQ(plan()["changes"].size(), 69u);

    edit_users([](std::string& u) { u.replace(u.find(",Marcus,"), 8, ",Mark,"); });
    r = run(true);
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_EQ(plan()["changes"].size(), 69u);
    EXPECT_THAT(sw_test::read_file(tmp_ / "plan.json"), HasSubstr("\"Mark\""));
    EXPECT_EQ(sw_test::read_file(first), first_text) << "the second run wrote into the first run's report";

    // Another file system (tmpfs): a copy with the same text.
    if (fs::is_directory("/dev/shm")) {
        const fs::path shm = fs::path("/dev/shm") / ("sw-plan-" + std::to_string(::getpid()) + ".json");
        r = sw_test::cli(data(), {"run", job().string(), "--dry-run", "--plan-out", shm.string()});
        ASSERT_EQ(r.code, 0) << r.out << r.err;
        EXPECT_EQ(sw_test::read_file(shm), sw_test::read_file(data() / "plans" / (sw_test::run_id_of(r.out) + ".json")));
        fs::remove(shm);
    }

    // A folder is refused with what to do; the run's own report is kept.
    fs::create_directories(tmp_ / "a-folder");
    r = sw_test::cli(data(), {"run", job().string(), "--dry-run", "--plan-out", (tmp_ / "a-folder").string()});
    EXPECT_NE(r.code, 0);
    EXPECT_THAT(r.err, HasSubstr("writing the plan to " + (tmp_ / "a-folder").string() + ": it is a folder"));
}

TEST_F(pipeline_e2e, a_mapping_table_miss_blocks_the_run) {
    sw_test::write_file(job(), R"({"name": "grades",
      "source": {"connector": "oneroster-csv", "settings": {"path": ")" + src_.string() + R"("}},
      "target": {"connector": "vendor-csv", "settings": {"folder": ")" + drop().string() + R"(",
        "files": [{"entity": "students", "file": "s.csv", "key": "id", "columns": ["id", "grade"]}]}},
      "mapping": {"tables": {"g": {"09": "Nine"}},
        "entities": [{"target": "students", "source": "users", "where": {"role": "student"},
          "fields": {"id": "sourcedId", "grade": {"from": "grades", "table": "g"}}}]}})");
    auto r = run(false);
    EXPECT_EQ(r.code, 10) << r.out << r.err;
    EXPECT_THAT(r.out, HasSubstr("held: "));
    EXPECT_THAT(r.out, HasSubstr("grade: value '10' is not in mapping table 'g'"));
    EXPECT_FALSE(fs::exists(drop()));
}

TEST_F(pipeline_e2e, config_errors_exit_3_with_the_json_path) {
    sw_test::write_file(job(), R"({"name": "x",
      "source": {"connector": "oneroster-csv", "settings": {"path": ")" + src_.string() + R"("}},
      "target": {"connector": "vendor-csv", "settings": {"folder": "out",
        "files": [{"entity": "people", "file": "p.csv", "key": "id", "columns": ["id", "name"]}]}},
      "mapping": {"entities": [{"target": "people", "source": "users",
          "fields": {"id": "sourcedId", "name": "firstName"}}]}})");
    auto r = run(true);
    EXPECT_EQ(r.code, 3) << r.out << r.err;
    EXPECT_THAT(r.err, HasSubstr("job.json: $.mapping.entities[0].fields.name: 'firstName' is not a field of source entity 'users'"));
    auto usage = sw_test::cli(data(), {"run"});
    EXPECT_EQ(usage.code, 2);
    auto unknown = sw_test::cli(data(), {"frobnicate"});
    EXPECT_EQ(unknown.code, 2);
}

TEST(pipeline_custom_diff, a_target_diff_hook_replaces_the_generic_diff) {
    sw_test::temp_dir tmp;
    sw_test::diff_target_job(tmp.path());
    auto data = tmp / "data";
    auto r = sw_test::cli(data, {"run", (tmp / "job.json").string()});
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    // "good" emits Ada (i-1) and Grace (i-2); the hook plans only names starting with A.
    EXPECT_THAT(r.out, HasSubstr("create items/i-1: name='Ada'"));
    EXPECT_EQ(r.out.find("i-2"), std::string::npos);
    EXPECT_EQ(sw_test::read_file(tmp / "applied.log"), "i-1\ncommitted\n");
}

TEST_F(pipeline_e2e, bad_connector_settings_exit_3_and_say_which_setting) {
    sw_test::write_file(job(), R"({"name": "x",
      "source": {"connector": "oneroster-csv", "settings": {"path": ")" + src_.string() + R"("}},
      "target": {"connector": "vendor-csv", "settings": {"folder": "out"}},
      "mapping": {"entities": [{"target": "people", "source": "users", "fields": {"id": "sourcedId"}}]}})");
    auto r = run(true);
    EXPECT_EQ(r.code, 3) << r.out << r.err;
    EXPECT_THAT(r.err, HasSubstr("job.json: $.target.settings: Missing required property 'files'"));
    EXPECT_THAT(r.err, HasSubstr("`syncwarden connectors schema vendor-csv` shows every setting it accepts"));

    sw_test::write_file(job(), R"({"name": "x",
      "source": {"connector": "oneroster-csv", "settings": {"path": ")" + (tmp_ / "nowhere").string() + R"("}},
      "target": {"connector": "vendor-csv", "settings": {"folder": "out",
        "files": [{"entity": "people", "file": "p.csv", "key": "id", "columns": ["id"]}]}},
      "mapping": {"entities": [{"target": "people", "source": "users", "fields": {"id": "sourcedId"}}]}})");
    r = run(true);
    EXPECT_EQ(r.code, 3) << r.out << r.err;
    EXPECT_THAT(r.err, HasSubstr("nowhere does not exist"));
    EXPECT_FALSE(fs::exists(tmp_ / "out"));
}

TEST(pipeline_apply, a_refused_change_is_recorded_and_the_run_exits_6) {
    sw_test::temp_dir tmp;
    // "good" emits Ada (i-1) and Grace (i-2); this target plans names
    // starting with A plus, here, refuses i-1 when applying it.
    sw_test::diff_target_job(tmp.path(), R"(, "refuse": ["i-1"])");
    auto data = tmp / "data";
    auto r = sw_test::cli(data, {"run", (tmp / "job.json").string()});
    EXPECT_EQ(r.code, 6) << r.out << r.err;
    EXPECT_THAT(r.err, HasSubstr("all 1 changes failed, so nothing was committed; last: items/'i-1': the vendor refused i-1"));
    EXPECT_EQ(sw_test::read_file(tmp / "applied.log").find("committed"), std::string::npos)
        << "commit is not called when no change was accepted";
    EXPECT_THAT(sw_test::read_file(tmp / "applied.log"), HasSubstr("aborted\n"))
        << "the target's abort hook is called instead";
    auto id = r.out.substr(4, r.out.find(' ', 4) - 4);
    auto show = sw_test::cli(data, {"runs", "show", id, "--json"});
    ASSERT_EQ(show.code, 0) << show.err;
    auto j = nlohmann::json::parse(show.out);
    EXPECT_EQ(j["state"], "failed");
    EXPECT_EQ(j["exit_code"], 6);
    ASSERT_EQ(j["changes"].size(), 1u);
    EXPECT_EQ(j["changes"][0]["key"], "i-1") << "read back from the plan";
    EXPECT_THAT(j["changes"][0]["key_hash"].get<std::string>(), testing::StartsWith("h:"))
        << "the store keeps only the keyed hash";
    EXPECT_THAT(j["error"].get<std::string>(), testing::Not(HasSubstr("'i-1'"))) << "nor the key in the run's error";
    EXPECT_EQ(j["changes"][0]["status"], "permanent");
    EXPECT_EQ(j["changes"][0]["category"], "refused");
}

// Delta feeds with `where`: a record that moves out of an entity's filter is
// deleted from the entity it left, and a tobedeleted record is deleted
// whatever its role now says.
TEST_F(pipeline_e2e, a_delta_record_that_leaves_a_where_is_deleted_from_the_entity_it_left) {
    sw_test::write_file(job(), R"({"name": "split",
      "source": {"connector": "oneroster-csv", "settings": {"path": ")" + src_.string() + R"("}},
      "target": {"connector": "vendor-csv", "settings": {"folder": ")" + drop().string() + R"(",
        "files": [{"entity": "students", "file": "students.csv", "key": "id", "columns": ["id", "name"]},
                  {"entity": "teachers", "file": "teachers.csv", "key": "id", "columns": ["id", "name"]}]}},
      "mapping": {"entities": [
        {"target": "students", "source": "users", "where": {"role": "student"},
         "fields": {"id": "sourcedId", "name": "givenName"}},
        {"target": "teachers", "source": "users", "where": {"role": "teacher"},
         "fields": {"id": "sourcedId", "name": "givenName"}}]}})");
    ASSERT_EQ(run(false).code, 0);
    ASSERT_THAT(sw_test::read_file(drop() / "students.csv"), HasSubstr("s-1001,Zoë"));
    ASSERT_THAT(sw_test::read_file(drop() / "students.csv"), HasSubstr("s-1002,"));

    // The next export is a delta: s-1001 is now a teacher; s-1002 is to be
    // deleted, and its row says teacher.
    auto header = sw_test::read_file(src_ / "users.csv");
    header = header.substr(0, header.find('\n') + 1);
    for (auto f : {"academicSessions.csv", "classes.csv", "courses.csv", "enrollments.csv", "orgs.csv"})
        fs::remove(src_ / f);
    sw_test::write_file(src_ / "manifest.csv",
                        "propertyName,value\r\nmanifest.version,1.0\r\noneroster.version,1.1\r\n"
                        "file.users,delta\r\nfile.enrollments,absent\r\nfile.orgs,absent\r\n"
                        "file.classes,absent\r\nfile.courses,absent\r\nfile.academicSessions,absent\r\n");
    sw_test::write_file(src_ / "users.csv",
                        header + "s-1001,active,,TRUE,org-north,teacher,zoe,,Zoë,García,,,,,,,,\r\n"
                                 "s-1002,tobedeleted,,TRUE,org-north,teacher,jose,,José,Nguyen,,,,,,,,\r\n");
    auto r = run(true);
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    std::set<std::string> planned;
    const auto p = plan();
    for (auto& c : p["changes"])
        planned.insert(c["kind"].get<std::string>() + " " + c["entity"].get<std::string>() + "/" +
                       c["key"].get<std::string>());
    EXPECT_EQ(planned, (std::set<std::string>{"delete students/s-1001", "create teachers/s-1001",
                                              "delete students/s-1002"})) << r.out;
    ASSERT_EQ(run(false).code, 0);
    auto students = sw_test::read_file(drop() / "students.csv");
    EXPECT_EQ(students.find("s-1001,"), std::string::npos);
    EXPECT_EQ(students.find("s-1002,"), std::string::npos);
    EXPECT_THAT(students, HasSubstr("s-1004,"));
    EXPECT_THAT(sw_test::read_file(drop() / "teachers.csv"), HasSubstr("s-1001,Zoë"));
}

// The delivered file holds s-1001 twice and the SIS renamed her: the plan
// must not delete her, and the duplicate is a blocking finding saying where.
TEST_F(pipeline_e2e, a_key_the_target_holds_twice_is_never_deleted_and_blocks_the_run) {
    ASSERT_EQ(run(false).code, 0);
    auto people = sw_test::read_file(drop() / "people.csv");
    auto at = people.find("s-1001,");
    auto row = people.substr(at, people.find('\n', at) + 1 - at);
    people += row;
    sw_test::write_file(drop() / "people.csv", people);
    edit_users([](std::string& u) { u.replace(u.find(",Zoë,"), 6, ",Zoey,"); });
    auto before = sw_test::snapshot(drop());

    auto r = run(true);
    EXPECT_EQ(r.code, 5) << r.out << r.err;
    EXPECT_THAT(r.out, HasSubstr("[duplicate_key]"));
    EXPECT_THAT(r.out, HasSubstr("holds people 's-1001' more than once (records"));
    EXPECT_THAT(r.out, HasSubstr("delete the duplicate row"));
    const auto p = plan();
    for (auto& c : p["changes"])
        EXPECT_FALSE(c["kind"] == "delete" && c["key"] == "s-1001") << "planned to delete a live person";
    r = run(false);
    EXPECT_EQ(r.code, 5);
    EXPECT_EQ(sw_test::snapshot(drop()), before) << "nothing delivered";
}
