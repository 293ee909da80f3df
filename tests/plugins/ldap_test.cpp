// The ldap target against a real OpenLDAP slapd (tests/support/slapd_peer),
// started on loopback by each test. The directory is read back over LDAP
// and compared with the source. The connector binds as a service account
// that the server limits to 10 entries per unpaged search, so every read of
// the demo district (29 users) must page.
#include "slapd_peer.hpp"
#include "test_support.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <map>
#include <set>

using ::testing::HasSubstr;
using ::testing::Not;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const std::string k_password = "ldap-bind-pw-51c0d3";

// The demo district's users into the directory: an OU per school, uid from
// the username, employeeNumber the sourcedId; a user the source drops or
// marks tobedeleted is moved to ou=disabled (the job's deprovisioning).
struct ldap_district : sw_test::job_dir {
    explicit ldap_district(const fs::path& root, const std::string& extra_mapping = "",
                           sw_test::slapd_peer::options o = {}, const std::string& tls_settings = R"("starttls": false)")
        : job_dir{root}, peer(root / "slapd", k_password, o) {
        sw_test::install_shipped(data());
        EXPECT_EQ(sw_test::cli(data(), {"connectors", "install", sw_test::plugin("ldap").string()}).code, 0);
        sw_test::copy_tree(fs::path(SW_SOURCE_DIR) / "config/demo/district", district());
        sw_test::write_file(root / "pw.txt", k_password + "\n");
        EXPECT_EQ(sw_test::cli(data(), {"secrets", "set", "ldap-bind", "--from-file", (root / "pw.txt").string()}).code, 0);
        fs::remove(root / "pw.txt");
        sw_test::write_file(job(), R"({"name": "ldap-demo",
          "source": {"connector": "oneroster-csv", "settings": {"path": ")" + district().string() + R"("}},
          "target": {"connector": "ldap", "settings": {"url": ")" + peer.url() + R"(", )" + tls_settings + R"(,
                     "bind_dn": ")" + sw_test::slapd_peer::service_dn() + R"(", "password": {"$secret": "ldap-bind"},
                     "base_dn": ")" + sw_test::slapd_peer::base() + R"(", "page_size": 7}},
          "mapping": {
            "tables": {"schools": {"org-north": "North High", "org-south": "South Middle", "org-district": "District Office"}},
            "entities": [{"target": "users", "source": "users", "fields": {
             "sourcedId": "sourcedId", "uid": "username", "givenName": "givenName", "sn": "familyName",
             "cn": {"template": "{givenName} {familyName}"}, "mail": {"from": "email", "transform": "lower"},
             "school": {"from": "orgSourcedIds", "table": "schools", "missing": "keep"},
             "active": {"const": "true"}}})" + extra_mapping + R"(]},
          "gates": {"deprovision": {"users": {"action": "deactivate", "set": {"active": "false"}}},
                    "thresholds": {"*": {"create": "100%", "update": "100%", "delete": "100%", "deactivate": "100%"}}}})");
    }
    // The directory's people: employeeNumber (or "uuid:" + entryUUID) -> entry.
    std::map<std::string, sw_test::slapd_peer::entry> people() const {
        std::map<std::string, sw_test::slapd_peer::entry> out;
        for (auto& e : peer.search("(objectClass=inetOrgPerson)")) {
            const std::string k = e.first("employeenumber");
            out[k.empty() ? "uuid:" + e.first("entryuuid") : k] = e;
        }
        return out;
    }
    // The source's users: sourcedId -> {username, school OU}.
    std::map<std::string, std::pair<std::string, std::string>> source_users() const {
        static const std::map<std::string, std::string> schools{
            {"org-north", "North High"}, {"org-south", "South Middle"}, {"org-district", "District Office"}};
        std::map<std::string, std::pair<std::string, std::string>> out;
        for (auto& cells : sw_test::csv_rows(district() / "users.csv"))
            if (cells.size() > 6) out[cells[0]] = {cells[6], schools.at(cells[4])};
        return out;
    }
    void edit_users(const std::function<void(std::string&)>& fn) const {
        auto u = sw_test::read_file(district() / "users.csv");
        fn(u);
        sw_test::write_file(district() / "users.csv", u);
    }

    sw_test::slapd_peer peer;
};

std::string lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

