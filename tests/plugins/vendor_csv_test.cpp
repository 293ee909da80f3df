// vendor-csv's delivery: all-or-nothing across its files, also when the
// process is killed in the middle of a commit or the disk is full, and never
// merged onto files that changed after they were read.
#include "test_support.hpp"

#include <syncwarden/kernel/loader.hpp>
#include <syncwarden/kernel/session.hpp>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <csignal>
#include <cstdlib>
#include <set>
#include <sstream>
#include <sys/resource.h>

using ::testing::HasSubstr;
using namespace syncwarden::kernel;
namespace fs = std::filesystem;

namespace {

std::vector<std::pair<std::string, std::string>> delivered(const fs::path& drop) {
    auto all = sw_test::snapshot(drop);
    std::erase_if(all, [](auto& f) { return f.first == ".syncwarden.lock"; });
    return all;
}

// The demo district in a vendor-csv drop: delivered once, then the source
// changes so that the next apply rewrites people.csv and changes.csv.
struct district {
    explicit district(const fs::path& root, const std::string& extra = "") : root(root) {
        sw_test::install_shipped(data());
        sw_test::copy_tree(fs::path(SW_SOURCE_DIR) / "config/demo/district", root / "district");
        sw_test::write_file(job(), sw_test::roster_job(root / "district", drop(), extra));
        auto r = sw_test::cli(data(), {"run", job().string()});
        EXPECT_EQ(r.code, 0) << r.err;
        auto u = sw_test::read_file(root / "district/users.csv");
        u.replace(u.find(",Marcus,"), 8, ",Mark,");
        u.replace(u.find("s-1003,,"), 8, "s-1003,tobedeleted,");
        sw_test::write_file(root / "district/users.csv", u);
    }
    fs::path data() const { return root / "data"; }
    fs::path drop() const { return root / "drop"; }
    fs::path job() const { return root / "job.json"; }
    fs::path root;
};

class discard_records final : public record_sink {
public:
    sw_status on_records(const sw_batch&) override { return SW_OK; }
};
class ignore_results final : public result_sink {
public:
    void on_result(size_t, sw_status, std::string_view, std::string_view) override {}
};

// A vendor-csv instance on `folder` with one file, people.csv (id, name).
std::unique_ptr<connector_session> open_people(const fs::path& folder) {
    auto lib = load_connector(sw_test::plugin("vendor-csv"));
    EXPECT_TRUE(lib.is_ok()) << lib.status().message();
    nlohmann::json settings{{"folder", folder.string()},
                            {"files", {{{"entity", "people"}, {"file", "people.csv"}, {"key", "id"},
                                        {"columns", {"id", "name"}}}}}};
    auto s = open_in_process(*lib, settings, "job", folder.parent_path(), no_services());
    EXPECT_TRUE(s.is_ok()) << s.status().message();
    return std::move(*s);
}

// Reads the state, then applies creates of keys first..last with `name`.
hook_error create_people(connector_session& s, int first, int last, const std::string& name) {
    discard_records sink;
    auto token = s.read_state({"people"}, sink, no_services());
    EXPECT_TRUE(token.is_ok()) << token.status().message();
    std::vector<std::string> keys;
    for (int i = first; i <= last; ++i) keys.push_back("p-" + std::to_string(i));
    sw_str value{name.data(), name.size()};
    static const uint32_t changed[] = {0};
    std::vector<sw_change> changes;
    for (auto& k : keys) changes.push_back({{"id", 2}, SW_CHANGE_CREATE, {k.data(), k.size()}, &value, 1, changed, 1});
    sw_change_batch b{sizeof b, {"people", 6}, changes.data(), changes.size(), 1, nullptr};
    ignore_results results;
    return s.apply(b, results, no_services());
}

}  // namespace

// SIGKILL at each step of a commit; the next open must leave the folder
// holding entirely the old delivery (killed before the journal is in place)
// or entirely the new one (after), and no temp file. In process, the whole
// kernel dies with the connector.
class vendor_csv_crash : public ::testing::TestWithParam<int> {};

