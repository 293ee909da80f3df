#include <syncwarden/kernel/config.hpp>

#include "test_support.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

using namespace syncwarden::kernel;
namespace fs = std::filesystem;
using ::testing::HasSubstr;

namespace {

const char* k_good = R"({
  // comments are allowed
  "name": "j",
  "source": {"connector": "oneroster-csv", "version": "^1.2", "settings": {"path": "x"}},
  "target": {"connector": "vendor-csv", "settings": {}},
  "mapping": {
    "tables": {"grades": {"09": "Grade 9"}},
    "entities": [{"target": "students", "source": "users", "where": {"role": "student"},
      "fields": {"id": "sourcedId", "grade": {"from": "grades", "table": "grades", "missing": "keep"},
                 "name": {"template": "{givenName} {familyName}"}, "kind": {"const": "S"}}}]
  },
  "apply": {"batch_size": 50}
})";

std::string error_for(const std::string& text) {
    sw_test::temp_dir tmp;
    sw_test::write_file(tmp / "job.json", text);
    auto r = load_job(tmp / "job.json");
    EXPECT_FALSE(r.is_ok());
    if (r.is_ok()) return {};
    EXPECT_EQ(r.status().kind(), error_kind::config);
    EXPECT_THAT(r.status().message(), HasSubstr("job.json"));
    return r.status().message();
}

std::string with(const std::string& from, const std::string& to) {
    std::string s = k_good;
    auto p = s.find(from);
    EXPECT_NE(p, std::string::npos) << from;
    return s.replace(p, from.size(), to);
}

}  // namespace

TEST(job_config, reads_a_complete_job) {
    sw_test::temp_dir tmp;
    sw_test::write_file(tmp / "job.json", k_good);
    auto r = load_job(tmp / "job.json");
    ASSERT_TRUE(r.is_ok()) << r.status().message();
    EXPECT_EQ(r->name, "j");
    EXPECT_EQ(r->source.version, "^1.2");
    EXPECT_EQ(r->target.version, "*");
    EXPECT_EQ(r->batch_size, 50u);
    ASSERT_EQ(r->entities.size(), 1u);
    auto& m = r->entities[0];
    EXPECT_EQ(m.where[0].second, std::vector<std::string>{"student"});
    ASSERT_EQ(m.fields.size(), 4u);
    EXPECT_EQ(r->tables.at("grades").at("09"), "Grade 9");
    for (auto& [name, rule] : m.fields) {
        if (name == "name") {
            EXPECT_EQ(rule.parts, (std::vector<std::string>{"", "givenName", " ", "familyName", ""}));
        } else if (name == "grade") {
            EXPECT_EQ(rule.missing, field_rule::on_missing::keep);
        } else if (name == "kind") {
            EXPECT_EQ(rule.value, "S");
        }
    }
}

TEST(job_config, syntax_errors_name_line_and_column) {
    auto m = error_for("{\n  \"name\": \"j\",\n  \"source\": {,}\n}");
    EXPECT_THAT(m, HasSubstr("job.json:3:"));
    EXPECT_THAT(m, HasSubstr("not valid JSON"));
}

TEST(job_config, errors_name_the_json_path_and_what_was_expected) {
    EXPECT_THAT(error_for(with("\"name\": \"j\",", "")), HasSubstr("$: missing required field 'name'"));
    EXPECT_THAT(error_for(with("\"batch_size\": 50", "\"batch_size\": 0")),
                HasSubstr("$.apply.batch_size: expected a whole number from 1 to 100000, found 0"));
    EXPECT_THAT(error_for(with("\"table\": \"grades\"", "\"table\": \"gradez\"")),
                HasSubstr("$.mapping.entities[0].fields.grade.table: no mapping table 'gradez'"));
    EXPECT_THAT(error_for(with("\"missing\": \"keep\"", "\"missing\": \"drop\"")),
                HasSubstr("$.mapping.entities[0].fields.grade.missing: expected \"error\", \"keep\" or \"empty\""));
    EXPECT_THAT(error_for(with("\"version\": \"^1.2\"", "\"version\": 1")),
                HasSubstr("$.source.version: expected a string, found number"));
    EXPECT_THAT(error_for(with("\"kind\": {\"const\": \"S\"}", "\"kind\": {\"const\": \"S\", \"from\": \"x\"}")),
                HasSubstr("$.mapping.entities[0].fields.kind: expected exactly one of"));
    EXPECT_THAT(error_for(with("\"apply\"", "\"aply\"")), HasSubstr("$.aply: unknown field"));
    EXPECT_THAT(error_for(with("\"template\": \"{givenName} {familyName}\"",
                               "\"template\": \"{givenName}\", \"transform\": [\"ascii\", \"slug\"]")),
                HasSubstr("$.mapping.entities[0].fields.name.transform[1]: expected \"lower\", \"upper\", \"trim\", "
                          "\"ascii\" or \"username\" (or a list of them), found \"slug\""));
    EXPECT_THAT(error_for(with("{givenName} {familyName}", "{givenName")),
                HasSubstr("$.mapping.entities[0].fields.name.template: template has '{'"));
}

