#include <syncwarden/kernel/registry.hpp>

#include "test_support.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <sys/stat.h>
#include <unistd.h>

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

// For connector authors: a rebuilt pre-release replaces the installed one
// with --replace (and only then); the old file stays for runs that have it
// loaded; a release is never replaced.
TEST(registry, a_pre_release_is_replaced_in_place_with_replace_and_a_release_never) {
    sw_test::temp_dir tmp;
    system_clock clk;
    registry reg(tmp / "connectors", clk);
    auto a = reg.install(fixture("dev_a"));
    ASSERT_TRUE(a.is_ok()) << a.status().message();
    auto refused = reg.install(fixture("dev_b"));
    ASSERT_FALSE(refused.is_ok());
    EXPECT_THAT(refused.status().message(),
                HasSubstr("it is a pre-release, so `syncwarden connectors install --replace"));
    auto b = reg.install(fixture("dev_b"), true);
    ASSERT_TRUE(b.is_ok()) << b.status().message();
    EXPECT_EQ(b->replaced_build, "dev-a");
    auto all = reg.list();
    ASSERT_TRUE(all.is_ok());
    ASSERT_EQ(all->size(), 1u);
    EXPECT_EQ(all->front().info.build_id, "dev-b");
    EXPECT_EQ(reg.resolve("devconn", "^1.2.0-dev")->info.build_id, "dev-b") << "new runs get the new build";
    EXPECT_TRUE(std::filesystem::exists(a->path)) << "the old build's file stays for runs that have it loaded";
    EXPECT_NE(a->path, b->path);

    ASSERT_TRUE(reg.install(fixture("dup_a")).is_ok());
    auto release = reg.install(fixture("dup_b"), true);
    ASSERT_FALSE(release.is_ok());
    EXPECT_THAT(release.status().message(), HasSubstr("dup 1.0.0 is a release, and releases are immutable; --replace "
                                                      "only replaces a pre-release"));
    EXPECT_EQ(reg.resolve("dup", "^1")->info.build_id, "build-a");
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
    EXPECT_THAT(r.out, HasSubstr(" " + std::to_string(SW_ABI_MAJOR) + "." + std::to_string(SW_ABI_MINOR) + " "));
    EXPECT_THAT(r.out, HasSubstr("source"));
    EXPECT_THAT(r.out, HasSubstr("v120"));
    r = sw_test::cli(tmp.path(), {"connectors", "install", fixture("not_elf").string()});
    EXPECT_EQ(r.code, 4);
    EXPECT_THAT(r.err, HasSubstr("not an ELF shared object"));
}

// ---- what an installed release can suffer, and what the registry does ----

namespace {
std::filesystem::path release_dir(const sw_test::temp_dir& tmp, const char* name, const char* version) {
    return tmp / "data" / "connectors" / name / version;
}
std::filesystem::path installed_so(const std::filesystem::path& dir) {
    for (auto& e : std::filesystem::directory_iterator(dir))
        if (e.path().extension() == ".so") return e.path();
    return {};
}
void make_writable(const std::filesystem::path& p) {
    std::filesystem::permissions(p, std::filesystem::perms::owner_write, std::filesystem::perm_options::add);
}
}  // namespace

TEST(registry, a_pre_release_that_is_a_path_is_refused_and_nothing_lands_outside) {
    sw_test::temp_dir tmp;
    auto r = sw_test::cli(tmp / "data", {"connectors", "install", fixture("versioned_escape").string()});
    EXPECT_EQ(r.code, 4) << r.out << r.err;
    EXPECT_THAT(r.err, HasSubstr("pre-release: 'x/' may hold only letters, digits and '-'"));
    EXPECT_FALSE(std::filesystem::exists(tmp / "escaped"));
    for (auto& e : std::filesystem::recursive_directory_iterator(tmp.path()))
        EXPECT_EQ(e.path().string().find("escaped"), std::string::npos) << e.path();
}

TEST(registry, one_damaged_release_json_is_skipped_with_a_warning_naming_it) {
    sw_test::temp_dir tmp;
    auto data = tmp / "data";
    for (auto f : {"versioned_100", "versioned_120"})
        ASSERT_EQ(sw_test::cli(data, {"connectors", "install", fixture(f).string()}).code, 0);
    auto broken = release_dir(tmp, "versioned", "1.2.0") / "release.json";
    sw_test::write_file(broken, "{\"name\": \"versioned\", trunc");
    auto r = sw_test::cli(data, {"connectors", "list"});
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_THAT(r.out, HasSubstr("1.0.0"));
    EXPECT_EQ(r.out.find("1.2.0"), std::string::npos);
    EXPECT_THAT(r.err, HasSubstr("warning: " + broken.string() + " is damaged"));
    EXPECT_THAT(r.err, HasSubstr("that release is skipped"));
    // Installing it again repairs it.
    r = sw_test::cli(data, {"connectors", "install", fixture("versioned_120").string()});
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_THAT(r.out, HasSubstr("repaired versioned 1.2.0"));
    EXPECT_THAT(sw_test::cli(data, {"connectors", "list"}).out, HasSubstr("1.2.0"));
}

