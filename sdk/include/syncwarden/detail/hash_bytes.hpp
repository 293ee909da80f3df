// The 64-bit hash the kernel keys its indexes and change ids with, for
// code on both sides of the ABI (the bundled connectors' key sets use it
// too). Not a cryptographic digest, and not part of the ABI: the kernel's
// change ids depend on it never changing, which its test holds it to.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace syncwarden::detail {

// Eight bytes a step, then a final mix.
inline uint64_t hash_bytes(std::string_view s) {
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ s.size();
    size_t i = 0;
    for (; i + 8 <= s.size(); i += 8) {
        uint64_t w;
        std::memcpy(&w, s.data() + i, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdULL;
        h ^= h >> 29;
    }
    // The last 0 to 7 bytes as a little-endian number, as a memcpy into a
    // zeroed word would give, from loads of fixed size: a memcpy of a
    // length known only here is a call, and the read of what it wrote
    // waits for its byte stores.
    uint64_t tail = 0;
    const unsigned char* t = reinterpret_cast<const unsigned char*>(s.data()) + i;
    if (const size_t r = s.size() - i; r >= 4) {
        uint32_t lo, hi;
        std::memcpy(&lo, t, 4);
        std::memcpy(&hi, t + r - 4, 4);
        tail = lo | (uint64_t(hi) << (8 * (r - 4)));
    } else if (r > 0) {
        tail = t[0] | (uint64_t(t[r / 2]) << (8 * (r / 2))) | (uint64_t(t[r - 1]) << (8 * (r - 1)));
    }
    h = (h ^ tail) * 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 32;
    h *= 0xff51afd7ed558ccdULL;
    return h ^ (h >> 29);
}

}  // namespace syncwarden::detail
