// Connector credentials, encrypted in the run store: AES-256-GCM (OpenSSL)
// under a master key that never lives in the store. Each change of a secret
// is a new version; the old ones stay until retired, so a run records which
// version it used. Values never leave this class but to a connector's
// settings: not into logs, plans, the run store's other tables, audit
// entries or error messages.
#pragma once

#include <syncwarden/kernel/clock.hpp>
#include <syncwarden/kernel/result.hpp>
#include <syncwarden/kernel/store.hpp>

#include <nlohmann/json.hpp>

#include <array>
#include <filesystem>
#include <string>
#include <vector>

namespace syncwarden::kernel {

// Where the master key comes from, first match wins:
//   $SYNCWARDEN_MASTER_KEY           64 hex digits (systemd: Environment= or
//                                    an EnvironmentFile of mode 0600)
//   $CREDENTIALS_DIRECTORY/syncwarden-master-key
//                                    a systemd credential (LoadCredential=)
//   <data_dir>/keys/master.key       made at first use, mode 0600
// A key file others can read is refused.
class master_key {
public:
    static Result<master_key> load(const std::filesystem::path& data_dir);
    // Where it came from, for messages: "$SYNCWARDEN_MASTER_KEY" or a path.
    const std::string& source() const { return source_; }
    const std::array<unsigned char, 32>& bytes() const { return key_; }
    // 16 hex digits naming the key (a keyed hash, not the key), for the
    // audit log.
    std::string key_id() const;
    static master_key from_bytes(const std::array<unsigned char, 32>& bytes, std::string source);
    // 64 hex digits (spaces and a newline after them allowed).
    static Result<std::array<unsigned char, 32>> parse(std::string_view hex, const std::string& source);

private:
    std::array<unsigned char, 32> key_{};
    std::string source_;
};

struct secret_info {
    std::string name;
    uint32_t version = 0;
    std::string created_at, created_by;
    bool retired = false;  // its value erased by `secrets retire`
};

// A name is 1 to 64 of [A-Za-z0-9_.-], starting with a letter or digit.
bool valid_secret_name(const std::string& name);

class secret_store {
public:
    secret_store(run_store& store, master_key key, const clock& clk) : store_(store), key_(std::move(key)), clock_(clk) {}
    // A new secret (version 1); refused when the name exists (rotate it).
    Result<secret_info> set(const std::string& name, const std::string& value, const std::string& by);
    // A new version of an existing secret.
    Result<secret_info> rotate(const std::string& name, const std::string& value, const std::string& by);
    // Every version of every secret, names and dates only.
    Result<std::vector<secret_info>> list();
    // The newest version's value; a clear error names the secret when it is
    // missing or does not decrypt (a wrong master key).
    Result<std::pair<std::string, secret_info>> current(const std::string& name);
    // Erases an old version's value for good (not the current version).
    Result<secret_info> retire(const std::string& name, uint32_t version);
    // Re-encrypts every version still held under `next`; the caller runs it
    // in a store transaction. Refuses (changing nothing) if one does not
    // decrypt with the present key.
    Result<size_t> rekey(const std::array<unsigned char, 32>& next);
    // Whether the secrets held decrypt with `key` (false when there is none).
    bool opens_with(const std::array<unsigned char, 32>& key);

private:
    Result<secret_info> add(const std::string& name, const std::string& value, const std::string& by, bool rotate);
    run_store& store_;
    master_key key_;
    const clock& clock_;
};

// Replaces each {"$secret": "NAME"} in connector settings with the secret's
// current value, and lists what it used. `where` names the settings in
// errors ("job.json: $.target.settings").
struct secret_use {
    std::string name;
    uint32_t version = 0;
    // Shorter than pii::k_short_secret: it cannot be kept out of logs
    // reliably (stored before such values were refused, or with
    // `secrets set --allow-short`); the run warns.
    bool short_value = false;
};
bool names_a_secret(const nlohmann::json& settings);
Result<nlohmann::json> resolve_secrets(const nlohmann::json& settings, secret_store* secrets, const std::string& where,
                                       std::vector<secret_use>& used);

}  // namespace syncwarden::kernel
