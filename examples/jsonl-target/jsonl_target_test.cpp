// jsonl-target's unit test on the SDK's test kit (syncwarden/testkit.hpp):
// the built library hosted in the test, no kernel. Each test is one thing a
// target must do (README.md, "What a target must do").
#include <syncwarden/testkit.hpp>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>

namespace fs = std::filesystem;
namespace tk = syncwarden::testkit;

class JsonlTarget : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = fs::temp_directory_path() / ("jsonl-target-test-" + std::to_string(::getpid()));
        fs::remove_all(dir_);
        settings_ = R"({"folder": ")" + dir_.string() + R"(", "entities": {"people": ["name", "role"]}})";
    }
    void TearDown() override { fs::remove_all(dir_); }

    tk::library lib_{JSONL_TARGET_SO};
    fs::path dir_;
    std::string settings_;
};

TEST_F(JsonlTarget, ReportsAnEmptyEntityAsOneEmptyBulkBatch) {
    tk::instance t(lib_.entry(), settings_);
    auto batches = t.read_state({"people"});
    ASSERT_EQ(batches.size(), 1u);
    EXPECT_EQ(batches[0].mode, SW_MODE_BULK);
    EXPECT_TRUE(batches[0].records.empty());
}

TEST_F(JsonlTarget, WritesOnlyAtCommitAndReadsBackWhatItWrote) {
    {
        tk::instance t(lib_.entry(), settings_);
        auto r = t.apply("people", {tk::create("p-1", {{"name", "Ann Lee"}, {"role", "teacher"}})});
        ASSERT_TRUE(r.ok()) << r.describe();
        EXPECT_FALSE(fs::exists(dir_ / "people.jsonl"));
        t.commit();
    }
    tk::instance again(lib_.entry(), settings_);
    auto people = tk::by_key(again.read_state(), "people");
    ASSERT_EQ(people.size(), 1u);
    EXPECT_EQ(again.value_of(people.at("p-1"), "people", "role"), "teacher");
}

TEST_F(JsonlTarget, AbortLeavesTheFilesAsTheyWere) {
    tk::instance t(lib_.entry(), settings_);
    ASSERT_TRUE(t.apply("people", {tk::create("p-1", {{"name", "Ann Lee"}})}).ok());
    t.abort();
    EXPECT_FALSE(fs::exists(dir_ / "people.jsonl"));
}

TEST_F(JsonlTarget, ABrokenLineFailsTheReadNamingFileAndLine) {
    fs::create_directories(dir_);
    std::ofstream(dir_ / "people.jsonl") << "{\"id\":\"p-1\",\"name\":\"Ann\"}\nnot json\n";
    tk::instance t(lib_.entry(), settings_);
    try {
        t.read_state({"people"});
        FAIL() << "a broken line was read";
    } catch (const tk::failure& f) {
        EXPECT_EQ(f.category(), "bad_state");
        EXPECT_NE(f.message().find("people.jsonl:2:"), std::string::npos) << f.what();
    }
}
