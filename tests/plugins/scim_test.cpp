// The scim target against a real SCIM 2.0 server (tests/peers/scim: scimmy
// + scimmy-routers + express), started on loopback by each test. The
// server's state is read back over SCIM and compared with the source.
#include "scim_peer.hpp"
#include "test_support.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <map>
#include <set>

using ::testing::HasSubstr;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const std::string k_token = "scim-test-token-7f3a9c";
// Retries in milliseconds, for the throttling tests.
const std::string k_fast_retries =
    R"("retry": {"initial_interval": "5ms", "max_interval": "20ms", "max_attempts": 50},)";

// The demo district's users into the SCIM server: userName, names, e-mail,
// active, and deactivation (active=false) for a user the source marks
// tobedeleted or drops.
// What a test changes in the job and its server (designated initializers).
struct scim_job {
    std::vector<std::string> peer = {};  // server.mjs flags ("--throttle", "20", ...)
    std::string extra_job = {};          // top-level job members, each followed by ','
    std::string token = k_token;         // the bearer token, or its {"$secret": ...} object
    std::string extra_mapping = {};      // more mapping entities, each preceded by ','
    std::string auth = {};               // the whole auth object, instead of a bearer token
    std::string extra_settings = {};     // more target settings, each preceded by ','
};

struct scim_district : sw_test::job_dir {
    explicit scim_district(const fs::path& root, scim_job j = {})
        : job_dir{root}, peer(root / "peer", k_token, std::move(j.peer)) {
        const std::string& extra_job = j.extra_job;
        const std::string& token = j.token;
        const std::string& extra_mapping = j.extra_mapping;
        const std::string& auth = j.auth;
        const std::string& extra_settings = j.extra_settings;
        sw_test::install_shipped(data());
        EXPECT_EQ(sw_test::cli(data(), {"connectors", "install", sw_test::plugin("scim").string()}).code, 0);
        sw_test::copy_tree(fs::path(SW_SOURCE_DIR) / "config/demo/district", district());
        sw_test::write_file(job(), R"({"name": "scim-demo", )" + extra_job + R"(
          "source": {"connector": "oneroster-csv", "settings": {"path": ")" + district().string() + R"("}},
          "target": {"connector": "scim", "settings": {"base_url": ")" + peer.base_url() + R"(",
                     "auth": )" + (!auth.empty() ? auth : R"({"bearer": )" + (token.front() == '{' ? token : "\"" + token + "\"") + "}") +
                            R"(, "page_size": 50)" + extra_settings + R"(}},
          "mapping": {"entities": [{"target": "users", "source": "users", "fields": {
             "sourcedId": "sourcedId", "userName": "username", "givenName": "givenName",
             "familyName": "familyName", "displayName": {"template": "{givenName} {familyName}"},
             "emails": {"from": "email", "transform": "lower"}, "active": {"const": "true"}}})" + extra_mapping + R"(]},
          "gates": {"deprovision": {"users": {"action": "deactivate", "set": {"active": "false"}}},
                    "thresholds": {"*": {"create": "100%", "update": "100%", "delete": "100%", "deactivate": "100%"}}}})");
    }
    // The source's users, by sourcedId: {username, active?}.
    std::map<std::string, std::string> source_users() const {
        std::map<std::string, std::string> out;
        for (auto& cells : sw_test::csv_rows(district() / "users.csv"))
            if (cells.size() > 6) out[cells[0]] = cells[6];
        return out;
    }
    // The server's users that carry an externalId: externalId -> User.
    std::map<std::string, json> server_users() const {
        std::map<std::string, json> out;
        for (auto& u : peer.all("Users"))
            if (u.contains("externalId")) out[u["externalId"]] = u;
        return out;
    }
    void edit_users(const std::function<void(std::string&)>& fn) const {
        auto u = sw_test::read_file(district() / "users.csv");
        fn(u);
        sw_test::write_file(district() / "users.csv", u);
    }

    sw_test::scim_peer peer;
};

size_t users_in_csv(const fs::path& district) {
    auto text = sw_test::read_file(district / "users.csv");
    return static_cast<size_t>(std::count(text.begin(), text.end(), '\n')) - 1;
}

