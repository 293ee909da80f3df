// SHA-256, for plan digests, release files and state tokens.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

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

// SHA-256 of a file, hex; empty with `error` set when it cannot be read.
std::string sha256_file_hex(const std::filesystem::path& p, std::string* error);

}  // namespace syncwarden::kernel
