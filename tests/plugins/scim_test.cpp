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

// The demo district's users into the SCIM server: userName, names, e-mail,
// active, and deactivation (active=false) for a user the source marks
// tobedeleted or drops.
struct scim_district {
    explicit scim_district(const fs::path& root, std::vector<std::string> peer_options = {},
                           const std::string& extra_job = "", const std::string& token = k_token)
        : root(root), peer(root / "peer", k_token, std::move(peer_options)) {
        sw_test::install_shipped(data());
        EXPECT_EQ(sw_test::cli(data(), {"connectors", "install", sw_test::plugin("scim").string()}).code, 0);
        sw_test::copy_tree(fs::path(SW_SOURCE_DIR) / "config/demo/district", district());
        sw_test::write_file(job(), R"({"name": "scim-demo", )" + extra_job + R"(
          "source": {"connector": "oneroster-csv", "settings": {"path": ")" + district().string() + R"("}},
          "target": {"connector": "scim", "settings": {"base_url": ")" + peer.base_url() + R"(",
                     "auth": {"bearer": ")" + token + R"("}, "page_size": 50}},
          "mapping": {"entities": [{"target": "users", "source": "users", "fields": {
             "sourcedId": "sourcedId", "userName": "username", "givenName": "givenName",
             "familyName": "familyName", "displayName": {"template": "{givenName} {familyName}"},
             "emails": {"from": "email", "transform": "lower"}, "active": {"const": "true"}}}]},
          "gates": {"deprovision": {"users": {"action": "deactivate", "set": {"active": "false"}}},
                    "thresholds": {"*": {"create": "100%", "update": "100%", "delete": "100%", "deactivate": "100%"}}}})");
    }
    fs::path data() const { return root / "data"; }
    fs::path district() const { return root / "district"; }
    fs::path job() const { return root / "job.json"; }
    sw_test::cli_result run(bool dry = false) const {
        std::vector<std::string> a{"run", job().string()};
        if (dry) a.push_back("--dry-run");
        return sw_test::cli(data(), a);
    }
    json plan(const sw_test::cli_result& r) const {
        return json::parse(sw_test::read_file(data() / "plans" / (sw_test::run_id_of(r.out) + ".json")));
    }
    // The source's users, by sourcedId: {username, active?}.
    std::map<std::string, std::string> source_users() const {
        std::map<std::string, std::string> out;
        std::istringstream in(sw_test::read_file(district() / "users.csv"));
        std::string header, line;
        std::getline(in, header);
        while (std::getline(in, line)) {
            if (!line.empty() && line.back() == '\r') line.pop_back();
            std::vector<std::string> cells;
            std::string cell;
            std::istringstream ls(line);
            while (std::getline(ls, cell, ',')) cells.push_back(cell);
            if (cells.size() > 6) out[cells[0]] = cells[6];
        }
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

    fs::path root;
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
}  // namespace