TEST(job_config, reads_a_schedule_and_names_what_is_wrong_with_one) {
    sw_test::temp_dir tmp;
    sw_test::write_file(tmp / "job.json", with("\"apply\"", R"("schedule": {"cron": "0 2 * * 1-5", "tz": "America/Chicago",
        "overlap": "queue", "catch_up": "2h", "pause_after_failures": 3}, "apply")"));
    auto r = load_job(tmp / "job.json");
    ASSERT_TRUE(r.is_ok()) << r.status().message();
    ASSERT_TRUE(r->schedule.has_value());
    EXPECT_EQ(r->schedule->cron.expression(), "0 2 * * 1-5");
    EXPECT_EQ(r->schedule->cron.zone(), "America/Chicago");
    EXPECT_EQ(r->schedule->policy.on_overlap, schedule_policy::overlap::queue);
    EXPECT_EQ(r->schedule->policy.catch_up, std::chrono::hours(2));
    EXPECT_EQ(r->schedule->policy.pause_after, 3u);
    // Friday 6 March 2026, 02:00 CST, is 08:00 UTC.
    EXPECT_EQ(iso8601(*r->schedule->cron.next_after(*parse_iso8601("2026-03-06T00:00:00.000Z"))),
              "2026-03-06T08:00:00.000Z");

    sw_test::write_file(tmp / "job.json", k_good);
    EXPECT_FALSE(load_job(tmp / "job.json")->schedule.has_value()) << "no schedule: run only when asked";

    auto bad = [](const std::string& schedule) {
        return error_for(with("\"apply\"", "\"schedule\": " + schedule + ", \"apply\""));
    };
    EXPECT_THAT(bad(R"({"cron": "0 2 * *"})"), HasSubstr("$.schedule.cron: cron '0 2 * *': has 4 fields"));
    EXPECT_THAT(bad(R"({"cron": "0 2 * * *", "tz": "Mars/Olympus"})"),
                HasSubstr("$.schedule.tz: time zone 'Mars/Olympus' is not an IANA time zone name"));
    EXPECT_THAT(bad(R"({"cron": "0 2 * * *", "overlap": "parallel"})"),
                HasSubstr("$.schedule.overlap: expected \"skip\" (the default"));
    EXPECT_THAT(bad(R"({"cron": "0 2 * * *", "catch_up": "soon"})"), HasSubstr("$.schedule.catch_up: expected a duration"));
    EXPECT_THAT(bad(R"({"cron": "0 2 * * *", "pause_after_failures": -1})"),
                HasSubstr("$.schedule.pause_after_failures: expected 0 (never pause)"));
    EXPECT_THAT(bad(R"({"tz": "UTC"})"), HasSubstr("$.schedule.cron: expected a cron expression"));
    EXPECT_THAT(bad(R"({"cron": "0 2 * * *", "every": 5})"), HasSubstr("$.schedule.every: unknown field"));
}

TEST(kernel_config, defaults_and_a_relative_data_dir) {
    auto d = load_kernel_config("", "fallback");
    ASSERT_TRUE(d.is_ok());
    EXPECT_EQ(d->data_dir, "fallback");
    sw_test::temp_dir tmp;
    sw_test::write_file(tmp / "kernel.json", R"({"data_dir": "state", "log_level": "debug"})");
    auto k = load_kernel_config(tmp / "kernel.json", "fallback");
    ASSERT_TRUE(k.is_ok()) << k.status().message();
    EXPECT_EQ(k->data_dir, tmp / "state");
    sw_test::write_file(tmp / "bad.json", R"({"log_level": "loud"})");
    auto b = load_kernel_config(tmp / "bad.json", "fallback");
    ASSERT_FALSE(b.is_ok());
    EXPECT_THAT(b.status().message(), HasSubstr("bad.json: $.log_level: expected one of debug, info, warn, error"));
}

