// Records of one entity, held compactly: the field text in large arena blocks
// plus a few integers per record, never one object per record or field.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

namespace syncwarden::kernel {

// The first and the last sizeof(T) bytes of x and y (n >= sizeof(T)) are
// equal: with n <= 2 * sizeof(T), the two reads cover every byte.
template <class T>
inline bool ends_equal(const char* x, const char* y, size_t n) {
    T x0, x1, y0, y1;
    std::memcpy(&x0, x, sizeof(T));
    std::memcpy(&y0, y, sizeof(T));
    std::memcpy(&x1, x + n - sizeof(T), sizeof(T));
    std::memcpy(&y1, y + n - sizeof(T), sizeof(T));
    return ((x0 ^ y0) | (x1 ^ y1)) == 0;
}

// a == b for the short values of a roster (ids, names, dates: under 17
// bytes), inline: two overlapping 8-byte (or 4-byte) reads of each instead
// of a call to memcmp. The diff compares every field of every record.
inline bool same_bytes(std::string_view a, std::string_view b) {
    const size_t n = a.size();
    if (n != b.size()) return false;
    const char *x = a.data(), *y = b.data();
    if (n > 16) return std::memcmp(x, y, n) == 0;
    if (n >= 8) return ends_equal<uint64_t>(x, y, n);
    if (n >= 4) return ends_equal<uint32_t>(x, y, n);
    for (size_t i = 0; i < n; ++i)
        if (x[i] != y[i]) return false;
    return true;
}

class record_set {
public:
    explicit record_set(size_t field_count);

    // `values` holds field_count() views; they are copied.
    void add(std::string_view key, const std::string_view* values, uint8_t state);
    size_t size() const { return start_.size(); }
    size_t field_count() const { return nf_; }
    std::string_view key(size_t i) const { return piece(i, 0); }
    std::string_view field(size_t i, size_t f) const { return piece(i, f + 1); }
    uint8_t state(size_t i) const { return state_[i] & k_state_bits; }

    // Two records with one key: the first one and a later one.
    struct duplicate { size_t first, second; };

    // Sorts an index by key; afterwards sorted(n) is the n-th record in key
    // order. Returns the keys that occur more than once.
    std::vector<duplicate> sort_by_key();
    size_t sorted(size_t n) const { return order_[n]; }
    // After sort_by_key: the record with this key.
    std::optional<size_t> find(std::string_view key) const;
    // An index over the keys, for lookups while records stream in. The
    // first record wins where a key occurs twice; those are returned.
    // Records that arrived in key order (a file the target keeps sorted)
    // need no table: a lookup searches them by halves, and only when many
    // lookups come (a source in another order) is the hash table built.
    std::vector<duplicate> build_index();
    // Indexes the records added since the last call (the table grows as
    // needed), so the index is built while records arrive; build_index()
    // then only finishes it.
    void index_more();
    // After build_index: the record with this key.
    std::optional<size_t> lookup(std::string_view key) const;
    // The same, where the key is expected at or after record `hint` (the
    // diff's next target record). Records in key order answer a key that
    // is absent between hint-1 and hint at once, and one further on by
    // doubling steps from the hint, so a source in the target's order costs
    // no search that grows with the records.
    std::optional<size_t> lookup_near(std::string_view key, size_t hint) const;

private:
    std::string_view piece(size_t i, size_t p) const;
    char* reserve(size_t n);

    static constexpr size_t k_block = 1u << 22;
    // state_ per record: the state the caller gave (low bits), and how wide
    // its header's end offsets are (record_set.cpp).
    static constexpr uint8_t k_state_bits = 0x3f, k_wide2 = 0x40, k_wide4 = 0x80;
    size_t nf_;
    std::vector<std::unique_ptr<char[]>> blocks_;
    size_t used_in_last_ = 0;
    size_t last_capacity_ = 0;
    // Per record: where it starts in the arena. A record is nf_+1 end
    // offsets (key, then each field; 1, 2 or 4 bytes each) followed by its
    // text, so reading a field touches one place in memory.
    std::vector<const char*> start_;
    std::vector<uint8_t> state_;
    std::vector<uint32_t> order_;
    mutable std::vector<uint64_t> index_;  // open addressing: key hash's top 32 bits << 32 | record; 0 = empty
    mutable unsigned index_bits_ = 0;  // index_.size() == 1 << index_bits_
    mutable uint32_t indexed_ = 0;        // records [0, indexed_) are indexed (in order, or in index_)
    mutable std::vector<duplicate> dups_;  // found by index_more
    mutable bool ordered_ = true;         // every key so far is >= the one before: no table yet
    uint32_t run_ = 0;             // in order: the first record of the last key's run
    mutable size_t searches_ = 0;  // lookups by halves so far
    void hash_from(uint32_t from, bool report_duplicates) const;
    std::optional<size_t> search(std::string_view key, uint32_t lo, uint32_t hi) const;
};

uint64_t hash_bytes(std::string_view s);

}  // namespace syncwarden::kernel
