// The oneroster-csv connector on the real third-party sets in
// ../shared/data/oneroster (read in place, never copied into the repo) and on
// malformed input, through the kernel's CLI as an operator runs it.
#include "test_support.hpp"

#include <Poco/Zip/Compress.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <set>
#include <sstream>

using ::testing::HasSubstr;
namespace fs = std::filesystem;

namespace {

struct dry_run {
    sw_test::cli_result r;
    nlohmann::json plan;  // the plan file, when one was written
};

class oneroster : public ::testing::Test {
protected:
    void SetUp() override { sw_test::install_shipped(data()); }
    fs::path data() const { return tmp_ / "data"; }
    fs::path drop() const { return tmp_ / "drop"; }

    sw_test::cli_result run(const fs::path& source, bool dry) {
        sw_test::write_file(tmp_ / "job.json", sw_test::roster_job(source, drop()));
        std::vector<std::string> args{"run", (tmp_ / "job.json").string()};
        if (dry) args.push_back("--dry-run");
        return sw_test::cli(data(), args);
    }
    dry_run dry(const fs::path& source) {
        dry_run d{run(source, true), {}};
        auto pos = d.r.out.find("plan written to ");
        if (pos != std::string::npos) {
            auto line = d.r.out.substr(pos + 16);
            d.plan = nlohmann::json::parse(sw_test::read_file(line.substr(0, line.find('\n'))));
        }
        return d;
    }
    static size_t count(const nlohmann::json& findings, const std::string& code) {
        size_t n = 0;
        for (auto& f : findings) n += f["code"] == code;
        return n;
    }
    static const nlohmann::json* find(const nlohmann::json& findings, const std::string& code, const std::string& file) {
        for (auto& f : findings)
            if (f["code"] == code && f["file"] == file) return &f;
        return nullptr;
    }
    static std::string field_of(const nlohmann::json& plan, const std::string& key, const std::string& field) {
        for (auto& c : plan["changes"])
            if (c["key"] == key) return c["fields"][field]["new"];
        return "<absent>";
    }

    sw_test::temp_dir tmp_;
};

}  // namespace

TEST_F(oneroster, test_full_data_set_loads_with_reference_findings) {
    auto d = dry(sw_test::shared_data("oneroster/Test_full_data_set"));
    ASSERT_EQ(d.r.code, 0) << d.r.out << d.r.err;
    EXPECT_EQ(d.plan["summary"]["people"]["create"], 6);
    EXPECT_EQ(d.plan["summary"]["rosters"]["create"], 6);
    auto& f = d.plan["findings"];
    auto* org = find(f, "dangling_reference", "orgs.csv");
    ASSERT_NE(org, nullptr) << f.dump(1);
    EXPECT_EQ((*org)["line"], 2);
    EXPECT_EQ((*org)["column"], 87);
    EXPECT_THAT((*org)["message"].get<std::string>(), HasSubstr("parentSourcedId 'org-sch-222-3456' is not in orgs"));
    EXPECT_EQ(count(f, "dangling_reference"), 3u);  // the org parent and two session parents
    EXPECT_EQ(count(f, "reference_to_deleted"), 3u);  // enrollments in class cls-222-123478, tobedeleted
    EXPECT_EQ(count(f, "reference_not_checked"), 1u);  // classes -> courses, absent from the set
    EXPECT_EQ(field_of(d.plan, "usr-222-123456", "role"), "teacher");
    EXPECT_FALSE(fs::exists(drop())) << "a dry run must not touch the target";
}

TEST_F(oneroster, test_minimal_data_set_loads_cleanly) {
    auto d = dry(sw_test::shared_data("oneroster/Test_minimal_data_set"));
    ASSERT_EQ(d.r.code, 0) << d.r.out << d.r.err;
    EXPECT_EQ(d.plan["summary"]["people"]["create"], 6);
    EXPECT_EQ(d.plan["summary"]["rosters"]["create"], 6);
    ASSERT_EQ(d.plan["findings"].size(), 1u) << d.plan["findings"].dump(1);
    EXPECT_EQ(d.plan["findings"][0]["code"], "reference_not_checked");
}

