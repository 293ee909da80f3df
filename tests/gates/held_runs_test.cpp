// The safety gates end to end, through the CLI, on the demo district into a
// vendor-csv drop: truncated exports are held and leave the target as it
// was; protected records survive; the deactivate policy and its grace
// period; approve, reject and --allow.
#include "demo_district.hpp"

#include <syncwarden/kernel/os_user.hpp>
#include <unistd.h>
#include <syncwarden/kernel/clock.hpp>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>


using ::testing::HasSubstr;
using ::testing::Not;
namespace fs = std::filesystem;

namespace {

class held_runs : public sw_test::demo_district {
protected:
    size_t user_rows() {
        auto u = sw_test::read_file(src_ / "users.csv");
        return static_cast<size_t>(std::count(u.begin(), u.end(), '\n')) - 1;
    }
    // A job of students with a status column, whose dropped students are
    // deactivated and deleted 30 days later.
    void write_deactivate_job() {
        sw_test::write_file(job(), R"({"name": "deactivate",
      "source": {"connector": "oneroster-csv", "settings": {"path": ")" + src_.string() + R"("}},
      "target": {"connector": "vendor-csv", "settings": {"folder": ")" + drop().string() + R"(",
        "files": [{"entity": "students", "file": "students.csv", "key": "id",
                   "columns": ["id", "username", "status"]}]}},
      "mapping": {"entities": [{"target": "students", "source": "users", "where": {"role": "student"},
          "fields": {"id": "sourcedId", "username": "username", "status": {"const": "active"}}}]},
      "gates": {"deprovision": {"students": {"action": "deactivate", "set": {"status": "inactive"},
                                             "delete_after": "30d"}}}})");
    }
};

}  // namespace

TEST_F(held_runs, users_csv_cut_in_half_at_a_row_boundary_is_held_and_the_target_is_untouched) {
    ASSERT_EQ(run().code, 0);
    const auto before = sw_test::snapshot(drop());
    ASSERT_EQ(user_rows(), 29u);
    keep_users(14);

    auto r = run();
    EXPECT_EQ(r.code, 10) << r.out << r.err;
    EXPECT_THAT(r.out, HasSubstr("held: "));
    EXPECT_THAT(r.out, HasSubstr("would delete 15 of 29 people (51.7%), limit 10%"));
    EXPECT_THAT(r.out, HasSubstr("the source sent 14 users; the last good run"));
    EXPECT_THAT(r.out, HasSubstr("15 fewer (51.7% shrink), limit 10%"));
    EXPECT_EQ(sw_test::snapshot(drop()), before) << "a held run must not touch the target";

    const auto id = sw_test::run_id_of(r.out);
    auto j = show(id);
    EXPECT_EQ(j["state"], "held");
    EXPECT_EQ(j["exit_code"], 10);
    EXPECT_THAT(j["error"].get<std::string>(), HasSubstr("would delete 15 of 29 people (51.7%), limit 10%"));
    bool delete_held = false;
    for (auto& v : j["gates"])
        if (v["gate"] == "threshold" && v["entity"] == "people" && v["kind"] == "delete") {
            delete_held = v["verdict"] == "hold";
            EXPECT_EQ(v["count"], 15);
            EXPECT_EQ(v["base"], 29);
            EXPECT_EQ(v["limit"], "10%");
        }
    EXPECT_TRUE(delete_held) << j["gates"].dump();

    // In words, with the commands that decide it.
    auto text = sw_test::cli(data(), {"runs", "show", id});
    EXPECT_THAT(text.out, HasSubstr("held       would delete 15 of 29 people (51.7%), limit 10%"));
    EXPECT_THAT(text.out, HasSubstr("runs approve " + id + " --as NAME"));

    // The preview, filtered by entity and kind.
    auto deletes = sw_test::cli(data(), {"runs", "show", id, "--changes", "--entity", "people", "--kind", "delete",
                                         "--limit", "3"});
    ASSERT_EQ(deletes.code, 0) << deletes.err;
    EXPECT_THAT(deletes.out, HasSubstr("15 change(s) of people of kind delete"));
    EXPECT_THAT(deletes.out, HasSubstr("... and 12 more"));
    EXPECT_THAT(deletes.out, Not(HasSubstr("rosters/")));
}

