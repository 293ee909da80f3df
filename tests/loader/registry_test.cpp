#include <syncwarden/kernel/registry.hpp>

#include "test_support.hpp"

#include <gtest/gtest.h>

using namespace syncwarden::kernel;
using sw_test::fixture;
using ::testing::HasSubstr;

TEST(registry, install_copies_to_an_immutable_content_addressed_path) {
    sw_test::temp_dir tmp;
    manual_clock clk(std::chrono::system_clock::time_point(std::chrono::seconds(1'800'000'000)));
    registry reg(tmp / "connectors", clk);
    auto r = reg.install(fixture("good"));
    ASSERT_TRUE(r.is_ok()) << r.status().message();
    EXPECT_EQ(r->info.name, "good");
    EXPECT_EQ(r->path.parent_path(), tmp / "connectors" / "good" / "1.0.0");
    EXPECT_EQ(r->path.filename().string(), r->sha256.substr(0, 16) + ".so");
    EXPECT_EQ(r->installed_at, "2027-01-15T08:00:00.000Z");
    auto perms = std::filesystem::status(r->path).permissions();
    EXPECT_EQ(perms & std::filesystem::perms::owner_write, std::filesystem::perms::none);
    // The same build again is a no-op.
    auto again = reg.install(fixture("good"));
    ASSERT_TRUE(again.is_ok()) << again.status().message();
    EXPECT_EQ(again->path, r->path);
}

TEST(registry, refuses_the_same_version_with_another_build_id) {
    sw_test::temp_dir tmp;
    system_clock clk;
    registry reg(tmp / "connectors", clk);
    ASSERT_TRUE(reg.install(fixture("dup_a")).is_ok());
    auto r = reg.install(fixture("dup_b"));
    ASSERT_FALSE(r.is_ok());
    EXPECT_THAT(r.status().message(), HasSubstr("dup_b.so"));
    EXPECT_THAT(r.status().message(), HasSubstr("dup 1.0.0 is already installed with build id 'build-a'"));
    EXPECT_THAT(r.status().message(), HasSubstr("this file has build id 'build-b'"));
    auto all = reg.list();
    ASSERT_TRUE(all.is_ok());
    ASSERT_EQ(all->size(), 1u);
    EXPECT_EQ(all->front().info.build_id, "build-a");
}

TEST(registry, a_refused_library_is_not_installed) {
    sw_test::temp_dir tmp;
    system_clock clk;
    registry reg(tmp / "connectors", clk);
    auto r = reg.install(fixture("abi_major"));
    ASSERT_FALSE(r.is_ok());
    auto all = reg.list();
    ASSERT_TRUE(all.is_ok());
    EXPECT_TRUE(all->empty());
}

TEST(registry, resolves_the_newest_release_in_a_range) {
    sw_test::temp_dir tmp;
    system_clock clk;
    registry reg(tmp / "connectors", clk);
    for (auto f : {"versioned_100", "versioned_120", "versioned_200"})
        ASSERT_TRUE(reg.install(fixture(f)).is_ok());
    EXPECT_EQ(reg.resolve("versioned", "^1.0")->info.version, "1.2.0");
    EXPECT_EQ(reg.resolve("versioned", "=1.0.0")->info.version, "1.0.0");
    EXPECT_EQ(reg.resolve("versioned", "*")->info.version, "2.0.0");
    EXPECT_EQ(reg.resolve("versioned", ">=1.1 <2")->info.version, "1.2.0");
    auto none = reg.resolve("versioned", "^3");
    ASSERT_FALSE(none.is_ok());
    EXPECT_THAT(none.status().message(), HasSubstr("installed: 1.0.0, 1.2.0, 2.0.0"));
    auto open = reg.open(*reg.resolve("versioned", "^1.0"));
    ASSERT_TRUE(open.is_ok()) << open.status().message();
    EXPECT_EQ((*open)->info().build_id, "v120");
}

TEST(registry, cli_lists_name_version_abi_capabilities_and_build_id) {
    sw_test::temp_dir tmp;
    auto r = sw_test::cli(tmp.path(), {"connectors", "install", fixture("versioned_120").string()});
    ASSERT_EQ(r.code, 0) << r.err;
    r = sw_test::cli(tmp.path(), {"connectors", "list"});
    ASSERT_EQ(r.code, 0);
    EXPECT_THAT(r.out, HasSubstr("versioned"));
    EXPECT_THAT(r.out, HasSubstr("1.2.0"));
    EXPECT_THAT(r.out, HasSubstr(" 1.1 "));
    EXPECT_THAT(r.out, HasSubstr("source"));
    EXPECT_THAT(r.out, HasSubstr("v120"));
    r = sw_test::cli(tmp.path(), {"connectors", "install", fixture("not_elf").string()});
    EXPECT_EQ(r.code, 4);
    EXPECT_THAT(r.err, HasSubstr("not an ELF shared object"));
}