TEST_P(vendor_csv_crash, the_next_open_leaves_entirely_the_old_or_the_new_delivery) {
    const int step = GetParam();
    sw_test::temp_dir tmp;
    district old_state(tmp / "old"), new_state(tmp / "new"),
        crashed(tmp / "crashed", R"("isolation": "in-process",)");
    ASSERT_EQ(sw_test::cli(new_state.data(), {"run", new_state.job().string()}).code, 0);
    const auto before = delivered(old_state.drop()), after = delivered(new_state.drop());
    ASSERT_NE(before, after);

    auto killed = sw_test::run_kernel(crashed.data(), {"run", crashed.job().string()},
                                      {"VENDOR_CSV_CRASH_AT=" + std::to_string(step)});
    ASSERT_EQ(killed.signal, SIGKILL) << "exit " << killed.code << ": " << sw_test::read_file(crashed.data() / "child.out");

    // The killed run's changes were accepted but never committed: the store
    // must not call any of them applied.
    auto runs = nlohmann::json::parse(sw_test::cli(crashed.data(), {"runs", "list", "--json"}).out);
    ASSERT_EQ(runs.size(), 2u);
    auto killed_run = nlohmann::json::parse(
        sw_test::cli(crashed.data(), {"runs", "show", runs[0]["id"].get<std::string>(), "--json"}).out);
    EXPECT_EQ(killed_run["state"], "interrupted") << "a run whose process died is never shown as running";
    ASSERT_FALSE(killed_run["changes"].empty());
    for (auto& c : killed_run["changes"]) EXPECT_EQ(c["status"], "staged") << c.dump();

    auto next = sw_test::cli(crashed.data(), {"run", crashed.job().string(), "--dry-run"});
    ASSERT_EQ(next.code, 0) << next.out << next.err;
    auto now = delivered(crashed.drop());
    if (step <= 3) EXPECT_EQ(now, before) << "killed before the journal was in place: the old delivery";
    else EXPECT_EQ(now, after) << "killed after the journal was in place: the new delivery, finished";
}

INSTANTIATE_TEST_SUITE_P(vendor_csv, vendor_csv_crash, ::testing::Values(1, 2, 3, 4, 5, 6));

// The same deaths in a worker process: the kernel survives, names the
// crash, counts none of the changes as applied, and the next run finds the
// old or the new delivery.
class vendor_csv_worker_crash : public ::testing::TestWithParam<int> {};

TEST_P(vendor_csv_worker_crash, fails_only_the_run_and_the_next_run_recovers) {
    const int step = GetParam();
    sw_test::temp_dir tmp;
    district old_state(tmp / "old"), new_state(tmp / "new"), crashed(tmp / "crashed");
    ASSERT_EQ(sw_test::cli(new_state.data(), {"run", new_state.job().string()}).code, 0);
    const auto before = delivered(old_state.drop()), after = delivered(new_state.drop());

    auto r = sw_test::run_kernel(crashed.data(), {"run", crashed.job().string()},
                                 {"VENDOR_CSV_CRASH_AT=" + std::to_string(step)});
    const std::string err = sw_test::read_file(crashed.data() / "child.out");
    EXPECT_EQ(r.signal, 0) << "the kernel itself must survive";
    EXPECT_EQ(r.code, 4) << err;
    EXPECT_THAT(err, HasSubstr("connector_crashed: vendor-csv 1.2.0 was killed with SIGKILL during commit"));
    auto runs = nlohmann::json::parse(sw_test::cli(crashed.data(), {"runs", "list", "--json"}).out);
    auto run = nlohmann::json::parse(
        sw_test::cli(crashed.data(), {"runs", "show", runs[0]["id"].get<std::string>(), "--json"}).out);
    EXPECT_EQ(run["state"], "failed");
    EXPECT_EQ(run["category"], "connector_crashed");
    ASSERT_FALSE(run["changes"].empty());
    for (auto& c : run["changes"]) {
        EXPECT_EQ(c["status"], "failed") << c.dump();
        EXPECT_EQ(c["category"], "connector_crashed") << c.dump();
    }

    auto next = sw_test::cli(crashed.data(), {"run", crashed.job().string(), "--dry-run"});
    ASSERT_EQ(next.code, 0) << next.out << next.err;
    if (step <= 3) EXPECT_EQ(delivered(crashed.drop()), before);
    else EXPECT_EQ(delivered(crashed.drop()), after);
}

