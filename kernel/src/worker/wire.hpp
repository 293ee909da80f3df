// What crosses between the kernel and a connector's worker process.
//
// Control messages go over a SOCK_SEQPACKET socket pair. One packet holds one
// or more frames: [u32 frame length][u32 op][payload]. Bulk data (record and
// change batches, create arguments, the contract) goes through two shared
// memfd arenas, one per direction, that only ever grow (the kernel seals them
// against shrinking, so a worker cannot make a kernel read fault). A third
// memfd is the control page: the cancel flag the kernel sets and the progress
// counter the worker bumps on every host call (the watchdog reads it).
#pragma once

#include <syncwarden/connector.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace syncwarden::kernel::wire {

// The worker's fixed descriptors (set up by the kernel when it spawns it).
inline constexpr int k_fd_control = 3;   // the socket
inline constexpr int k_fd_up = 4;        // arena worker -> kernel
inline constexpr int k_fd_down = 5;      // arena kernel -> worker
inline constexpr int k_fd_page = 6;      // control page
inline constexpr int k_fd_library = 7;   // the connector's library, opened by the kernel
inline constexpr size_t k_max_packet = 96 * 1024;
inline constexpr size_t k_max_inline_text = 16 * 1024;  // log lines, messages, tokens
inline constexpr size_t k_max_arena = size_t(2) << 30;
// A records or changes frame's flag: the batch is in the ring of an extract
// running ahead, and the kernel frees its pages once it has read it.
inline constexpr uint32_t k_release_after_use = 1;
// The worker exits with this when an allocation failed under its memory limit.
inline constexpr int k_exit_oom = 86;

enum class op : uint32_t {
    // kernel -> worker: hook calls (payload in the down arena) and replies
    create = 1, contract, extract, read_state, state_token, diff, apply, commit, abort, destroy, system_id,
    reply_status = 20, reply_checkpoint, ack,
    // worker -> kernel
    manifest = 40, load_failed, log, finding, result, token, records, changes, checkpoint_save,
    checkpoint_load, done, acquire, layout, target_id, retry_wait,
};

struct control_page {
    std::atomic<uint32_t> cancel;
    uint32_t pad;
    std::atomic<uint64_t> progress;
};
static_assert(std::atomic<uint64_t>::is_always_lock_free && std::atomic<uint32_t>::is_always_lock_free,
              "the control page needs lock-free atomics to be shared between processes");

// Appends little-endian integers and length-prefixed strings.
class writer {
public:
    explicit writer(std::string& out) : s_(out) {}
    void u32(uint32_t v) { s_.append(reinterpret_cast<const char*>(&v), 4); }
    void u64(uint64_t v) { s_.append(reinterpret_cast<const char*>(&v), 8); }
    void str(std::string_view v, size_t cap = SIZE_MAX) {
        if (v.size() > cap) v = v.substr(0, cap);
        u32(static_cast<uint32_t>(v.size()));
        s_.append(v.data(), v.size());
    }
    void str(sw_str v, size_t cap = SIZE_MAX) { str(v.ptr ? std::string_view(v.ptr, v.len) : std::string_view(), cap); }

private:
    std::string& s_;
};

// Reads what writer wrote; never reads past the end. After a short read,
// ok() is false and every later read returns zero or empty.
class reader {
public:
    reader(const char* p, size_t n) : p_(p), e_(p + n) {}
    uint32_t u32() { return fixed<uint32_t>(); }
    uint64_t u64() { return fixed<uint64_t>(); }
    std::string_view str() {
        uint32_t n = u32();
        if (!ok_ || static_cast<size_t>(e_ - p_) < n) return fail_sv();
        std::string_view v(p_, n);
        p_ += n;
        return v;
    }
    bool ok() const { return ok_; }
    bool at_end() const { return p_ == e_; }

private:
    template <class T>
    T fixed() {
        T v{};
        if (!ok_ || static_cast<size_t>(e_ - p_) < sizeof(T)) {
            ok_ = false;
            return v;
        }
        __builtin_memcpy(&v, p_, sizeof(T));
        p_ += sizeof(T);
        return v;
    }
    std::string_view fail_sv() {
        ok_ = false;
        return {};
    }
    const char* p_;
    const char* e_;
    bool ok_ = true;
};

// A shared memfd mapping. The writer side grows the file (ftruncate) and its
// own mapping; the reader side maps more of it when a message says the data
// is longer than what it has mapped.
class arena {
public:
    arena() = default;
    arena(int fd, bool writable) : fd_(fd), writable_(writable) {}
    ~arena();
    arena(const arena&) = delete;
    arena& operator=(const arena&) = delete;
    arena(arena&& o) noexcept;
    arena& operator=(arena&& o) noexcept;

    int fd() const { return fd_; }
    // Writer: makes at least n bytes writable. False when the memfd could not grow.
    bool reserve(size_t n);
    // Reader: makes at least n bytes readable. False when the memfd is shorter.
    bool view(size_t n);
    char* data() const { return base_; }
    size_t capacity() const { return mapped_; }

private:
    bool map_at_least(size_t n);
    int fd_ = -1;
    bool writable_ = false;
    char* base_ = nullptr;
    size_t mapped_ = 0;
};

// ---- batches ---------------------------------------------------------------

size_t encoded_size(const sw_batch& b);
void encode(const sw_batch& b, char* out);
// Encodes into at most `cap` bytes; 0 when it does not fit.
size_t try_encode(const sw_batch& b, char* out, size_t cap);
size_t encoded_size(const sw_change_batch& b);
void encode(const sw_change_batch& b, char* out);

// Turns encoded bytes back into ABI structs that point into those bytes.
// The decoder owns the record, value and change arrays and reuses them.
class batch_decoder {
public:
    // False (with why) when the bytes are not a well-formed batch.
    bool decode(const char* p, size_t n, sw_batch& out, std::string& why);
    bool decode(const char* p, size_t n, sw_change_batch& out, std::string& why);

private:
    std::vector<sw_record> records_;
    std::vector<sw_str> values_;
    std::vector<sw_change> changes_;
    std::vector<uint32_t> fields_;
    std::vector<sw_str> ids_;
};

// ---- packets ---------------------------------------------------------------

// Collects frames into one packet.
class packet {
public:
    // Starts a frame; write its payload into the returned string with a writer.
    std::string& begin(op o);
    void end();  // closes the frame begun last
    bool empty() const { return buf_.empty(); }
    size_t size() const { return buf_.size(); }
    const std::string& bytes() const { return buf_; }
    void clear() { buf_.clear(); }

private:
    std::string buf_;
    size_t frame_at_ = 0;
};

// Splits a received packet into frames. False on a malformed packet.
struct frame {
    op o;
    const char* p;
    size_t n;
};
bool split(const char* p, size_t n, std::vector<frame>& out);

// Sends one packet (blocking). False when the peer is gone.
bool send_packet(int fd, const std::string& bytes);
// Receives one packet into buf; returns its length, 0 at end of stream, -1 on error.
long recv_packet(int fd, std::vector<char>& buf);

}  // namespace syncwarden::kernel::wire