TEST_F(held_runs, an_enrollments_csv_present_but_empty_is_held_and_the_target_is_untouched) {
    ASSERT_EQ(run().code, 0);
    const auto before = sw_test::snapshot(drop());
    auto e = sw_test::read_file(src_ / "enrollments.csv");
    sw_test::write_file(src_ / "enrollments.csv", e.substr(0, e.find('\n') + 1));

    auto r = run();
    EXPECT_EQ(r.code, 10) << r.out << r.err;
    EXPECT_THAT(r.out, HasSubstr("the source sent no enrollments at all (0 records)"));
    EXPECT_THAT(r.out, HasSubstr("would delete 40 of 40 rosters (100%), limit 10%"));
    EXPECT_EQ(sw_test::snapshot(drop()), before);
}

TEST_F(held_runs, a_dry_run_shows_what_would_hold_and_runs_apply_will_not_bypass_it) {
    ASSERT_EQ(run().code, 0);
    keep_users(14);
    auto r = run({"--dry-run"});
    EXPECT_EQ(r.code, 10) << r.out;
    EXPECT_THAT(r.out, HasSubstr("WOULD HOLD"));
    EXPECT_THAT(r.out, HasSubstr("a run of this plan would be held: "));
    EXPECT_THAT(r.out, HasSubstr("pass       threshold rosters"));
    const auto before = sw_test::snapshot(drop());
    auto apply = sw_test::cli(data(), {"runs", "apply", sw_test::run_id_of(r.out)});
    EXPECT_EQ(apply.code, 2);
    EXPECT_THAT(apply.err, HasSubstr("was held by a safety gate"));
    EXPECT_THAT(apply.err, HasSubstr("runs approve"));
    EXPECT_EQ(sw_test::snapshot(drop()), before);
    // An operator who reviewed the dry run approves its plan.
    auto ok = sw_test::cli(data(), {"runs", "approve", sw_test::run_id_of(r.out), "--as", "dana"});
    ASSERT_EQ(ok.code, 0) << ok.out << ok.err;
    EXPECT_THAT(ok.out, HasSubstr("applying exactly the approved plan of run " + sw_test::run_id_of(r.out)));
    auto people = sw_test::read_file(drop() / "people.csv");
    EXPECT_EQ(std::count(people.begin(), people.end(), '\n'), 15);
}

TEST_F(held_runs, approve_applies_the_held_plan_byte_for_byte) {
    ASSERT_EQ(run().code, 0);
    keep_users(14);
    auto held = run();
    ASSERT_EQ(held.code, 10) << held.out;
    const auto id = sw_test::run_id_of(held.out);
    const auto held_plan = show(id)["plan"];
    const auto planned = nlohmann::json::parse(sw_test::read_file(held_plan["path"].get<std::string>()));

    // The digest of another plan than the one reviewed is refused.
    auto wrong = sw_test::cli(data(), {"runs", "approve", id, "--as", "dana", "--plan", "0123456789abcdef"});
    EXPECT_EQ(wrong.code, 2) << wrong.out;
    EXPECT_THAT(wrong.err, HasSubstr("not the 0123456789abcdef given with --plan; nothing was approved"));
    EXPECT_EQ(show(id)["state"], "held");

    auto ok = sw_test::cli(data(), {"runs", "approve", id, "--as", "dana", "--reason", "mid-year cleanup", "--plan",
                                    held_plan["digest"].get<std::string>().substr(0, 12)});
    ASSERT_EQ(ok.code, 0) << ok.out << ok.err;
    EXPECT_THAT(ok.out, HasSubstr("applying exactly the approved plan of run " + id));
    const auto applier = sw_test::run_id_of(ok.out);
    ASSERT_NE(applier, id);

    auto a = show(applier);
    EXPECT_EQ(a["state"], "succeeded");
    EXPECT_EQ(a["plan_of"], id);
    EXPECT_EQ(a["trigger"], "approval of " + id + " by dana");
    // Every change of the held plan, by content id and in order, and nothing else.
    ASSERT_EQ(a["changes"].size(), planned["changes"].size());
    for (size_t i = 0; i < planned["changes"].size(); ++i) {
        EXPECT_EQ(a["changes"][i]["id"], planned["changes"][i]["id"]);
        EXPECT_EQ(a["changes"][i]["status"], "applied");
    }
    auto people = sw_test::read_file(drop() / "people.csv");
    EXPECT_EQ(std::count(people.begin(), people.end(), '\n'), 15) << "header and the 14 users left";

    auto h = show(id);
    EXPECT_EQ(h["state"], "approved");
    ASSERT_EQ(h["decisions"].size(), 1u);
    EXPECT_EQ(h["decisions"][0]["action"], "approve");
    EXPECT_EQ(h["decisions"][0]["by"], "dana");
    EXPECT_EQ(h["decisions"][0]["os_user"], syncwarden::kernel::os_user_of(::geteuid()).text())
        << "the operating system's word for who approved, beside the name given with --as";
    EXPECT_EQ(h["decisions"][0]["reason"], "mid-year cleanup");
    EXPECT_EQ(h["decisions"][0]["plan_digest"], held_plan["digest"]);
    EXPECT_THAT(h["error"].get<std::string>(), HasSubstr("its plan was applied by run " + applier));

    auto again = sw_test::cli(data(), {"runs", "approve", id, "--as", "dana"});
    EXPECT_EQ(again.code, 2);
    EXPECT_THAT(again.err, HasSubstr("only a held run can be approved"));
}

