// SHA-256, for plan digests, release files and state tokens.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace syncwarden::kernel {

// Incremental SHA-256 (OpenSSL).
class sha256 {
public:
    sha256();
    ~sha256();
    sha256(const sha256&) = delete;
    sha256& operator=(const sha256&) = delete;
    void update(const void* data, size_t n);
    void update(std::string_view s) { update(s.data(), s.size()); }
    std::string hex();  // finishes the digest

private:
    void* ctx_;
};

// Lowercase hex of bytes, and back (false for odd lengths or non-hex
// digits; both cases of a-f are read).
std::string to_hex(const unsigned char* p, size_t n);
bool from_hex(std::string_view text, std::vector<unsigned char>& out);

// SHA-256 of a file, hex; empty with `error` set when it cannot be read.
std::string sha256_file_hex(const std::filesystem::path& p, std::string* error);

}  // namespace syncwarden::kernel