TEST(ldap_target, dry_run_apply_a_quiet_rerun_and_the_bind_password_written_nowhere) {
    sw_test::temp_dir tmp;
    ldap_district d(tmp.path());
    const auto source = d.source_users();
    auto r = d.run(true);
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_EQ(d.plan(r)["changes"].size(), source.size());
    EXPECT_TRUE(d.people().empty()) << "a dry run changes nothing";

    r = d.run();
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    auto held = d.people();
    ASSERT_EQ(held.size(), source.size());
    for (auto& [key, want] : source) {
        const auto& e = held[key];
        EXPECT_EQ(e.first("uid"), want.first) << key;
        EXPECT_EQ(lower(e.dn), lower("uid=" + want.first + ",ou=" + want.second + ",ou=people,dc=district,dc=org"))
            << key;
    }
    EXPECT_EQ(held["s-1001"].first("givenname"), "Zoë");
    EXPECT_EQ(held["s-1001"].first("cn"), "Zoë García");

    r = d.run(true);
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_EQ(d.plan(r)["changes"].size(), 0u) << d.plan(r)["changes"].dump(1);

    size_t files = 0;
    for (auto& f : fs::recursive_directory_iterator(d.data())) {
        if (!f.is_regular_file()) continue;
        ++files;
        EXPECT_THAT(sw_test::read_file(f.path()), Not(HasSubstr(k_password))) << f.path();
    }
    EXPECT_GT(files, 5u);
}

// The district's second export: a new student, one renamed (a new username:
// the same entry, by its entryUUID, gets it), one dropped and one marked
// tobedeleted (both moved to ou=disabled, as the job's policy says).
TEST(ldap_target, a_changed_feed_applies_exactly_its_delta) {
    sw_test::temp_dir tmp;
    ldap_district d(tmp.path());
    ASSERT_EQ(d.run().code, 0);
    auto before = d.people();
    d.edit_users([](std::string& u) {
        const auto at = [&](const std::string& key) { return u.find("\n" + key + ",") + 1; };
        auto p = u.find("zoë.garcía", at("s-1001"));
        ASSERT_NE(p, std::string::npos);
        u.replace(p, std::string("zoë.garcía").size(), "zoe.garcia-lopez");
        const auto drop = at("s-1002");
        u.erase(drop, u.find('\n', drop) - drop + 1);
        const auto gone = at("s-1003");
        u.replace(u.find(",,,", gone), 3, ",tobedeleted,,");
        u += "s-1999,,,TRUE,org-north,student,new.student,,New,Student,,S-1999,new.student@lakeside.example.org,,,,09,\n";
    });
    auto r = d.run();
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    auto after = d.people();
    EXPECT_EQ(after.size(), before.size() + 1);
    EXPECT_EQ(after["s-1001"].first("uid"), "zoe.garcia-lopez");
    EXPECT_EQ(after["s-1001"].first("entryuuid"), before["s-1001"].first("entryuuid")) << "a rename keeps the entry";
    for (auto key : {"s-1002", "s-1003"})
        EXPECT_THAT(lower(after[key].dn), HasSubstr(",ou=disabled,ou=people,")) << key;
    EXPECT_THAT(lower(after["s-1999"].dn), HasSubstr(",ou=north high,ou=people,"));
    for (auto& [key, e] : before) {
        if (key == "s-1001" || key == "s-1002" || key == "s-1003") continue;
        EXPECT_EQ(after[key].dn, e.dn) << key;
    }
    r = d.run(true);
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_EQ(d.plan(r)["changes"].size(), 0u) << d.plan(r)["changes"].dump(1);
}

TEST(ldap_target, an_account_made_by_hand_is_adopted_not_duplicated) {
    sw_test::temp_dir tmp;
    ldap_district d(tmp.path());
    d.peer.add("ou=Staff,ou=people,dc=district,dc=org", {{"objectClass", {"organizationalUnit"}}, {"ou", {"Staff"}}});
    d.peer.add("uid=renee.lefevre,ou=Staff,ou=people,dc=district,dc=org",
               {{"objectClass", {"inetOrgPerson"}}, {"uid", {"renee.lefevre"}}, {"cn", {"Renée Lefèvre"}},
                {"sn", {"Lefèvre"}}});
    const std::string uuid = d.people().begin()->second.first("entryuuid");
    auto r = d.run(true);
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    bool shown = false;
    const json plan = d.plan(r);
    for (auto& c : plan["changes"])
        if (c["kind"] == "adopt") shown = shown || (c["key"] == "t-101" && c["adopts"] == uuid);
    EXPECT_TRUE(shown) << plan.dump(1);
    r = d.run();
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    auto held = d.people();
    EXPECT_EQ(held["t-101"].first("entryuuid"), uuid) << "the hand-made entry took the key";
    EXPECT_EQ(held.size(), d.source_users().size()) << "no second renee.lefevre";
    EXPECT_THAT(lower(held["t-101"].dn), HasSubstr("ou=north high")) << "moved to its school";
}