TEST_F(oneroster, oneroster_1_2_delta_set_takes_roles_from_roles_csv) {
    auto d = dry(sw_test::shared_data("oneroster/oneroster_test_data"));
    ASSERT_EQ(d.r.code, 0) << d.r.out << d.r.err;
    EXPECT_TRUE(d.plan["findings"].empty()) << d.plan["findings"].dump(1);
    EXPECT_EQ(d.plan["summary"]["people"]["create"], 1);
    EXPECT_EQ(field_of(d.plan, "USER_0", "username"), "brucewayne");
    EXPECT_EQ(field_of(d.plan, "USER_0", "role"), "student");
}

TEST_F(oneroster, v1p2_full_dataset_reports_each_defect_with_file_line_and_column) {
    auto d = dry(sw_test::shared_data("oneroster/v1p2_full_dataset"));
    ASSERT_EQ(d.r.code, 0) << d.r.out << d.r.err;
    auto& f = d.plan["findings"];
    auto* alias = find(f, "header_alias", "users.csv");
    ASSERT_NE(alias, nullptr);
    EXPECT_EQ((*alias)["line"], 1);
    EXPECT_EQ((*alias)["column"], 176);
    EXPECT_THAT((*alias)["message"].get<std::string>(), HasSubstr("'prefferedGivenName' is read as 'preferredGivenName'"));
    EXPECT_EQ(count(f, "header_alias"), 4u);  // three preffered* in users, dataLastModified in roles
    EXPECT_EQ(count(f, "bad_date"), 5u);      // US-style dateLastModified in users.csv
    bool day_first = false;
    for (auto& x : f)
        if (x["code"] == "bad_date" && x["line"] == 7 && x["column"] == 23)
            day_first = x["message"].get<std::string>().find("'15/06/2023'") != std::string::npos;
    EXPECT_TRUE(day_first);
    auto* trailing = find(f, "csv_header", "roles.csv");
    ASSERT_NE(trailing, nullptr);
    EXPECT_THAT((*trailing)["message"].get<std::string>(), HasSubstr("2 trailing column(s) with an empty name"));
    auto* manifest = find(f, "manifest", "manifest.csv");
    ASSERT_NE(manifest, nullptr);
    EXPECT_EQ((*manifest)["line"], 21);
    EXPECT_THAT((*manifest)["message"].get<std::string>(), HasSubstr("file.scoreScales is ''"));
    auto* profiles = find(f, "undeclared_file", "userprofiles.csv");
    ASSERT_NE(profiles, nullptr) << "the lower-case userprofiles.csv must be seen";
    // Every enrollment's user exists in this copy of the set; the dangling
    // references are the org and session parents.
    EXPECT_EQ(count(f, "dangling_reference"), 3u);
    // 1.2 keeps roles in roles.csv: the primary role wins, else any role.
    EXPECT_EQ(field_of(d.plan, "usr-222-123456", "role"), "teacher");
    EXPECT_EQ(field_of(d.plan, "usr-222-1234561", "role"), "siteAdministrator");
    EXPECT_EQ(d.plan["summary"]["people"]["create"], 6);
}

TEST_F(oneroster, reads_a_zip_export) {
    auto zip = tmp_ / "export.zip";
    {
        std::ofstream out(zip, std::ios::binary);
        Poco::Zip::Compress c(out, true);
        c.addRecursive(Poco::Path(sw_test::shared_data("oneroster/Test_minimal_data_set").string() + "/"),
                       Poco::Zip::ZipCommon::CL_NORMAL, false, Poco::Path("export/"));
        c.close();
    }
    auto d = dry(zip);
    ASSERT_EQ(d.r.code, 0) << d.r.out << d.r.err;
    EXPECT_EQ(d.plan["summary"]["people"]["create"], 6);
}