TEST(kernel_config, the_example_file_and_the_daemon_block_with_its_errors) {
    auto ex = load_kernel_config(fs::path(SW_SOURCE_DIR) / "config" / "kernel.example.json", "fallback");
    ASSERT_TRUE(ex.is_ok()) << ex.status().message();
    EXPECT_EQ(ex->daemon.jobs_dir, fs::path(SW_SOURCE_DIR) / "config" / "jobs");
    EXPECT_EQ(ex->daemon.max_runs, 4u);
    EXPECT_EQ(ex->daemon.stop_timeout, std::chrono::minutes(5));
    sw_test::temp_dir tmp;
    auto bad = [&](const std::string& daemon) {
        sw_test::write_file(tmp / "k.json", R"({"daemon": )" + daemon + "}");
        auto k = load_kernel_config(tmp / "k.json", "fallback");
        return k.is_ok() ? std::string("accepted") : k.status().message();
    };
    EXPECT_THAT(bad(R"({"max_runs": -1})"), HasSubstr("$.daemon.max_runs: expected 0 (no limit) or a whole number"));
    EXPECT_THAT(bad(R"({"poll": "10ms"})"), HasSubstr("$.daemon.poll: expected a duration from 100ms to 1h"));
    EXPECT_THAT(bad(R"({"stop_timeout": "soon"})"), HasSubstr("$.daemon.stop_timeout: expected a duration"));
    EXPECT_THAT(bad(R"({"jobs": "x"})"), HasSubstr("$.daemon.jobs: unknown field"));
    EXPECT_EQ(bad(R"({"socket": "/run/sw.sock", "max_runs_per_target": 0})"), "accepted");
}

TEST(job_config, resume_interrupted_is_a_boolean) {
    sw_test::temp_dir tmp;
    sw_test::write_file(tmp / "ok.json", with("\"apply\"", R"("resume_interrupted": true, "apply")"));
    auto ok = load_job(tmp / "ok.json");
    ASSERT_TRUE(ok.is_ok()) << ok.status().message();
    EXPECT_TRUE(ok->resume_interrupted);
    sw_test::write_file(tmp / "bad.json", with("\"apply\"", R"("resume_interrupted": "yes", "apply")"));
    auto bad = load_job(tmp / "bad.json");
    ASSERT_FALSE(bad.is_ok());
    EXPECT_THAT(bad.status().message(), HasSubstr("$.resume_interrupted: expected true"));
}

// Defect: a job named "../../../x" made the daemon write outside the data
// dir, and "a/b/c" made nested folders. A job's name is a plain word.
TEST(job_config, a_job_name_is_letters_digits_dot_dash_and_underscore) {
    for (const char* bad : {"../../../x", "a/b/c", "", ".", "..", "with space", "tab\\u0009name"}) {
        auto m = error_for(with(R"("name": "j")", std::string(R"("name": ")") + bad + "\""));
        EXPECT_THAT(m, HasSubstr("$.name")) << bad;
    }
    EXPECT_THAT(error_for(with(R"("name": "j")", R"("name": ")" + std::string(129, 'a') + "\"")),
                HasSubstr("at most 128"));
    sw_test::temp_dir tmp;
    sw_test::write_file(tmp / "job.json", with(R"("name": "j")", R"("name": "Grades_2026.v1-a")"));
    EXPECT_TRUE(load_job(tmp / "job.json").is_ok());
}

// Defect: settings nested N deep cost memory growing with N^2, and 2 MB of
// nesting crashed the kernel. Every JSON file the kernel reads has a depth
// and a size limit, and passing one is a config error (exit 3).
TEST(job_config, json_nested_too_deep_is_a_config_error_not_a_crash) {
    sw_test::temp_dir tmp;
    const size_t depth = 1'000'000;
    std::string deep = with(R"("apply": {"batch_size": 50})",
                            R"("apply": {"batch_size": 50}, "description": )" + std::string(depth, '[') +
                                std::string(depth, ']'));
    sw_test::write_file(tmp / "job.json", deep);
    auto r = sw_test::run_kernel(tmp / "data", {"run", (tmp / "job.json").string(), "--dry-run"});
    const std::string out = sw_test::read_file(tmp / "data" / "child.out");
    EXPECT_EQ(r.signal, 0) << "the kernel must not crash";
    EXPECT_EQ(r.code, 3) << out;
    EXPECT_THAT(out, HasSubstr("nested more than 64 deep"));
}

// Defect: a FIFO given as a job file hung `run` (it was opened before the
// regular-file check). It is refused at once.
TEST(job_config, a_fifo_as_a_job_file_is_refused_without_waiting_for_a_writer) {
    sw_test::temp_dir tmp;
    const auto fifo = tmp / "job.json";
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    const pid_t pid = sw_test::start_kernel(tmp / "data", {"run", fifo.string(), "--dry-run"});
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    int st = 0;
    pid_t done = 0;
    while ((done = ::waitpid(pid, &st, WNOHANG)) == 0 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::yield();
    if (done == 0) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &st, 0);
        FAIL() << "run waited on the FIFO";
    }
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 3) << sw_test::read_file(tmp / "data" / "child.out");
    EXPECT_THAT(sw_test::read_file(tmp / "data" / "child.out"), HasSubstr("not a regular file"));
}