INSTANTIATE_TEST_SUITE_P(vendor_csv, vendor_csv_worker_crash, ::testing::Values(1, 4, 6));

TEST(vendor_csv, a_full_disk_fails_the_commit_and_leaves_the_previous_delivery) {
    sw_test::temp_dir tmp;
    auto folder = tmp / "drop";
    {
        auto s = open_people(folder);
        ASSERT_EQ(create_people(*s, 1, 3, "First").status, SW_OK);
        ASSERT_EQ(s->commit(no_services()).status, SW_OK);
    }
    const auto before = delivered(folder);
    auto s = open_people(folder);
    ASSERT_EQ(create_people(*s, 4, 2000, "A name long enough to need many bytes").status, SW_OK);

    // A file-size limit stands in for a full disk: write() fails the same way.
    struct rlimit old_limit {};
    ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old_limit), 0);
    auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
    struct rlimit small = old_limit;
    small.rlim_cur = 16 * 1024;
    ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
    hook_error c = s->commit(no_services());
    ::setrlimit(RLIMIT_FSIZE, &old_limit);
    std::signal(SIGXFSZ, old_handler);

    EXPECT_EQ(c.status, SW_PERMANENT);
    EXPECT_EQ(c.category, "io");
    EXPECT_THAT(c.message, HasSubstr("File too large"));
    EXPECT_THAT(c.message, HasSubstr("the folder keeps the previous delivery"));
    EXPECT_EQ(delivered(folder), before) << "no truncated file renamed over the good one, no temp file left";
}

