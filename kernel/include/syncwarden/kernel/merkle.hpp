// The audit log's Merkle tree, as RFC 6962 and RFC 9162 define it, so that
// any Certificate Transparency tool agrees with its roots and proofs:
//   leaf hash  SHA-256(0x00 || entry)
//   node hash  SHA-256(0x01 || left || right)
//   the tree of n leaves splits at the largest power of two below n.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace syncwarden::kernel::merkle {

using hash = std::array<uint8_t, 32>;

hash leaf_hash(std::string_view entry);
hash node_hash(const hash& left, const hash& right);
// The root of an empty tree: SHA-256 of nothing.
hash empty_root();

// The root of leaves [0, size) (RFC 6962 MTH). O(size).
hash root(const std::vector<hash>& leaves, uint64_t size);
// The inclusion proof of leaf `index` in the tree of the first `size`
// leaves (RFC 6962 PATH).
std::vector<hash> inclusion_proof(const std::vector<hash>& leaves, uint64_t index, uint64_t size);
// The proof that the tree of the first `old_size` leaves is a prefix of the
// tree of the first `new_size` (RFC 6962 PROOF).
std::vector<hash> consistency_proof(const std::vector<hash>& leaves, uint64_t old_size, uint64_t new_size);

// RFC 9162 2.1.3.2. Trusts nothing but its arguments.
bool verify_inclusion(const hash& leaf, uint64_t index, uint64_t size, const std::vector<hash>& proof,
                      const hash& root);
// RFC 9162 2.1.4.2, with the two edge cases it leaves to the caller: equal
// sizes need an empty proof and equal roots; anything extends an empty tree.
bool verify_consistency(uint64_t old_size, uint64_t new_size, const hash& old_root, const hash& new_root,
                        const std::vector<hash>& proof);

// The right edge of a growing tree: the roots of its perfect subtrees, one
// per set bit of its size, largest first. Appending a leaf and taking the
// root cost O(log size), so a log of millions of entries never reads its
// leaves back to grow.
class frontier {
public:
    uint64_t size() const { return size_; }
    void append(const hash& leaf);
    hash root() const;
    const std::vector<hash>& nodes() const { return nodes_; }
    // A frontier saved with a signed head; false when `nodes` cannot be the
    // frontier of a tree of `size` leaves.
    static bool restore(uint64_t size, std::vector<hash> nodes, frontier& out);

private:
    uint64_t size_ = 0;
    std::vector<hash> nodes_;
};

std::string to_hex(const hash& h);
// False when `text` is not 64 hex digits.
bool from_hex(std::string_view text, hash& out);

}  // namespace syncwarden::kernel::merkle
