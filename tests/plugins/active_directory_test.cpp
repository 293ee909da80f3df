// The ldap target in its Active Directory form (settings.directory
// "active_directory") against Samba's AD domain controller
// (tests/support/samba_ad_peer): user and group objects, sAMAccountName and
// userPrincipalName, userAccountControl for enabled and disabled accounts,
// unicodePwd over LDAPS, objectGUID as the id. The domain's state is read
// back over LDAP. One domain serves every test of this file; each test works
// in its own OUs.
#include "samba_ad_peer.hpp"
#include "test_support.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <map>
#include <memory>
#include <set>

using ::testing::HasSubstr;
using ::testing::Not;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const std::string k_admin_password = "Adm1n-Lakeside-7x!";
const std::string k_first_password = "Welcome-Lakeside-2026!";

std::string lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

// An objectGUID as AD shows it: the first three groups byte-swapped
// (MS-DTYP 2.3.4.2), the rest in order.
std::string guid_text(const std::string& raw) {
    if (raw.size() != 16) return "(not 16 bytes)";
    static const char* hex = "0123456789abcdef";
    std::string out;
    for (int i : {3, 2, 1, 0, -1, 5, 4, -1, 7, 6, -1, 8, 9, -1, 10, 11, 12, 13, 14, 15}) {
        if (i < 0) {
            out += '-';
            continue;
        }
        const auto b = static_cast<unsigned char>(raw[static_cast<size_t>(i)]);
        out += hex[b >> 4];
        out += hex[b & 15];
    }
    return out;
}

class active_directory : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        why_not_ = sw_test::samba_ad_peer::unavailable();
        if (!why_not_.empty()) return;
        root_ = std::make_unique<sw_test::temp_dir>();
        try {
            peer_ = std::make_unique<sw_test::samba_ad_peer>(root_->path() / "samba", k_admin_password);
        } catch (const std::exception& e) {
            failed_ = e.what();
        }
    }
    static void TearDownTestSuite() {
        peer_.reset();
        root_.reset();
    }
    void SetUp() override {
        // Not root, or no samba: said loudly; CI runs as root with samba.
        if (!why_not_.empty()) GTEST_SKIP() << "Active Directory tests not run: " << why_not_;
        ASSERT_TRUE(failed_.empty()) << failed_;
    }
    static std::string why_not_, failed_;
    static std::unique_ptr<sw_test::temp_dir> root_;
    static std::unique_ptr<sw_test::samba_ad_peer> peer_;
};
std::string active_directory::why_not_, active_directory::failed_;
std::unique_ptr<sw_test::temp_dir> active_directory::root_;
std::unique_ptr<sw_test::samba_ad_peer> active_directory::peer_;

