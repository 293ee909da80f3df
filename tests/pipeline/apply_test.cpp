// The persisted plan as the unit of work: a dry run's plan applied later,
// refused when the target changed or the plan was altered, staged changes
// that become applied only with the target's commit.
#include "test_support.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <csignal>
#include <fstream>
#include <sys/wait.h>

#include <fcntl.h>
#include <unistd.h>
using ::testing::HasSubstr;
namespace fs = std::filesystem;

namespace {

// A demo district synced into a vendor-csv drop, with its own data dir.
struct district {
    explicit district(const fs::path& root) : root(root) {
        sw_test::install_shipped(data());
        sw_test::copy_tree(fs::path(SW_SOURCE_DIR) / "config/demo/district", root / "district");
        sw_test::write_file(job(), sw_test::roster_job(root / "district", drop()));
    }
    fs::path data() const { return root / "data"; }
    fs::path drop() const { return root / "drop"; }
    fs::path job() const { return root / "job.json"; }
    sw_test::cli_result run(bool dry) const {
        std::vector<std::string> a{"run", job().string()};
        if (dry) a.push_back("--dry-run");
        return sw_test::cli(data(), a);
    }
    sw_test::cli_result apply(const std::string& id) const { return sw_test::cli(data(), {"runs", "apply", id}); }
    nlohmann::json show(const std::string& id) const {
        auto r = sw_test::cli(data(), {"runs", "show", id, "--json"});
        EXPECT_EQ(r.code, 0) << r.err;
        return nlohmann::json::parse(r.out);
    }
    void edit_users(const std::string& from, const std::string& to) const {
        auto u = sw_test::read_file(root / "district/users.csv");
        u.replace(u.find(from), from.size(), to);
        sw_test::write_file(root / "district/users.csv", u);
    }
    fs::path root;
};

std::vector<std::pair<std::string, std::string>> delivered(const fs::path& drop) {
    auto all = sw_test::snapshot(drop);
    std::erase_if(all, [](auto& f) { return f.first == ".syncwarden.lock"; });
    return all;
}

}  // namespace

TEST(runs_apply, a_dry_runs_plan_applied_later_delivers_exactly_what_an_immediate_apply_delivers) {
    sw_test::temp_dir tmp;
    district now(tmp / "now"), later(tmp / "later");
    for (auto* d : {&now, &later}) {
        ASSERT_EQ(d->run(false).code, 0);
        d->edit_users(",Marcus,", ",Mark,");
        d->edit_users("s-1003,,", "s-1003,tobedeleted,");
    }
    auto r = now.run(false);
    ASSERT_EQ(r.code, 0) << r.out << r.err;

    auto dry = later.run(true);
    ASSERT_EQ(dry.code, 0) << dry.out << dry.err;
    const auto dry_id = sw_test::run_id_of(dry.out);
    // The source changes again after the dry run: the stored plan, not the
    // source, is what gets applied.
    later.edit_users(",Mark,", ",Marco,");
    auto a = later.apply(dry_id);
    ASSERT_EQ(a.code, 0) << a.out << a.err;
    EXPECT_THAT(a.out, HasSubstr("applying the plan of run " + dry_id));
    EXPECT_THAT(a.out, HasSubstr("applied 2 changes, 0 failed"));

    EXPECT_EQ(delivered(later.drop()), delivered(now.drop())) << "including changes.csv and its change ids";
    auto j = later.show(sw_test::run_id_of(a.out));
    EXPECT_EQ(j["state"], "succeeded");
    EXPECT_EQ(j["plan_of"], dry_id);
    ASSERT_EQ(j["changes"].size(), 2u);
    for (auto& c : j["changes"]) EXPECT_EQ(c["status"], "applied");
}

TEST(runs_apply, a_plan_whose_target_changed_is_refused_and_says_why) {
    sw_test::temp_dir tmp;
    district d(tmp.path());
    ASSERT_EQ(d.run(false).code, 0);
    d.edit_users(",Marcus,", ",Mark,");
    auto dry = d.run(true);
    ASSERT_EQ(dry.code, 0) << dry.err;
    // Someone edits the delivered file after the plan was made.
    auto people = sw_test::read_file(d.drop() / "people.csv");
    people.replace(people.find("Zoë"), 4, "Zoe");
    sw_test::write_file(d.drop() / "people.csv", people);
    auto before = delivered(d.drop());

    auto a = d.apply(sw_test::run_id_of(dry.out));
    EXPECT_EQ(a.code, 6) << a.out << a.err;
    EXPECT_THAT(a.err, HasSubstr("the target changed since the plan of run " + sw_test::run_id_of(dry.out) + " was made"));
    EXPECT_THAT(a.err, HasSubstr("nothing was applied"));
    EXPECT_THAT(a.err, HasSubstr("--dry-run"));
    EXPECT_EQ(delivered(d.drop()), before);
}

