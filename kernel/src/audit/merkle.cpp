#include <syncwarden/kernel/merkle.hpp>

#include <openssl/evp.h>

#include <memory>

namespace syncwarden::kernel::merkle {
namespace {

// The largest power of two strictly below n (n >= 2).
uint64_t split(uint64_t n) {
    uint64_t k = 1;
    while (k << 1 < n) k <<= 1;
    return k;
}

hash range_root(const std::vector<hash>& leaves, uint64_t begin, uint64_t end) {
    const uint64_t n = end - begin;
    if (n == 1) return leaves[begin];
    const uint64_t k = split(n);
    return node_hash(range_root(leaves, begin, begin + k), range_root(leaves, begin + k, end));
}

void path(const std::vector<hash>& leaves, uint64_t m, uint64_t begin, uint64_t end, std::vector<hash>& out) {
    const uint64_t n = end - begin;
    if (n <= 1) return;
    const uint64_t k = split(n);
    if (m < k) {
        path(leaves, m, begin, begin + k, out);
        out.push_back(range_root(leaves, begin + k, end));
    } else {
        path(leaves, m - k, begin + k, end, out);
        out.push_back(range_root(leaves, begin, begin + k));
    }
}

void subproof(const std::vector<hash>& leaves, uint64_t m, uint64_t begin, uint64_t end, bool whole,
              std::vector<hash>& out) {
    const uint64_t n = end - begin;
    if (m == n) {
        if (!whole) out.push_back(range_root(leaves, begin, end));
        return;
    }
    const uint64_t k = split(n);
    if (m <= k) {
        subproof(leaves, m, begin, begin + k, whole, out);
        out.push_back(range_root(leaves, begin + k, end));
    } else {
        subproof(leaves, m - k, begin + k, end, false, out);
        out.push_back(range_root(leaves, begin, begin + k));
    }
}

}  // namespace

namespace {

// One digest context per thread, reused: a verify hashes millions of leaves.
hash digest(std::initializer_list<std::string_view> parts) {
    thread_local std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    // Fetched once: EVP_sha256() in each init takes OpenSSL's provider lock.
    thread_local std::unique_ptr<EVP_MD, decltype(&EVP_MD_free)> md(EVP_MD_fetch(nullptr, "SHA256", nullptr), EVP_MD_free);
    EVP_DigestInit_ex(ctx.get(), md.get(), nullptr);
    for (auto p : parts) EVP_DigestUpdate(ctx.get(), p.data(), p.size());
    hash out;
    unsigned n = 0;
    EVP_DigestFinal_ex(ctx.get(), out.data(), &n);
    return out;
}

std::string_view bytes(const hash& h) { return {reinterpret_cast<const char*>(h.data()), h.size()}; }

}  // namespace

hash leaf_hash(std::string_view entry) { return digest({std::string_view("\0", 1), entry}); }

hash node_hash(const hash& left, const hash& right) {
    return digest({std::string_view("\1", 1), bytes(left), bytes(right)});
}

hash empty_root() { return digest({}); }

hash root(const std::vector<hash>& leaves, uint64_t size) {
    if (size == 0 || size > leaves.size()) return empty_root();
    return range_root(leaves, 0, size);
}

std::vector<hash> inclusion_proof(const std::vector<hash>& leaves, uint64_t index, uint64_t size) {
    std::vector<hash> out;
    if (size > leaves.size() || index >= size) return out;
    path(leaves, index, 0, size, out);
    return out;
}

std::vector<hash> consistency_proof(const std::vector<hash>& leaves, uint64_t old_size, uint64_t new_size) {
    std::vector<hash> out;
    if (new_size > leaves.size() || old_size == 0 || old_size >= new_size) return out;
    subproof(leaves, old_size, 0, new_size, true, out);
    return out;
}

bool verify_inclusion(const hash& leaf, uint64_t index, uint64_t size, const std::vector<hash>& proof,
                      const hash& root) {
    if (index >= size) return false;
    uint64_t fn = index, sn = size - 1;
    hash r = leaf;
    for (const hash& p : proof) {
        if (sn == 0) return false;
        if ((fn & 1) || fn == sn) {
            r = node_hash(p, r);
            if (!(fn & 1))
                while (!(fn & 1) && fn != 0) {
                    fn >>= 1;
                    sn >>= 1;
                }
        } else {
            r = node_hash(r, p);
        }
        fn >>= 1;
        sn >>= 1;
    }
    return sn == 0 && r == root;
}

bool verify_consistency(uint64_t old_size, uint64_t new_size, const hash& old_root, const hash& new_root,
                        const std::vector<hash>& proof) {
    if (old_size > new_size) return false;
    if (old_size == new_size) return proof.empty() && old_root == new_root;
    if (old_size == 0) return proof.empty();
    if (proof.empty()) return false;
    std::vector<hash> path;
    // A first tree whose size is a power of two is a node of the second:
    // its root starts the path.
    if ((old_size & (old_size - 1)) == 0) path.push_back(old_root);
    path.insert(path.end(), proof.begin(), proof.end());
    uint64_t fn = old_size - 1, sn = new_size - 1;
    while (fn & 1) {
        fn >>= 1;
        sn >>= 1;
    }
    hash fr = path[0], sr = path[0];
    for (size_t i = 1; i < path.size(); ++i) {
        const hash& c = path[i];
        if (sn == 0) return false;
        if ((fn & 1) || fn == sn) {
            fr = node_hash(c, fr);
            sr = node_hash(c, sr);
            if (!(fn & 1))
                while (!(fn & 1) && fn != 0) {
                    fn >>= 1;
                    sn >>= 1;
                }
        } else {
            sr = node_hash(sr, c);
        }
        fn >>= 1;
        sn >>= 1;
    }
    return fr == old_root && sr == new_root && sn == 0;
}

void frontier::append(const hash& leaf) {
    hash carry = leaf;
    // Each trailing set bit of the old size is a perfect subtree of that
    // height which the new leaf now completes.
    for (uint64_t n = size_; n & 1; n >>= 1) {
        carry = node_hash(nodes_.back(), carry);
        nodes_.pop_back();
    }
    nodes_.push_back(carry);
    ++size_;
}

hash frontier::root() const {
    if (nodes_.empty()) return empty_root();
    hash r = nodes_.back();
    for (size_t i = nodes_.size() - 1; i-- > 0;) r = node_hash(nodes_[i], r);
    return r;
}

bool frontier::restore(uint64_t size, std::vector<hash> nodes, frontier& out) {
    if (static_cast<size_t>(__builtin_popcountll(size)) != nodes.size()) return false;
    out.size_ = size;
    out.nodes_ = std::move(nodes);
    return true;
}

std::string to_hex(const hash& h) {
    static const char* digits = "0123456789abcdef";
    std::string out(64, '0');
    for (size_t i = 0; i < h.size(); ++i) {
        out[2 * i] = digits[h[i] >> 4];
        out[2 * i + 1] = digits[h[i] & 15];
    }
    return out;
}

bool from_hex(std::string_view text, hash& out) {
    if (text.size() != 64) return false;
    auto nib = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    for (size_t i = 0; i < 32; ++i) {
        const int hi = nib(text[2 * i]), lo = nib(text[2 * i + 1]);
        if (hi < 0 || lo < 0) return false;
        out[i] = static_cast<uint8_t>(hi << 4 | lo);
    }
    return true;
}

}  // namespace syncwarden::kernel::merkle