TEST(scim_target, dry_run_apply_and_a_rerun_that_plans_nothing) {
    sw_test::temp_dir tmp;
    scim_district d(tmp.path());
    auto r = d.run(true);
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    const size_t users = users_in_csv(d.district());
    EXPECT_EQ(d.plan(r)["changes"].size(), users);
    EXPECT_TRUE(d.peer.all("Users").empty()) << "a dry run changes nothing";

    r = d.run();
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    auto held = d.server_users();
    ASSERT_EQ(held.size(), users);
    for (auto& [key, u] : held) {
        EXPECT_EQ(u["active"], true) << key;
        EXPECT_FALSE(u["userName"].get<std::string>().empty()) << key;
    }
    EXPECT_EQ(held["s-1001"]["name"]["givenName"], "Zoë");
    EXPECT_EQ(held["s-1001"]["displayName"], "Zoë García");

    r = d.run(true);
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_EQ(d.plan(r)["changes"].size(), 0u) << d.plan(r)["changes"].dump(1);
}

// The district's second export: one new student, one renamed (a new
// username: the same account gets it), one dropped from the file and one
// marked tobedeleted (both deactivated, as the job's policy says).
TEST(scim_target, a_changed_feed_applies_exactly_its_delta) {
    sw_test::temp_dir tmp;
    scim_district d(tmp.path());
    ASSERT_EQ(d.run().code, 0);
    auto before = d.server_users();
    const std::string renamed_id = before["s-1001"]["id"];
    d.edit_users([](std::string& u) {
        const auto at = [&](const std::string& key) { return u.find("\n" + key + ",") + 1; };
        // rename s-1001
        auto p = u.find("zoë.garcía", at("s-1001"));
        ASSERT_NE(p, std::string::npos);
        u.replace(p, std::string("zoë.garcía").size(), "zoe.garcia-lopez");
        // drop s-1002
        auto b = at("s-1002"), e = u.find('\n', b);
        u.erase(b, e - b + 1);
        // mark s-1003 tobedeleted (status is the second column)
        b = at("s-1003");
        u.insert(u.find(',', b) + 1, "tobedeleted");
        // a new student
        u += "s-1999,,,TRUE,org-north,student,nia.okafor,,Nia,Okafor,,S-1999,nia.okafor@lakeside.example.org,,,,09,\n";
    });
    auto r = d.run(true);
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    std::map<std::string, std::string> kinds;
    const json plan = d.plan(r);
    for (auto& c : plan["changes"]) kinds[c["key"]] = c["kind"];
    EXPECT_EQ(kinds, (std::map<std::string, std::string>{
                         {"s-1001", "update"}, {"s-1002", "deactivate"}, {"s-1003", "deactivate"}, {"s-1999", "create"}}));
    r = d.run();
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    auto after = d.server_users();
    EXPECT_EQ(after.size(), before.size() + 1);
    EXPECT_EQ(after["s-1001"]["id"], renamed_id) << "a rename never makes a new account";
    EXPECT_EQ(after["s-1001"]["userName"], "zoe.garcia-lopez");
    EXPECT_EQ(after["s-1002"]["active"], false);
    EXPECT_EQ(after["s-1003"]["active"], false);
    EXPECT_EQ(after["s-1999"]["active"], true);
    EXPECT_EQ(after["s-1999"]["emails"][0]["value"], "nia.okafor@lakeside.example.org");
    for (auto& [key, u] : before) {
        if (key != "s-1001" && key != "s-1002" && key != "s-1003") {
            EXPECT_EQ(after[key]["meta"]["version"], u["meta"]["version"]) << key << " was not in the delta";
        }
    }
    r = d.run(true);
    EXPECT_EQ(d.plan(r)["changes"].size(), 0u) << d.plan(r)["changes"].dump(1);
}

