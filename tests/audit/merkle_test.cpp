// The audit log's Merkle tree against the RFC 6962 reference vectors, every
// proof of many tree shapes, and the verifier's refusals: a proof that is
// one bit off, for the wrong index or size, too short or too long.
#include <syncwarden/kernel/merkle.hpp>

#include <gtest/gtest.h>

#include <string>
#include <vector>

using namespace syncwarden::kernel::merkle;

namespace {

std::string unhex(const std::string& s) {
    std::string out;
    for (size_t i = 0; i + 1 < s.size(); i += 2) out += static_cast<char>(std::stoi(s.substr(i, 2), nullptr, 16));
    return out;
}

hash h(const std::string& hex) {
    hash out{};
    EXPECT_TRUE(from_hex(hex, out)) << hex;
    return out;
}

// RFC 6962's test leaves, as Certificate Transparency's own tests use them.
std::vector<hash> reference_leaves() {
    std::vector<hash> out;
    for (auto x : {"", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"})
        out.push_back(leaf_hash(unhex(x)));
    return out;
}

const char* const k_roots[] = {
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
};

std::vector<hash> leaves_of(size_t n) {
    std::vector<hash> out;
    for (size_t i = 0; i < n; ++i) out.push_back(leaf_hash("entry " + std::to_string(i)));
    return out;
}

}  // namespace

TEST(merkle, roots_match_the_rfc_6962_reference_for_every_size) {
    auto leaves = reference_leaves();
    for (uint64_t n = 0; n <= 8; ++n) EXPECT_EQ(to_hex(root(leaves, n)), k_roots[n]) << "size " << n;
}

TEST(merkle, proofs_match_the_reference_proofs) {
    auto leaves = reference_leaves();
    std::vector<hash> want0{h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
                            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                            h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4")};
    EXPECT_EQ(inclusion_proof(leaves, 0, 8), want0);
    std::vector<hash> want5{h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
                            h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
                            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")};
    EXPECT_EQ(inclusion_proof(leaves, 5, 8), want5);
    std::vector<hash> want25{h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                             h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b")};
    EXPECT_EQ(consistency_proof(leaves, 2, 5), want25);
}

TEST(merkle, every_inclusion_proof_of_every_tree_shape_verifies) {
    auto leaves = leaves_of(37);
    for (uint64_t n = 1; n <= leaves.size(); ++n) {
        const hash r = root(leaves, n);
        for (uint64_t i = 0; i < n; ++i)
            ASSERT_TRUE(verify_inclusion(leaves[i], i, n, inclusion_proof(leaves, i, n), r)) << i << " of " << n;
    }
}

TEST(merkle, every_consistency_proof_of_every_pair_of_sizes_verifies) {
    auto leaves = leaves_of(33);
    for (uint64_t m = 0; m <= leaves.size(); ++m)
        for (uint64_t n = m; n <= leaves.size(); ++n)
            ASSERT_TRUE(verify_consistency(m, n, root(leaves, m), root(leaves, n), consistency_proof(leaves, m, n)))
                << m << " -> " << n;
}

// A verifier that accepts what it should not is worse than none: every way
// a proof can be forged or misapplied is refused.
TEST(merkle, forged_or_misapplied_inclusion_proofs_are_refused) {
    auto leaves = leaves_of(21);
    const uint64_t n = 21, i = 13;
    const hash r = root(leaves, n);
    const auto proof = inclusion_proof(leaves, i, n);
    ASSERT_TRUE(verify_inclusion(leaves[i], i, n, proof, r));
    EXPECT_FALSE(verify_inclusion(leaves[i + 1], i, n, proof, r)) << "another leaf";
    EXPECT_FALSE(verify_inclusion(leaves[i], i - 1, n, proof, r)) << "another index";
    EXPECT_FALSE(verify_inclusion(leaves[i], i + 1, n, proof, r)) << "another index";
    // Sizes whose trees have another shape at this index. (Sizes with the
    // same shape, 20 or 22 here, verify too: RFC 9162's algorithm binds the
    // size only through the root, and the log signs the two together.)
    EXPECT_FALSE(verify_inclusion(leaves[i], i, 16, proof, r)) << "a smaller tree";
    EXPECT_FALSE(verify_inclusion(leaves[i], i, 40, proof, r)) << "a larger tree";
    EXPECT_FALSE(verify_inclusion(leaves[i], n, n, proof, r)) << "an index past the end";
    EXPECT_FALSE(verify_inclusion(leaves[i], i, n, proof, root(leaves, n - 1))) << "another root";
    for (size_t k = 0; k < proof.size(); ++k)
        for (int bit : {0, 7}) {
            auto bad = proof;
            bad[k][bit % 32] ^= static_cast<uint8_t>(1u << bit);
            EXPECT_FALSE(verify_inclusion(leaves[i], i, n, bad, r)) << "bit flipped in proof[" << k << "]";
        }
    auto shorter = proof;
    shorter.pop_back();
    EXPECT_FALSE(verify_inclusion(leaves[i], i, n, shorter, r)) << "a proof cut short";
    auto longer = proof;
    longer.push_back(r);
    EXPECT_FALSE(verify_inclusion(leaves[i], i, n, longer, r)) << "a proof with an extra hash";
    EXPECT_FALSE(verify_inclusion(leaves[i], i, n, {}, r)) << "no proof";
    // A leaf hash presented as an interior node (the second-preimage attack
    // the 0x00/0x01 prefixes exist for): the parent of leaves 0 and 1 is not
    // a leaf of the tree.
    const hash parent = node_hash(leaves[0], leaves[1]);
    auto from_parent = inclusion_proof(leaves, 0, n);
    from_parent.erase(from_parent.begin());
    EXPECT_FALSE(verify_inclusion(parent, 0, n - 1, from_parent, r));
}

TEST(merkle, forged_consistency_proofs_are_refused) {
    auto leaves = leaves_of(20);
    const uint64_t m = 7, n = 20;
    const hash a = root(leaves, m), b = root(leaves, n);
    const auto proof = consistency_proof(leaves, m, n);
    ASSERT_TRUE(verify_consistency(m, n, a, b, proof));
    EXPECT_FALSE(verify_consistency(m, n, root(leaves, m - 1), b, proof)) << "another old root";
    EXPECT_FALSE(verify_consistency(m, n, a, root(leaves, n - 1), proof)) << "another new root";
    EXPECT_FALSE(verify_consistency(m + 1, n, a, b, proof)) << "another old size";
    EXPECT_FALSE(verify_consistency(m, 33, a, b, proof)) << "another new size";
    EXPECT_FALSE(verify_consistency(m, 8, a, b, proof)) << "another new size";
    EXPECT_FALSE(verify_consistency(n, m, b, a, proof)) << "sizes swapped";
    EXPECT_FALSE(verify_consistency(m, n, a, b, {})) << "no proof";
    for (size_t k = 0; k < proof.size(); ++k) {
        auto bad = proof;
        bad[k][3] ^= 0x10;
        EXPECT_FALSE(verify_consistency(m, n, a, b, bad)) << "a bit flipped in proof[" << k << "]";
    }
    // A log rewritten from entry 5 on: same sizes, different history.
    auto rewritten = leaves;
    rewritten[5] = leaf_hash("forged");
    EXPECT_FALSE(verify_consistency(m, n, a, root(rewritten, n), consistency_proof(rewritten, m, n)));
    // Equal sizes need equal roots and no proof.
    EXPECT_TRUE(verify_consistency(m, m, a, a, {}));
    EXPECT_FALSE(verify_consistency(m, m, a, b, {}));
    EXPECT_FALSE(verify_consistency(m, m, a, a, proof));
}

TEST(merkle, hex_round_trips_and_refuses_what_is_not_a_hash) {
    auto x = leaf_hash("x");
    hash back{};
    ASSERT_TRUE(from_hex(to_hex(x), back));
    EXPECT_EQ(back, x);
    EXPECT_FALSE(from_hex("abc", back));
    EXPECT_FALSE(from_hex(std::string(64, 'g'), back));
}

TEST(merkle, a_frontier_grows_to_the_same_roots_as_the_whole_tree) {
    auto leaves = leaves_of(70);
    frontier f;
    EXPECT_EQ(f.root(), empty_root());
    for (uint64_t n = 1; n <= leaves.size(); ++n) {
        f.append(leaves[n - 1]);
        ASSERT_EQ(f.size(), n);
        ASSERT_EQ(f.root(), root(leaves, n)) << "size " << n;
    }
    frontier back;
    ASSERT_TRUE(frontier::restore(f.size(), f.nodes(), back));
    back.append(leaf_hash("next"));
    leaves.push_back(leaf_hash("next"));
    EXPECT_EQ(back.root(), root(leaves, leaves.size()));
    frontier bad;
    EXPECT_FALSE(frontier::restore(70, {leaves[0]}, bad)) << "70 has three set bits, so three nodes";
}
