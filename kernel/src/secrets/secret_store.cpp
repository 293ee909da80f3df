#include <syncwarden/kernel/digest.hpp>
#include <syncwarden/kernel/pii.hpp>
#include <syncwarden/kernel/private_file.hpp>
#include <syncwarden/kernel/secrets.hpp>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cstdlib>
#include <openssl/crypto.h>

namespace fs = std::filesystem;

namespace syncwarden::kernel {
namespace {



Status from_hex_key(std::string_view text, std::array<unsigned char, 32>& key, const std::string& source) {
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) text.remove_suffix(1);
    std::vector<unsigned char> b;
    if (!from_hex(text, b) || b.size() != key.size())
        return Status::error(error_kind::config, source + ": the master key must be 64 hex digits (32 bytes); make one "
                                                          "with `openssl rand -hex 32`");
    std::copy(b.begin(), b.end(), key.begin());
    return Status::ok();
}


// What the ciphertext is bound to: a value moved to another name or
// version does not decrypt.
std::string aad(const std::string& name, uint32_t version) {
    return std::string("syncwarden-secret\0", 18) + name + '\0' + std::to_string(version);
}

struct cipher_ctx {
    EVP_CIPHER_CTX* c = EVP_CIPHER_CTX_new();
    ~cipher_ctx() { EVP_CIPHER_CTX_free(c); }
};


// Encrypts `value` into r's nonce, ciphertext and tag, bound to its name and
// version.
Status encrypt(secret_record& r, const std::string& value, const std::array<unsigned char, 32>& key) {
    const std::string& name = r.name;
    unsigned char nonce[12];
    if (RAND_bytes(nonce, sizeof nonce) != 1) return Status::error(error_kind::internal, "no randomness for a nonce");
    std::vector<unsigned char> out(value.size());
    unsigned char tag[16];
    cipher_ctx ctx;
    int n = 0, m = 0;
    const std::string a = aad(name, r.version);
    const bool ok =
        ctx.c && EVP_EncryptInit_ex(ctx.c, EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
        EVP_CIPHER_CTX_ctrl(ctx.c, EVP_CTRL_GCM_SET_IVLEN, sizeof nonce, nullptr) == 1 &&
        EVP_EncryptInit_ex(ctx.c, nullptr, nullptr, key.data(), nonce) == 1 &&
        EVP_EncryptUpdate(ctx.c, nullptr, &n, reinterpret_cast<const unsigned char*>(a.data()), static_cast<int>(a.size())) == 1 &&
        EVP_EncryptUpdate(ctx.c, out.data(), &n, reinterpret_cast<const unsigned char*>(value.data()),
                          static_cast<int>(value.size())) == 1 &&
        EVP_EncryptFinal_ex(ctx.c, out.data() + n, &m) == 1 &&
        EVP_CIPHER_CTX_ctrl(ctx.c, EVP_CTRL_GCM_GET_TAG, sizeof tag, tag) == 1;
    if (!ok) return Status::error(error_kind::internal, "encrypting secret " + name + " failed");
    r.nonce = to_hex(nonce, sizeof nonce);
    r.ciphertext = to_hex(out.data(), static_cast<size_t>(n + m));
    r.tag = to_hex(tag, sizeof tag);
    return Status::ok();
}

Result<std::string> decrypt(const secret_record& r, const std::array<unsigned char, 32>& key) {
    const std::string& name = r.name;
    if (r.ciphertext.empty())
        return Status::error(error_kind::config, "secret " + name + " version " + std::to_string(r.version) +
                                                     " was retired (`secrets retire`): its value is gone");
    std::vector<unsigned char> nonce, data, tag;
    if (!from_hex(r.nonce, nonce) || !from_hex(r.ciphertext, data) || !from_hex(r.tag, tag) || tag.size() != 16)
        return Status::error(error_kind::store, "secret " + name + " version " + std::to_string(r.version) +
                                                    " is damaged in the run store");
    std::string value(data.size(), '\0');
    cipher_ctx ctx;
    int n = 0, m = 0;
    const std::string a = aad(r.name, r.version);
    const bool ok =
        ctx.c && EVP_DecryptInit_ex(ctx.c, EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
        EVP_CIPHER_CTX_ctrl(ctx.c, EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(nonce.size()), nullptr) == 1 &&
        EVP_DecryptInit_ex(ctx.c, nullptr, nullptr, key.data(), nonce.data()) == 1 &&
        EVP_DecryptUpdate(ctx.c, nullptr, &n, reinterpret_cast<const unsigned char*>(a.data()), static_cast<int>(a.size())) == 1 &&
        EVP_DecryptUpdate(ctx.c, reinterpret_cast<unsigned char*>(value.data()), &n, data.data(),
                          static_cast<int>(data.size())) == 1 &&
        EVP_CIPHER_CTX_ctrl(ctx.c, EVP_CTRL_GCM_SET_TAG, 16, tag.data()) == 1 &&
        EVP_DecryptFinal_ex(ctx.c, reinterpret_cast<unsigned char*>(value.data()) + n, &m) == 1;
    if (!ok)
        return Status::error(error_kind::config, "secret " + name + " version " + std::to_string(r.version) +
                                                     " does not decrypt");
    value.resize(static_cast<size_t>(n + m));
    return value;
}

}  // namespace

Result<master_key> master_key::load(const fs::path& data_dir) {
    master_key k;
    if (const char* env = std::getenv("SYNCWARDEN_MASTER_KEY"); env && *env) {
        k.source_ = "$SYNCWARDEN_MASTER_KEY";
        if (auto s = from_hex_key(env, k.key_, k.source_); !s) return s;
        return k;
    }
    if (const char* dir = std::getenv("CREDENTIALS_DIRECTORY"); dir && *dir) {
        const fs::path f = fs::path(dir) / "syncwarden-master-key";
        std::error_code ec;
        if (fs::exists(f, ec)) {
            auto text = read_private_file(f, "the master key");
            if (!text) return text.status();
            k.source_ = f.string();
            if (auto s = from_hex_key(*text, k.key_, k.source_); !s) return s;
            return k;
        }
    }
    const fs::path f = data_dir / "keys" / "master.key";
    k.source_ = f.string();
    std::error_code ec;
    if (fs::exists(f.string() + ".new", ec))
        return Status::error(error_kind::config, f.string() + ".new is left from a `syncwarden secrets rekey` that did "
                                                              "not finish; run `syncwarden secrets rekey --finish` to "
                                                              "keep the key the secrets are stored under");
    if (!fs::exists(f, ec)) {
        std::array<unsigned char, 32> fresh{};
        if (RAND_bytes(fresh.data(), static_cast<int>(fresh.size())) != 1)
            return Status::error(error_kind::internal, "no randomness for the master key");
        if (auto s = create_private_file(f, to_hex(fresh.data(), fresh.size()) + "\n", "the master key"); !s) return s;
    }
    auto text = read_private_file(f, "the master key");
    if (!text) return text.status();
    if (auto s = from_hex_key(*text, k.key_, k.source_); !s) return s;
    return k;
}

bool valid_secret_name(const std::string& n) {
    if (n.empty() || n.size() > 64 || !std::isalnum(static_cast<unsigned char>(n[0]))) return false;
    for (char c : n)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '-') return false;
    return true;
}

Result<secret_info> secret_store::add(const std::string& name, const std::string& value, const std::string& by,
                                      bool rotate) {
    if (!valid_secret_name(name))
        return Status::error(error_kind::usage, "'" + name + "' is not a secret name: use 1 to 64 letters, digits, '_', "
                                                              "'.' or '-', starting with a letter or digit");
    if (value.empty()) return Status::error(error_kind::usage, "the value of secret " + name + " is empty");
    auto have = store_.secret_versions(name);
    if (!have) return have.status();
    if (!rotate && !have->empty())
        return Status::error(error_kind::usage, "secret " + name + " exists (version " +
                                                    std::to_string(have->back().version) +
                                                    "); `syncwarden secrets rotate " + name + "` adds a new version");
    if (rotate && have->empty())
        return Status::error(error_kind::not_found, "no secret named " + name + "; `syncwarden secrets set " + name +
                                                        "` makes it");
    secret_record r;
    r.name = name;
    r.version = have->empty() ? 1 : have->back().version + 1;
    r.created_at = iso8601(clock_.now());
    r.created_by = by;
    if (auto e = encrypt(r, value, key_.bytes()); !e) return e;
    if (auto s = store_.add_secret(r); !s) return s;
    return secret_info{r.name, r.version, r.created_at, r.created_by};
}

Result<secret_info> secret_store::set(const std::string& name, const std::string& value, const std::string& by) {
    return add(name, value, by, false);
}

Result<secret_info> secret_store::rotate(const std::string& name, const std::string& value, const std::string& by) {
    return add(name, value, by, true);
}

Result<std::vector<secret_info>> secret_store::list() {
    auto all = store_.secret_versions("");
    if (!all) return all.status();
    std::vector<secret_info> out;
    for (auto& r : *all) out.push_back({r.name, r.version, r.created_at, r.created_by, r.ciphertext.empty()});
    return out;
}

Result<std::pair<std::string, secret_info>> secret_store::current(const std::string& name) {
    auto have = store_.secret_versions(name);
    if (!have) return have.status();
    if (have->empty())
        return Status::error(error_kind::config, "no secret named " + name + "; `syncwarden secrets set " + name +
                                                     "` stores it (the value is read from stdin)");
    const secret_record& r = have->back();
    auto value = decrypt(r, key_.bytes());
    if (!value)
        return Status::error(value.status().kind(), value.status().message() + " with the master key from " +
                                                       key_.source() + ": the key is not the one it was stored with, or "
                                                       "the store was altered");
    return std::make_pair(std::move(*value), secret_info{r.name, r.version, r.created_at, r.created_by});
}

Result<secret_info> secret_store::retire(const std::string& name, uint32_t version) {
    auto have = store_.secret_versions(name);
    if (!have) return have.status();
    if (have->empty()) return Status::error(error_kind::not_found, "no secret named " + name);
    for (auto& r : *have) {
        if (r.version != version) continue;
        if (&r == &have->back())
            return Status::error(error_kind::usage, "version " + std::to_string(version) + " is secret " + name +
                                                        "'s current one, which runs use; `syncwarden secrets rotate " +
                                                        name + "` first, then retire it");
        if (r.ciphertext.empty())
            return Status::error(error_kind::usage, "secret " + name + " version " + std::to_string(version) +
                                                        " is retired already");
        secret_record gone = r;
        gone.nonce.clear();
        gone.ciphertext.clear();
        gone.tag.clear();
        if (auto st = store_.update_secret(gone); !st) return st;
        return secret_info{r.name, r.version, r.created_at, r.created_by, true};
    }
    return Status::error(error_kind::not_found, "secret " + name + " has no version " + std::to_string(version) +
                                                    "; `syncwarden secrets list` shows its versions");
}

Result<size_t> secret_store::rekey(const std::array<unsigned char, 32>& next) {
    auto all = store_.secret_versions("");
    if (!all) return all.status();
    size_t n = 0;
    for (auto& r : *all) {
        if (r.ciphertext.empty()) continue;  // retired
        auto value = decrypt(r, key_.bytes());
        if (!value)
            return Status::error(value.status().kind(), value.status().message() + " with the master key from " +
                                                           key_.source() + "; nothing was re-encrypted");
        secret_record again = r;
        if (auto e = encrypt(again, *value, next); !e) return e;
        OPENSSL_cleanse(value->data(), value->size());
        if (auto st = store_.update_secret(again); !st) return st;
        ++n;
    }
    return n;
}

bool secret_store::opens_with(const std::array<unsigned char, 32>& key) {
    auto all = store_.secret_versions("");
    if (!all) return false;
    for (auto& r : *all)
        if (!r.ciphertext.empty()) return static_cast<bool>(decrypt(r, key));
    return false;
}

std::string master_key::key_id() const {
    sha256 d;
    d.update(std::string("syncwarden-master-key-id", 24));
    d.update(key_.data(), key_.size());
    return d.hex().substr(0, 16);
}

master_key master_key::from_bytes(const std::array<unsigned char, 32>& bytes, std::string source) {
    master_key k;
    k.key_ = bytes;
    k.source_ = std::move(source);
    return k;
}

Result<std::array<unsigned char, 32>> master_key::parse(std::string_view hex, const std::string& source) {
    std::array<unsigned char, 32> out{};
    if (auto s = from_hex_key(hex, out, source); !s) return s;
    return out;
}

bool names_a_secret(const nlohmann::json& j) {
    if (j.is_object() && j.contains("$secret")) return true;
    if (j.is_structured())
        for (auto& v : j)
            if (names_a_secret(v)) return true;
    return false;
}

Result<nlohmann::json> resolve_secrets(const nlohmann::json& j, secret_store* secrets, const std::string& where,
                                       std::vector<secret_use>& used) {
    if (j.is_object() && j.contains("$secret")) {
        const auto& n = j["$secret"];
        if (j.size() != 1 || !n.is_string())
            return Status::error(error_kind::config, where + ": a secret is written {\"$secret\": \"NAME\"} and nothing "
                                                             "else, found " + j.dump());
        const std::string name = n.get<std::string>();
        if (!secrets) return Status::error(error_kind::config, where + ": secret " + name + " cannot be read here");
        auto v = secrets->current(name);
        if (!v) return v.status().context(where);
        const bool long_enough = pii::scrub_secret(v->first, name);
        used.push_back({name, v->second.version, !long_enough});
        return nlohmann::json(std::move(v->first));
    }
    nlohmann::json out = j;
    if (j.is_array()) {
        for (size_t i = 0; i < j.size(); ++i) {
            auto e = resolve_secrets(j[i], secrets, where + "[" + std::to_string(i) + "]", used);
            if (!e) return e;
            out[i] = std::move(*e);
        }
    } else if (j.is_object()) {
        for (auto& [k, v] : j.items()) {
            auto e = resolve_secrets(v, secrets, where + "." + k, used);
            if (!e) return e;
            out[k] = std::move(*e);
        }
    }
    return out;
}

}  // namespace syncwarden::kernel
