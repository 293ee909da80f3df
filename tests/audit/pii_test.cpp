// People's data stays in the plans: keyed hashes wherever the store, the
// logs or the audit log must refer to a record, and a private data dir. The
// end-to-end test runs the demo district through an apply, a held run, a
// rejection and a note, then reads every byte of the data dir outside the
// plans for every name, username, e-mail and id of the source.
#include "../gates/demo_district.hpp"

#include <syncwarden/kernel/pii.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sys/stat.h>

using namespace syncwarden::kernel;
using ::testing::HasSubstr;
using ::testing::Not;
namespace fs = std::filesystem;

TEST(pii, keyed_hashes_are_stable_in_a_data_dir_and_differ_between_data_dirs) {
    sw_test::temp_dir a, b;
    ASSERT_TRUE(pii::use_data_dir_key(a.path()));
    const std::string in_a = pii::keyed("s-1001");
    EXPECT_THAT(in_a, testing::MatchesRegex("h:[0-9a-f]{16}"));
    EXPECT_NE(pii::keyed("s-1002"), in_a);
    ASSERT_TRUE(pii::use_data_dir_key(b.path()));
    EXPECT_NE(pii::keyed("s-1001"), in_a) << "nobody can match hashes across districts";
    ASSERT_TRUE(pii::use_data_dir_key(a.path()));
    EXPECT_EQ(pii::keyed("s-1001"), in_a) << "the secret is kept: the store's hashes stay valid";
    struct stat st {};
    ASSERT_EQ(::stat(pii::key_file(a.path()).c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    ::chmod(pii::key_file(a.path()).c_str(), 0644);
    auto s = pii::use_data_dir_key(a.path());
    EXPECT_FALSE(s);
    EXPECT_THAT(s.message(), HasSubstr("can be read by others (mode 644); make it private: chmod 600"));
}

TEST(pii, quoted_values_and_email_addresses_are_redacted_and_the_rest_kept) {
    sw_test::temp_dir a;
    ASSERT_TRUE(pii::use_data_dir_key(a.path()));
    const std::string h = "<" + pii::keyed("Zoë") + ">";
    EXPECT_EQ(pii::redact("value 'Zoë' is not in mapping table 'grades'"),
              "value " + h + " is not in mapping table <" + pii::keyed("grades") + ">");
    EXPECT_EQ(pii::redact("people/\"Zoë\": refused"), "people/" + h + ": refused");
    EXPECT_EQ(pii::redact("the target's file can't be written"), "the target's file can't be written");
    EXPECT_EQ(pii::redact("write to zoe.lukasiewicz@district.example.org failed"),
              "write to <" + pii::keyed("zoe.lukasiewicz@district.example.org") + "> failed");
    EXPECT_EQ(pii::redact("an @ alone, a@b without a dot"), "an @ alone, a@b without a dot");
    EXPECT_EQ(pii::redact("unclosed 'quote"), "unclosed 'quote");
}

TEST(pii, an_open_data_dir_is_made_private_with_what_is_in_it) {
    sw_test::temp_dir t;
    const fs::path d = t / "data";
    fs::create_directories(d / "plans");
    sw_test::write_file(d / "plans" / "old.json", "{}");
    ::chmod(d.c_str(), 0755);
    ::chmod((d / "plans").c_str(), 0755);
    ::chmod((d / "plans" / "old.json").c_str(), 0644);
    ASSERT_TRUE(pii::make_private(d));
    struct stat st {};
    ::stat(d.c_str(), &st);
    EXPECT_EQ(st.st_mode & 0777, 0700u);
    ::stat((d / "plans").c_str(), &st);
    EXPECT_EQ(st.st_mode & 0777, 0700u);
    ::stat((d / "plans" / "old.json").c_str(), &st);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    ::umask(static_cast<mode_t>(pii::operator_umask()));
}

namespace {

class pii_scan : public sw_test::demo_district {};

// Every value of the source's people that identifies someone.
std::vector<std::string> identifiers(const fs::path& users_csv) {
    std::vector<std::string> out;
    std::istringstream in(sw_test::read_file(users_csv));
    std::string header, line;
    std::getline(in, header);
    std::vector<std::string> cols;
    std::stringstream hs(header);
    for (std::string c; std::getline(hs, c, ',');) cols.push_back(c);
    while (std::getline(in, line)) {
        std::stringstream ls(line);
        size_t i = 0;
        for (std::string v; std::getline(ls, v, ','); ++i) {
            if (i >= cols.size() || v.size() < 4) continue;
            const std::string& c = cols[i];
            if (c == "sourcedId" || c == "username" || c == "givenName" || c == "familyName" || c == "email")
                out.push_back(v);
        }
    }
    return out;
}

}  // namespace

TEST_F(pii_scan, no_name_email_or_id_of_a_person_is_stored_or_logged_outside_the_plans) {
    const auto people = identifiers(src_ / "users.csv");
    ASSERT_GT(people.size(), 100u);
    ASSERT_EQ(run().code, 0);
    // One user's role becomes her own given name: a finding that quotes it,
    // and a run held with that record kept.
    auto u = sw_test::read_file(src_ / "users.csv");
    const auto row = u.find("\nt-101,");
    const auto role = u.find(",teacher,", row);
    u.replace(role, 9, ",Renée,");
    sw_test::write_file(src_ / "users.csv", u);
    auto held = run();
    ASSERT_EQ(held.code, 10) << held.out << held.err;
    const std::string id = sw_test::run_id_of(held.out);
    ASSERT_EQ(sw_test::cli(data(), {"runs", "reject", id, "--as", "ana", "--reason", "fix the role first"}).code, 0);
    ASSERT_EQ(sw_test::cli(data(), {"audit", "note", id, "--as", "ana", "ticket INC-7"}).code, 0);
    ASSERT_EQ(run({"--dry-run"}).code, 10);
    // The finding is in the store, by position and keyed hash.
    auto shown = show(id);
    ASSERT_FALSE(shown["findings"].empty());
    const auto& f = shown["findings"][0];
    EXPECT_THAT(f["key"].get<std::string>(), testing::StartsWith("h:"));
    EXPECT_GT(f["column"].get<int>(), 0) << "the value's position";
    EXPECT_THAT(f["message"].get<std::string>(), Not(HasSubstr("Renée")));

    size_t scanned = 0, in_plans = 0;
    for (auto& e : fs::recursive_directory_iterator(data())) {
        if (!e.is_regular_file()) continue;
        const auto rel = fs::relative(e.path(), data()).string();
        if (rel.rfind("connectors/", 0) == 0) continue;  // the connectors' own code
        const std::string bytes = sw_test::read_file(e.path());
        const bool plan = rel.rfind("plans/", 0) == 0;
        for (auto& p : people) {
            const bool found = bytes.find(p) != std::string::npos;
            if (plan) in_plans += found;
            else EXPECT_FALSE(found) << "'" << p << "' in " << rel;
        }
        if (!plan) ++scanned;
        struct stat st {};
        ::stat(e.path().c_str(), &st);
        EXPECT_EQ(st.st_mode & 077, 0u) << rel << " is open to others";
    }
    EXPECT_GE(scanned, 3u) << "the store, its WAL and the log at least";
    EXPECT_GT(in_plans, 0u) << "the plans hold the data: the scan would see it";
    struct stat st {};
    ::stat(data().c_str(), &st);
    EXPECT_EQ(st.st_mode & 0777, 0700u);
}