// The demo district into the domain, in OUs named after the test (`tag`):
// users under OU=<tag>-people, an OU per school, sAMAccountName
// "<tag>-<username>" (sAMAccountName is unique in the whole domain, and the
// tests share one), employeeNumber the sourcedId; a user the source drops or marks
// tobedeleted is disabled and moved to the disabled OU.
struct ad_district : sw_test::job_dir {
    ad_district(const sw_test::samba_ad_peer& peer, const fs::path& root, const std::string& tag,
                const std::string& extra_fields = "", const std::string& extra_mapping = "")
        : job_dir{root}, peer(peer), tag(tag) {
        sw_test::install_shipped(data());
        EXPECT_EQ(sw_test::cli(data(), {"connectors", "install", sw_test::plugin("ldap").string()}).code, 0);
        sw_test::copy_tree(fs::path(SW_SOURCE_DIR) / "config/demo/district", district());
        sw_test::write_file(root / "pw.txt", k_admin_password + "\n");
        EXPECT_EQ(sw_test::cli(data(), {"secrets", "set", "ad-bind", "--from-file", (root / "pw.txt").string()}).code, 0);
        fs::remove(root / "pw.txt");
        sw_test::write_file(job(), R"({"name": "ad-demo",
          "source": {"connector": "oneroster-csv", "settings": {"path": ")" + district().string() + R"("}},
          "target": {"connector": "ldap", "settings": {"directory": "active_directory",
                     "url": ")" + sw_test::samba_ad_peer::ldaps_url() + R"(", "ca_file": ")" + peer.ca_file().string() + R"(",
                     "bind_dn": ")" + sw_test::samba_ad_peer::admin_dn() + R"(", "password": {"$secret": "ad-bind"},
                     "base_dn": ")" + sw_test::samba_ad_peer::base() + R"(", "page_size": 7,
                     "users_ou": "OU=)" + tag + R"(-people", "groups_ou": "OU=)" + tag + R"(-groups",
                     "disabled_ou": "OU=disabled,OU=)" + tag + R"(-people"}},
          "mapping": {
            "tables": {"schools": {"org-north": "North High", "org-south": "South Middle", "org-district": "District Office"}},
            "entities": [{"target": "users", "source": "users", "fields": {
             "sourcedId": "sourcedId", "uid": {"template": ")" + tag + R"(-{username}"}, "givenName": "givenName", "sn": "familyName",
             "cn": {"template": "{givenName} {familyName}"}, "mail": {"from": "email", "transform": "lower"},
             "school": {"from": "orgSourcedIds", "table": "schools", "missing": "keep"},
             "active": {"const": "true"})" + extra_fields + R"(}})" + extra_mapping + R"(]},
          "gates": {"deprovision": {"users": {"action": "deactivate", "set": {"active": "false"}}},
                    "thresholds": {"*": {"create": "100%", "update": "100%", "delete": "100%", "deactivate": "100%"}}}})");
    }
    std::string uid(const std::string& username) const { return tag + "-" + username; }
    std::string people_ou() const { return "OU=" + tag + "-people," + sw_test::samba_ad_peer::base(); }
    // The domain's users under this test's OU: employeeNumber (or
    // "sam:" + sAMAccountName) -> entry.
    std::map<std::string, sw_test::ldap_entry> people() const {
        std::map<std::string, sw_test::ldap_entry> out;
        for (auto& e : peer.search("(&(objectCategory=person)(objectClass=user))",
                                   {"sAMAccountName", "userPrincipalName", "employeeNumber", "displayName", "givenName",
                                    "sn", "mail", "department", "userAccountControl", "objectGUID"},
                                   people_ou())) {
            const std::string k = e.first("employeenumber");
            out[k.empty() ? "sam:" + e.first("samaccountname") : k] = e;
        }
        return out;
    }
    std::map<std::string, std::string> source_users() const {  // sourcedId -> username
        std::map<std::string, std::string> out;
        for (auto& cells : sw_test::csv_rows(district() / "users.csv"))
            if (cells.size() > 6) out[cells[0]] = cells[6];
        return out;
    }
    void edit_users(const std::function<void(std::string&)>& fn) const {
        auto u = sw_test::read_file(district() / "users.csv");
        fn(u);
        sw_test::write_file(district() / "users.csv", u);
    }
    static bool disabled(const sw_test::ldap_entry& e) { return (std::stol(e.first("useraccountcontrol")) & 2) != 0; }

    const sw_test::samba_ad_peer& peer;
    std::string tag;
};

TEST_F(active_directory, the_demo_district_becomes_enabled_accounts_that_can_sign_in) {
    sw_test::temp_dir tmp;
    ad_district d(*peer_, tmp.path(), "t1", R"(, "userPassword": {"const": ")" + k_first_password + R"("})");
    const auto source = d.source_users();
    auto r = d.run(true);
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_EQ(d.plan(r)["changes"].size(), source.size());
    EXPECT_TRUE(d.people().empty()) << "a dry run changes nothing";

    r = d.run();
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    auto held = d.people();
    ASSERT_EQ(held.size(), source.size());
    std::set<std::string> guids;
    for (auto& [key, username] : source) {
        const auto& e = held[key];
        EXPECT_EQ(e.first("samaccountname"), d.uid(username)) << key;
        EXPECT_EQ(e.first("userprincipalname"), d.uid(username) + "@lakeside.test") << key;
        EXPECT_THAT(lower(e.dn), HasSubstr("cn=" + d.uid(username) + ",ou=")) << key;
        EXPECT_FALSE(ad_district::disabled(e)) << key << " is enabled: " << e.first("useraccountcontrol");
        guids.insert(e.first("objectguid"));
    }
    EXPECT_EQ(guids.size(), source.size());
    EXPECT_EQ(lower(held["t-101"].dn), lower("CN=t1-renee.lefevre,OU=North High," + d.people_ou()));
    EXPECT_EQ(held["s-1001"].first("displayname"), "Zoë García");
    EXPECT_EQ(held["s-1001"].first("department"), "North High");
    // unicodePwd was set: the account signs in with the mapped password.
    EXPECT_TRUE(d.peer.can_bind(held["t-101"].dn, k_first_password));
    EXPECT_FALSE(d.peer.can_bind(held["t-101"].dn, "not-the-password"));

    r = d.run(true);
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_EQ(d.plan(r)["changes"].size(), 0u) << d.plan(r)["changes"].dump(1);
    for (auto& f : fs::recursive_directory_iterator(d.data())) {
        if (!f.is_regular_file()) continue;
        const std::string text = sw_test::read_file(f.path());
        EXPECT_THAT(text, Not(HasSubstr(k_admin_password))) << f.path();
    }
}