// The students of each class, from its enrollments (config/README.md,
// "Groups with members"), as SCIM Groups whose members are the server's ids
// of those users.
TEST(scim_target, classes_become_groups_of_their_enrolled_students) {
    sw_test::temp_dir tmp;
    scim_district d(tmp.path(), {.extra_mapping = R"(,
        {"target": "groups", "source": "classes", "fields": {
           "sourcedId": "sourcedId", "displayName": "title",
           "members": {"collect": {"from": "enrollments", "by": "classSourcedId", "value": "userSourcedId",
                                   "where": {"role": "student"}}}}})"});
    // What the enrollments say: class -> its students' sourcedIds.
    auto expected = [&] {
        std::map<std::string, std::set<std::string>> out;
        for (auto& cells : sw_test::csv_rows(d.district() / "enrollments.csv"))
            if (cells.size() > 6 && cells[6] == "student") out[cells[3]].insert(cells[5]);
        return out;
    };
    // What the server holds: group externalId -> its members' externalIds.
    auto held = [&] {
        std::map<std::string, std::string> key_of;
        for (auto& u : d.peer.all("Users")) key_of[u["id"]] = u.value("externalId", "?");
        std::map<std::string, std::set<std::string>> out;
        for (auto& g : d.peer.all("Groups")) {
            auto& members = out[g.value("externalId", "?")];
            for (auto& m : g.value("members", json::array())) members.insert(key_of[m["value"]]);
        }
        return out;
    };
    auto r = d.run();
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    ASSERT_FALSE(expected().empty());
    EXPECT_EQ(held(), expected());
    r = d.run(true);
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_EQ(d.plan(r)["changes"].size(), 0u) << d.plan(r)["changes"].dump(1);

    // One student leaves Algebra I, Period 1: that group alone changes.
    auto e = sw_test::read_file(d.district() / "enrollments.csv");
    const auto p = e.find("enr-00001,");
    ASSERT_NE(p, std::string::npos);
    e.erase(p, e.find('\n', p) - p + 1);
    sw_test::write_file(d.district() / "enrollments.csv", e);
    r = d.run();
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_EQ(held(), expected());
    EXPECT_EQ(held()["cls-alg1-p1"].count("s-1001"), 0u);
}

// Without a deactivation policy, a user the source drops is deleted on the
// server (DELETE), and the others stay as they are.
TEST(scim_target, a_dropped_user_is_deleted_when_the_policy_says_delete) {
    sw_test::temp_dir tmp;
    scim_district d(tmp.path());
    auto j = json::parse(sw_test::read_file(d.job()));
    j["gates"]["deprovision"]["users"] = {{"action", "delete"}};
    sw_test::write_file(d.job(), j.dump());
    ASSERT_EQ(d.run().code, 0);
    auto before = d.server_users();
    d.edit_users([](std::string& u) {
        const auto at = u.find("\ns-1002,") + 1;
        u.erase(at, u.find('\n', at) - at + 1);
    });
    auto r = d.run();
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    auto after = d.server_users();
    EXPECT_EQ(after.size(), before.size() - 1);
    EXPECT_EQ(after.count("s-1002"), 0u);
    EXPECT_EQ(d.peer.request("GET", "/Users/" + before["s-1002"]["id"].get<std::string>()).status, 404);
    for (auto& [key, u] : after) EXPECT_EQ(u["id"], before[key]["id"]) << key;
}

// HTTPS with the server's (self-signed) certificate trusted through
// ca_file; without it, the connection is refused and the run says why.
TEST(scim_target, https_trusts_the_ca_file_and_nothing_else) {
    sw_test::temp_dir tmp;
    const fs::path cert = tmp.path() / "cert.pem", key = tmp.path() / "key.pem";
    ASSERT_EQ(std::system(("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 -addext "
                           "subjectAltName=IP:127.0.0.1 -keyout '" + key.string() + "' -out '" + cert.string() +
                           "' > /dev/null 2>&1").c_str()),
              0);
    const std::vector<std::string> tls{"--tls", cert.string() + ":" + key.string()};
    {
        scim_district d(tmp.path() / "trusted", {.peer = tls, .extra_settings = R"(, "ca_file": ")" + cert.string() + "\""});
        ASSERT_EQ(d.peer.base_url().rfind("https://", 0), 0u);
        auto r = d.run();
        ASSERT_EQ(r.code, 0) << r.out << r.err;
        EXPECT_EQ(d.server_users().size(), users_in_csv(d.district()));
    }
    scim_district d(tmp.path() / "untrusted", {.peer = tls});
    auto r = d.run();
    EXPECT_NE(r.code, 0);
    EXPECT_THAT(r.out + r.err, HasSubstr("certificate"));
    EXPECT_TRUE(d.server_users().empty());
}

