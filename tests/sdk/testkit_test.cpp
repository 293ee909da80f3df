// The SDK's test kit (sdk/include/syncwarden/testkit.hpp) hosting real
// connectors with no kernel: this executable links the kit and GoogleTest
// only. The shipped OneRoster source on the demo district, the jsonl-target
// example, the ledger test target, and fixtures that break the contract.
#include <syncwarden/testkit.hpp>

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <unistd.h>

namespace fs = std::filesystem;
namespace tk = syncwarden::testkit;

namespace {

std::string fixture(const std::string& name) { return std::string(SW_FIXTURE_DIR) + "/" + name + ".so"; }

// A fresh folder, removed again when the test ends.
struct fresh_dir {
    explicit fresh_dir(const std::string& name)
        : path(fs::temp_directory_path() / ("sw-testkit-" + name + "-" + std::to_string(::getpid()))) {
        fs::remove_all(path);
        fs::create_directories(path);
    }
    ~fresh_dir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    fresh_dir(const fresh_dir&) = delete;
    fresh_dir& operator=(const fresh_dir&) = delete;
    fs::path path;
};

std::string slurp(const fs::path& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

}  // namespace

TEST(Testkit, ExtractsTheDemoDistrictThroughTheShippedOneRosterSource) {
    tk::library lib(std::string(SW_PLUGIN_DIR) + "/liboneroster-csv.so");
    const std::string settings = R"({"path": ")" + std::string(SW_SOURCE_DIR) + R"(/config/demo/district"})";
    tk::instance src(lib.entry(), settings);
    EXPECT_EQ(src.name(), "oneroster-csv");
    EXPECT_TRUE(src.capabilities() & SW_CAP_SOURCE);

    auto batches = src.extract({"users"});
    ASSERT_FALSE(batches.empty());
    for (auto& b : batches) EXPECT_EQ(b.entity, "users");
    auto users = tk::by_key(batches, "users");
    EXPECT_EQ(users.size(), 29u);
    ASSERT_TRUE(users.count("s-1001"));
    EXPECT_EQ(src.value_of(users.at("s-1001"), "users", "givenName"), "Zoë");
    EXPECT_EQ(src.value_of(users.at("t-101"), "users", "role"), "teacher");
    EXPECT_EQ(src.value_of(users.at("t-101"), "users", "middleName"), std::nullopt);
    // The source told the host which file and columns it read.
    bool saw_users_file = false;
    for (auto& l : src.layouts())
        if (l.entity == "users" && l.file.find("users.csv") != std::string::npos) saw_users_file = true;
    EXPECT_TRUE(saw_users_file);
}

TEST(Testkit, AHookThatFailsThrowsItsStatusCategoryAndMessage) {
    tk::library lib(std::string(SW_PLUGIN_DIR) + "/liboneroster-csv.so");
    try {
        tk::instance src(lib.entry(), R"({"path": "/nonexistent/district"})");
        src.extract({"users"});
        FAIL() << "a missing export folder was accepted";
    } catch (const tk::failure& f) {
        EXPECT_NE(f.status(), SW_OK);
        EXPECT_NE(std::string(f.what()).find("/nonexistent/district"), std::string::npos) << f.what();
    }
}

TEST(Testkit, ABatchThatBreaksTheContractIsAViolationNamingEntityKeyAndField) {
    {
        tk::library lib(fixture("bad_state"));
        tk::instance src(lib.entry());
        try {
            src.extract();
            FAIL() << "a record with state 5 and an empty required field was accepted";
        } catch (const tk::violation& v) {
            const std::string what = v.what();
            EXPECT_NE(what.find("entity \"items\" key \"i-2\": state 5 is not one"), std::string::npos) << what;
        }
    }
    {
        tk::library lib(fixture("mixed_mode"));
        tk::instance src(lib.entry());
        EXPECT_THROW(src.extract(), tk::violation);
        // The same batches pass when the check is off, so a test can look at them.
        tk::options lax;
        lax.check_contract = false;
        tk::instance seen(lib.entry(), "{}", lax);
        auto batches = seen.extract();
        ASSERT_EQ(batches.size(), 2u);
        EXPECT_EQ(batches[0].mode, SW_MODE_BULK);
        EXPECT_EQ(batches[1].mode, SW_MODE_DELTA);
    }
    {
        tk::library lib(fixture("bad_mode"));
        tk::instance src(lib.entry());
        try {
            src.extract();
            FAIL() << "batch mode 9 was accepted";
        } catch (const tk::violation& v) {
            EXPECT_NE(std::string(v.what()).find("entity \"items\": batch mode 9 is not one"), std::string::npos) << v.what();
        }
    }
    {
        tk::library lib(fixture("good"));
        tk::instance src(lib.entry());
        auto items = tk::by_key(src.extract(), "items");
        ASSERT_EQ(items.size(), 2u);
        EXPECT_EQ(items.at("i-1").values.at(0), "Ada");
    }
}

TEST(Testkit, AppliesCommitsAndAbortsThroughTheJsonlTargetExample) {
    tk::library lib(fixture("jsonl_target"));
    const fresh_dir tmp("jsonl");
    const fs::path& dir = tmp.path;
    const std::string settings =
        R"({"folder": ")" + dir.string() + R"(", "entities": {"people": ["name", "email"]}})";
    {
        tk::instance t(lib.entry(), settings);
        // An empty target still reports the entity: one empty bulk batch.
        auto empty = t.read_state({"people"});
        ASSERT_EQ(empty.size(), 1u);
        EXPECT_EQ(empty[0].mode, SW_MODE_BULK);
        EXPECT_TRUE(empty[0].records.empty());

        auto r = t.apply("people", {tk::create("u-1", {{"name", "Ann Lee"}, {"email", "ann@example.org"}}),
                                    tk::create("u-2", {{"name", "Bo Chen"}})});
        EXPECT_TRUE(r.ok()) << r.describe();
        EXPECT_FALSE(fs::exists(dir / "people.jsonl")) << "a transactional target wrote before commit";
        t.commit();
        EXPECT_NE(slurp(dir / "people.jsonl").find(R"("id":"u-1")"), std::string::npos);
        EXPECT_TRUE(t.system_id().value_or("").find(fs::canonical(dir).string()) != std::string::npos);
    }
    {
        tk::instance t(lib.entry(), settings);
        auto people = tk::by_key(t.read_state(), "people");
        ASSERT_EQ(people.size(), 2u);
        EXPECT_EQ(t.value_of(people.at("u-1"), "people", "email"), "ann@example.org");
        EXPECT_EQ(t.value_of(people.at("u-2"), "people", "email"), std::nullopt);

        // Applied, then aborted: the file is as it was.
        auto r = t.apply("people", {tk::remove("u-1"), tk::update("u-2", {{"name", "Bo Chen"}, {"email", "bo@example.org"}}, {"email"})});
        EXPECT_TRUE(r.ok()) << r.describe();
        t.abort();
        EXPECT_EQ(tk::by_key(t.read_state(), "people").size(), 2u);

        EXPECT_THROW(t.apply("people", {tk::create("u-3", {{"nickname", "x"}})}), std::invalid_argument);
    }
}

TEST(Testkit, PerChangeOutcomesAndPacingAsTheTargetReportedThem) {
    tk::library lib(fixture("ledger_target"));
    const fresh_dir tmp("ledger");
    const fs::path& dir = tmp.path;
    const std::string settings = R"({"ledger": ")" + (dir / "ledger.txt").string() +
                                 R"(", "permanent": ["k-2"], "pace": true})";
    tk::instance t(lib.entry(), settings);
    auto r = t.apply("items", {tk::create("k-1", {{"name", "one"}}), tk::create("k-2", {{"name", "two"}}),
                               tk::create("k-3", {{"name", "three"}})});
    EXPECT_FALSE(r.ok());
    ASSERT_EQ(r.changes.size(), 3u);
    EXPECT_EQ(r.failed(), 1u);
    EXPECT_EQ(r.changes[1].status, SW_PERMANENT);
    EXPECT_EQ(r.changes[1].category, "refused");
    EXPECT_EQ(r.changes[0].status, SW_OK);
    EXPECT_EQ(t.permits_acquired(), 3u);
    const std::string ledger = slurp(dir / "ledger.txt");
    EXPECT_NE(ledger.find("k-1\tone"), std::string::npos);
    EXPECT_EQ(ledger.find("k-2"), std::string::npos);

    // The same change sent again carries the same id, which this target uses
    // to drop what it already applied.
    auto again = t.apply("items", {tk::create("k-1", {{"name", "one"}})}, 2);
    EXPECT_TRUE(again.ok()) << again.describe();
    size_t lines = 0;
    for (char c : slurp(dir / "ledger.txt")) lines += c == '\n';
    EXPECT_EQ(lines, 2u);
}

TEST(Testkit, RefusesAConnectorBuiltForAnotherAbiMajor) {
    tk::library lib(fixture("abi_major"));
    EXPECT_THROW(tk::instance(lib.entry()), std::runtime_error);
    EXPECT_THROW(tk::library(fixture("no_entry")), std::runtime_error);
}