// The second export: a rename (same objectGUID, new sAMAccountName, UPN and
// DN), one dropped and one marked tobedeleted (both disabled and moved), and
// a new student (enabled, with a random password as none is mapped).
TEST_F(active_directory, a_changed_feed_renames_disables_and_adds) {
    sw_test::temp_dir tmp;
    ad_district d(*peer_, tmp.path(), "t2");
    ASSERT_EQ(d.run().code, 0);
    auto before = d.people();
    d.edit_users([](std::string& u) {
        const auto at = [&](const std::string& key) { return u.find("\n" + key + ",") + 1; };
        auto p = u.find("zoë.garcía", at("s-1001"));
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
    EXPECT_EQ(after["s-1001"].first("samaccountname"), "t2-zoe.garcia-lopez");
    EXPECT_EQ(after["s-1001"].first("userprincipalname"), "t2-zoe.garcia-lopez@lakeside.test");
    EXPECT_EQ(lower(after["s-1001"].dn), lower("CN=t2-zoe.garcia-lopez,OU=North High," + d.people_ou()));
    EXPECT_EQ(after["s-1001"].first("objectguid"), before["s-1001"].first("objectguid")) << "a rename keeps the account";
    for (auto key : {"s-1002", "s-1003"}) {
        EXPECT_TRUE(ad_district::disabled(after[key])) << key << ": " << after[key].first("useraccountcontrol");
        EXPECT_THAT(lower(after[key].dn), HasSubstr(",ou=disabled," + lower(d.people_ou()))) << key;
    }
    EXPECT_FALSE(ad_district::disabled(after["s-1999"]));
    for (auto& [key, e] : before) {
        if (key == "s-1001" || key == "s-1002" || key == "s-1003") continue;
        EXPECT_EQ(after[key].dn, e.dn) << key;
        EXPECT_FALSE(ad_district::disabled(after[key])) << key;
    }
    r = d.run(true);
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_EQ(d.plan(r)["changes"].size(), 0u) << d.plan(r)["changes"].dump(1);
}

// Classes as AD groups of their students' DNs; AD's member follows a rename
// by itself, and the next run plans nothing.
TEST_F(active_directory, classes_become_groups_whose_members_follow_a_rename) {
    sw_test::temp_dir tmp;
    ad_district d(*peer_, tmp.path(), "t3", "", R"(,
        {"target": "groups", "source": "classes", "fields": {
           "sourcedId": "sourcedId", "name": "title",
           "members": {"collect": {"from": "enrollments", "by": "classSourcedId", "value": "userSourcedId"}}}})");
    auto r = d.run();
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    const std::string groups_ou = "OU=t3-groups," + sw_test::samba_ad_peer::base();
    auto members_of = [&](const std::string& cn) {
        std::set<std::string> out;
        for (auto& g : d.peer.search("(cn=" + cn + ")", {"member", "objectClass", "adminDescription"}, groups_ou)) {
            EXPECT_EQ(g.first("admindescription"), "syncwarden");
            for (auto& m : g.attrs["member"]) out.insert(lower(m));
        }
        return out;
    };
    EXPECT_EQ(d.peer.search("(objectClass=group)", {"cn"}, groups_ou).size(), 5u);
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

TEST_F(active_directory, an_account_made_by_hand_is_adopted_not_duplicated) {
    sw_test::temp_dir tmp;
    ad_district d(*peer_, tmp.path(), "t4");
    d.peer.add(d.people_ou(), {{"objectClass", {"organizationalUnit"}}});
    d.peer.add("OU=Staff," + d.people_ou(), {{"objectClass", {"organizationalUnit"}}});
    d.peer.add("CN=t4-renee.lefevre,OU=Staff," + d.people_ou(),
               {{"objectClass", {"user"}}, {"sAMAccountName", {"t4-renee.lefevre"}}, {"sn", {"Lefèvre"}}});
    const std::string guid = d.people().at("sam:t4-renee.lefevre").first("objectguid");
    auto r = d.run(true);
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    json adopt;
    const json plan = d.plan(r);
    for (auto& c : plan["changes"])
        if (c["key"] == "t-101") adopt = c;
    EXPECT_EQ(adopt["kind"], "adopt") << adopt.dump();
    EXPECT_EQ(adopt["adopts"], guid_text(guid)) << "the objectGUID of the account made by hand";
    r = d.run();
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    auto held = d.people();
    EXPECT_EQ(held.size(), d.source_users().size()) << "no duplicate account";
    EXPECT_EQ(held["t-101"].first("objectguid"), guid);
    EXPECT_EQ(lower(held["t-101"].dn), lower("CN=t4-renee.lefevre,OU=North High," + d.people_ou()));
    r = d.run(true);
    EXPECT_EQ(d.plan(r)["changes"].size(), 0u) << d.plan(r)["changes"].dump(1);
}

// sAMAccountName is unique in the whole domain: an account outside the
// job's OUs that holds the name is named, and the change fails at once (no
// retries), without touching that account.
TEST_F(active_directory, a_name_held_elsewhere_in_the_domain_is_named_not_retried) {
    sw_test::temp_dir tmp;
    ad_district d(*peer_, tmp.path(), "t6");
    const std::string other = "CN=t6-renee.lefevre,CN=Users," + sw_test::samba_ad_peer::base();
    d.peer.add(other, {{"objectClass", {"user"}}, {"sAMAccountName", {"t6-renee.lefevre"}}});
    auto r = d.run();
    EXPECT_NE(r.code, 0);
    auto show = sw_test::cli(d.data(), {"runs", "show", sw_test::run_id_of(r.out), "--json"});
    ASSERT_EQ(show.code, 0) << show.err;
    json failed;
    const json shown = json::parse(show.out);
    for (auto& c : shown["changes"])
        if (c["key"] == "t-101") failed = c;
    EXPECT_EQ(failed["status"], "permanent") << failed.dump();
    EXPECT_EQ(failed["attempts"], 1) << "a permanent conflict is not retried";
    EXPECT_THAT(failed["message"].get<std::string>(), HasSubstr("the account " + other));
    EXPECT_EQ(d.people().size(), d.source_users().size() - 1);
    EXPECT_EQ(d.peer.search("(sAMAccountName=t6-renee.lefevre)", {"employeeNumber"})[0].first("employeenumber"), "")
        << "the other account is left alone";
}

// sAMAccountName holds 20 characters: a longer uid fails its own change
// with a message that says what to change, and the others land.
TEST_F(active_directory, a_uid_too_long_for_sam_account_name_is_refused_with_what_to_change) {
    sw_test::temp_dir tmp;
    ad_district d(*peer_, tmp.path(), "t5");
    d.edit_users([](std::string& u) {
        auto p = u.find("marcus.whitfield");
        u.replace(p, std::string("marcus.whitfield").size(), "marcus.whitfield.jr");
    });
    auto r = d.run();
    EXPECT_NE(r.code, 0);
    auto show = sw_test::cli(d.data(), {"runs", "show", sw_test::run_id_of(r.out)});
    EXPECT_THAT(show.out, HasSubstr("create users/t-102: permanent users"));
    EXPECT_THAT(show.out, HasSubstr("is 22 characters; Active Directory's sAMAccountName holds at most 20. Shorten or "
                                    "change the mapping's username rule"));
    auto held = d.people();
    EXPECT_EQ(held.count("t-102"), 0u);
    EXPECT_EQ(held.size(), d.source_users().size() - 1);
}

}  // namespace