// OAuth 2.0 client credentials: the connector fetches a token from the
// token endpoint, and a new one when the server answers 401 because the
// token expired (here after 2 requests: the run makes at least three, the
// ServiceProviderConfig, a page of Users and a Bulk request). The client secret comes from the
// secret store and is written nowhere.
TEST(scim_target, oauth2_client_credentials_with_a_token_that_expires_mid_run) {
    sw_test::temp_dir tmp;
    const std::string secret = "client-secret-9e4b1f";
    std::vector<std::string> opts{"--oauth2", "sw-client:" + secret, "--token-uses", "2"};
    // The token URL is the peer's own, known once the fixture started it.
    scim_district d(tmp.path() / "oauth", {.peer = opts, .auth = R"({"oauth2": {"token_url": "TOKEN_URL",
        "client_id": "sw-client", "client_secret": {"$secret": "scim-client"}}})"});
    auto j = sw_test::read_file(d.job());
    j.replace(j.find("TOKEN_URL"), 9, d.peer.token_url());
    sw_test::write_file(d.job(), j);
    sw_test::write_file(tmp.path() / "s.txt", secret + "\n");
    ASSERT_EQ(sw_test::cli(d.data(), {"secrets", "set", "scim-client", "--from-file", (tmp.path() / "s.txt").string()}).code, 0);
    auto r = d.run();
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_GE(d.peer.stats()["tokens"].get<int>(), 2) << "tokens of 2 requests: a second one fetched";
    EXPECT_EQ(d.server_users().size(), users_in_csv(d.district()));
    for (auto& f : fs::recursive_directory_iterator(d.data())) {
        if (!f.is_regular_file()) continue;
        EXPECT_THAT(sw_test::read_file(f.path()), ::testing::Not(HasSubstr(secret))) << f.path();
    }
}

TEST(scim_target, an_account_made_by_hand_is_adopted_not_duplicated) {
    sw_test::temp_dir tmp;
    scim_district d(tmp.path());
    // Created in the vendor's admin page before Syncwarden: no externalId,
    // the user name in other case.
    auto made = d.peer.request("POST", "/Users", R"({"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "Renee.Lefevre", "name": {"givenName": "Renee"}, "active": true})");
    ASSERT_EQ(made.status, 201);
    const std::string id = made.body["id"];
    auto r = d.run(true);
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    json adopt;
    const json plan = d.plan(r);
    for (auto& c : plan["changes"]) {
        if (c["key"] == "t-101") adopt = c;
    }
    EXPECT_EQ(adopt["kind"], "adopt") << adopt.dump();
    EXPECT_EQ(adopt["adopts"], id);
    EXPECT_EQ(adopt["fields"]["givenName"]["old"], "Renee");
    EXPECT_EQ(adopt["fields"]["givenName"]["new"], "Renée");

    r = d.run();
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    auto all = d.peer.all("Users");
    EXPECT_EQ(all.size(), users_in_csv(d.district())) << "no duplicate account";
    auto held = d.server_users();
    EXPECT_EQ(held["t-101"]["id"], id);
    EXPECT_EQ(held["t-101"]["name"]["givenName"], "Renée");
    r = d.run(true);
    EXPECT_EQ(d.plan(r)["changes"].size(), 0u) << d.plan(r)["changes"].dump(1);
}

// Made by hand after the plan: the create meets 409 and is resolved by
// looking the account up.
TEST(scim_target, a_409_on_create_is_resolved_by_adopting_the_account) {
    sw_test::temp_dir tmp;
    scim_district d(tmp.path());
    auto r = d.run(true);
    ASSERT_EQ(r.code, 0);
    auto made = d.peer.request("POST", "/Users", R"({"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "marcus.whitfield"})");
    ASSERT_EQ(made.status, 201);
    r = sw_test::cli(d.data(), {"runs", "apply", sw_test::run_id_of(r.out)});
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_EQ(d.peer.all("Users").size(), users_in_csv(d.district()));
    EXPECT_EQ(d.server_users()["t-102"]["id"], made.body["id"]);
}