TEST(runs_apply, a_plan_is_applied_once_the_second_time_the_target_has_moved_on) {
    sw_test::temp_dir tmp;
    district d(tmp.path());
    auto dry = d.run(true);
    ASSERT_EQ(dry.code, 0);
    ASSERT_EQ(d.apply(sw_test::run_id_of(dry.out)).code, 0);
    auto again = d.apply(sw_test::run_id_of(dry.out));
    EXPECT_EQ(again.code, 6) << again.out << again.err;
    EXPECT_THAT(again.err, HasSubstr("the target changed since the plan"));
}

TEST(runs_apply, an_altered_plan_file_is_refused) {
    sw_test::temp_dir tmp;
    district d(tmp.path());
    auto dry = d.run(true);
    ASSERT_EQ(dry.code, 0);
    const auto id = sw_test::run_id_of(dry.out);
    auto plan_file = d.data() / "plans" / (id + ".plan");
    auto bytes = sw_test::read_file(plan_file);
    auto at = bytes.find("Zoë");
    ASSERT_NE(at, std::string::npos);
    bytes.replace(at, 4, "Zoe!");
    sw_test::write_file(plan_file, bytes);
    auto a = d.apply(id);
    EXPECT_EQ(a.code, 1) << a.out << a.err;
    EXPECT_THAT(a.err, HasSubstr("does not match its digest"));
    EXPECT_FALSE(fs::exists(d.drop() / "people.csv"));
}

TEST(runs_apply, only_a_dry_run_that_succeeded_has_a_plan_to_apply) {
    sw_test::temp_dir tmp;
    district d(tmp.path());
    auto applied = d.run(false);
    ASSERT_EQ(applied.code, 0);
    auto a = d.apply(sw_test::run_id_of(applied.out));
    EXPECT_EQ(a.code, 2) << a.err;
    EXPECT_THAT(a.err, HasSubstr("was not a dry run"));
    EXPECT_EQ(d.apply("r-nope").code, 7);
}

TEST(runs_apply, change_ids_are_content_ids_the_same_change_planned_twice_has_the_same_id) {
    sw_test::temp_dir tmp;
    district d(tmp.path());
    auto a = d.run(true), b = d.run(true);
    ASSERT_EQ(a.code, 0);
    ASSERT_EQ(b.code, 0);
    auto ids = [&](const std::string& out) {
        auto j = nlohmann::json::parse(sw_test::read_file(d.data() / "plans" / (sw_test::run_id_of(out) + ".json")));
        std::vector<std::string> v;
        for (auto& c : j["changes"]) v.push_back(c["id"]);
        return v;
    };
    EXPECT_EQ(ids(a.out), ids(b.out));
    EXPECT_EQ(ids(a.out).size(), 69u);
}

TEST(apply, after_a_failed_commit_no_change_is_applied_in_the_store) {
    sw_test::temp_dir tmp;
    sw_test::diff_target_job(tmp.path(), R"(, "fail_commit": true)");
    auto r = sw_test::cli(tmp / "data", {"run", (tmp / "job.json").string()});
    EXPECT_EQ(r.code, 6) << r.out << r.err;
    EXPECT_THAT(r.err, HasSubstr("commit failed (retryable, vendor_down): the vendor did not confirm"));
    EXPECT_THAT(r.err, HasSubstr("none of them counts as applied"));
    auto show = sw_test::cli(tmp / "data", {"runs", "show", sw_test::run_id_of(r.out), "--json"});
    auto j = nlohmann::json::parse(show.out);
    EXPECT_EQ(j["state"], "failed");
    EXPECT_EQ(j["summary"]["applied"], 0);
    EXPECT_EQ(j["summary"]["failed"], 1);
    ASSERT_EQ(j["changes"].size(), 1u);
    EXPECT_EQ(j["changes"][0]["status"], "failed");
    EXPECT_EQ(j["changes"][0]["category"], "vendor_down");
    auto text = sw_test::cli(tmp / "data", {"runs", "show", sw_test::run_id_of(r.out)});
    EXPECT_THAT(text.out, HasSubstr("changes recorded: 1, failed: 1"));
}

