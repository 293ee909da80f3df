// Schema drift against the job's last good run, end to end: enumerations
// outside the contract (OneRoster's are case-sensitive), columns that
// appeared or vanished, and values that changed format. Each finding names
// its file, column and key; a job can make any of them hold the run.
#include "demo_district.hpp"

#include <syncwarden/kernel/value_formats.hpp>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using ::testing::HasSubstr;
using ::testing::Not;
namespace fs = std::filesystem;

namespace {

class drift : public sw_test::demo_district {
protected:
    // Rewrites users.csv column by column: `edit` gets the header and each
    // row as fields and may change them.
    void edit_users(const std::function<void(std::vector<std::string>&, bool header)>& edit) {
        auto text = sw_test::read_file(src_ / "users.csv");
        std::string out;
        size_t pos = 0;
        bool header = true;
        while (pos < text.size()) {
            size_t end = text.find('\n', pos);
            std::string line = text.substr(pos, end - pos);
            if (!line.empty() && line.back() == '\r') line.pop_back();
            std::vector<std::string> f;
            size_t s = 0;
            for (size_t c = line.find(','); ; c = line.find(',', s)) {
                f.push_back(line.substr(s, c == std::string::npos ? std::string::npos : c - s));
                if (c == std::string::npos) break;
                s = c + 1;
            }
            edit(f, header);
            header = false;
            for (size_t i = 0; i < f.size(); ++i) out += (i ? "," : "") + f[i];
            out += "\r\n";
            if (end == std::string::npos) break;
            pos = end + 1;
        }
        sw_test::write_file(src_ / "users.csv", out);
    }
};

}  // namespace

// Test_full_data_set spells one classType 'Scheduled': OneRoster's values are
// case-sensitive, so the class is held for a decision, not guessed at.
TEST_F(drift, an_enum_value_outside_the_contract_holds_the_run_and_names_file_column_and_key) {
    auto src = tmp_ / "full";
    sw_test::copy_tree(sw_test::shared_data("oneroster/Test_full_data_set"), src);
    sw_test::write_file(job(), R"({"name": "classes",
      "source": {"connector": "oneroster-csv", "settings": {"path": ")" + src.string() + R"("}},
      "target": {"connector": "vendor-csv", "settings": {"folder": ")" + drop().string() + R"(",
        "files": [{"entity": "sections", "file": "sections.csv", "key": "id", "columns": ["id", "title", "type"]}]}},
      "mapping": {"entities": [{"target": "sections", "source": "classes",
          "fields": {"id": "sourcedId", "title": "title", "type": "classType"}}]}})");
    auto r = run({"--dry-run"});
    EXPECT_EQ(r.code, 10) << r.out << r.err;
    EXPECT_THAT(r.out, HasSubstr("error [enum_value] classes.csv (column "));
    EXPECT_THAT(r.out, HasSubstr("classType is 'Scheduled' is not one of the values the contract allows (homeroom, "
                                 "scheduled) or an extension 'ext:...'; values are compared exactly, case included: "
                                 "did the source mean 'scheduled'?"));
    auto show = sw_test::cli(data(), {"runs", "show", sw_test::run_id_of(r.out), "--json"});
    auto j = nlohmann::json::parse(show.out);
    bool found = false;
    for (auto& f : j["findings"])
        if (f["code"] == "enum_value") {
            found = true;
            EXPECT_EQ(f["file"], "classes.csv");
            EXPECT_GT(f["column"].get<int>(), 0);
            EXPECT_FALSE(f["key"].get<std::string>().empty());
        }
    EXPECT_TRUE(found) << show.out;
}

TEST_F(drift, the_demo_district_has_only_values_the_contract_allows) {
    auto r = run({"--dry-run"});
    EXPECT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_THAT(r.out, Not(HasSubstr("enum_value")));
}

TEST_F(drift, a_column_that_appeared_or_vanished_is_a_warning_a_job_can_make_blocking) {
    ASSERT_EQ(run().code, 0);
    size_t phone = 0;
    edit_users([&](std::vector<std::string>& f, bool header) {
        if (header)
            for (size_t i = 0; i < f.size(); ++i)
                if (f[i] == "phone") phone = i;
        f.erase(f.begin() + static_cast<long>(phone));
        f.push_back(header ? "nickname" : "");
    });
    auto r = run({"--dry-run"});
    EXPECT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_THAT(r.out, HasSubstr("warning [column_added] users.csv:1:18: column 'nickname' is new since the last good run"));
    EXPECT_THAT(r.out, HasSubstr("warning [column_removed] users.csv:1: column 'phone' (column 15 in users.csv) is gone "
                                 "since the last good run"));

    write_job(R"("gates": {"findings": {"column_removed": "error"}},)");
    r = run({"--dry-run"});
    EXPECT_EQ(r.code, 10) << r.out << r.err;
    EXPECT_THAT(r.out, HasSubstr("column 'phone' (column 15 in users.csv) is gone"));
}

TEST_F(drift, a_field_whose_values_changed_format_since_the_last_good_run_is_reported_with_an_example) {
    ASSERT_EQ(run().code, 0);
    // The SIS now exports the email "renee.lefevre@lakeside.example.org" as
    // "renee.lefevre".
    size_t col = 0;
    edit_users([&](std::vector<std::string>& f, bool header) {
        if (header) {
            for (size_t i = 0; i < f.size(); ++i)
                if (f[i] == "email") col = i;
            return;
        }
        if (col < f.size()) f[col] = f[col].substr(0, f[col].find('@'));
    });
    auto r = run({"--dry-run"});
    EXPECT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_THAT(r.out, HasSubstr("warning [format_changed] users.csv (column 13): users.email changed format since the "
                                 "last good run"));
    EXPECT_THAT(r.out, HasSubstr("100% of its values looked like email address then, 0% do now; 100% look like text "
                                 "(first: 't-101')"));
    write_job(R"("gates": {"findings": {"users.format_changed": "error"}},)");
    EXPECT_EQ(run({"--dry-run"}).code, 10);
}

TEST(value_format, names_the_shapes_an_operator_recognises) {
    using syncwarden::kernel::value_format;
    EXPECT_STREQ(value_format("2026-11-27"), "YYYY-MM-DD");
    EXPECT_STREQ(value_format("11/27/2026"), "M/D/YYYY");
    EXPECT_STREQ(value_format("1/2/2026"), "M/D/YYYY");
    EXPECT_STREQ(value_format("27.11.2026"), "D.M.YYYY");
    EXPECT_STREQ(value_format("2026-11-27T10:00:00Z"), "ISO 8601 date-time");
    EXPECT_STREQ(value_format("-12"), "whole number");
    EXPECT_STREQ(value_format("3.5"), "decimal number");
    EXPECT_STREQ(value_format("ann@example.org"), "email address");
    EXPECT_STREQ(value_format("Zoë"), "word");
    EXPECT_STREQ(value_format("T-101"), "code");
    EXPECT_STREQ(value_format("Room 101"), "text");
    EXPECT_STREQ(value_format(""), "");
}