TEST_F(held_runs, approve_after_the_source_changed_plans_again) {
    ASSERT_EQ(run().code, 0);
    const auto full = sw_test::read_file(src_ / "users.csv");
    keep_users(14);
    auto held = run();
    ASSERT_EQ(held.code, 10);
    const auto id = sw_test::run_id_of(held.out);
    // The SIS sends a complete export again, with one name changed.
    auto fixed = full;
    fixed.replace(fixed.find("Marcus"), 6, "Marco");
    sw_test::write_file(src_ / "users.csv", fixed);

    auto r = sw_test::cli(data(), {"runs", "approve", id, "--as", "dana"});
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_THAT(r.out, HasSubstr("the approved plan was stale and was not applied: the source data changed"));
    const auto replanned = sw_test::run_id_of(r.out);
    auto j = show(replanned);
    EXPECT_EQ(j["state"], "succeeded");
    EXPECT_EQ(j["summary"]["planned"]["people"]["update"], 1);
    EXPECT_EQ(j["summary"]["planned"]["people"]["delete"], 0);
    auto people = sw_test::read_file(drop() / "people.csv");
    EXPECT_THAT(people, HasSubstr("Marco"));
    EXPECT_EQ(std::count(people.begin(), people.end(), '\n'), 30) << "nobody was deleted";
    auto h = show(id);
    EXPECT_EQ(h["state"], "superseded");
    EXPECT_THAT(h["error"].get<std::string>(), HasSubstr("planned again as run " + replanned));
}

TEST_F(held_runs, approve_after_the_target_changed_refuses_the_stale_plan_and_holds_again) {
    ASSERT_EQ(run().code, 0);
    keep_users(14);
    auto held = run();
    ASSERT_EQ(held.code, 10);
    const auto id = sw_test::run_id_of(held.out);
    // Someone edits the vendor's drop by hand after the plan was made.
    auto people = sw_test::read_file(drop() / "people.csv");
    people.replace(people.find("Marcus"), 6, "Mark");
    sw_test::write_file(drop() / "people.csv", people);
    const auto edited = sw_test::snapshot(drop());

    auto r = sw_test::cli(data(), {"runs", "approve", id, "--as", "dana"});
    EXPECT_EQ(r.code, 10) << r.out << r.err;
    EXPECT_THAT(r.out, HasSubstr("the approved plan was stale and was not applied: the target changed since run " + id));
    EXPECT_THAT(r.out, HasSubstr("held: "));
    EXPECT_EQ(sw_test::snapshot(drop()), edited) << "nothing of the stale plan may reach the target";
    EXPECT_EQ(show(id)["state"], "superseded");
    const auto again = sw_test::run_id_of(r.out);
    EXPECT_NE(again, id);
    EXPECT_EQ(show(again)["state"], "held");
}