// A large delivery's changes log is spooled to an unnamed file while the
// changes arrive, not held in memory: in the delivery folder (made, empty,
// for a first delivery), where it becomes the delivered changes.csv at
// commit, written once; in $TMPDIR when the folder cannot hold it. The
// delivered changes.csv lists every change once, in order, and nothing is
// left behind after a commit or an abort.
TEST(vendor_csv, a_large_changes_log_is_spooled_and_delivered_whole) {
    sw_test::temp_dir tmp;
    const auto folder = tmp / "drop", spool_dir = tmp / "spool";
    fs::create_directories(spool_dir);
    const char* old_tmpdir = std::getenv("TMPDIR");
    const std::string saved = old_tmpdir ? old_tmpdir : "";
    ::setenv("TMPDIR", spool_dir.c_str(), 1);
    auto open_under = [](const fs::path& dir) {  // this process's open files there, named or not
        int n = 0;
        for (auto& e : fs::directory_iterator("/proc/self/fd")) {
            std::error_code ec;
            if (fs::read_symlink(e.path(), ec).string().rfind(dir.string() + "/", 0) == 0) ++n;
        }
        return n;
    };
    {
        auto s = open_people(folder);
        ASSERT_EQ(create_people(*s, 1, 60000, "Aborted").status, SW_OK);
        EXPECT_EQ(open_under(folder), 1) << "the spool is in the delivery folder, made for it";
        EXPECT_TRUE(fs::is_empty(spool_dir));
        EXPECT_TRUE(delivered(folder).empty()) << "the spool file has no name";
        s->abort(no_services());
        EXPECT_TRUE(delivered(folder).empty()) << "an abort delivers nothing";
        EXPECT_EQ(open_under(folder), 0);
    }
    {
        auto s = open_people(folder);
        for (int first = 1; first <= 60000; first += 20000)
            ASSERT_EQ(create_people(*s, first, first + 19999, "Spooled").status, SW_OK);
        ASSERT_EQ(s->commit(no_services()).status, SW_OK);
    }
    {
        // A folder that cannot be made (its parent is a file): the spool
        // goes to $TMPDIR, and the commit says what is wrong.
        sw_test::write_file(tmp / "a-file", "x");
        auto s = open_people(tmp / "a-file" / "drop");
        ASSERT_EQ(create_people(*s, 1, 60000, "Nowhere").status, SW_OK);
        EXPECT_EQ(open_under(spool_dir), 1) << "the spool is in $TMPDIR";
        auto c = s->commit(no_services());
        EXPECT_EQ(c.status, SW_PERMANENT);
        EXPECT_THAT(c.message, HasSubstr((tmp / "a-file" / "drop").string()));
    }
    EXPECT_EQ(open_under(spool_dir), 0);
    if (old_tmpdir) ::setenv("TMPDIR", saved.c_str(), 1);
    else ::unsetenv("TMPDIR");
    EXPECT_TRUE(fs::is_empty(spool_dir));
    const std::string changes = sw_test::read_file(folder / "changes.csv");
    ASSERT_GT(changes.size(), size_t(1) << 20) << "large enough to be spooled";
    std::istringstream in(changes);
    std::string line;
    std::getline(in, line);
    EXPECT_EQ(line, "change_id,entity,kind,key,changed_fields\r");
    int n = 0;
    while (std::getline(in, line)) {
        ++n;
        ASSERT_EQ(line, "id,people,create,p-" + std::to_string(n) + ",name\r") << "row " << n;
    }
    EXPECT_EQ(n, 60000);
    const std::string people = sw_test::read_file(folder / "people.csv");
    EXPECT_THAT(people, HasSubstr("p-59999,Spooled"));
    EXPECT_EQ(people.find("Aborted"), std::string::npos);

    // Once the folder exists, the spool is an unnamed file in it, which
    // becomes the delivered changes.csv at commit (written once, not copied
    // from $TMPDIR): before commit nothing new is visible in the folder, an
    // abort leaves the last delivery, and a commit leaves no temp file.
    ::setenv("TMPDIR", spool_dir.c_str(), 1);
    const auto before = delivered(folder);
    {
        auto s = open_people(folder);
        ASSERT_EQ(create_people(*s, 100001, 160000, "Unnamed").status, SW_OK);
        EXPECT_EQ(open_under(folder), 1) << "the spool is in the delivery folder";
        EXPECT_EQ(open_under(spool_dir), 0);
        EXPECT_EQ(delivered(folder), before) << "nothing visible before commit";
        s->abort(no_services());
    }
    EXPECT_EQ(open_under(folder), 0);
    EXPECT_EQ(delivered(folder), before) << "an abort leaves the last delivery";
    {
        auto s = open_people(folder);
        ASSERT_EQ(create_people(*s, 100001, 160000, "InFolder").status, SW_OK);
        ASSERT_EQ(s->commit(no_services()).status, SW_OK);
    }
    if (old_tmpdir) ::setenv("TMPDIR", saved.c_str(), 1);
    else ::unsetenv("TMPDIR");
    EXPECT_TRUE(fs::is_empty(spool_dir));
    std::set<std::string> names;
    for (auto& e : fs::directory_iterator(folder)) names.insert(e.path().filename().string());
    EXPECT_EQ(names, (std::set<std::string>{".syncwarden.lock", "changes.csv", "people.csv"})) << "no temp file left";
    std::istringstream in2(sw_test::read_file(folder / "changes.csv"));
    std::getline(in2, line);
    EXPECT_EQ(line, "change_id,entity,kind,key,changed_fields\r");
    n = 100000;
    while (std::getline(in2, line)) {
        ++n;
        ASSERT_EQ(line, "id,people,create,p-" + std::to_string(n) + ",name\r") << "row " << n;
    }
    EXPECT_EQ(n, 160000);
    EXPECT_THAT(sw_test::read_file(folder / "people.csv"), HasSubstr("p-159999,InFolder"));
}

TEST(vendor_csv, two_commits_onto_one_state_the_second_is_refused_not_blended) {
    sw_test::temp_dir tmp;
    auto folder = tmp / "drop";
    {
        auto s = open_people(folder);
        ASSERT_EQ(create_people(*s, 1, 2, "Base").status, SW_OK);
        ASSERT_EQ(s->commit(no_services()).status, SW_OK);
    }
    auto a = open_people(folder), b = open_people(folder);
    ASSERT_EQ(create_people(*a, 10, 11, "From A").status, SW_OK);
    ASSERT_EQ(create_people(*b, 20, 21, "From B").status, SW_OK);
    ASSERT_EQ(a->commit(no_services()).status, SW_OK);
    const auto after_a = delivered(folder);
    hook_error c = b->commit(no_services());
    EXPECT_EQ(c.status, SW_PERMANENT);
    EXPECT_EQ(c.category, "state_changed");
    EXPECT_THAT(c.message, HasSubstr("changed after this run read them"));
    EXPECT_EQ(delivered(folder), after_a);
    auto people = sw_test::read_file(folder / "people.csv");
    EXPECT_THAT(people, HasSubstr("p-10,From A"));
    EXPECT_EQ(people.find("From B"), std::string::npos);
}

