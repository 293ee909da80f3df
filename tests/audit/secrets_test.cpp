// Connector secrets: stored encrypted under a master key, versioned,
// resolved only into the settings that name them, and never seen again -
// not in the plan, the store, the logs, the audit log or the terminal, even
// when the connector itself quotes its credential.
#include "test_support.hpp"

#include <syncwarden/kernel/secrets.hpp>

#include <Poco/Data/SQLite/Connector.h>
#include <Poco/Data/Session.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <openssl/evp.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <sys/stat.h>

using namespace syncwarden::kernel;
using ::testing::HasSubstr;
using ::testing::Not;
namespace fs = std::filesystem;

namespace {

struct env_guard {
    explicit env_guard(const char* name) : name_(name) {
        if (const char* v = std::getenv(name)) old_ = v, had_ = true;
        ::unsetenv(name);
    }
    ~env_guard() {
        if (had_) ::setenv(name_, old_.c_str(), 1);
        else ::unsetenv(name_);
    }
    const char* name_;
    std::string old_;
    bool had_ = false;
};

}  // namespace

TEST(secrets, are_versioned_encrypted_and_bound_to_their_name) {
    env_guard e1("SYNCWARDEN_MASTER_KEY"), e2("CREDENTIALS_DIRECTORY");
    sw_test::temp_dir d;
    auto store = open_sqlite_store(d / "sw.db");
    ASSERT_TRUE(store);
    manual_clock clk(std::chrono::system_clock::time_point(std::chrono::hours(24 * 20000)));
    auto key = master_key::load(d.path());
    ASSERT_TRUE(key) << key.status().message();
    struct stat st {};
    ASSERT_EQ(::stat((d / "keys" / "master.key").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    secret_store s(**store, std::move(*key), clk);
    ASSERT_TRUE(s.set("scim-token", "tok-first-0123456789", "cli:ana"));
    auto again = s.set("scim-token", "x-y-z-w", "cli:ana");
    EXPECT_FALSE(again);
    EXPECT_THAT(again.status().message(), HasSubstr("secrets rotate scim-token"));
    ASSERT_TRUE(s.rotate("scim-token", "tok-second-0123456789", "cli:ben"));
    EXPECT_FALSE(s.rotate("nope", "v-v-v-v", "x"));
    EXPECT_FALSE(s.set("bad name!", "v-v-v-v", "x"));
    auto cur = s.current("scim-token");
    ASSERT_TRUE(cur) << cur.status().message();
    EXPECT_EQ(cur->first, "tok-second-0123456789");
    EXPECT_EQ(cur->second.version, 2u);
    auto all = s.list();
    ASSERT_EQ(all->size(), 2u);
    EXPECT_EQ((*all)[1].created_by, "cli:ben");
    // Nothing of the value is in the store's file.
    const std::string file = sw_test::read_file(d / "sw.db") + sw_test::read_file(d / "sw.db-wal");
    EXPECT_EQ(file.find("tok-second"), std::string::npos);
    // A ciphertext moved to another name does not decrypt.
    ASSERT_TRUE(s.set("ldap-password", "pw-0123456789", "cli:ana"));
    {
        Poco::Data::SQLite::Connector::registerConnector();
        Poco::Data::Session raw("SQLite", (d / "sw.db").string());
        using namespace Poco::Data::Keywords;
        raw << "UPDATE secrets SET nonce=(SELECT nonce FROM secrets WHERE name='scim-token' AND version=2), "
               "ciphertext=(SELECT ciphertext FROM secrets WHERE name='scim-token' AND version=2), "
               "tag=(SELECT tag FROM secrets WHERE name='scim-token' AND version=2) WHERE name='ldap-password'",
            now;
    }
    auto moved = s.current("ldap-password");
    EXPECT_FALSE(moved);
    EXPECT_THAT(moved.status().message(), HasSubstr("does not decrypt with the master key"));
    // Another master key reads nothing.
    ::setenv("SYNCWARDEN_MASTER_KEY", std::string(64, 'a').c_str(), 1);
    auto other = master_key::load(d.path());
    ASSERT_TRUE(other);
    EXPECT_EQ(other->source(), "$SYNCWARDEN_MASTER_KEY");
    secret_store wrong(**store, std::move(*other), clk);
    auto w = wrong.current("scim-token");
    EXPECT_FALSE(w);
    EXPECT_THAT(w.status().message(), HasSubstr("from $SYNCWARDEN_MASTER_KEY: the key is not the one"));
    ::setenv("SYNCWARDEN_MASTER_KEY", "short", 1);
    EXPECT_THAT(master_key::load(d.path()).status().message(), HasSubstr("64 hex digits"));
    ::unsetenv("SYNCWARDEN_MASTER_KEY");
    ::chmod((d / "keys" / "master.key").c_str(), 0644);
    EXPECT_THAT(master_key::load(d.path()).status().message(), HasSubstr("make it private: chmod 600"));
}

TEST(secrets, reach_only_the_connector_that_names_them_and_are_never_written_anywhere) {
    env_guard e1("SYNCWARDEN_MASTER_KEY"), e2("CREDENTIALS_DIRECTORY");
    sw_test::temp_dir tmp;
    const fs::path data = tmp / "data";
    const std::string value = "vendor-token-7f3a9c51e2";
    sw_test::diff_target_job(tmp.path(), R"(, "token": {"$secret": "vendor-token"})");
    // Before the secret exists, the run says which one is missing.
    auto missing = sw_test::cli(data, {"run", (tmp / "job.json").string()});
    EXPECT_EQ(missing.code, 3) << missing.out << missing.err;
    EXPECT_THAT(missing.err, HasSubstr("no secret named vendor-token; `syncwarden secrets set vendor-token`"));
    sw_test::write_file(tmp / "token.txt", value + "\n");
    auto set = sw_test::cli(data, {"secrets", "set", "vendor-token", "--from-file", (tmp / "token.txt").string()});
    ASSERT_EQ(set.code, 0) << set.err;
    auto r = sw_test::cli(data, {"run", (tmp / "job.json").string()});
    EXPECT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_THAT(sw_test::read_file(tmp / "applied.log"), HasSubstr("token=" + value + "\n"))
        << "the connector got the value";
    EXPECT_THAT(r.out + r.err, Not(HasSubstr(value)));
    // A new version is used by the next run, and each run's summary says
    // which. This vendor refuses a change and quotes the token in its answer:
    // the kernel scrubs it from the terminal, the store and the logs.
    sw_test::write_file(tmp / "token.txt", value + "-v2");
    ASSERT_EQ(sw_test::cli(data, {"secrets", "rotate", "vendor-token", "--from-file", (tmp / "token.txt").string()}).code, 0);
    sw_test::diff_target_job(tmp.path(), R"(, "token": {"$secret": "vendor-token"}, "refuse": ["i-1", "i-2"])");
    auto r2 = sw_test::cli(data, {"run", (tmp / "job.json").string()});
    EXPECT_EQ(r2.code, 6) << r2.out << r2.err;
    EXPECT_THAT(r2.out + r2.err, Not(HasSubstr(value)));
    EXPECT_THAT(r2.out + r2.err, HasSubstr("for token <secret vendor-token>"));
    auto list = sw_test::cli(data, {"secrets", "list", "--json"});
    ASSERT_EQ(list.code, 0);
    EXPECT_EQ(nlohmann::json::parse(list.out).size(), 2u);
    EXPECT_THAT(list.out, Not(HasSubstr(value)));
    auto log = sw_test::cli(data, {"audit", "list", "--json"});
    std::vector<uint32_t> versions;
    int changed = 0;
    for (auto& e : nlohmann::json::parse(log.out)) {
        auto entry = nlohmann::json::parse(e["entry"].get<std::string>());
        if (entry["kind"] == "secret_changed") ++changed;
        if (entry["kind"] == "run_summary" && entry["data"].contains("secrets")) {
            EXPECT_EQ(entry["data"]["secrets"][0]["role"], "target");
            EXPECT_EQ(entry["data"]["secrets"][0]["name"], "vendor-token");
            versions.push_back(entry["data"]["secrets"][0]["version"]);
        }
    }
    EXPECT_EQ(changed, 2) << "set and rotate are audit events";
    EXPECT_EQ(versions, (std::vector<uint32_t>{1, 2}));
    // Nowhere in the data dir: plans, store, logs, audit log.
    size_t files = 0;
    for (auto& f : fs::recursive_directory_iterator(data)) {
        if (!f.is_regular_file()) continue;
        ++files;
        const std::string bytes = sw_test::read_file(f.path());
        EXPECT_EQ(bytes.find(value), std::string::npos) << f.path();
    }
    EXPECT_GT(files, 5u);
    EXPECT_THAT(sw_test::read_all_logs(data), HasSubstr("using token <secret vendor-token>"));
}

namespace {

// The encodings a vendor's HTTP library or debug dump writes a credential
// in, computed here independently of the kernel (OpenSSL's base64).
std::string b64(const std::string& in) {
    std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
    const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
    out.resize(static_cast<size_t>(n));
    return out;
}
std::string b64url(std::string in) {
    std::string out = b64(in);
    for (auto& c : out) c = c == '+' ? '-' : c == '/' ? '_' : c;
    while (!out.empty() && out.back() == '=') out.pop_back();
    return out;
}
std::string percent(const std::string& in) {
    std::string out;
    char b[4];
    for (unsigned char c : in) {
        if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
            out += static_cast<char>(c);
        } else {
            std::snprintf(b, sizeof b, "%%%02X", c);
            out += b;
        }
    }
    return out;
}

}  // namespace

TEST(secrets, are_scrubbed_in_the_encodings_a_connector_prints_them_in_and_short_ones_are_refused) {
    env_guard e1("SYNCWARDEN_MASTER_KEY"), e2("CREDENTIALS_DIRECTORY");
    sw_test::temp_dir tmp;
    const fs::path data = tmp / "data";
    // Characters that URL-encoding and JSON escape, and a non-ASCII one.
    const std::string value = "p@ss w/rd+Zo\xC3\xAB:7f3\"a9c51";
    sw_test::diff_target_job(tmp.path(), R"(, "token": {"$secret": "vendor-token"}, "careless": true, "refuse": ["i-1"])");
    sw_test::write_file(tmp / "token.txt", value + "\n");
    ASSERT_EQ(sw_test::cli(data, {"secrets", "set", "vendor-token", "--from-file", (tmp / "token.txt").string()}).code, 0);
    auto r = sw_test::cli(data, {"run", (tmp / "job.json").string()});
    EXPECT_EQ(r.code, 6) << r.out << r.err;
    const std::string escaped = nlohmann::json(value).dump().substr(1, nlohmann::json(value).dump().size() - 2);
    const std::vector<std::pair<std::string, std::string>> forms{
        {"the value", value},
        {"its base64", b64(value)},
        {"its URL-safe base64", b64url(value)},
        {"a Basic-auth header", b64("svc-sync:" + value)},
        {"base64 at the second alignment", b64url("x" + value).substr(4, 16)},
        {"base64 at the third alignment", b64url("xy" + value).substr(4, 16)},
        {"its URL encoding", percent(value)},
        {"its JSON escape", escaped}};
    auto show = sw_test::cli(data, {"runs", "show", sw_test::run_id_of(r.out), "--json"});
    ASSERT_EQ(show.code, 0) << show.err;
    const std::string logs = sw_test::read_all_logs(data);
    EXPECT_THAT(logs, HasSubstr("Authorization: Basic <secret vendor-token>")) << "the header's whole token goes";
    EXPECT_THAT(logs, HasSubstr("client_secret=<secret vendor-token>&scope=users"));
    for (auto& [what, form] : forms) {
        EXPECT_EQ((r.out + r.err).find(form), std::string::npos) << what << " reached the terminal";
        EXPECT_EQ(show.out.find(form), std::string::npos) << what << " reached runs show";
        EXPECT_EQ(logs.find(form), std::string::npos) << what << " reached the log";
        for (auto& f : fs::recursive_directory_iterator(data)) {
            if (f.is_regular_file()) {
                EXPECT_EQ(sw_test::read_file(f.path()).find(form), std::string::npos) << what << " is in " << f.path();
            }
        }
    }

    // A value too short to be told from ordinary text is refused, unless
    // the operator insists; then every run that uses it warns.
    sw_test::write_file(tmp / "pin.txt", "4711\n");
    auto shortv = sw_test::cli(data, {"secrets", "set", "pin", "--from-file", (tmp / "pin.txt").string()});
    EXPECT_EQ(shortv.code, 3) << shortv.out << shortv.err;
    EXPECT_THAT(shortv.err, HasSubstr("--allow-short"));
    auto listed = sw_test::cli(data, {"secrets", "list", "--json"});
    EXPECT_EQ(nlohmann::json::parse(listed.out).size(), 1u) << "nothing stored";
    ASSERT_EQ(sw_test::cli(data, {"secrets", "set", "pin", "--allow-short", "--from-file", (tmp / "pin.txt").string()}).code, 0);
    sw_test::diff_target_job(tmp.path(), R"(, "token": {"$secret": "pin"})");
    auto withpin = sw_test::cli(data, {"run", (tmp / "job.json").string()});
    EXPECT_EQ(withpin.code, 0) << withpin.out << withpin.err;
    auto pinshow = sw_test::cli(data, {"runs", "show", sw_test::run_id_of(withpin.out), "--json"});
    int warned = 0;
    const auto shown = nlohmann::json::parse(pinshow.out);
    for (auto& f : shown["findings"])
        if (f["code"] == "short_secret" && f["severity"] == "warning") ++warned;
    EXPECT_EQ(warned, 1) << pinshow.out;
}

TEST(secrets, an_old_version_is_retired_for_good_and_every_secret_rekeyed_under_a_new_master_key) {
    env_guard e1("SYNCWARDEN_MASTER_KEY"), e2("CREDENTIALS_DIRECTORY");
    sw_test::temp_dir tmp;
    const fs::path data = tmp / "data";
    const std::string v1 = "vendor-token-first-5d1e", v2 = "vendor-token-second-8c2f";
    sw_test::diff_target_job(tmp.path(), R"(, "token": {"$secret": "vendor-token"})");
    sw_test::write_file(tmp / "t1", v1 + "\n");
    sw_test::write_file(tmp / "t2", v2 + "\n");
    ASSERT_EQ(sw_test::cli(data, {"secrets", "set", "vendor-token", "--from-file", (tmp / "t1").string()}).code, 0);
    ASSERT_EQ(sw_test::cli(data, {"secrets", "rotate", "vendor-token", "--from-file", (tmp / "t2").string()}).code, 0);
    // v1's ciphertext as stored, to look for after it is retired.
    std::string v1_cipher;
    {
        Poco::Data::SQLite::Connector::registerConnector();
        Poco::Data::Session raw("SQLite", (data / "syncwarden.db").string());
        raw << "SELECT ciphertext FROM secrets WHERE name='vendor-token' AND version=1", Poco::Data::Keywords::into(v1_cipher),
            Poco::Data::Keywords::now;
    }
    ASSERT_FALSE(v1_cipher.empty());
    auto db_bytes = [&] {
        std::string all;
        for (auto& f : fs::directory_iterator(data))
            if (f.path().filename().string().rfind("syncwarden.db", 0) == 0) all += sw_test::read_file(f.path());
        return all;
    };
    ASSERT_NE(db_bytes().find(v1_cipher), std::string::npos) << "the check below can see a ciphertext";

    auto current = sw_test::cli(data, {"secrets", "retire", "vendor-token", "2"});
    EXPECT_EQ(current.code, 2) << "the version runs use is not retired";
    EXPECT_THAT(current.err, HasSubstr("secrets rotate vendor-token"));
    auto retired = sw_test::cli(data, {"secrets", "retire", "vendor-token", "1"});
    ASSERT_EQ(retired.code, 0) << retired.err;
    const auto listed = nlohmann::json::parse(sw_test::cli(data, {"secrets", "list", "--json"}).out);
    ASSERT_EQ(listed.size(), 2u);
    EXPECT_TRUE(listed[0]["retired"].get<bool>());
    EXPECT_FALSE(listed[1]["retired"].get<bool>());
    EXPECT_EQ(db_bytes().find(v1_cipher), std::string::npos) << "the retired ciphertext is gone from the store's files";
    EXPECT_EQ(sw_test::cli(data, {"secrets", "retire", "vendor-token", "1"}).code, 2) << "retired already";

    // Rekey: every secret under a new master key, in one go, audited.
    const std::string old_key = sw_test::read_file(data / "keys" / "master.key");
    auto rekeyed = sw_test::cli(data, {"secrets", "rekey"});
    ASSERT_EQ(rekeyed.code, 0) << rekeyed.err;
    EXPECT_NE(sw_test::read_file(data / "keys" / "master.key"), old_key);
    auto r = sw_test::cli(data, {"run", (tmp / "job.json").string()});
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_THAT(sw_test::read_file(tmp / "applied.log"), HasSubstr("token=" + v2 + "\n"));
    {
        // The old key opens nothing any more.
        ::setenv("SYNCWARDEN_MASTER_KEY", old_key.substr(0, 64).c_str(), 1);
        auto stale = sw_test::cli(data, {"run", (tmp / "job.json").string()});
        EXPECT_EQ(stale.code, 3) << stale.out << stale.err;
        EXPECT_THAT(stale.err, HasSubstr("does not decrypt"));
        auto no_new = sw_test::cli(data, {"secrets", "rekey"});
        EXPECT_EQ(no_new.code, 2) << "a key from the environment: the new one must be given";
        EXPECT_THAT(no_new.err, HasSubstr("--new-key-file"));
        ::unsetenv("SYNCWARDEN_MASTER_KEY");
    }
    int rekeys = 0, retires = 0;
    for (auto& e : nlohmann::json::parse(sw_test::cli(data, {"audit", "list", "--json"}).out)) {
        auto entry = nlohmann::json::parse(e["entry"].get<std::string>());
        if (entry["kind"] == "secrets_rekeyed") {
            ++rekeys;
            EXPECT_EQ(entry["data"]["secrets"], 1) << "the retired version has nothing to re-encrypt";
        }
        if (entry["kind"] == "secret_changed" && entry["data"]["action"] == "retire") ++retires;
    }
    EXPECT_EQ(rekeys, 1);
    EXPECT_EQ(retires, 1);

    // A rekey that stopped before its commit left its new key behind: runs
    // stop until --finish keeps the key the secrets are stored under.
    sw_test::write_file(data / "keys" / "master.key.new", std::string(64, 'a') + "\n");
    fs::permissions(data / "keys" / "master.key.new", fs::perms::owner_read | fs::perms::owner_write,
                    fs::perm_options::replace);
    auto stopped = sw_test::cli(data, {"run", (tmp / "job.json").string()});
    EXPECT_EQ(stopped.code, 3);
    EXPECT_THAT(stopped.err, HasSubstr("secrets rekey --finish"));
    auto finish = sw_test::cli(data, {"secrets", "rekey", "--finish"});
    EXPECT_EQ(finish.code, 0) << finish.err;
    EXPECT_THAT(finish.out, HasSubstr("had not committed"));
    EXPECT_FALSE(fs::exists(data / "keys" / "master.key.new"));
    EXPECT_EQ(sw_test::cli(data, {"run", (tmp / "job.json").string()}).code, 0);
}