// A server without filtering (its ServiceProviderConfig says so, and it
// refuses ?filter=): the 409 is resolved by reading the Users again.
TEST(scim_target, without_filtering_a_409_is_resolved_by_reading_the_users_again) {
    sw_test::temp_dir tmp;
    scim_district d(tmp.path(), {.peer = {"--no-filter"}});
    auto r = d.run(true);
    ASSERT_EQ(r.code, 0);
    auto made = d.peer.request("POST", "/Users", R"({"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "Marcus.Whitfield"})");
    ASSERT_EQ(made.status, 201);
    ASSERT_EQ(d.peer.request("GET", "/Users?filter=" + std::string("userName%20eq%20%22x%22")).status, 400)
        << "the server refuses filters";
    r = sw_test::cli(d.data(), {"runs", "apply", sw_test::run_id_of(r.out)});
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_EQ(d.peer.all("Users").size(), users_in_csv(d.district()));
    EXPECT_EQ(d.server_users()["t-102"]["id"], made.body["id"]);
}

// One request per change (bulk off), so that 20% of ~30 writes are refused.
TEST(scim_target, with_a_fifth_of_requests_throttled_the_run_converges_and_counts_its_retries) {
    sw_test::temp_dir tmp;
    scim_district d(tmp.path(), {.peer = {"--throttle", "20", "--retry-after", "0", "--seed", "7"},
                                 .extra_job = k_fast_retries,
                                 .extra_settings = R"(, "bulk": false)"});
    auto r = d.run();
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_EQ(d.server_users().size(), users_in_csv(d.district()));
    EXPECT_GT(d.peer.stats()["throttled"].get<int>(), 0);
    auto show = sw_test::cli(d.data(), {"runs", "show", sw_test::run_id_of(r.out), "--json"});
    ASSERT_EQ(show.code, 0) << show.err;
    auto j = json::parse(show.out);
    EXPECT_GT(j["summary"]["resent"].get<int>(), 0) << j.dump(1);
    EXPECT_GT(j["summary"]["connector_retries"].get<int>(), 0) << "pages of the read were throttled too";
    r = d.run(true);
    EXPECT_EQ(d.plan(r)["changes"].size(), 0u);
}

// With bulk (the server's ServiceProviderConfig supports it), a batch's
// changes go in Bulk requests of at most bulk.maxOperations each.
TEST(scim_target, a_batch_goes_in_bulk_requests_of_at_most_the_servers_max_operations) {
    sw_test::temp_dir tmp;
    scim_district d(tmp.path(), {.peer = {"--bulk-max", "7"}});
    auto r = d.run();
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    const size_t users = users_in_csv(d.district());
    EXPECT_EQ(d.server_users().size(), users);
    auto stats = d.peer.stats();
    EXPECT_EQ(stats["bulkOperations"].get<size_t>(), users);
    EXPECT_EQ(stats["bulk"].get<size_t>(), (users + 6) / 7);
    // The ServiceProviderConfig, a page of Users (page_size 50) for the plan
    // and again before applying it (the plan's state check), and the Bulk
    // requests: not one request per user.
    EXPECT_EQ(stats["requests"].get<size_t>(), 3 + (users + 6) / 7);
    r = d.run(true);
    EXPECT_EQ(d.plan(r)["changes"].size(), 0u) << d.plan(r)["changes"].dump(1);
}

TEST(scim_target, without_bulk_in_the_config_or_the_settings_each_change_is_its_own_request) {
    sw_test::temp_dir tmp;
    scim_district server_says_no(tmp.path() / "a", {.peer = {"--no-bulk"}});
    ASSERT_EQ(server_says_no.run().code, 0);
    scim_district job_says_no(tmp.path() / "b", {.extra_settings = R"(, "bulk": false)"});
    ASSERT_EQ(job_says_no.run().code, 0);
    const size_t users = users_in_csv(server_says_no.district());
    for (auto* d : {&server_says_no, &job_says_no}) {
        EXPECT_EQ(d->server_users().size(), users);
        EXPECT_EQ(d->peer.stats()["bulk"].get<size_t>(), 0u);
        EXPECT_GE(d->peer.stats()["requests"].get<size_t>(), users + 2);
    }
}

