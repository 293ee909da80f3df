// The audit log's signing key: Ed25519 through OpenSSL 3's EVP API. The
// private key is created at first use as a PEM file of mode 0600; its public
// half is what an auditor needs to check signed tree heads and proofs.
#pragma once

#include <syncwarden/kernel/result.hpp>

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

namespace syncwarden::kernel {

class signing_key {
public:
    // Loads the key at `file`, or creates it (mode 0600, its folder 0700)
    // when there is none. Refuses a key file others can read.
    static Result<signing_key> load_or_create(const std::filesystem::path& file);
    // Loads the key at `file` (not_found when there is none).
    static Result<signing_key> load(const std::filesystem::path& file);
    // A new key, written to `file` (which must not exist), mode 0600.
    static Result<signing_key> create(const std::filesystem::path& file);
    ~signing_key();
    signing_key(signing_key&&) noexcept;
    signing_key& operator=(signing_key&&) noexcept;

    // The Ed25519 signature of `message`, hex.
    Result<std::string> sign(std::string_view message) const;
    // The public key as PEM (SubjectPublicKeyInfo), for `audit public-key`.
    std::string public_pem() const;
    // The first 16 hex digits of the SHA-256 of the raw public key.
    const std::string& key_id() const { return key_id_; }

private:
    signing_key() = default;
    void* pkey_ = nullptr;  // EVP_PKEY*
    std::string key_id_;
};

// A public key read from PEM text, for verifying without the private key.
class verify_key {
public:
    static Result<verify_key> from_pem(std::string_view pem);
    ~verify_key();
    verify_key(verify_key&&) noexcept;
    verify_key& operator=(verify_key&&) noexcept;
    // Whether `signature_hex` is this key's Ed25519 signature of `message`.
    bool verify(std::string_view message, std::string_view signature_hex) const;
    const std::string& key_id() const { return key_id_; }

private:
    verify_key() = default;
    void* pkey_ = nullptr;
    std::string key_id_;
};

}  // namespace syncwarden::kernel