TEST(apply, a_connectors_checkpoints_are_kept_in_the_run_store) {
    sw_test::temp_dir tmp;
    sw_test::diff_target_job(tmp.path(), "");
    auto r = sw_test::cli(tmp / "data", {"run", (tmp / "job.json").string()});
    ASSERT_EQ(r.code, 0) << r.err;
    const std::string q = "sqlite3 " + (tmp / "data" / "syncwarden.db").string() +
                          " \"SELECT scope || '=' || token FROM checkpoints WHERE run_id='" + sw_test::run_id_of(r.out) +
                          "' ORDER BY scope\" > " + (tmp / "cp.txt").string();
    ASSERT_EQ(std::system(q.c_str()), 0);
    EXPECT_EQ(sw_test::read_file(tmp / "cp.txt"), "apply=1\nconnector/target=through i-1\n");
}

TEST(apply, host_calls_from_destroy_reach_no_freed_run_state) {
    sw_test::temp_dir tmp;
    sw_test::diff_target_job(tmp.path(), R"(, "late_calls": true)");
    auto r = sw_test::cli(tmp / "data", {"run", (tmp / "job.json").string()});
    EXPECT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_THAT(r.out, HasSubstr("applied 1 changes, 0 failed"));
}

TEST(apply, a_store_deleted_during_the_run_stops_it_before_the_commit) {
    sw_test::temp_dir tmp;
    // In process: a confined worker could not reach the store (sandbox_test).
    sw_test::diff_target_job(tmp.path(), R"(, "remove_during_apply": ")" + (tmp / "data" / "syncwarden.db").string() + "\"",
                             R"("isolation": "in-process",)");
    auto r = sw_test::cli(tmp / "data", {"run", (tmp / "job.json").string()});
    EXPECT_EQ(r.code, 1) << r.out << r.err;
    EXPECT_THAT(r.err, HasSubstr("syncwarden.db was deleted or replaced while this run was using it"));
    EXPECT_EQ(sw_test::read_file(tmp / "applied.log").find("committed"), std::string::npos)
        << "nothing is committed that no run would record";
}

// The target committed, then another process holds the run store: the run
// cannot record the commit, and says exactly that instead of a bare store
// error; the store still shows the changes as staged, never applied.
TEST(apply, a_store_locked_after_the_commit_is_reported_as_such) {
    sw_test::temp_dir tmp;
    const auto db = tmp / "data" / "syncwarden.db";
    // In process: a confined worker could neither reach the store nor run
    // sqlite3 (sandbox_test).
    sw_test::diff_target_job(tmp.path(), R"(, "lock_in_commit": ")" + db.string() + "\"", R"("isolation": "in-process",)");
    auto r = sw_test::cli(tmp / "data", {"run", (tmp / "job.json").string()});
    EXPECT_EQ(r.code, 1) << r.out << r.err;
    EXPECT_THAT(r.err, HasSubstr("the target made 1 changes durable, but the run store could not record it"));
    EXPECT_THAT(r.err, HasSubstr("nothing needs to be applied again"));
    EXPECT_THAT(sw_test::read_file(tmp / "applied.log"), HasSubstr("committed"));
    // The other process lets go of the store.
    const pid_t locker = std::stoi(sw_test::read_file(db.string() + ".locker"));
    ::kill(-locker, SIGKILL);
    auto runs = nlohmann::json::parse(sw_test::cli(tmp / "data", {"runs", "list", "--json"}).out);
    ASSERT_EQ(runs.size(), 1u);
    auto j = nlohmann::json::parse(
        sw_test::cli(tmp / "data", {"runs", "show", runs[0]["id"].get<std::string>(), "--json"}).out);
    for (auto& c : j["changes"]) EXPECT_EQ(c["status"], "staged");
    auto text = sw_test::cli(tmp / "data", {"runs", "show", runs[0]["id"].get<std::string>()});
    EXPECT_THAT(text.out, HasSubstr("changes recorded: 1, failed: 0, staged but not committed: 1"));
}

TEST(apply, a_result_for_a_change_index_past_the_batch_is_a_connector_defect) {
    sw_test::temp_dir tmp;
    sw_test::diff_target_job(tmp.path(), R"(, "bad_index": true)");
    auto r = sw_test::cli(tmp / "data", {"run", (tmp / "job.json").string()});
    EXPECT_EQ(r.code, 4) << r.out << r.err;
    EXPECT_THAT(r.err, HasSubstr("reported a result for change index 6"));
    EXPECT_THAT(r.err, HasSubstr("defect of the connector; nothing was committed"));
    auto j = nlohmann::json::parse(sw_test::cli(tmp / "data", {"runs", "show", sw_test::run_id_of(r.out), "--json"}).out);
    EXPECT_EQ(j["summary"]["applied"], 0);
    for (auto& c : j["changes"]) EXPECT_NE(c["status"], "applied");
}