TEST(ldap_target, classes_become_groups_whose_members_follow_a_rename) {
    sw_test::temp_dir tmp;
    ldap_district d(tmp.path(), R"(,
        {"target": "groups", "source": "classes", "fields": {
           "sourcedId": "sourcedId", "name": "title",
           "members": {"collect": {"from": "enrollments", "by": "classSourcedId", "value": "userSourcedId"}}}})");
    auto r = d.run();
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    auto groups = d.peer.search("(objectClass=groupOfNames)");
    ASSERT_EQ(groups.size(), 5u);
    auto members_of = [&](const std::string& cn) {
        std::set<std::string> out;
        for (auto& g : d.peer.search("(cn=" + cn + ")"))
            for (auto& m : g.attrs["member"]) out.insert(lower(m));
        return out;
    };
    const std::string zoe = lower(d.people()["s-1001"].dn);
    EXPECT_EQ(members_of("cls-alg1-p1").count(zoe), 1u);
    d.edit_users([](std::string& u) {
        auto p = u.find("zoë.garcía");
        u.replace(p, std::string("zoë.garcía").size(), "zoe.garcia-lopez");
    });
    r = d.run();
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    const std::string renamed = lower(d.people()["s-1001"].dn);
    EXPECT_NE(renamed, zoe);
    EXPECT_EQ(members_of("cls-alg1-p1").count(renamed), 1u);
    EXPECT_EQ(members_of("cls-alg1-p1").count(zoe), 0u);
    r = d.run(true);
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_EQ(d.plan(r)["changes"].size(), 0u) << d.plan(r)["changes"].dump(1);
}

TEST(ldap_target, starttls_checks_the_certificate_against_the_ca_file) {
    sw_test::temp_dir tmp;
    sw_test::slapd_peer::options o;
    o.tls = true;
    {
        ldap_district d(tmp.path() / "trusted", "", o,
                        R"("starttls": true, "ca_file": ")" + (tmp.path() / "trusted/slapd/cert.pem").string() + "\"");
        auto r = d.run();
        ASSERT_EQ(r.code, 0) << r.out << r.err;
        EXPECT_EQ(d.people().size(), d.source_users().size());
    }
    ldap_district d(tmp.path() / "untrusted", "", o, R"("starttls": true)");
    auto r = d.run();
    EXPECT_NE(r.code, 0);
    EXPECT_THAT(r.out + r.err, HasSubstr("StartTLS with " + d.peer.url() + " failed"));
    EXPECT_THAT(r.out + r.err, HasSubstr("ca_file"));
    EXPECT_TRUE(d.people().empty());
}

TEST(ldap_target, ldaps_checks_the_certificate_against_the_ca_file) {
    sw_test::temp_dir tmp;
    sw_test::slapd_peer::options o;
    o.tls = true;
    o.ldaps = true;
    ldap_district d(tmp.path(), "", o, R"("ca_file": ")" + (tmp.path() / "slapd/cert.pem").string() + "\"");
    ASSERT_EQ(d.peer.url().rfind("ldaps://", 0), 0u);
    auto r = d.run();
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_EQ(d.people().size(), d.source_users().size());
}

// Without a deactivation policy, a user the source drops is deleted.
TEST(ldap_target, a_dropped_user_is_deleted_when_the_policy_says_delete) {
    sw_test::temp_dir tmp;
    ldap_district d(tmp.path());
    auto j = json::parse(sw_test::read_file(d.job()));
    j["gates"]["deprovision"]["users"] = {{"action", "delete"}};
    sw_test::write_file(d.job(), j.dump());
    ASSERT_EQ(d.run().code, 0);
    auto before = d.people();
    d.edit_users([](std::string& u) {
        const auto at = u.find("\ns-1002,") + 1;
        u.erase(at, u.find('\n', at) - at + 1);
    });
    auto r = d.run();
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    auto after = d.people();
    EXPECT_EQ(after.size(), before.size() - 1);
    EXPECT_EQ(after.count("s-1002"), 0u);
    EXPECT_TRUE(d.peer.search("(uid=" + before["s-1002"].first("uid") + ")").empty());
}

TEST(ldap_target, a_refused_bind_stops_the_run_and_says_so) {
    sw_test::temp_dir tmp;
    ldap_district d(tmp.path());
    sw_test::write_file(tmp.path() / "pw.txt", "wrong-password\n");
    ASSERT_EQ(sw_test::cli(d.data(), {"secrets", "rotate", "ldap-bind", "--from-file", (tmp.path() / "pw.txt").string()}).code, 0);
    auto r = d.run();
    EXPECT_NE(r.code, 0);
    EXPECT_THAT(r.out + r.err, HasSubstr("Invalid credentials"));
    EXPECT_THAT(r.out + r.err, HasSubstr("check bind_dn, the password"));
    EXPECT_TRUE(d.people().empty());
}

TEST(ldap_target, plain_ldap_to_another_machine_is_refused) {
    sw_test::temp_dir tmp;
    ldap_district d(tmp.path());
    auto j = json::parse(sw_test::read_file(d.job()));
    j["target"]["settings"]["url"] = "ldap://directory.example.org";
    sw_test::write_file(d.job(), j.dump());
    auto r = d.run(true);
    EXPECT_NE(r.code, 0);
    EXPECT_THAT(r.out + r.err, HasSubstr("would send the password in clear text"));
}

}  // namespace