TEST_F(oneroster, handles_bom_crlf_quoted_newlines_and_file_name_case) {
    auto src = tmp_ / "odd";
    sw_test::copy_tree(sw_test::shared_data("oneroster/Test_minimal_data_set"), src);
    fs::remove(src / "users.csv");
    sw_test::write_file(src / "USERS.CSV",
                        "\xEF\xBB\xBFsourcedId,status,dateLastModified,enabledUser,orgSourcedIds,role,username,userIds,"
                        "givenName,familyName,middleName,identifier,email,sms,phone,agentSourcedIds,grades,password\r\n"
                        "usr-222-123456,,,TRUE,org-sch-222-456,teacher,john.doe,,\"John, \"\"Jack\"\"\",\"Doe\r\nSmith\","
                        ",,,,,,,\r\n"
                        "usr-222-987654,,,true,org-sch-222-456,teacher,jim.smith,,Jim,Smith,,,,,,,,\r\n");
    auto r = run(src, false);
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    auto people = sw_test::read_file(drop() / "people.csv");
    EXPECT_THAT(people, HasSubstr("usr-222-123456,john.doe,\"John, \"\"Jack\"\"\",\"Doe\r\nSmith\",teacher"));
    EXPECT_THAT(people, HasSubstr("usr-222-987654,jim.smith,Jim,Smith,teacher"));
}

// Rows are read in chunks so that the key lookups' cache misses overlap:
// every row's unescaped quoted text, line number and findings must still be
// its own, across chunk boundaries and with findings mid-chunk.
TEST_F(oneroster, quoted_text_and_line_numbers_stay_with_their_rows_across_many_rows) {
    auto src = tmp_ / "many";
    sw_test::copy_tree(sw_test::shared_data("oneroster/Test_minimal_data_set"), src);
    fs::remove(src / "users.csv");
    std::string users =
        "sourcedId,status,dateLastModified,enabledUser,orgSourcedIds,role,username,userIds,"
        "givenName,familyName,middleName,identifier,email,sms,phone,agentSourcedIds,grades,password\n";
    for (int i = 0; i < 150; ++i) {
        const std::string n = std::to_string(i);
        const std::string id = i == 77 ? "usr-many-5" : "usr-many-" + n;  // line 79 repeats line 7's key
        users += id + ",,,true,org-sch-222-456,teacher,user" + n + ",,\"Given \"\"" + n + "\"\"\",Family" + n +
                 ",,,,,,,,\n";
    }
    sw_test::write_file(src / "users.csv", users);
    auto d = dry(src);
    ASSERT_FALSE(d.plan.is_null()) << d.r.out << d.r.err;
    for (int i : {0, 1, 31, 32, 33, 63, 64, 100, 149})
        EXPECT_EQ(field_of(d.plan, "usr-many-" + std::to_string(i), "first_name"), "Given \"" + std::to_string(i) + "\"")
            << "row " << i;
    EXPECT_EQ(field_of(d.plan, "usr-many-77", "first_name"), "<absent>");
    const auto* dup = find(d.plan["findings"], "duplicate_key", "users.csv");
    ASSERT_NE(dup, nullptr) << d.plan["findings"].dump(1);
    EXPECT_EQ((*dup)["line"], 79);
    EXPECT_EQ((*dup)["key"], "usr-many-5");
}

// Malformed input: the run stops before apply with a non-zero exit and a
// message naming file, line and column; the target is exactly as before.
class malformed : public oneroster {
protected:
    void SetUp() override {
        oneroster::SetUp();
        src_ = tmp_ / "src";
        sw_test::copy_tree(sw_test::shared_data("oneroster/Test_full_data_set"), src_);
        auto r = run(src_, false);
        ASSERT_EQ(r.code, 0) << r.out << r.err;
        before_ = sw_test::snapshot(drop());
        ASSERT_FALSE(before_.empty());
    }
    void expect_rejected(const std::string& where, const std::string& words) {
        auto r = run(src_, false);
        EXPECT_EQ(r.code, 5) << r.out << r.err;
        EXPECT_THAT(r.err, HasSubstr(where));
        EXPECT_THAT(r.err, HasSubstr(words));
        EXPECT_THAT(r.err, HasSubstr("nothing was applied"));
        EXPECT_EQ(sw_test::snapshot(drop()), before_) << "the target changed";
    }
    fs::path src_;
    std::vector<std::pair<std::string, std::string>> before_;
};