TEST_F(held_runs, reject_closes_the_run_with_who_and_why) {
    ASSERT_EQ(run().code, 0);
    keep_users(14);
    auto held = run();
    const auto id = sw_test::run_id_of(held.out);
    auto no_reason = sw_test::cli(data(), {"runs", "reject", id, "--as", "dana"});
    EXPECT_EQ(no_reason.code, 2);
    EXPECT_THAT(no_reason.err, HasSubstr("--reason"));
    auto r = sw_test::cli(data(), {"runs", "reject", id, "--as", "dana", "--reason", "truncated SIS export"});
    ASSERT_EQ(r.code, 0) << r.err;
    auto j = show(id);
    EXPECT_EQ(j["state"], "rejected");
    EXPECT_EQ(j["decisions"][0]["action"], "reject");
    EXPECT_EQ(j["decisions"][0]["reason"], "truncated SIS export");
    EXPECT_EQ(sw_test::cli(data(), {"runs", "approve", id, "--as", "dana"}).code, 2);
}

TEST_F(held_runs, allow_pre_approves_a_limit_for_one_run_and_is_recorded) {
    ASSERT_EQ(run().code, 0);
    keep_users(14);
    auto over = run({"--allow", "delete=50%", "--allow", "shrink=60%"});
    EXPECT_EQ(over.code, 10) << over.out;
    EXPECT_THAT(over.out, HasSubstr("(and over --allow delete=50%)"));
    auto r = run({"--allow", "people.delete=60%,shrink=60%"});
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_THAT(r.out, HasSubstr("ALLOWED"));
    EXPECT_THAT(r.out, HasSubstr("allowed for this run by --allow people.delete=60%"));
    auto j = show(sw_test::run_id_of(r.out));
    EXPECT_EQ(j["summary"]["allowed"], nlohmann::json::array({"people.delete=60%", "shrink=60%"}));
    auto bad = run({"--allow", "everything"});
    EXPECT_EQ(bad.code, 2);
    EXPECT_THAT(bad.err, HasSubstr("--allow takes KIND=LIMIT"));
}

TEST_F(held_runs, a_protected_account_survives_a_source_that_drops_it) {
    write_job(R"("gates": {"protect": [{"entity": "people", "field": "username", "prefix": "marcus."}]},)");
    ASSERT_EQ(run().code, 0);
    drop_user("t-102");  // protected
    drop_user("t-103");  // not

    auto r = run({"--plan-out", (tmp_ / "plan.json").string()});
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_THAT(r.out, HasSubstr("1 protected record(s) kept out of the plan"));
    EXPECT_THAT(sw_test::read_file(drop() / "people.csv"), HasSubstr("t-102,marcus.whitfield"));
    EXPECT_THAT(sw_test::read_file(drop() / "people.csv"), Not(HasSubstr("t-103,"))) << "no rule covers t-103";
    auto plan = nlohmann::json::parse(sw_test::read_file(tmp_ / "plan.json"));
    ASSERT_EQ(plan["protected"].size(), 1u);
    EXPECT_EQ(plan["protected"][0]["key"], "t-102");
    EXPECT_EQ(plan["protected"][0]["would"], "delete");
    EXPECT_THAT(plan["protected"][0]["rule"].get<std::string>(),
                HasSubstr("username starts with 'marcus.' ($.gates.protect[0])"));
    auto listed = sw_test::cli(data(), {"runs", "show", sw_test::run_id_of(r.out), "--changes", "--entity", "people"});
    ASSERT_EQ(listed.code, 0) << listed.err;
    EXPECT_THAT(listed.out, HasSubstr("delete people/t-103"));
    EXPECT_THAT(listed.out, HasSubstr("people/t-102: would delete, protected by username starts with 'marcus.'"));
    // Still protected on the next run.
    auto again = run();
    ASSERT_EQ(again.code, 0);
    EXPECT_THAT(sw_test::read_file(drop() / "people.csv"), HasSubstr("t-102,marcus.whitfield"));
}

