#include <syncwarden/kernel/digest.hpp>

#include <openssl/evp.h>

#include <fstream>
#include <vector>

namespace syncwarden::kernel {

sha256::sha256() : ctx_(EVP_MD_CTX_new()) {
    EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), EVP_sha256(), nullptr);
}

sha256::~sha256() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_)); }

void sha256::update(const void* data, size_t n) { EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), data, n); }

std::string sha256::hex() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(ctx_), md, &n);
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (unsigned i = 0; i < n; ++i) {
        out += digits[md[i] >> 4];
        out += digits[md[i] & 15];
    }
    return out;
}

std::string sha256_file_hex(const std::filesystem::path& p, std::string* error) {
    std::ifstream in(p, std::ios::binary);
    if (!in) {
        if (error) *error = "cannot read " + p.string();
        return {};
    }
    sha256 h;
    std::vector<char> buf(1 << 16);
    while (in) {
        in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
        h.update(buf.data(), static_cast<size_t>(in.gcount()));
    }
    if (in.bad()) {
        if (error) *error = "reading " + p.string() + " failed";
        return {};
    }
    return h.hex();
}

}  // namespace syncwarden::kernel