// Defect: every run left locks/runs/<id>.lock behind, forever. A run's lock
// goes with the run; a run killed in its tracks keeps it (that is how it is
// known to have been interrupted).
TEST(apply, a_finished_run_leaves_no_lock_file_behind) {
    sw_test::temp_dir tmp;
    sw_test::diff_target_job(tmp.path());
    for (auto mode : {std::vector<std::string>{"--dry-run"}, std::vector<std::string>{}}) {
        std::vector<std::string> args{"run", (tmp / "job.json").string()};
        args.insert(args.end(), mode.begin(), mode.end());
        auto r = sw_test::cli(tmp / "data", args);
        ASSERT_EQ(r.code, 0) << r.out << r.err;
    }
    std::vector<std::string> left;
    std::error_code ec;
    for (auto& e : fs::directory_iterator(tmp / "data" / "locks" / "runs", ec)) left.push_back(e.path().filename());
    EXPECT_TRUE(left.empty()) << left.size() << " lock file(s) left, the first " << (left.empty() ? "" : left[0]);
}

// Defect: --run-id with the id of an existing run ended in a raw "UNIQUE
// constraint failed". It is refused as a usage error, naming the run, and
// the existing run is untouched.
TEST(apply, a_run_id_that_exists_already_is_refused_before_anything_happens) {
    sw_test::temp_dir tmp;
    sw_test::diff_target_job(tmp.path());
    const std::string id = "r20261207T120000-abcdef";
    auto first = sw_test::cli(tmp / "data", {"run", (tmp / "job.json").string(), "--run-id", id});
    ASSERT_EQ(first.code, 0) << first.out << first.err;
    auto again = sw_test::cli(tmp / "data", {"run", (tmp / "job.json").string(), "--run-id", id, "--dry-run"});
    EXPECT_EQ(again.code, 2) << again.out << again.err;
    EXPECT_THAT(again.err, HasSubstr("--run-id " + id + ": a run with that id exists already (succeeded"));
    EXPECT_THAT(again.err, ::testing::Not(HasSubstr("UNIQUE")));
    auto show = nlohmann::json::parse(sw_test::cli(tmp / "data", {"runs", "show", id, "--json"}).out);
    EXPECT_EQ(show["state"], "succeeded");
    EXPECT_EQ(show["dry_run"], false);
}

// Defect: a data dir this user may not read was reported as "no runs yet"
// (exit 0) and as one no daemon serves. The permission error is reported.
TEST(apply, a_data_dir_this_user_may_not_read_is_reported_as_such) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root, to run the CLI as another user";
    sw_test::temp_dir tmp;
    sw_test::diff_target_job(tmp.path());
    ASSERT_EQ(sw_test::cli(tmp / "data", {"run", (tmp / "job.json").string(), "--dry-run"}).code, 0);
    const fs::path outdir = tmp / "out";
    fs::create_directories(outdir);
    fs::permissions(outdir, fs::perms::all);
    fs::permissions(tmp.path(), fs::perms::others_exec, fs::perm_options::add);
    for (const char* cmd : {"runs", "status"}) {
        const std::string out = (outdir / cmd).string();
        std::vector<std::string> argv{SW_KERNEL_BIN, "--data-dir", (tmp / "data").string(), cmd};
        if (std::string(cmd) == "runs") argv.push_back("list");
        std::vector<char*> av;
        for (auto& a : argv) av.push_back(a.data());
        av.push_back(nullptr);
        const pid_t pid = ::fork();
        if (pid == 0) {
            const int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0666);
            ::dup2(fd, 1);
            ::dup2(fd, 2);
            if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(126);
            ::execv(av[0], av.data());
            ::_exit(127);
        }
        int st = 0;
        ::waitpid(pid, &st, 0);
        const std::string said = sw_test::read_file(out);
        ASSERT_TRUE(WIFEXITED(st)) << said;
        EXPECT_EQ(WEXITSTATUS(st), 1) << cmd << ": " << said;
        EXPECT_THAT(said, HasSubstr("cannot use the data dir " + (tmp / "data").string() + ": Permission denied")) << cmd;
        EXPECT_THAT(said, ::testing::Not(HasSubstr("no runs yet")));
    }
}