TEST_F(malformed, truncated_file) {
    auto users = sw_test::read_file(src_ / "users.csv");
    sw_test::write_file(src_ / "users.csv", users.substr(0, users.size() - 40));
    expect_rejected("users.csv:7:", "the file may be truncated");
}

TEST_F(malformed, truncated_inside_a_quoted_field) {
    auto users = sw_test::read_file(src_ / "users.csv");
    auto cut = users.find("\"{LDAP:12},{LTI:15}\"");
    ASSERT_NE(cut, std::string::npos);
    sw_test::write_file(src_ / "users.csv", users.substr(0, cut + 8));
    expect_rejected("users.csv:5:", "is never closed");
}

TEST_F(malformed, bad_quoting) {
    auto users = sw_test::read_file(src_ / "users.csv");
    users.replace(users.find(",John,"), 6, ",Jo\"hn,");
    sw_test::write_file(src_ / "users.csv", users);
    expect_rejected("users.csv:2:", "bad quoting");
}

TEST_F(malformed, missing_required_column) {
    auto enr = sw_test::read_file(src_ / "enrollments.csv");
    enr.replace(enr.find("userSourcedId"), 13, "personId");
    sw_test::write_file(src_ / "enrollments.csv", enr);
    expect_rejected("enrollments.csv:1:", "lacks required column(s) 'userSourcedId'");
}

TEST_F(malformed, unreadable_zip) {
    src_ = tmp_ / "district.zip";
    sw_test::write_file(src_, "PK\x03\x04 this is not really a zip archive");
    auto r = run(src_, false);
    EXPECT_EQ(r.code, 5) << r.out << r.err;
    EXPECT_THAT(r.err, HasSubstr("district.zip: not a readable zip archive"));
    EXPECT_EQ(sw_test::snapshot(drop()), before_);
}

// A delta export changes only what it lists: absent records stay, and only
// rows marked tobedeleted (or the 1.0 word 'inactive') are removed.
TEST_F(oneroster, a_delta_export_deletes_only_what_it_marks) {
    auto src = tmp_ / "full";
    sw_test::copy_tree(sw_test::shared_data("oneroster/Test_minimal_data_set"), src);
    ASSERT_EQ(run(src, false).code, 0);
    auto delivered = sw_test::read_file(drop() / "people.csv");
    ASSERT_NE(delivered.find("usr-222-987654"), std::string::npos);

    auto delta = tmp_ / "delta";
    sw_test::write_file(delta / "manifest.csv",
                        "propertyName,value\r\nmanifest.version,1.0\r\noneroster.version,1.1\r\n"
                        "file.users,delta\r\nfile.enrollments,absent\r\nfile.orgs,absent\r\n");
    sw_test::write_file(delta / "users.csv",
                        "sourcedId,status,dateLastModified,enabledUser,orgSourcedIds,role,username,userIds,"
                        "givenName,familyName,middleName,identifier,email,sms,phone,agentSourcedIds,grades,password\r\n"
                        "usr-222-987654,inactive,2026-11-20,TRUE,org-sch-222-456,teacher,jim.smith,,Jim,Smith,,,,,,,,\r\n"
                        "usr-new-1,active,2026-11-20,TRUE,org-sch-222-456,student,new.one,,New,One,,,,,,,,\r\n");
    // One delete of six people is over the default 10% limit; this test is
    // about which records a delta deletes, not the gate.
    sw_test::write_file(tmp_ / "job.json",
                        sw_test::roster_job(delta, drop(), R"("gates": {"thresholds": {"*": {"delete": "off"}}},)"));
    auto r = sw_test::cli(data(), {"run", (tmp_ / "job.json").string(), "--dry-run", "--plan-out",
                                   (tmp_ / "plan.json").string()});
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    auto plan = nlohmann::json::parse(sw_test::read_file(tmp_ / "plan.json"));
    EXPECT_EQ(plan["summary"]["people"]["create"], 1);
    EXPECT_EQ(plan["summary"]["people"]["delete"], 1) << "'inactive' is read as tobedeleted";
    EXPECT_EQ(plan["summary"]["people"]["update"], 0);
    EXPECT_EQ(plan["changes"].size(), 2u) << "the five users the delta does not list must stay";
    for (auto& c : plan["changes"])
        EXPECT_EQ(c["key"], c["kind"] == "delete" ? "usr-222-987654" : "usr-new-1");
}

