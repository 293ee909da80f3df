// End to end with a generated 10,000-user district (bench's
// sw-generate-district, size small) into both protocol targets, each a real
// server on loopback: dry run, apply, a re-run that plans nothing, then the
// next export (1% changed: adds, renames, tobedeleted) applies exactly its
// delta. The servers are read back over their protocols and compared with
// the exports. Label "slow": the sanitizer pass leaves these out.
#include "scim_peer.hpp"
#include "slapd_peer.hpp"
#include "test_support.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <map>

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// sourcedId -> {username, status} of an export's users.csv (OneRoster 1.1).
std::map<std::string, std::pair<std::string, std::string>> users_of(const fs::path& dir) {
    std::map<std::string, std::pair<std::string, std::string>> out;
    for (auto& cells : sw_test::csv_rows(dir / "users.csv"))
        if (cells.size() > 6) out[cells[0]] = {cells[6], cells[1]};
    return out;
}

struct district {
    explicit district(const fs::path& root) : root(root) {
        const std::string gen = std::string(SW_BENCH_DIR) + "/sw-generate-district --size small --out '" +
                                (root / "a").string() + "' --change-rate 0.01 --changed-out '" +
                                (root / "b").string() + "' > /dev/null";
        EXPECT_EQ(std::system(gen.c_str()), 0);
        sw_test::install_shipped(data());
    }
    fs::path data() const { return root / "data"; }
    // The job reads the export in `current`, a copy of a or b.
    void use(const char* which) const {
        fs::remove_all(root / "current");
        sw_test::copy_tree(root / which, root / "current");
    }
    std::string job(const std::string& target, const std::string& fields) const {
        return R"({"name": "district-10k",
          "source": {"connector": "oneroster-csv", "settings": {"path": ")" + (root / "current").string() + R"("}},
          "target": )" + target + R"(,
          "mapping": {"entities": [{"target": "users", "source": "users", "fields": )" + fields + R"(}]},
          "gates": {"deprovision": {"users": {"action": "deactivate", "set": {"active": "false"}}},
                    "thresholds": {"*": {"create": "100%", "update": "100%", "delete": "100%", "deactivate": "100%"}}}})";
    }
    sw_test::cli_result run(bool dry = false) const {
        std::vector<std::string> a{"run", (root / "job.json").string()};
        if (dry) a.push_back("--dry-run");
        return sw_test::cli(data(), a);
    }
    json plan(const sw_test::cli_result& r) const {
        return json::parse(sw_test::read_file(data() / "plans" / (sw_test::run_id_of(r.out) + ".json")));
    }
    // The whole cycle; `held` reads the server: key -> {id, username, active}.
    using account = std::tuple<std::string, std::string, bool>;
    void cycle(const std::function<std::map<std::string, account>()>& held) const {
        use("a");
        const auto first = users_of(root / "a");
        auto r = run(true);
        ASSERT_EQ(r.code, 0) << r.out << r.err;
        EXPECT_EQ(plan(r)["changes"].size(), first.size());
        r = run();
        ASSERT_EQ(r.code, 0) << r.out << r.err;
        const auto before = held();
        ASSERT_EQ(before.size(), first.size());
        r = run(true);
        ASSERT_EQ(r.code, 0) << r.out << r.err;
        EXPECT_EQ(plan(r)["changes"].size(), 0u);

        use("b");
        const auto second = users_of(root / "b");
        r = run();
        ASSERT_EQ(r.code, 0) << r.out << r.err;
        const auto after = held();
        size_t added = 0, renamed = 0, deactivated = 0;
        for (auto& [key, user] : second) {
            auto it = after.find(key);
            ASSERT_NE(it, after.end()) << key;
            const auto& [id, name, active] = it->second;
            EXPECT_EQ(name, user.first) << key;
            EXPECT_EQ(active, user.second != "tobedeleted") << key;
            auto was = before.find(key);
            if (was == before.end()) {
                ++added;
                continue;
            }
            EXPECT_EQ(std::get<0>(was->second), id) << key << ": the same account";
            renamed += std::get<1>(was->second) != name;
            deactivated += !active;
        }
        EXPECT_EQ(after.size(), before.size() + added) << "no account made twice";
        EXPECT_GT(added, 10u);
        EXPECT_GT(renamed, 10u);
        EXPECT_GT(deactivated, 10u);
        r = run(true);
        ASSERT_EQ(r.code, 0) << r.out << r.err;
        EXPECT_EQ(plan(r)["changes"].size(), 0u);
    }

    fs::path root;
};

TEST(district_10k, into_the_scim_server) {
    sw_test::temp_dir tmp;
    district d(tmp.path());
    sw_test::scim_peer peer(tmp.path() / "peer", "district-token");
    ASSERT_EQ(sw_test::cli(d.data(), {"connectors", "install", sw_test::plugin("scim").string()}).code, 0);
    sw_test::write_file(tmp.path() / "job.json",
                        d.job(R"({"connector": "scim", "settings": {"base_url": ")" + peer.base_url() +
                                  R"(", "auth": {"bearer": "district-token"}, "page_size": 1000}})",
                              R"({"sourcedId": "sourcedId", "userName": "username", "givenName": "givenName",
                                  "familyName": "familyName", "emails": "email", "active": {"const": "true"}})"));
    d.cycle([&] {
        std::map<std::string, district::account> out;
        for (auto& u : peer.all("Users"))
            out[u.value("externalId", "?")] = {u["id"], u["userName"], u.value("active", false)};
        return out;
    });
}

TEST(district_10k, into_slapd) {
    sw_test::temp_dir tmp;
    district d(tmp.path());
    sw_test::slapd_peer::options o;
    o.size_limit = 500;
    sw_test::slapd_peer peer(tmp.path() / "slapd", "district-pw", o);
    ASSERT_EQ(sw_test::cli(d.data(), {"connectors", "install", sw_test::plugin("ldap").string()}).code, 0);
    sw_test::write_file(tmp.path() / "job.json",
                        d.job(R"({"connector": "ldap", "settings": {"url": ")" + peer.url() +
                                  R"(", "starttls": false, "bind_dn": ")" + sw_test::slapd_peer::service_dn() +
                                  R"(", "password": "district-pw", "base_dn": ")" + sw_test::slapd_peer::base() + R"("}})",
                              R"({"sourcedId": "sourcedId", "uid": "username", "givenName": "givenName",
                                  "sn": "familyName", "cn": {"template": "{givenName} {familyName}"},
                                  "mail": {"from": "email", "transform": "ascii"},
                                  "school": "orgSourcedIds", "active": {"const": "true"}})"));
    d.cycle([&] {
        std::map<std::string, district::account> out;
        for (auto& e : peer.search("(objectClass=inetOrgPerson)", {"uid", "employeeNumber", "entryUUID"}))
            out[e.first("employeenumber")] = {e.first("entryuuid"), e.first("uid"),
                                              e.dn.find(",ou=disabled,") == std::string::npos};
        return out;
    });
}

}  // namespace
