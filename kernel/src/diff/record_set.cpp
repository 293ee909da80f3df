#include <syncwarden/kernel/record_set.hpp>
#include <syncwarden/detail/hash_bytes.hpp>

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace syncwarden::kernel {

record_set::record_set(size_t field_count) : nf_(field_count) {}

char* record_set::reserve(size_t n) {
    if (blocks_.empty() || used_in_last_ + n > last_capacity_) {
        last_capacity_ = std::max(k_block, n);
        // Not zeroed (make_unique<char[]> would write all of it before any
        // record does): each byte is written by the record placed on it.
        blocks_.push_back(std::unique_ptr<char[]>(new char[last_capacity_]));
        used_in_last_ = 0;
    }
    char* p = blocks_.back().get() + used_in_last_;
    used_in_last_ += n;
    return p;
}

// A record is its end offsets (key, then each field) followed by its text.
// The offsets take one byte each when the record's text is under 256 bytes
// (nearly every roster or person row), else two or four; the width is kept
// in the top bits of the record's state byte. Read with memcpy: nothing is
// aligned.
void record_set::add(std::string_view key, const std::string_view* values, uint8_t state) {
    size_t total = key.size();
    for (size_t f = 0; f < nf_; ++f) total += values[f].size();
    if (total > UINT32_MAX) throw std::length_error("record larger than 4 GiB");
    const unsigned width = total < 0x100 ? 1 : total < 0x10000 ? 2 : 4;
    const size_t header = (nf_ + 1) * width;
    char* p = reserve(header + total);
    start_.push_back(p);
    char* text = p + header;
    std::memcpy(text, key.data(), key.size());
    uint32_t off = static_cast<uint32_t>(key.size());
    auto put_end = [&](size_t at, uint32_t end) {
        if (width == 1) p[at] = static_cast<char>(end);
        else if (width == 2) {
            const uint16_t e = static_cast<uint16_t>(end);
            std::memcpy(p + at * 2, &e, 2);
        } else {
            std::memcpy(p + at * 4, &end, 4);
        }
    };
    put_end(0, off);
    for (size_t f = 0; f < nf_; ++f) {
        if (!values[f].empty()) std::memcpy(text + off, values[f].data(), values[f].size());
        off += static_cast<uint32_t>(values[f].size());
        put_end(f + 1, off);
    }
    state_.push_back(static_cast<uint8_t>((state & k_state_bits) | (width == 1 ? 0 : width == 2 ? k_wide2 : k_wide4)));
}

std::string_view record_set::piece(size_t i, size_t p) const {
    const char* s = start_[i];
    const uint8_t wide = state_[i] & (k_wide2 | k_wide4);
    if (wide == 0) {
        const uint32_t b = p == 0 ? 0 : static_cast<uint8_t>(s[p - 1]);
        return {s + nf_ + 1 + b, static_cast<uint8_t>(s[p]) - b};
    }
    if (wide == k_wide2) {
        uint16_t e[2] = {0, 0};
        if (p == 0) std::memcpy(&e[1], s, 2);
        else std::memcpy(e, s + (p - 1) * 2, 4);
        return {s + (nf_ + 1) * 2 + e[0], static_cast<size_t>(e[1] - e[0])};
    }
    uint32_t e[2] = {0, 0};
    if (p == 0) std::memcpy(&e[1], s, 4);
    else std::memcpy(e, s + (p - 1) * 4, 8);
    return {s + (nf_ + 1) * 4 + e[0], e[1] - e[0]};
}

std::vector<record_set::duplicate> record_set::sort_by_key() {
    order_.resize(size());
    for (uint32_t i = 0; i < order_.size(); ++i) order_[i] = i;
    std::stable_sort(order_.begin(), order_.end(),
                     [this](uint32_t a, uint32_t b) { return key(a) < key(b); });
    std::vector<duplicate> dups;
    for (size_t n = 1, run = 0; n < order_.size(); ++n) {
        if (key(order_[n]) != key(order_[run])) run = n;
        else dups.push_back({order_[run], order_[n]});
    }
    return dups;
}

std::optional<size_t> record_set::find(std::string_view k) const {
    auto it = std::lower_bound(order_.begin(), order_.end(), k,
                               [this](uint32_t a, std::string_view v) { return key(a) < v; });
    if (it == order_.end() || key(*it) != k) return std::nullopt;
    return *it;
}

uint64_t hash_bytes(std::string_view s) { return ::syncwarden::detail::hash_bytes(s); }

// Slot layout: the top 32 bits of the key's hash (with bit 63 forced on, so
// no slot is 0) above the record number. A probe only reads a record when
// the fingerprints match. A key's home slot is taken from the hash bits just
// below bit 63, which the fingerprint keeps: growing the table moves each
// slot without reading its key again.
namespace {
inline uint64_t fingerprint(uint64_t h) { return (h | (1ULL << 63)) & 0xffffffff00000000ULL; }
inline size_t home(uint64_t h, unsigned bits) { return static_cast<size_t>((h << 1) >> (64 - bits)); }
}  // namespace

void record_set::index_more() {
    const uint32_t n = static_cast<uint32_t>(size());
    if (ordered_) {
        // In key order so far: a key equal to the one before is a second copy.
        uint32_t i = indexed_;
        for (; i < n; ++i) {
            if (i == 0) continue;
            const int c = key(i - 1).compare(key(i));
            if (c > 0) break;
            if (c == 0) dups_.push_back({run_, i});
            else run_ = i;
        }
        if (i == n) {
            indexed_ = n;
            return;
        }
        // Out of order: a hash table over all of them, from the start.
        ordered_ = false;
        dups_.clear();
        indexed_ = 0;
    }
    hash_from(indexed_, true);
}

void record_set::hash_from(uint32_t from, bool report_duplicates) const {
    const uint32_t n = static_cast<uint32_t>(size());
    // At most 70% full: at a load of 1/2 a power of two could leave the
    // table at a third full and twice the size, and past the cache every
    // extra page of index costs address-translation misses (21M keys: 256
    // MiB, not 512). A probe runs on within one cache line.
    unsigned bits = std::max(index_bits_, 4u);
    while ((size_t(1) << bits) * 7 < size_t(n) * 10) ++bits;
    if (bits > 31) throw std::length_error("more than 1.5 billion records in one entity");
    if (bits != index_bits_) {
        std::vector<uint64_t> grown(size_t(1) << bits, 0);
        const size_t mask = grown.size() - 1;
        for (uint64_t e : index_) {
            if (!e) continue;
            size_t slot = home(e, bits);
            while (grown[slot] != 0) slot = (slot + 1) & mask;
            grown[slot] = e;
        }
        index_.swap(grown);
        index_bits_ = bits;
    }
    const size_t cap = index_.size();
    // The keys are hashed a window ahead and their slots prefetched, so the
    // cache miss of each insert overlaps the work on the ones before it.
    constexpr uint32_t k_ahead = 16;
    uint64_t ahead[k_ahead];
    for (uint32_t i = from; i < n && i < from + k_ahead; ++i) {
        ahead[i % k_ahead] = hash_bytes(key(i));
        __builtin_prefetch(&index_[home(ahead[i % k_ahead], bits)], 1);
    }
    for (uint32_t i = from; i < n; ++i) {
        const auto k = key(i);
        const uint64_t h = ahead[i % k_ahead], fp = fingerprint(h);
        if (i + k_ahead < n) {
            const uint64_t next = hash_bytes(key(i + k_ahead));
            ahead[i % k_ahead] = next;
            __builtin_prefetch(&index_[home(next, bits)], 1);
        }
        size_t slot = home(h, bits);
        bool dup = false;
        for (; index_[slot] != 0; slot = (slot + 1) & (cap - 1))
            if ((index_[slot] & 0xffffffff00000000ULL) == fp && same_bytes(key(index_[slot] & 0xffffffffULL), k)) {
                dup = true;
                break;
            }
        if (!dup) index_[slot] = fp | i;
        else if (report_duplicates) dups_.push_back({index_[slot] & 0xffffffffULL, i});
    }
    indexed_ = n;
}

std::vector<record_set::duplicate> record_set::build_index() {
    index_more();
    return dups_;
}

// Records in key order: the first in [lo, hi) with this key, by halves.
std::optional<size_t> record_set::search(std::string_view k, uint32_t lo, uint32_t hi) const {
    const uint32_t end = hi;
    while (lo < hi) {
        const uint32_t mid = lo + (hi - lo) / 2;
        if (key(mid) < k) lo = mid + 1;
        else hi = mid;
    }
    if (lo < end && same_bytes(key(lo), k)) return lo;
    return std::nullopt;
}

std::optional<size_t> record_set::lookup_near(std::string_view k, size_t hint) const {
    if (!ordered_ || hint > indexed_ || searches_ > size() / 64 + 4096) return lookup(k);
    const uint32_t n = indexed_, h = static_cast<uint32_t>(hint);
    if (h < n && key(h) == k && (h == 0 || key(h - 1) != k)) return h;
    // Between the record before the hint and the hint: a key the target
    // does not hold (a create), answered without a search.
    if ((h == n || k < key(h)) && (h == 0 || key(h - 1) < k)) return std::nullopt;
    if (h < n && key(h) < k) {
        // Further on: doubling steps from the hint bound it, then halves.
        uint32_t lo = h + 1, step = 1;
        while (lo + step <= n && key(lo + step - 1) < k) {
            lo += step;
            step *= 2;
        }
        if (step > 64) ++searches_;  // far from the hint: a source in another order counts toward the table
        return search(k, lo, std::min<uint32_t>(lo + step, n));
    }
    return lookup(k);  // before the hint
}

std::optional<size_t> record_set::lookup(std::string_view k) const {
    if (ordered_) {
        // By halves while lookups are few (the creates of a nightly); a
        // source in another order than the target's would make every
        // record one, and gets the hash table after the first
        // size/64 + 4096 of them.
        if (++searches_ <= size() / 64 + 4096) return search(k, 0, indexed_);
        ordered_ = false;
        hash_from(0, false);  // the copies are known already
    }
    if (index_.empty()) return std::nullopt;
    const size_t mask = index_.size() - 1;
    const uint64_t h = hash_bytes(k), fp = fingerprint(h);
    for (size_t slot = home(h, index_bits_); index_[slot] != 0; slot = (slot + 1) & mask)
        if ((index_[slot] & 0xffffffff00000000ULL) == fp && same_bytes(key(index_[slot] & 0xffffffffULL), k))
            return index_[slot] & 0xffffffffULL;
    return std::nullopt;
}

}  // namespace syncwarden::kernel