// The other half of the rule: a bulk file that is present but empty says the
// entity is now empty, so everything delivered is planned for deletion; the
// safety gates hold such a plan for an operator.
TEST_F(oneroster, a_present_but_empty_bulk_file_empties_the_entity) {
    auto src = tmp_ / "full";
    sw_test::copy_tree(sw_test::shared_data("oneroster/Test_minimal_data_set"), src);
    ASSERT_EQ(run(src, false).code, 0);
    auto enr = sw_test::read_file(src / "enrollments.csv");
    sw_test::write_file(src / "enrollments.csv", enr.substr(0, enr.find('\n') + 1));
    auto d = dry(src);
    ASSERT_EQ(d.r.code, 10) << d.r.out << d.r.err;
    EXPECT_EQ(d.plan["summary"]["rosters"]["delete"], 6);
    EXPECT_EQ(d.plan["summary"]["people"]["delete"], 0);
    EXPECT_THAT(d.r.out, HasSubstr("the source sent no enrollments at all (0 records)"));
    EXPECT_THAT(d.r.out, HasSubstr("would delete 6 of 6 rosters (100%), limit 10%"));
}

// ---- findings that name their row, and headers read in one pass ----

namespace {
fs::path demo_copy(const fs::path& to) {
    sw_test::copy_tree(fs::path(SW_SOURCE_DIR) / "config/demo/district", to);
    return to;
}
void edit(const fs::path& file, const std::string& from, const std::string& to) {
    auto t = sw_test::read_file(file);
    auto p = t.find(from);
    ASSERT_NE(p, std::string::npos) << from;
    t.replace(p, from.size(), to);
    sw_test::write_file(file, t);
}
}  // namespace

TEST_F(oneroster, a_missing_required_value_is_reported_with_its_file_line_and_column) {
    auto src = demo_copy(tmp_ / "src");
    edit(src / "users.csv", "s-1002,,,TRUE,org-north,student,josé.nguyen,", "s-1002,,,TRUE,org-north,student,,");
    auto d = dry(src);
    EXPECT_EQ(d.r.code, 5) << d.r.out << d.r.err;
    const auto* f = find(d.plan["findings"], "missing_required", "users.csv");
    ASSERT_NE(f, nullptr) << d.plan["findings"].dump(1);
    EXPECT_EQ((*f)["line"], 8);
    EXPECT_EQ((*f)["column"], 33);
    EXPECT_EQ((*f)["key"], "s-1002");
    EXPECT_THAT((*f)["message"].get<std::string>(), HasSubstr("username is empty"));
    EXPECT_EQ(count(d.plan["findings"], "missing_required"), 1u) << "reported once, by the connector";
}