// The check is made by the kernel before it loads a library into itself
// (isolation "in-process") and by the worker process before it loads one
// (the default, where the kernel leaves it to the worker so that both of a
// run's workers check at once): either way the run is refused the same.
TEST(registry, a_tampered_library_is_refused_and_reinstalling_repairs_it) {
    for (const std::string isolation : {"", R"( "isolation": "in-process",)"}) {
        SCOPED_TRACE(isolation.empty() ? "in a worker" : "in process");
        sw_test::temp_dir tmp;
        auto data = tmp / "data";
        sw_test::install_shipped(data);
        auto so = installed_so(release_dir(tmp, "vendor-csv", "1.2.0"));
        ASSERT_FALSE(so.empty());
        make_writable(so);
        {
            std::ofstream junk(so, std::ios::binary | std::ios::app);
            junk << std::string(4096, 'J');
        }
        sw_test::write_file(tmp / "job.json", sw_test::roster_job(std::filesystem::path(SW_SOURCE_DIR) / "config/demo/district",
                                                                  tmp / "drop", isolation));
        auto r = sw_test::cli(data, {"run", (tmp / "job.json").string(), "--dry-run"});
        EXPECT_EQ(r.code, 4) << r.out << r.err;
        EXPECT_THAT(r.err, HasSubstr("refusing vendor-csv 1.2.0"));
        EXPECT_THAT(r.err, HasSubstr("the file was changed after it was installed"));

        r = sw_test::cli(data, {"connectors", "install", sw_test::plugin("vendor-csv").string()});
        ASSERT_EQ(r.code, 0) << r.err;
        EXPECT_THAT(r.out, HasSubstr("repaired vendor-csv 1.2.0"));
        r = sw_test::cli(data, {"run", (tmp / "job.json").string(), "--dry-run"});
        EXPECT_EQ(r.code, 0) << r.out << r.err;
    }
}

TEST(registry, a_copy_registered_under_another_version_is_refused) {
    sw_test::temp_dir tmp;
    auto data = tmp / "data";
    ASSERT_EQ(sw_test::cli(data, {"connectors", "install", fixture("versioned_100").string()}).code, 0);
    auto from = release_dir(tmp, "versioned", "1.0.0"), to = release_dir(tmp, "versioned", "1.9.9");
    std::filesystem::copy(from, to);
    auto meta = nlohmann::json::parse(sw_test::read_file(to / "release.json"));
    meta["version"] = "1.9.9";
    sw_test::write_file(to / "release.json", meta.dump());
    system_clock clk;
    registry reg(data / "connectors", clk);
    auto rel = reg.resolve("versioned", "^1");
    ASSERT_TRUE(rel.is_ok());
    ASSERT_EQ(rel->info.version, "1.9.9");
    auto open = reg.open(*rel);
    ASSERT_FALSE(open.is_ok());
    EXPECT_THAT(open.status().message(),
                HasSubstr("the library says it is versioned 1.0.0 build 'v100', but release.json says versioned 1.9.9"));
}

TEST(registry, connectors_schema_prints_the_settings_schema) {
    sw_test::temp_dir tmp;
    sw_test::install_shipped(tmp / "data");
    auto r = sw_test::cli(tmp / "data", {"connectors", "schema", "vendor-csv"});
    ASSERT_EQ(r.code, 0) << r.err;
    auto schema = nlohmann::json::parse(r.out);
    EXPECT_EQ(schema["required"], nlohmann::json({"folder", "files"}));
    EXPECT_EQ(schema["additionalProperties"], false);
    EXPECT_EQ(sw_test::cli(tmp / "data", {"connectors", "schema", "nope"}).code, 7);
}

// Defect: `connectors install /dev/zero` wrote 11 GB into the connectors
// folder and left it there. A device, a FIFO or an oversized file is refused
// before anything is copied, and nothing is left behind.
TEST(registry, a_device_a_fifo_or_a_huge_file_is_refused_before_it_is_copied) {
    sw_test::temp_dir tmp;
    const auto data = tmp / "data";
    ASSERT_EQ(::mkfifo((tmp / "fifo.so").c_str(), 0600), 0);
    {
        std::ofstream big(tmp / "big.so");
    }
    ASSERT_EQ(::truncate((tmp / "big.so").c_str(), off_t(600) << 20), 0);  // sparse: no disk used
    for (auto [file, words] : {std::pair<std::string, std::string>{"/dev/zero", "not a regular file"},
                               {(tmp / "fifo.so").string(), "not a regular file"},
                               {(tmp / "big.so").string(), "a connector library may be at most 512 MiB"}}) {
        auto r = sw_test::cli(data, {"connectors", "install", file});
        EXPECT_EQ(r.code, 4) << file << ": " << r.err;
        EXPECT_THAT(r.err, HasSubstr(words)) << file;
        std::error_code ec;
        size_t left = 0;
        for (auto& e : std::filesystem::recursive_directory_iterator(data / "connectors", ec)) left += e.is_regular_file();
        EXPECT_EQ(left, 0u) << file << " left files in the connectors folder";
    }
}
