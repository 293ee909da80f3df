#include "wire.hpp"

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

namespace syncwarden::kernel::wire {
namespace {

// A length with this bit set stands for a pointer that was NULL although its
// length was not 0; the reader hands the same defect on to the kernel's
// checks instead of the worker crashing on it.
constexpr uint32_t k_null_bit = 0x80000000u;

inline void put32(char*& o, uint32_t v) {
    std::memcpy(o, &v, 4);
    o += 4;
}
inline void put64(char*& o, uint64_t v) {
    std::memcpy(o, &v, 8);
    o += 8;
}
// A NULL pointer travels as the null bit, so absent (NULL) and the empty
// string (a non-NULL pointer, length 0) stay apart (ABI 1.4).
inline void put_str(char*& o, sw_str s) {
    if (!s.ptr) {
        put32(o, static_cast<uint32_t>(s.len) | k_null_bit);
        return;
    }
    put32(o, static_cast<uint32_t>(s.len));
    if (s.len) std::memcpy(o, s.ptr, s.len);
    o += s.len;
}
inline size_t str_size(sw_str s) { return 4 + (s.ptr ? s.len : 0); }

// Reads encoded values; every read is bounds-checked.
class in {
public:
    in(const char* p, size_t n) : p_(p), e_(p + n) {}
    bool u32(uint32_t& v) { return fixed(v); }
    bool u64(uint64_t& v) { return fixed(v); }
    bool str(sw_str& s) {
        uint32_t n;
        if (!u32(n)) return false;
        if (n & k_null_bit) {
            s = {nullptr, n & ~k_null_bit};
            return true;
        }
        if (static_cast<size_t>(e_ - p_) < n) return false;
        s = {p_, n};
        p_ += n;
        return true;
    }
    size_t left() const { return static_cast<size_t>(e_ - p_); }
    bool at_end() const { return p_ == e_; }

private:
    template <class T>
    bool fixed(T& v) {
        if (static_cast<size_t>(e_ - p_) < sizeof(T)) return false;
        std::memcpy(&v, p_, sizeof(T));
        p_ += sizeof(T);
        return true;
    }
    const char* p_;
    const char* e_;
};

}  // namespace

// ---- arena -------------------------------------------------------------------

arena::~arena() {
    if (base_) ::munmap(base_, mapped_);
    if (fd_ >= 0) ::close(fd_);
}

arena::arena(arena&& o) noexcept : fd_(o.fd_), writable_(o.writable_), base_(o.base_), mapped_(o.mapped_) {
    o.fd_ = -1;
    o.base_ = nullptr;
    o.mapped_ = 0;
}

arena& arena::operator=(arena&& o) noexcept {
    if (this != &o) {
        this->~arena();
        new (this) arena(std::move(o));
    }
    return *this;
}

bool arena::map_at_least(size_t n) {
    if (n <= mapped_ && base_) return true;
    if (base_) ::munmap(base_, mapped_);
    base_ = nullptr;
    mapped_ = 0;
    int prot = PROT_READ | (writable_ ? PROT_WRITE : 0);
    void* p = ::mmap(nullptr, n, prot, MAP_SHARED, fd_, 0);
    if (p == MAP_FAILED) return false;
    base_ = static_cast<char*>(p);
    mapped_ = n;
    return true;
}

bool arena::reserve(size_t n) {
    if (n <= mapped_ && base_) return true;
    if (n > k_max_arena) return false;
    size_t want = std::max<size_t>(n + n / 2, size_t(1) << 20);
    want = (want + 4095) & ~size_t(4095);
    if (want > k_max_arena) want = k_max_arena;
    struct stat st{};
    if (::fstat(fd_, &st) != 0) return false;
    if (static_cast<size_t>(st.st_size) < want && ::ftruncate(fd_, static_cast<off_t>(want)) != 0) return false;
    return map_at_least(want);
}

bool arena::view(size_t n) {
    if (n <= mapped_ && base_) return true;
    if (n > k_max_arena) return false;
    struct stat st{};
    if (::fstat(fd_, &st) != 0 || static_cast<size_t>(st.st_size) < n) return false;
    return map_at_least(static_cast<size_t>(st.st_size));
}

// ---- batches -----------------------------------------------------------------

// A record batch: [u32 struct_size][u32 mode][u64 count][u64 values][entity]
// then per record [u32 state][u32 value count][u32 key length][u32 value
// length]... [key bytes][value bytes]... Lengths first, so the reader sets
// every pointer with one running sum.
namespace {

constexpr size_t k_batch_head = 4 + 4 + 8 + 8;

inline uint32_t len_of(sw_str s) { return static_cast<uint32_t>(s.len) | (!s.ptr ? k_null_bit : 0); }
inline size_t bytes_of(sw_str s) { return s.ptr ? s.len : 0; }
// Copies n bytes (n <= 2 * sizeof(T), n >= sizeof(T)) as two overlapping
// words, reading and writing only inside both ranges.
template <class T>
inline void copy_ends(char* o, const char* p, size_t n) {
    T a, b;
    std::memcpy(&a, p, sizeof(T));
    std::memcpy(&b, p + n - sizeof(T), sizeof(T));
    std::memcpy(o, &a, sizeof(T));
    std::memcpy(o + n - sizeof(T), &b, sizeof(T));
}

// Nearly every value of a roster is under 33 bytes: copied inline, not
// by a call to memcpy per field (a third of a worker's time when it sends
// 8M records).
inline void put_bytes(char*& o, sw_str s) {
    const size_t n = bytes_of(s);
    const char* p = s.ptr;
    if (n >= 16 && n <= 32) {
        copy_ends<__uint128_t>(o, p, n);
    } else if (n >= 8 && n < 16) {
        copy_ends<uint64_t>(o, p, n);
    } else if (n >= 4 && n < 8) {
        copy_ends<uint32_t>(o, p, n);
    } else if (n > 32) {
        std::memcpy(o, p, n);
    } else {
        for (size_t i = 0; i < n; ++i) o[i] = p[i];
    }
    o += n;
}

size_t record_size(const sw_record& r) {
    size_t n = 12 + bytes_of(r.key);
    if (!r.values) return n;
    n += 4 * r.value_count;
    for (size_t k = 0; k < r.value_count; ++k) n += bytes_of(r.values[k]);
    return n;
}

}  // namespace

size_t encoded_size(const sw_batch& b) {
    size_t n = k_batch_head;
    if (b.struct_size < sizeof(sw_batch)) return n + 4;
    n += str_size(b.entity);
    if (!b.records) return n;
    for (size_t i = 0; i < b.record_count; ++i) n += record_size(b.records[i]);
    return n;
}

size_t try_encode(const sw_batch& b, char* out, size_t cap) {
    char* o = out;
    if (cap < k_batch_head + 4) return 0;
    put32(o, b.struct_size);
    if (b.struct_size < sizeof(sw_batch)) {
        put32(o, 0);
        put64(o, 0);
        put64(o, 0);
        put32(o, 0);
        return static_cast<size_t>(o - out);
    }
    put32(o, b.mode);
    put64(o, b.records || !b.record_count ? b.record_count : (b.record_count | (uint64_t(1) << 63)));
    char* total_at = o;
    put64(o, 0);
    if (str_size(b.entity) > cap - static_cast<size_t>(o - out)) return 0;
    put_str(o, b.entity);
    if (!b.records) return static_cast<size_t>(o - out);
    uint64_t total = 0;
    char* const end = out + cap;
    for (size_t i = 0; i < b.record_count; ++i) {
        const sw_record& r = b.records[i];
        const size_t nv = r.values ? r.value_count : 0;
        // The record's size, from lengths only, before writing any of it.
        size_t need = 12 + 4 * nv + bytes_of(r.key);
        for (size_t k = 0; k < nv; ++k) need += bytes_of(r.values[k]);
        if (need > static_cast<size_t>(end - o)) return 0;
        put32(o, r.state);
        put32(o, static_cast<uint32_t>(r.value_count) | (r.values || !r.value_count ? 0 : k_null_bit));
        put32(o, len_of(r.key));
        for (size_t k = 0; k < nv; ++k) put32(o, len_of(r.values[k]));
        put_bytes(o, r.key);
        for (size_t k = 0; k < nv; ++k) put_bytes(o, r.values[k]);
        total += nv;
    }
    std::memcpy(total_at, &total, 8);
    return static_cast<size_t>(o - out);
}

void encode(const sw_batch& b, char* out) { try_encode(b, out, SIZE_MAX / 2); }

// A 1.1 change batch ends before `attempt`.
constexpr size_t k_change_batch_v11 = offsetof(sw_change_batch, attempt);
bool has_target_ids(const sw_change_batch& b) {
    return b.struct_size >= offsetof(sw_change_batch, target_ids) + sizeof b.target_ids && b.target_ids && b.changes;
}

size_t encoded_size(const sw_change_batch& b) {
    size_t n = 4 + 4 + 8;
    if (b.struct_size < k_change_batch_v11) return n + 4;
    n += str_size(b.entity);
    if (!b.changes) return n;
    for (size_t i = 0; i < b.change_count; ++i) {
        const sw_change& c = b.changes[i];
        n += str_size(c.id) + 4 + str_size(c.key) + 4 + 4;
        if (c.values)
            for (size_t k = 0; k < c.value_count; ++k) n += str_size(c.values[k]);
        if (c.changed_fields) n += 4 * c.changed_count;
    }
    n += 4;
    if (has_target_ids(b))
        for (size_t i = 0; i < b.change_count; ++i) n += str_size(b.target_ids[i]);
    return n;
}

void encode(const sw_change_batch& b, char* o) {
    put32(o, b.struct_size);
    put32(o, b.struct_size >= offsetof(sw_change_batch, attempt) + sizeof b.attempt ? b.attempt : 0);
    if (b.struct_size < k_change_batch_v11) {
        put64(o, 0);
        put32(o, 0);
        return;
    }
    put64(o, b.changes || !b.change_count ? b.change_count : (b.change_count | (uint64_t(1) << 63)));
    put_str(o, b.entity);
    if (!b.changes) return;
    for (size_t i = 0; i < b.change_count; ++i) {
        const sw_change& c = b.changes[i];
        put_str(o, c.id);
        put32(o, c.kind);
        put_str(o, c.key);
        put32(o, static_cast<uint32_t>(c.value_count) | (c.values || !c.value_count ? 0 : k_null_bit));
        if (c.values)
            for (size_t k = 0; k < c.value_count; ++k) put_str(o, c.values[k]);
        put32(o, static_cast<uint32_t>(c.changed_count) | (c.changed_fields || !c.changed_count ? 0 : k_null_bit));
        if (c.changed_fields)
            for (size_t k = 0; k < c.changed_count; ++k) put32(o, c.changed_fields[k]);
    }
    // ABI 1.4: the target ids, one per change, when the batch has them.
    put32(o, has_target_ids(b) ? 1 : 0);
    if (has_target_ids(b))
        for (size_t i = 0; i < b.change_count; ++i) put_str(o, b.target_ids[i]);
}

bool batch_decoder::decode(const char* p, size_t n, sw_batch& out, std::string& why) {
    in r(p, n);
    uint32_t size, mode;
    uint64_t count, total;
    out = sw_batch{};
    if (!r.u32(size) || !r.u32(mode) || !r.u64(count) || !r.u64(total) || !r.str(out.entity)) {
        why = "a record batch header is cut short";
        return false;
    }
    out.struct_size = size;
    out.mode = mode;
    const bool null_records = count >> 63;
    count &= ~(uint64_t(1) << 63);
    out.record_count = count;
    if (null_records || size < sizeof(sw_batch)) return true;
    // Bounds from the bytes, before anything is allocated.
    if (count > r.left() / 12 || total > r.left() / 4) {
        why = "a record batch says it has more records or values than its bytes hold";
        return false;
    }
    if (records_.size() < count) records_.resize(count);
    if (values_.size() < total) values_.resize(total);
    const char* cur = p + (n - r.left());
    const char* const end = p + n;
    size_t used = 0;
    for (size_t i = 0; i < count; ++i) {
        sw_record& rec = records_[i];
        if (end - cur < 12) {
            why = "record " + std::to_string(i) + " of a batch is cut short";
            return false;
        }
        uint32_t nv, klen;
        std::memcpy(&rec.state, cur, 4);
        std::memcpy(&nv, cur + 4, 4);
        std::memcpy(&klen, cur + 8, 4);
        cur += 12;
        const bool null_values = nv & k_null_bit;
        rec.value_count = nv & ~k_null_bit;
        const size_t stored = null_values ? 0 : rec.value_count;
        if (stored > total - used || static_cast<size_t>(end - cur) < 4 * stored) {
            why = "record " + std::to_string(i) + " says it has more values than the batch holds";
            return false;
        }
        const char* lens = cur;
        cur += 4 * stored;
        auto take = [&](uint32_t len, sw_str& s) {
            if (len & k_null_bit) {
                s = {nullptr, len & ~k_null_bit};
                return true;
            }
            if (static_cast<size_t>(end - cur) < len) return false;
            s = {cur, len};
            cur += len;
            return true;
        };
        if (!take(klen, rec.key)) {
            why = "the key of record " + std::to_string(i) + " is cut short";
            return false;
        }
        sw_str* v = values_.data() + used;
        for (size_t k = 0; k < stored; ++k) {
            uint32_t len;
            std::memcpy(&len, lens + 4 * k, 4);
            if (!take(len, v[k])) {
                why = "value " + std::to_string(k) + " of record " + std::to_string(i) + " is cut short";
                return false;
            }
        }
        rec.values = null_values ? nullptr : v;
        used += stored;
    }
    out.records = records_.data();
    return true;
}

bool batch_decoder::decode(const char* p, size_t n, sw_change_batch& out, std::string& why) {
    in r(p, n);
    uint32_t size, attempt;
    uint64_t count;
    out = sw_change_batch{};
    if (!r.u32(size) || !r.u32(attempt) || !r.u64(count) || !r.str(out.entity)) {
        why = "a change batch header is cut short";
        return false;
    }
    out.struct_size = size;
    out.attempt = attempt;
    const bool null_changes = count >> 63;
    count &= ~(uint64_t(1) << 63);
    out.change_count = count;
    if (null_changes || size < k_change_batch_v11) return true;
    if (count > r.left() / 20) {
        why = "a change batch says it has " + std::to_string(count) + " changes, more than its bytes hold";
        return false;
    }
    changes_.resize(count);
    values_.clear();
    fields_.clear();
    std::vector<std::pair<size_t, size_t>> first(count);
    for (size_t i = 0; i < count; ++i) {
        sw_change& c = changes_[i];
        uint32_t nv, nf;
        if (!r.str(c.id) || !r.u32(c.kind) || !r.str(c.key) || !r.u32(nv)) {
            why = "change " + std::to_string(i) + " of a batch is cut short";
            return false;
        }
        c.value_count = nv & ~k_null_bit;
        first[i].first = (nv & k_null_bit) ? SIZE_MAX : values_.size();
        if (!(nv & k_null_bit)) {
            if (c.value_count > r.left() / 4) {
                why = "change " + std::to_string(i) + " says it has more values than its bytes hold";
                return false;
            }
            for (size_t k = 0; k < c.value_count; ++k) {
                sw_str v;
                if (!r.str(v)) {
                    why = "value " + std::to_string(k) + " of change " + std::to_string(i) + " is cut short";
                    return false;
                }
                values_.push_back(v);
            }
        }
        if (!r.u32(nf)) {
            why = "change " + std::to_string(i) + " of a batch is cut short";
            return false;
        }
        c.changed_count = nf & ~k_null_bit;
        first[i].second = (nf & k_null_bit) ? SIZE_MAX : fields_.size();
        if (nf & k_null_bit) continue;
        if (c.changed_count > r.left() / 4) {
            why = "change " + std::to_string(i) + " says it changed more fields than its bytes hold";
            return false;
        }
        for (size_t k = 0; k < c.changed_count; ++k) {
            uint32_t f = 0;
            r.u32(f);
            fields_.push_back(f);
        }
    }
    for (size_t i = 0; i < count; ++i) {
        changes_[i].values = first[i].first == SIZE_MAX ? nullptr : values_.data() + first[i].first;
        changes_[i].changed_fields = first[i].second == SIZE_MAX ? nullptr : fields_.data() + first[i].second;
    }
    out.changes = changes_.data();
    uint32_t with_ids = 0;
    if (!r.u32(with_ids)) {
        why = "a change batch is cut short before its target ids";
        return false;
    }
    if (with_ids) {
        ids_.resize(count);
        for (size_t i = 0; i < count; ++i)
            if (!r.str(ids_[i])) {
                why = "the target id of change " + std::to_string(i) + " is cut short";
                return false;
            }
        out.target_ids = ids_.data();
    }
    return true;
}

// ---- packets -----------------------------------------------------------------

std::string& packet::begin(op o) {
    frame_at_ = buf_.size();
    writer w(buf_);
    w.u32(0);
    w.u32(static_cast<uint32_t>(o));
    return buf_;
}

void packet::end() {
    uint32_t len = static_cast<uint32_t>(buf_.size() - frame_at_ - 4);
    std::memcpy(&buf_[frame_at_], &len, 4);
}

bool split(const char* p, size_t n, std::vector<frame>& out) {
    out.clear();
    while (n) {
        uint32_t len, o;
        if (n < 8) return false;
        std::memcpy(&len, p, 4);
        if (len < 4 || len > n - 4) return false;
        std::memcpy(&o, p + 4, 4);
        out.push_back({static_cast<op>(o), p + 8, len - 4});
        p += 4 + len;
        n -= 4 + len;
    }
    return true;
}

bool send_packet(int fd, const std::string& bytes) {
    for (;;) {
        ssize_t w = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
        if (w == static_cast<ssize_t>(bytes.size())) return true;
        if (w < 0 && errno == EINTR) continue;
        return false;
    }
}

long recv_packet(int fd, std::vector<char>& buf) {
    buf.resize(k_max_packet);
    for (;;) {
        ssize_t r = ::recv(fd, buf.data(), buf.size(), MSG_TRUNC);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return -1;
        if (static_cast<size_t>(r) > buf.size()) return -1;  // longer than any packet may be
        return static_cast<long>(r);
    }
}

}  // namespace syncwarden::kernel::wire
