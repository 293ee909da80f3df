// Input the kernel must survive: text that is not UTF-8, names that would
// drive a terminal, connectors that break their contract.
#include "test_support.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>

using ::testing::HasSubstr;
namespace fs = std::filesystem;

namespace {

// The file converted from UTF-8 to Windows-1252 by glibc's iconv command (letters cp1252
// lacks, like "ł", become their nearest match).
void to_cp1252(const fs::path& file) {
    auto text = sw_test::read_file(file);
    if (text.rfind("\xef\xbb\xbf", 0) == 0) sw_test::write_file(file, text.substr(3));  // no BOM in cp1252
    const auto tmp = file.string() + ".cp1252";
    ASSERT_EQ(std::system(("iconv -f UTF-8 -t WINDOWS-1252//TRANSLIT '" + file.string() + "' > '" + tmp + "'").c_str()), 0);
    fs::rename(tmp, file);
}

class input_e2e : public ::testing::Test {
protected:
    void SetUp() override {
        sw_test::install_shipped(data());
        sw_test::copy_tree(fs::path(SW_SOURCE_DIR) / "config/demo/district", src());
    }
    fs::path data() const { return tmp_ / "data"; }
    fs::path src() const { return tmp_ / "district"; }
    fs::path drop() const { return tmp_ / "drop"; }
    fs::path job() const { return tmp_ / "job.json"; }
    void write_job(const std::string& source_extra = "") {
        auto j = nlohmann::json::parse(sw_test::roster_job(src(), drop()));
        const auto extra = nlohmann::json::parse("{" + source_extra + "}");
        for (auto& [k, v] : extra.items()) j["source"]["settings"][k] = v;
        sw_test::write_file(job(), j.dump(2));
    }
    sw_test::temp_dir tmp_;
};

}  // namespace

TEST_F(input_e2e, a_windows_1252_export_read_as_utf8_is_a_finding_and_every_json_stays_valid) {
    to_cp1252(src() / "users.csv");
    write_job();
    auto r = sw_test::cli(data(), {"run", job().string(), "--dry-run"});
    // The records in error are kept as the target holds them, so the run is
    // held for an operator rather than failed.
    EXPECT_EQ(r.code, 10) << r.out << r.err;
    EXPECT_THAT(r.out, HasSubstr("[bad_encoding]"));
    EXPECT_THAT(r.out, HasSubstr("username is not valid UTF-8 at byte 3"));
    EXPECT_THAT(r.out, HasSubstr("the \"encoding\" setting"));
    const auto id = sw_test::run_id_of(r.out);
    auto show = sw_test::cli(data(), {"runs", "show", id, "--json"});
    ASSERT_EQ(show.code, 0) << show.err;
    EXPECT_TRUE(nlohmann::json::accept(show.out));
    EXPECT_TRUE(nlohmann::json::accept(sw_test::read_file(data() / "plans" / (id + ".json"))));
    auto list = sw_test::cli(data(), {"runs", "list", "--json"});
    EXPECT_TRUE(nlohmann::json::accept(list.out));
    EXPECT_FALSE(fs::exists(drop()));
}

TEST_F(input_e2e, the_encoding_setting_reads_a_windows_1252_export_as_the_right_letters) {
    to_cp1252(src() / "users.csv");
    write_job(R"("encoding": "windows-1252")");
    auto r = sw_test::cli(data(), {"run", job().string()});
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_THAT(sw_test::read_file(drop() / "people.csv"), HasSubstr("s-1001,zoë.garcía,Zoë,García,student"));
    write_job(R"("encoding": "ebcdic")");
    r = sw_test::cli(data(), {"run", job().string(), "--dry-run"});
    EXPECT_EQ(r.code, 3);
    EXPECT_THAT(r.err, HasSubstr("$.source.settings.encoding is \"ebcdic\": not one of the allowed values "
                                 "(expected the export's text encoding: utf-8, windows-1252 or iso-8859-1)"));
}

TEST_F(input_e2e, control_characters_in_names_and_values_are_printed_escaped) {
    write_job();
    auto j = nlohmann::json::parse(sw_test::read_file(job()));
    const auto good = j;
    // A job's name is a plain word now: one with control characters is
    // refused, and the refusal quotes it escaped.
    j["name"] = "evil\x1b[2J\nname";
    sw_test::write_file(job(), j.dump());
    auto refused = sw_test::cli(data(), {"run", job().string(), "--dry-run"});
    EXPECT_EQ(refused.code, 3) << refused.out << refused.err;
    EXPECT_EQ(refused.err.find('\x1b'), std::string::npos) << "no raw escape reaches the terminal";
    EXPECT_THAT(refused.err, HasSubstr("found \"evil\\x1b[2J\\nname\""));
    sw_test::write_file(job(), good.dump());
    auto u = sw_test::read_file(src() / "users.csv");
    const std::string given = ",Zoë,";
    u.replace(u.find(given), given.size(), ",\"Zo\x1b]0;pwned\x07\",");
    sw_test::write_file(src() / "users.csv", u);
    auto r = sw_test::cli(data(), {"run", job().string(), "--dry-run"});
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_EQ(r.out.find('\x1b'), std::string::npos) << "no raw escape reaches the terminal";
    EXPECT_EQ(r.out.find('\x07'), std::string::npos);
    EXPECT_THAT(r.out, HasSubstr("first_name='Zo\\x1b]0;pwned\\x07'"));
}

