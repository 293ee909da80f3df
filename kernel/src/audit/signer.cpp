#include <syncwarden/kernel/digest.hpp>
#include <syncwarden/kernel/signer.hpp>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace fs = std::filesystem;

namespace syncwarden::kernel {
namespace {

EVP_PKEY* as_key(void* p) { return static_cast<EVP_PKEY*>(p); }

std::string openssl_error() {
    const unsigned long e = ERR_get_error();
    if (!e) return "unknown OpenSSL error";
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    return buf;
}

std::string id_of(EVP_PKEY* k) {
    unsigned char raw[64];
    size_t n = sizeof raw;
    if (EVP_PKEY_get_raw_public_key(k, raw, &n) != 1) return {};
    sha256 h;
    h.update(raw, n);
    return h.hex().substr(0, 16);
}


Status write_new_key(const fs::path& file, EVP_PKEY* k) {
    std::error_code ec;
    fs::create_directories(file.parent_path(), ec);
    ::chmod(file.parent_path().c_str(), 0700);
    const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return Status::error(error_kind::store, "creating the audit signing key " + file.string() + ": " +
                                                    std::strerror(errno));
    FILE* f = ::fdopen(fd, "w");
    if (!f) {
        ::close(fd);
        return Status::error(error_kind::store, "creating the audit signing key " + file.string());
    }
    const bool ok = PEM_write_PrivateKey(f, k, nullptr, nullptr, 0, nullptr, nullptr) == 1;
    const bool flushed = std::fflush(f) == 0 && ::fsync(fd) == 0;
    std::fclose(f);
    if (!ok || !flushed)
        return Status::error(error_kind::store, "writing the audit signing key " + file.string() + ": " + openssl_error());
    return Status::ok();
}

}  // namespace

Result<signing_key> signing_key::load(const fs::path& file) {
    signing_key out;
    struct stat st {};
    if (::stat(file.c_str(), &st) != 0)
        return Status::error(error_kind::not_found, "reading the audit signing key " + file.string() + ": " +
                                                        std::strerror(errno));
    if (st.st_mode & 077) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%03o", static_cast<unsigned>(st.st_mode & 0777));
        return Status::error(error_kind::config, "the audit signing key " + file.string() +
                                                     " can be read by others (mode " + mode +
                                                     "); make it private: chmod 600 " + file.string());
    }
    FILE* f = std::fopen(file.c_str(), "r");
    if (!f) return Status::error(error_kind::store, "reading the audit signing key " + file.string() + ": " + std::strerror(errno));
    EVP_PKEY* k = PEM_read_PrivateKey(f, nullptr, nullptr, nullptr);
    std::fclose(f);
    if (!k || EVP_PKEY_get_id(k) != EVP_PKEY_ED25519) {
        if (k) EVP_PKEY_free(k);
        return Status::error(error_kind::config, "the audit signing key " + file.string() +
                                                     " is not an Ed25519 private key in PEM form");
    }
    out.pkey_ = k;
    out.key_id_ = id_of(as_key(out.pkey_));
    return out;
}

Result<signing_key> signing_key::create(const fs::path& file) {
    signing_key out;
    EVP_PKEY* k = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
    if (!k) return Status::error(error_kind::internal, "creating an Ed25519 key: " + openssl_error());
    out.pkey_ = k;
    if (auto s = write_new_key(file, k); !s) return s;
    out.key_id_ = id_of(as_key(out.pkey_));
    return out;
}

Result<signing_key> signing_key::load_or_create(const fs::path& file) {
    struct stat st {};
    if (::stat(file.c_str(), &st) == 0) return load(file);
    return create(file);
}

signing_key::~signing_key() {
    if (pkey_) EVP_PKEY_free(as_key(pkey_));
}
signing_key::signing_key(signing_key&& o) noexcept : pkey_(o.pkey_), key_id_(std::move(o.key_id_)) { o.pkey_ = nullptr; }
signing_key& signing_key::operator=(signing_key&& o) noexcept {
    std::swap(pkey_, o.pkey_);
    std::swap(key_id_, o.key_id_);
    return *this;
}

Result<std::string> signing_key::sign(std::string_view message) const {
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    unsigned char sig[64];
    size_t n = sizeof sig;
    if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, as_key(pkey_)) != 1 ||
        EVP_DigestSign(ctx.get(), sig, &n, reinterpret_cast<const unsigned char*>(message.data()), message.size()) != 1)
        return Status::error(error_kind::internal, "signing with the audit key: " + openssl_error());
    return to_hex(sig, n);
}

std::string signing_key::public_pem() const {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
    if (!bio || PEM_write_bio_PUBKEY(bio.get(), as_key(pkey_)) != 1) return {};
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<size_t>(n));
}

Result<verify_key> verify_key::from_pem(std::string_view pem) {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
    EVP_PKEY* k = bio ? PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr) : nullptr;
    if (!k || EVP_PKEY_get_id(k) != EVP_PKEY_ED25519) {
        if (k) EVP_PKEY_free(k);
        return Status::error(error_kind::usage, "not an Ed25519 public key in PEM form (`syncwarden audit public-key` "
                                                "writes one)");
    }
    verify_key out;
    out.pkey_ = k;
    out.key_id_ = id_of(k);
    return out;
}

verify_key::~verify_key() {
    if (pkey_) EVP_PKEY_free(as_key(pkey_));
}
verify_key::verify_key(verify_key&& o) noexcept : pkey_(o.pkey_), key_id_(std::move(o.key_id_)) { o.pkey_ = nullptr; }
verify_key& verify_key::operator=(verify_key&& o) noexcept {
    std::swap(pkey_, o.pkey_);
    std::swap(key_id_, o.key_id_);
    return *this;
}

bool verify_key::verify(std::string_view message, std::string_view signature_hex) const {
    std::vector<unsigned char> sig;
    if (!from_hex(signature_hex, sig) || sig.size() != 64) return false;
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, as_key(pkey_)) != 1) return false;
    return EVP_DigestVerify(ctx.get(), sig.data(), sig.size(), reinterpret_cast<const unsigned char*>(message.data()),
                            message.size()) == 1;
}

}  // namespace syncwarden::kernel