TEST_F(oneroster, every_header_defect_of_a_file_is_reported_in_one_pass) {
    auto src = demo_copy(tmp_ / "src");
    edit(src / "users.csv", "sourcedId,status,dateLastModified,enabledUser,orgSourcedIds,role,username,",
         "sourcedId,status,dateLastModified,enabledUser,orgSourcedIds,role,role,,username,");
    auto d = dry(src);
    EXPECT_EQ(d.r.code, 5);
    std::vector<std::string> msgs;
    for (auto& f : d.plan["findings"])
        if (f["file"] == "users.csv" && f["code"] == "csv_header") msgs.push_back(f["message"]);
    ASSERT_EQ(msgs.size(), 2u) << d.plan["findings"].dump(1);
    EXPECT_THAT(msgs[0], HasSubstr("column 'role' appears twice"));
    EXPECT_THAT(msgs[1], HasSubstr("empty column name before column 'username'"));
}

TEST_F(oneroster, extension_columns_are_info_and_oneroster_1_0_names_are_read_with_a_warning) {
    auto src = demo_copy(tmp_ / "src");
    auto users = sw_test::read_file(src / "users.csv");
    // Rename 1.1's userIds and agentSourcedIds to their 1.0 names, and add
    // two extension columns.
    edit(src / "users.csv", ",userIds,", ",userId,");
    edit(src / "users.csv", ",agentSourcedIds,", ",agents,");
    edit(src / "users.csv", ",password\r\n", ",password,metadata.lunch,ext_bus\r\n");
    auto t = sw_test::read_file(src / "users.csv");
    std::string out, line;
    std::istringstream in(t);
    bool header = true;
    while (std::getline(in, line)) {
        out += line;
        if (!header && !line.empty()) out.insert(out.size() - 1, ",free,12");
        out += "\n";
        header = false;
    }
    sw_test::write_file(src / "users.csv", out);
    auto d = dry(src);
    ASSERT_EQ(d.r.code, 0) << d.r.out << d.r.err;
    size_t ext = 0;
    for (auto& f : d.plan["findings"]) {
        EXPECT_NE(f["code"], "unknown_column") << f.dump();
        if (f["code"] == "extension_column") {
            ++ext;
            EXPECT_EQ(f["severity"], "info");
        }
        if (f["code"] == "header_alias") {
            EXPECT_THAT(f["message"].get<std::string>(), HasSubstr("its OneRoster 1.0 name, renamed in 1.1"));
        }
    }
    EXPECT_EQ(ext, 2u);
    EXPECT_EQ(count(d.plan["findings"], "header_alias"), 2u);

    // A mapping reads an extension column like any other field.
    auto j = nlohmann::json::parse(sw_test::roster_job(src, drop()));
    j["target"]["settings"]["files"][0]["columns"].push_back("lunch");
    j["mapping"]["entities"][0]["fields"]["lunch"] = "metadata.lunch";
    sw_test::write_file(tmp_ / "job.json", j.dump());
    auto r = sw_test::cli(data(), {"run", (tmp_ / "job.json").string(), "--dry-run", "--preview", "1"});
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_THAT(r.out, HasSubstr("lunch='free'"));
}

TEST_F(oneroster, without_a_manifest_an_absent_file_is_not_said_to_be_declared) {
    auto src = demo_copy(tmp_ / "src");
    fs::remove(src / "manifest.csv");
    fs::remove(src / "courses.csv");
    auto d = dry(src);
    for (auto& f : d.plan["findings"])
        EXPECT_EQ(f["message"].get<std::string>().find("manifest.csv declares"), std::string::npos) << f.dump();
    EXPECT_EQ(count(d.plan["findings"], "missing_file"), 0u);
}