// A source that breaks its contract fails the run as a connector defect;
// nothing of its batch is delivered.
class contract_breach : public ::testing::TestWithParam<std::pair<const char*, const char*>> {};

TEST_P(contract_breach, is_a_connector_defect_and_nothing_is_delivered) {
    auto [fixture, words] = GetParam();
    sw_test::temp_dir tmp;
    sw_test::install_shipped(tmp / "data");
    ASSERT_EQ(sw_test::cli(tmp / "data", {"connectors", "install", sw_test::fixture(fixture).string()}).code, 0);
    const std::string name = nlohmann::json::parse(
        sw_test::cli(tmp / "data", {"connectors", "list", "--json"}).out)[0]["name"];
    sw_test::write_file(tmp / "job.json", R"({"name": "breach",
      "source": {"connector": ")" + name + R"("},
      "target": {"connector": "vendor-csv", "settings": {"folder": "out",
         "files": [{"entity": "items", "file": "items.csv", "key": "id", "columns": ["id", "name"]}]}},
      "mapping": {"entities": [{"target": "items", "source": "items", "fields": {"id": "id", "name": "name"}}]}})");
    auto r = sw_test::cli(tmp / "data", {"run", (tmp / "job.json").string()});
    EXPECT_EQ(r.code, 5) << r.out << r.err;
    EXPECT_THAT(r.out, HasSubstr("[connector_defect]"));
    EXPECT_THAT(r.out, HasSubstr(words));
    EXPECT_THAT(r.out, HasSubstr("defect of the connector"));
    EXPECT_FALSE(fs::exists(tmp / "out"));
}

INSTANTIATE_TEST_SUITE_P(
    input, contract_breach,
    ::testing::Values(std::pair{"bad_state", "record state is 5, which is neither active (0) nor tobedeleted (1)"},
                      std::pair{"bad_mode", "has mode 9, which is neither bulk (0) nor delta (1)"},
                      std::pair{"mixed_mode", "emitted a delta batch of 'items' after bulk batches"}));

TEST(cli, commands_that_need_no_data_dir_create_none) {
    sw_test::temp_dir tmp;
    auto data = tmp / "nowhere";
    EXPECT_EQ(sw_test::cli(data, {"version"}).code, 0);
    EXPECT_EQ(sw_test::cli(data, {"connectors", "list"}).code, 0);
    auto list = sw_test::cli(data, {"runs", "list"});
    EXPECT_EQ(list.code, 0);
    EXPECT_THAT(list.out, HasSubstr("no runs yet"));
    EXPECT_EQ(sw_test::cli(data, {"runs", "show", "r-1"}).code, 7);
    EXPECT_FALSE(fs::exists(data));
}

TEST(cli, a_job_file_that_is_a_device_or_huge_is_refused_before_it_is_read) {
    sw_test::temp_dir tmp;
    auto r = sw_test::cli(tmp / "data", {"run", "/dev/zero"});
    EXPECT_EQ(r.code, 3) << r.err;
    EXPECT_THAT(r.err, HasSubstr("/dev/zero: not a regular file"));
    {
        std::ofstream big(tmp / "big.json");
        big << "[";
        std::string chunk(1 << 20, ' ');
        for (int i = 0; i < 17; ++i) big << chunk;
        big << "]";
    }
    r = sw_test::cli(tmp / "data", {"run", (tmp / "big.json").string()});
    EXPECT_EQ(r.code, 3) << r.err;
    EXPECT_THAT(r.err, HasSubstr("may be at most 16 MiB"));
}

TEST(cli, unknown_or_malformed_variables_in_settings_are_config_errors) {
    sw_test::temp_dir tmp;
    sw_test::install_shipped(tmp / "data");
    for (auto [folder, words] : {std::pair{"${HOME}/drop", "unknown variable '${HOME}'"},
                                 {"${data_dir/drop", "not a complete variable"},
                                 {"${${data_dir}}", "not a complete variable"}}) {
        auto j = nlohmann::json::parse(sw_test::roster_job(fs::path(SW_SOURCE_DIR) / "config/demo/district", "x"));
        j["target"]["settings"]["folder"] = folder;
        sw_test::write_file(tmp / "job.json", j.dump());
        auto r = sw_test::cli(tmp / "data", {"run", (tmp / "job.json").string(), "--dry-run"});
        EXPECT_EQ(r.code, 3) << folder << ": " << r.err;
        EXPECT_THAT(r.err, HasSubstr("job.json: $.target.settings.folder"));
        EXPECT_THAT(r.err, HasSubstr(words));
    }
    for (auto& e : fs::recursive_directory_iterator(tmp.path()))
        EXPECT_EQ(e.path().string().find("${"), std::string::npos) << "created " << e.path();
}