// A server without PATCH: an update reads the resource and puts the whole
// of it back (with If-Match, as the server does ETags), keeping what
// Syncwarden does not manage.
TEST(scim_target, a_server_without_patch_gets_the_whole_resource_put_back) {
    sw_test::temp_dir tmp;
    scim_district d(tmp.path(), {.peer = {"--no-patch", "--etag"}});
    ASSERT_EQ(d.run().code, 0);
    const std::string id = d.server_users()["t-102"]["id"];
    auto set = d.peer.request("PUT", "/Users/" + id, R"({"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "marcus.whitfield", "externalId": "t-102", "name": {"givenName": "Marcus", "familyName": "Whitfield"},
        "displayName": "Marcus Whitfield", "title": "Head of Science", "active": true,
        "emails": [{"value": "marcus.whitfield@lakeside.example.org", "type": "work", "primary": true}]})");
    ASSERT_EQ(set.status, 200) << set.body.dump();
    d.edit_users([](std::string& u) {
        auto p = u.find("Whitfield");
        u.replace(p, 9, "Whitfield-Ng");
    });
    auto r = d.run();
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    auto u = d.server_users()["t-102"];
    EXPECT_EQ(u["id"], id);
    EXPECT_EQ(u["name"]["familyName"], "Whitfield-Ng");
    EXPECT_EQ(u["title"], "Head of Science") << "an attribute the job does not map survives the PUT";
    EXPECT_EQ(d.peer.stats()["preconditionFailed"].get<int>(), 0) << "the PUT carried the version it read";
}

// A server that advertises bulk but answers 501, and one that refuses
// payloads smaller than it advertised (413): the run still lands.
TEST(scim_target, a_server_that_refuses_its_own_bulk_gets_smaller_or_single_requests) {
    sw_test::temp_dir tmp;
    scim_district refused(tmp.path() / "a", {.peer = {"--bulk-refused"}});
    auto r = refused.run();
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    const size_t users = users_in_csv(refused.district());
    EXPECT_EQ(refused.server_users().size(), users);
    EXPECT_THAT(sw_test::read_all_logs(refused.data()),
                HasSubstr("answered HTTP 501 although the ServiceProviderConfig says bulk is supported"));

    scim_district small(tmp.path() / "b", {.peer = {"--bulk-payload-limit", "3000"}});
    r = small.run();
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_EQ(small.server_users().size(), users);
    EXPECT_GT(small.peer.stats()["bulkTooLarge"].get<int>(), 0);
    EXPECT_GT(small.peer.stats()["bulk"].get<size_t>(), 1u) << "halved until each part is taken";
    EXPECT_EQ(small.peer.stats()["bulkOperations"].get<size_t>(), users);
}

// A Bulk request refused as a whole (429) is resent by the kernel; its
// operations count as resent changes.
TEST(scim_target, throttled_bulk_requests_are_resent_and_the_run_converges) {
    sw_test::temp_dir tmp;
    scim_district d(tmp.path(), {.peer = {"--throttle", "20", "--retry-after", "0", "--seed", "7"},
                                 .extra_job = k_fast_retries,
                                 .extra_settings = R"(, "bulk_max_operations": 3)"});
    auto r = d.run();
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_EQ(d.server_users().size(), users_in_csv(d.district()));
    EXPECT_GT(d.peer.stats()["bulk"].get<int>(), 0);
    auto j = json::parse(sw_test::cli(d.data(), {"runs", "show", sw_test::run_id_of(r.out), "--json"}).out);
    EXPECT_GT(j["summary"]["resent"].get<int>(), 0) << j["summary"].dump(1);
    r = d.run(true);
    EXPECT_EQ(d.plan(r)["changes"].size(), 0u);
}

