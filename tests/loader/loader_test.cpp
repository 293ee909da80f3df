// One test per loader refusal: each checks the refusal and the words an
// operator needs (file, field, expected and found value).
#include <syncwarden/kernel/loader.hpp>
#include <syncwarden/kernel/pipeline.hpp>
#include <syncwarden/kernel/session.hpp>

#include "test_support.hpp"

#include <gtest/gtest.h>

using namespace syncwarden::kernel;
using sw_test::fixture;
using ::testing::HasSubstr;

namespace {

std::string refusal(const std::string& name) {
    auto r = load_connector(fixture(name));
    EXPECT_FALSE(r.is_ok()) << name << " should have been refused";
    if (r.is_ok()) return {};
    EXPECT_EQ(r.status().kind(), error_kind::connector);
    return r.status().message();
}

}  // namespace

TEST(loader, loads_a_good_connector_and_reads_its_manifest) {
    auto r = load_connector(fixture("good"));
    ASSERT_TRUE(r.is_ok()) << r.status().message();
    EXPECT_EQ((*r)->info().name, "good");
    EXPECT_EQ((*r)->info().version, "1.0.0");
    EXPECT_EQ((*r)->info().build_id, "fixture-build");
    EXPECT_EQ((*r)->info().abi_major, 1u);
    EXPECT_EQ(capabilities_text((*r)->info().capabilities), "source");
}

TEST(loader, refuses_a_file_that_is_not_elf) {
    auto m = refusal("not_elf");
    EXPECT_THAT(m, HasSubstr("not_elf.so"));
    EXPECT_THAT(m, HasSubstr("not an ELF shared object"));
}

TEST(loader, refuses_a_missing_file) {
    auto m = refusal("does_not_exist");
    EXPECT_THAT(m, HasSubstr("does_not_exist.so"));
    EXPECT_THAT(m, HasSubstr("cannot open"));
}

TEST(loader, refuses_a_library_without_the_entry_symbol) {
    auto m = refusal("no_entry");
    EXPECT_THAT(m, HasSubstr("no_entry.so"));
    EXPECT_THAT(m, HasSubstr("no entry symbol 'sw_connector_entry'"));
}

TEST(loader, refuses_an_entry_that_returns_null) {
    auto m = refusal("entry_null");
    EXPECT_THAT(m, HasSubstr("entry_null.so"));
    EXPECT_THAT(m, HasSubstr("returned NULL"));
}

TEST(loader, refuses_another_abi_major) {
    auto m = refusal("abi_major");
    EXPECT_THAT(m, HasSubstr("abi_major.so"));
    EXPECT_THAT(m, HasSubstr("ABI major is 2, the kernel speaks 1"));
}

TEST(loader, refuses_a_newer_abi_minor) {
    auto m = refusal("abi_minor");
    EXPECT_THAT(m, HasSubstr("ABI minor is 7, newer than the kernel's 1.4"));
}

TEST(loader, refuses_a_struct_size_too_small) {
    auto m = refusal("struct_small");
    EXPECT_THAT(m, HasSubstr("sw_connector.struct_size is 8"));
    EXPECT_THAT(m, HasSubstr("expected at least " + std::to_string(sizeof(sw_connector))));
}

TEST(loader, refuses_a_missing_required_hook) {
    auto m = refusal("missing_hook");
    EXPECT_THAT(m, HasSubstr("required hook 'extract' is NULL"));
    EXPECT_THAT(m, HasSubstr("SW_CAP_SOURCE"));
}

// A connector built against the 1.0 headers has shorter tables; it still
// loads, and the 1.1 hooks it does not know are absent.
TEST(loader, loads_a_connector_built_for_abi_1_0) {
    auto lib = load_connector(fixture("abi_v10"));
    ASSERT_TRUE(lib.is_ok()) << lib.status().message();
    EXPECT_EQ((*lib)->info().abi_minor, 0u);
    EXPECT_EQ((*lib)->hooks().state_token, nullptr);
    EXPECT_TRUE((*lib)->info().settings_schema.empty());
    auto session = open_in_process(*lib, nlohmann::json::object(), "job", "/tmp", no_services());
    ASSERT_TRUE(session.is_ok()) << session.status().message();
    EXPECT_FALSE((*session)->has_state_token());
    EXPECT_TRUE((*session)->contract(no_services()).is_ok());
}

// The contract hook runs when a run starts; a bad contract fails that run
// with a connector error instead of crashing the kernel.
class contract_hook : public ::testing::TestWithParam<const char*> {};

TEST_P(contract_hook, a_bad_contract_is_refused_with_a_message) {
    auto lib = load_connector(fixture(GetParam()));
    ASSERT_TRUE(lib.is_ok()) << lib.status().message();
    auto session = open_in_process(*lib, nlohmann::json::object(), "job", "/tmp", no_services());
    ASSERT_TRUE(session.is_ok()) << session.status().message();
    auto c = (*session)->contract(no_services());
    ASSERT_FALSE(c.is_ok());
    EXPECT_EQ(c.status().kind(), error_kind::connector);
    const std::string m = c.status().message();
    if (std::string(GetParam()) == "contract_throws") {
        EXPECT_THAT(m, HasSubstr("contract-throws 1.0.0: contract failed (internal"));
        EXPECT_THAT(m, HasSubstr("schema file contract.json is missing"));
    } else if (std::string(GetParam()) == "raw_throw") {
        EXPECT_THAT(m, HasSubstr("raw-throw 1.0.0: contract failed"));
        EXPECT_THAT(m, HasSubstr("threw across the ABI: raw exception"));
    } else if (std::string(GetParam()) == "bad_enum") {
        EXPECT_THAT(m, HasSubstr("bad-enum 1.0.0: the contract hook returned an unusable contract"));
        EXPECT_THAT(m, HasSubstr("enums[0].field 'colour' is not a field of 'items'"));
    } else {
        EXPECT_THAT(m, HasSubstr("contract-garbage 1.0.0: the contract hook returned an unusable contract"));
        EXPECT_THAT(m, HasSubstr("entities is NULL but entity_count is 3"));
    }
}

INSTANTIATE_TEST_SUITE_P(loader, contract_hook,
                         ::testing::Values("contract_throws", "raw_throw", "contract_garbage", "bad_enum"));

TEST(loader, a_bad_contract_fails_the_run_and_the_cli_exits_with_the_connector_code) {
    sw_test::temp_dir tmp;
    auto data = tmp / "data";
    sw_test::install_shipped(data);
    auto r = sw_test::cli(data, {"connectors", "install", fixture("contract_garbage").string()});
    ASSERT_EQ(r.code, 0) << r.err;
    sw_test::write_file(tmp / "job.json", R"({"name": "garbage",
      "source": {"connector": "contract-garbage"},
      "target": {"connector": "vendor-csv", "settings": {"folder": "out",
         "files": [{"entity": "items", "file": "items.csv", "key": "id", "columns": ["id", "name"]}]}},
      "mapping": {"entities": [{"target": "items", "source": "items", "fields": {"id": "id", "name": "name"}}]}})");
    r = sw_test::cli(data, {"run", (tmp / "job.json").string()});
    EXPECT_EQ(r.code, 4) << r.out << r.err;
    EXPECT_THAT(r.err, HasSubstr("unusable contract"));
    EXPECT_FALSE(std::filesystem::exists(tmp / "out"));
    auto list = sw_test::cli(data, {"runs", "list"});
    EXPECT_THAT(list.out, HasSubstr("failed"));
}