TEST(vendor_csv, leftover_temp_files_are_removed_on_the_next_open) {
    sw_test::temp_dir tmp;
    district d(tmp.path());
    sw_test::write_file(d.drop() / ".people.csv.tmp-4242", std::string(100000, 'x'));
    sw_test::write_file(d.drop() / ".changes.csv.tmp-4242", "half");
    auto r = sw_test::cli(d.data(), {"run", d.job().string(), "--dry-run"});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_FALSE(fs::exists(d.drop() / ".people.csv.tmp-4242"));
    EXPECT_FALSE(fs::exists(d.drop() / ".changes.csv.tmp-4242"));
    EXPECT_TRUE(fs::exists(d.drop() / "people.csv"));
}

TEST(vendor_csv, file_names_in_the_settings_must_be_plain_names) {
    sw_test::temp_dir tmp;
    for (auto [setting, name, why] :
         {std::tuple{"file", "../escape.csv", "settings.files[0].file is \"../escape.csv\": not of the expected form "
                                              "(expected a plain file name in the folder"},
          {"file", "..", "settings.files[0].file is \"..\": not of the expected form"},
          {"file", "", "settings.files[0].file is \"\": String should be no fewer than 1 characters"},
          {"changes_file", "sub/changes.csv", "settings.changes_file is \"sub/changes.csv\": not of the expected form"},
          {"changes_file", ".hidden", "settings.changes_file is \".hidden\": not of the expected form"}}) {
        nlohmann::json files{{{"entity", "people"}, {"file", "people.csv"}, {"key", "id"}, {"columns", {"id"}}}};
        nlohmann::json settings{{"folder", (tmp / "drop").string()}, {"files", files}};
        if (std::string(setting) == "file") settings["files"][0]["file"] = name;
        else settings["changes_file"] = name;
        auto lib = load_connector(sw_test::plugin("vendor-csv"));
        ASSERT_TRUE(lib.is_ok());
        auto s = open_in_process(*lib, settings, "job", tmp.path(), no_services());
        ASSERT_FALSE(s.is_ok()) << name;
        EXPECT_EQ(s.status().kind(), error_kind::config);
        EXPECT_THAT(s.status().message(), HasSubstr(why)) << name;
    }
}

// Settings the schema does not know are refused, not ignored: a typo in
// "required" would otherwise deliver a student with an empty school.
TEST(vendor_csv, unknown_or_mistyped_settings_are_refused_with_their_json_path) {
    sw_test::temp_dir tmp;
    auto lib = load_connector(sw_test::plugin("vendor-csv"));
    ASSERT_TRUE(lib.is_ok());
    nlohmann::json file{{"entity", "people"}, {"file", "people.csv"}, {"key", "id"}, {"columns", {"id", "school"}}};
    auto attempt = [&](nlohmann::json settings) {
        auto s = open_in_process(*lib, settings, "job", tmp.path(), no_services(), "job.json: $.target.settings");
        EXPECT_FALSE(s.is_ok());
        return s.is_ok() ? std::string() : s.status().message();
    };
    auto typo = file;
    typo["requried"] = {"school"};
    EXPECT_THAT(attempt({{"folder", "out"}, {"files", {typo}}}),
                HasSubstr("job.json: $.target.settings.files[0]"));
    EXPECT_THAT(attempt({{"folder", "out"}, {"files", {typo}}}), HasSubstr("requried"));
    EXPECT_THAT(attempt({{"folder", "out"}, {"files", {file}}, {"change_file", "c.csv"}}), HasSubstr("change_file"));
    EXPECT_THAT(attempt({{"folder", "out"}, {"files", {file}}, {"pathh", "x"}}), HasSubstr("pathh"));
    auto numbers = file;
    numbers["required"] = {7};
    EXPECT_THAT(attempt({{"folder", "out"}, {"files", {numbers}}}),
                HasSubstr("job.json: $.target.settings.files[0].required[0] is 7"));
}