// Bulk operations carry the version last read; one the server refuses with
// 412 is read again and sent on its own, against what it is now.
TEST(scim_target, stale_versions_inside_a_bulk_request_are_read_again_and_land) {
    sw_test::temp_dir tmp;
    scim_district d(tmp.path(), {.peer = {"--etag", "--stale-once"}});
    ASSERT_EQ(d.run().code, 0);
    const int bulk_before = d.peer.stats()["bulk"].get<int>();
    d.edit_users([](std::string& u) {
        for (std::string name : {"Whitfield", "García", "Lefèvre"}) {
            auto p = u.find(name);
            ASSERT_NE(p, std::string::npos) << name;
            u.replace(p, name.size(), name + "-Ng");
        }
    });
    auto r = d.run();
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    auto stats = d.peer.stats();
    EXPECT_GT(stats["bulk"].get<int>(), bulk_before) << "the three updates went in a Bulk request";
    EXPECT_GE(stats["preconditionFailed"].get<int>(), 3);
    auto held = d.server_users();
    EXPECT_EQ(held["t-102"]["name"]["familyName"], "Whitfield-Ng");
    EXPECT_EQ(held["s-1001"]["name"]["familyName"], "García-Ng");
    r = d.run(true);
    EXPECT_EQ(d.plan(r)["changes"].size(), 0u) << d.plan(r)["changes"].dump(1);
}

TEST(scim_target, a_stale_etag_is_read_again_and_the_change_still_lands) {
    sw_test::temp_dir tmp;
    scim_district d(tmp.path(), {.peer = {"--etag", "--stale-once"}});
    ASSERT_EQ(d.run().code, 0);
    d.edit_users([](std::string& u) {
        auto p = u.find("Whitfield");
        u.replace(p, 9, "Whitfield-Ng");
    });
    auto r = d.run();
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_GE(d.peer.stats()["preconditionFailed"].get<int>(), 1);
    EXPECT_EQ(d.server_users()["t-102"]["name"]["familyName"], "Whitfield-Ng");
}

TEST(scim_target, a_refused_token_stops_the_run_and_says_so) {
    sw_test::temp_dir tmp;
    scim_district d(tmp.path(), {.token = "not-the-token"});
    auto r = d.run();
    EXPECT_NE(r.code, 0);
    EXPECT_THAT(r.err, HasSubstr("HTTP 401"));
    EXPECT_THAT(r.err, HasSubstr("check the token"));
    EXPECT_THAT(r.err + r.out, ::testing::Not(HasSubstr("not-the-token"))) << "the credential is never printed";
    EXPECT_TRUE(d.peer.all("Users").empty());
}

TEST(scim_target, a_server_that_answers_garbage_is_named_with_what_it_said) {
    sw_test::temp_dir tmp;
    scim_district d(tmp.path());
    auto job = sw_test::read_file(d.job());
    const std::string base = d.peer.base_url();
    job.replace(job.find(base), base.size(), "http://127.0.0.1:" + std::to_string(d.peer.port()) + "/nothing-here");
    sw_test::write_file(d.job(), job);
    auto r = d.run();
    EXPECT_NE(r.code, 0);
    EXPECT_THAT(r.err, HasSubstr("GET http://127.0.0.1:" + std::to_string(d.peer.port()) +
                                 "/nothing-here/ServiceProviderConfig: HTTP 404"));
}


// The token lives in the secret store; after a whole run (and a run whose
// token the server refuses) it is in no file of the data dir: not the logs,
// the plans, the run store or the audit log.
TEST(scim_target, the_token_from_the_secret_store_is_written_nowhere) {
    sw_test::temp_dir tmp;
    scim_district d(tmp.path(), {.token = R"({"$secret": "scim-token"})"});
    sw_test::write_file(tmp / "token.txt", k_token + "\n");
    ASSERT_EQ(sw_test::cli(d.data(), {"secrets", "set", "scim-token", "--from-file", (tmp / "token.txt").string()}).code, 0);
    auto r = d.run();
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_EQ(d.server_users().size(), users_in_csv(d.district()));
    sw_test::write_file(tmp / "token.txt", "rotated-" + k_token + "\n");
    ASSERT_EQ(sw_test::cli(d.data(), {"secrets", "rotate", "scim-token", "--from-file", (tmp / "token.txt").string()}).code, 0);
    r = d.run();
    EXPECT_NE(r.code, 0) << "the server does not know the rotated token";
    EXPECT_THAT(r.out + r.err, ::testing::Not(HasSubstr(k_token)));
    size_t files = 0;
    for (auto& f : fs::recursive_directory_iterator(d.data())) {
        if (!f.is_regular_file()) continue;
        ++files;
        EXPECT_THAT(sw_test::read_file(f.path()), ::testing::Not(HasSubstr(k_token))) << f.path();
    }
    EXPECT_GT(files, 5u);
}

}  // namespace