// The deactivate policy on an injected clock: a dropped student becomes
// status=inactive, stays so through the grace period, and is deleted after.
TEST_F(held_runs, deactivate_policy_then_delete_after_the_grace_period) {
    write_deactivate_job();
    using namespace std::chrono;
    syncwarden::kernel::manual_clock clk{system_clock::time_point(hours(24 * 365 * 57))};
    auto at = [&](std::vector<std::string> a) { return sw_test::cli(data(), a, clk); };
    ASSERT_EQ(at({"run", job().string()}).code, 0);
    drop_user("s-1002");

    clk.advance(hours(24));
    auto r = at({"run", job().string()});
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_THAT(r.out, HasSubstr("deactivate"));
    auto students = sw_test::read_file(drop() / "students.csv");
    EXPECT_THAT(students, HasSubstr("s-1002,josé.nguyen,inactive"));
    EXPECT_THAT(students, HasSubstr("s-1001,zoë.garcía,active"));

    clk.advance(hours(24 * 29));  // 29 days after the deactivation: still in grace
    r = at({"run", job().string(), "--plan-out", (tmp_ / "p29.json").string()});
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_EQ(nlohmann::json::parse(sw_test::read_file(tmp_ / "p29.json"))["changes"].size(), 0u);
    EXPECT_THAT(sw_test::read_file(drop() / "students.csv"), HasSubstr("s-1002,josé.nguyen,inactive"));

    clk.advance(hours(24 * 1));  // 30 days: the grace period is over
    r = at({"run", job().string()});
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    students = sw_test::read_file(drop() / "students.csv");
    EXPECT_THAT(students, Not(HasSubstr("s-1002,")));
    EXPECT_THAT(students, HasSubstr("s-1001,zoë.garcía,active"));
}

TEST_F(held_runs, a_returning_student_is_active_again_and_the_grace_clock_forgets_them) {
    write_deactivate_job();
    using namespace std::chrono;
    syncwarden::kernel::manual_clock clk{system_clock::time_point(hours(24 * 365 * 57))};
    auto at = [&](std::vector<std::string> a) { return sw_test::cli(data(), a, clk); };
    ASSERT_EQ(at({"run", job().string()}).code, 0);
    const auto full = sw_test::read_file(src_ / "users.csv");
    auto u = full;
    const auto line = u.find("s-1002,");
    u.erase(line, u.find('\n', line) + 1 - line);
    sw_test::write_file(src_ / "users.csv", u);
    ASSERT_EQ(at({"run", job().string()}).code, 0);
    sw_test::write_file(src_ / "users.csv", full);  // back after 10 days
    clk.advance(hours(24 * 10));
    ASSERT_EQ(at({"run", job().string()}).code, 0);
    EXPECT_THAT(sw_test::read_file(drop() / "students.csv"), HasSubstr("s-1002,josé.nguyen,active"));
    // Dropped again 25 days later: deactivated anew, not deleted on the old clock.
    sw_test::write_file(src_ / "users.csv", u);
    clk.advance(hours(24 * 25));
    ASSERT_EQ(at({"run", job().string()}).code, 0);
    clk.advance(hours(24 * 5));
    ASSERT_EQ(at({"run", job().string()}).code, 0);
    EXPECT_THAT(sw_test::read_file(drop() / "students.csv"), HasSubstr("s-1002,josé.nguyen,inactive"));
}

// Referential checks: the source reports an enrollment whose user is missing
// as a warning; a job can make it block the run.
TEST_F(held_runs, a_job_can_make_a_dangling_reference_hold_the_run) {
    ASSERT_EQ(run().code, 0);
    drop_user("s-1011");

    auto warned = run({"--dry-run"});
    ASSERT_EQ(warned.code, 0) << warned.out;
    EXPECT_THAT(warned.out, HasSubstr("warning [dangling_reference] enrollments.csv:18:35: enrollments 'enr-00017': "
                                      "userSourcedId 's-1011' is not in users"));

    write_job(R"("gates": {"findings": {"enrollments.dangling_reference": "error"}},)");
    auto held = run();
    EXPECT_EQ(held.code, 10) << held.out;
    EXPECT_THAT(held.out, HasSubstr("held: 1 error finding(s) in the input"));
    EXPECT_THAT(held.out, HasSubstr("enrollments.csv:18:35: enrollments 'enr-00017': userSourcedId 's-1011' is not in "
                                    "users (error by the job's $.gates.findings)"));
    // Nothing of the record was dropped, so approving applies the whole plan.
    auto ok = sw_test::cli(data(), {"runs", "approve", sw_test::run_id_of(held.out), "--as", "dana"});
    ASSERT_EQ(ok.code, 0) << ok.out << ok.err;
    EXPECT_THAT(sw_test::read_file(drop() / "people.csv"), Not(HasSubstr("s-1011,")));
}