// A small zip that unpacks to more than the limit is refused while it is
// unpacked, not after it filled memory.
TEST_F(oneroster, a_zip_that_unpacks_past_its_limit_is_refused) {
    auto src = demo_copy(tmp_ / "src");
    std::string users = sw_test::read_file(src / "users.csv");
    std::string padding;
    for (int i = 0; i < 40000; ++i)
        padding += "x-" + std::to_string(i) + ",,,TRUE,org-north,student,user" + std::to_string(i) +
                   ",,Pad,Ding,,,,,,,09,\r\n";
    sw_test::write_file(src / "users.csv", users + padding);
    ASSERT_GT(fs::file_size(src / "users.csv"), 2u << 20);
    auto zip = tmp_ / "export.zip";
    {
        std::ofstream out(zip, std::ios::binary);
        Poco::Zip::Compress c(out, true);
        c.addRecursive(Poco::Path(src.string() + "/"), Poco::Zip::ZipCommon::CL_MAXIMUM, false, Poco::Path("export/"));
        c.close();
    }
    ASSERT_LT(fs::file_size(zip), 1u << 20);
    auto j = nlohmann::json::parse(sw_test::roster_job(zip, drop()));
    j["source"]["settings"]["zip_limit_mb"] = 1;
    sw_test::write_file(tmp_ / "job.json", j.dump());
    auto r = sw_test::cli(data(), {"run", (tmp_ / "job.json").string(), "--dry-run"});
    EXPECT_NE(r.code, 0);
    EXPECT_THAT(r.err, HasSubstr("export.zip: unpacks to more than 1 MiB (at member users.csv)"));
    EXPECT_THAT(r.err, HasSubstr("raise the oneroster-csv setting zip_limit_mb"));
}

// enrollments.csv, which nothing refers to, is checked for second copies
// without a key set while its sourcedIds come in order: a copy is a key
// equal to the one before. The first key out of order reads the keys so far
// into a set (a short row, which was not read as a record, is not among
// them), and the set finds a copy of a row far back. Every copy is reported
// at its line; every other row becomes a roster.
TEST_F(oneroster, second_copies_are_found_whether_or_not_sourced_ids_come_in_order) {
    auto src = demo_copy(tmp_ / "src");
    std::string rows = "sourcedId,status,dateLastModified,classSourcedId,schoolSourcedId,userSourcedId,role,primary,"
                       "beginDate,endDate\n";
    auto id = [](int i) {
        char k[16];
        std::snprintf(k, sizeof k, "enr-t-%03d", i);
        return std::string(k);
    };
    for (int i = 0; i < 150; ++i) {
        std::string key = id(i);
        if (i == 50) key = id(49);   // line 52: the same key as the line before
        if (i == 100) key = id(10);  // line 102: out of order, a copy of line 12
        if (i == 120) key = id(30);  // line 122: out of order, but line 32 was too short to be read
        if (i == 20) key = "\"" + key + "\"";  // quoted: read again the same way
        if (i == 30) rows += key + ",,,cls-alg1-p1,org-north\n";
        else rows += key + ",,,cls-alg1-p1,org-north,s-1001,student,false,,\n";
    }
    sw_test::write_file(src / "enrollments.csv", rows);
    auto d = dry(src);
    ASSERT_FALSE(d.plan.is_null()) << d.r.out << d.r.err;
    std::vector<std::pair<int, std::string>> copies;
    for (auto& f : d.plan["findings"])
        if (f["code"] == "duplicate_key" && f["file"] == "enrollments.csv")
            copies.emplace_back(f["line"].get<int>(), f["key"].get<std::string>());
    EXPECT_EQ(copies, (std::vector<std::pair<int, std::string>>{{52, id(49)}, {102, id(10)}}))
        << d.plan["findings"].dump(1);
    std::set<std::string> rosters;
    for (auto& c : d.plan["changes"])
        if (c["entity"] == "rosters") rosters.insert(c["key"].get<std::string>());
    EXPECT_EQ(rosters.size(), 147u);  // 150 rows, two copies, one short row
    for (int i : {0, 10, 20, 29, 30, 49, 51, 99, 101, 119, 121, 149}) EXPECT_TRUE(rosters.count(id(i))) << id(i);
    EXPECT_FALSE(rosters.count(id(50)));
    EXPECT_FALSE(rosters.count(id(100)));
    EXPECT_FALSE(rosters.count(id(120)));
}
