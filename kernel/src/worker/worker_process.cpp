// The worker process: hosts one connector library and implements the host
// API by talking to the kernel over the descriptors it was started with
// (wire.hpp). Nothing here trusts the connector: whatever it does, the worst
// outcome is that this process dies, which the kernel reports.
#include <syncwarden/kernel/loader.hpp>
#include <syncwarden/kernel/registry.hpp>
#include <syncwarden/kernel/sandbox.hpp>
#include <syncwarden/kernel/schema.hpp>
#include <syncwarden/kernel/worker.hpp>

#include "../session/hook_call.hpp"
#include "../session/settings_schema.hpp"
#include "wire.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <new>
#include <optional>
#include <csignal>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

namespace syncwarden::kernel {
namespace {

using wire::op;

struct worker_state {
    int sock = wire::k_fd_control;
    wire::arena up{wire::k_fd_up, true}, down{wire::k_fd_down, false};
    wire::control_page* page = nullptr;
    wire::packet outbox;
    std::vector<char> rbuf;
    std::vector<wire::frame> frames;
    wire::batch_decoder decoder;
    std::shared_ptr<const loaded_connector> lib;
    void* instance = nullptr;
    nlohmann::json settings;
    std::map<std::string, std::string> config_values;
    std::string checkpoint_buf;
    // Batches to the kernel are pipelined: the up arena holds two slots, and
    // emit returns once its batch is posted, while the kernel works on it.
    // A slot is reused only after the kernel acknowledged the batch in it.
    size_t slot_size = 0;
    int next_slot = 0;
    bool pending[2] = {false, false};
    // An extract the kernel started before it reads it (while it reads the
    // target's state), and a target's state read, may run ahead: with both
    // slots in use, batches go to a ring after the slots, of at most
    // ring_cap bytes (the kernel says how much with the call). The kernel
    // unmaps a ring batch's pages once it has read it, so the ring is held
    // once, in this process, until the hook ends.
    size_t ring_cap = 0;
    size_t ring_head = 0, ring_tail = 0;  // offsets in the ring; equal when it is empty
    size_t ring_count = 0;                // ring batches awaiting acks
    bool ring_ready = false;              // its memory is reserved (and given back at the hook's end)
    size_t ring_populated = 0;            // how much of it has pages
    struct posted {
        int slot;           // 0 or 1; -1: in the ring
        size_t end = 0;     // ring: where the batch ends (the head moves there on its ack)
    };
    std::deque<posted> queue;  // batches awaiting acks, oldest first
    sw_status verdict = SW_OK;  // the first refusal of this hook's batches
    // The hook running now (a hook_bit; 0: none) and the thread running it:
    // host calls made outside it, or from another thread, do nothing
    // (sdk/ABI.md).
    uint32_t hook = 0;
    pthread_t hook_thread{};
};

worker_state* g = nullptr;  // one connector per process

// Ends the worker; what the connector printed is flushed to the kernel first.
[[noreturn]] void die(int code) {
    std::fflush(stdout);
    std::fflush(stderr);
    ::_exit(code);
}

void progress() {
    if (g->page) g->page->progress.fetch_add(1, std::memory_order_relaxed);
}

void take_ack(const wire::frame& f);
wire::frame read_frame();

// Sends what is queued if the socket takes it now (true); else it stays
// queued.
bool send_queued() {
    if (g->outbox.empty()) return true;
    for (;;) {
        ssize_t w = ::send(g->sock, g->outbox.bytes().data(), g->outbox.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w == static_cast<ssize_t>(g->outbox.size())) break;
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return false;
        die(1);  // the kernel is gone
    }
    g->outbox.clear();
    return true;
}

// Sends what is queued. While the socket is full, the acknowledgements the
// kernel sends are taken: with a ring of batches outstanding, the kernel
// may itself be waiting to send them.
void flush() {
    while (!send_queued()) {
        pollfd p{g->sock, static_cast<short>(POLLOUT | (g->queue.empty() ? 0 : POLLIN)), 0};
        if (::poll(&p, 1, -1) < 0 && errno != EINTR) die(1);
        if (p.revents & POLLIN) {
            const wire::frame f = read_frame();
            if (f.o != op::ack) die(1);  // nothing but acks can come before this is sent
            take_ack(f);
        }
    }
}

// What is queued goes now if the socket takes it, else with the next frame
// (a kernel that is not reading yet leaves the socket full while a source
// runs ahead).
void try_flush() { (void)send_queued(); }

// Queues a one-way frame; `fill` writes its payload.
template <class F>
void post(op o, F&& fill) {
    if (g->outbox.size() > wire::k_max_packet - 40 * 1024) flush();
    wire::writer w(g->outbox.begin(o));
    fill(w);
    g->outbox.end();
}

// Takes one acknowledgement of a posted batch.
void take_ack(const wire::frame& f) {
    wire::reader r(f.p, f.n);
    uint32_t s = r.u32();
    if (!r.ok() || g->queue.empty()) die(1);
    const worker_state::posted p = g->queue.front();
    g->queue.pop_front();
    if (p.slot >= 0) {
        g->pending[p.slot] = false;
    } else {
        g->ring_head = p.end;
        if (--g->ring_count == 0) g->ring_head = g->ring_tail = 0;
    }
    if (s != SW_OK && g->verdict == SW_OK) g->verdict = s <= SW_CANCELLED ? static_cast<sw_status>(s) : SW_INTERNAL;
}

// Receives the next frame that is not an acknowledgement. What is queued
// goes first: the kernel answers only what it has.
wire::frame receive(bool ack_only) {
    flush();
    for (;;) {
        const wire::frame f = read_frame();
        if (f.o != op::ack) {
            if (ack_only) die(1);
            return f;
        }
        take_ack(f);
        if (ack_only) return f;
    }
}

// The next packet from the kernel, which is one frame.
wire::frame read_frame() {
    long n = wire::recv_packet(g->sock, g->rbuf);
    if (n <= 0 || !wire::split(g->rbuf.data(), static_cast<size_t>(n), g->frames) || g->frames.size() != 1) die(1);
    return g->frames[0];
}

void drain_acks() {
    while (!g->queue.empty()) receive(true);
}

// Takes the acknowledgements that have arrived, without waiting.
void take_arrived_acks() {
    while (!g->queue.empty()) {
        pollfd p{g->sock, POLLIN, 0};
        if (::poll(&p, 1, 0) <= 0 || !(p.revents & POLLIN)) return;
        receive(true);
    }
}

// Sends a frame and waits for the kernel's reply frame.
template <class F>
wire::frame ask(op o, F&& fill) {
    post(o, std::forward<F>(fill));
    flush();
    return receive(false);
}

sw_status reply_status(const wire::frame& f) {
    wire::reader r(f.p, f.n);
    uint32_t s = r.u32();
    return f.o == op::reply_status && r.ok() && s <= SW_CANCELLED ? static_cast<sw_status>(s) : SW_INTERNAL;
}

// ---- the host API, served over the socket -------------------------------------

// The hooks, as far as host calls tell them apart: records are emitted in
// extract and read_state, changes in diff, results in apply.
enum hook_bit : uint32_t { k_hook_other = 1, k_hook_emits = 2, k_hook_diff = 4, k_hook_apply = 8 };

uint32_t hook_bit_of(std::string_view hook) {
    if (hook == "extract" || hook == "read_state") return k_hook_emits;
    if (hook == "diff") return k_hook_diff;
    if (hook == "apply") return k_hook_apply;
    return k_hook_other;
}

// While a hook runs on this thread.
struct hook_scope {
    explicit hook_scope(std::string_view hook) {
        g->hook = hook_bit_of(hook);
        g->hook_thread = ::pthread_self();
    }
    ~hook_scope() { g->hook = 0; }
    hook_scope(const hook_scope&) = delete;
    hook_scope& operator=(const hook_scope&) = delete;
};

// Whether a host call belongs to a hook running now, of those in `allowed`,
// and is made from its thread (once per call: results come one per change).
bool in_hook(uint32_t allowed = ~0u) {
    return g && (g->hook & allowed) && ::pthread_equal(::pthread_self(), g->hook_thread);
}

void host_log(sw_host_ctx*, uint32_t level, sw_str msg) noexcept {
    if (!in_hook()) return;
    progress();
    post(op::log, [&](wire::writer& w) {
        w.u32(level);
        w.str(msg, wire::k_max_inline_text);
    });
}

size_t place(const sw_batch& b, char* out, size_t cap) { return wire::try_encode(b, out, cap); }
size_t place(const sw_change_batch& b, char* out, size_t cap) {
    size_t n = wire::encoded_size(b);
    if (n > cap) return 0;
    wire::encode(b, out);
    return n;
}

// A place for `need` bytes in the ring, in posting order; nullopt when the
// ring is off or full.
std::optional<size_t> ring_place(size_t need) {
    if (need > g->ring_cap) return std::nullopt;
    if (g->ring_count == 0) g->ring_head = g->ring_tail = 0;
    if (g->ring_tail >= g->ring_head) {  // free: [tail, cap) and [0, head)
        if (g->ring_cap - g->ring_tail >= need) return g->ring_tail;
        if (g->ring_head > need) return 0;  // wraps; leaves a gap the head skips
        return std::nullopt;
    }
    if (g->ring_head - g->ring_tail > need) return g->ring_tail;  // wrapped: free is [tail, head)
    return std::nullopt;
}

// Posts a batch into the ring, when there is room; the kernel reads it
// when it gets to it and then frees its pages.
template <class B>
bool post_ahead(op o, const B& b) {
    if (g->ring_cap == 0) return false;
    const size_t need = (wire::encoded_size(b) + 4095) & ~size_t(4095);
    const auto at = ring_place(need);
    if (!at) return false;
    const size_t base = 2 * g->slot_size;
    if (!g->ring_ready) {
        if (!g->up.reserve(base + g->ring_cap)) {
            g->ring_cap = 0;  // no room for a ring: the slots alone
            return false;
        }
        g->ring_ready = true;
        g->ring_populated = 0;
    }
    // The ring's pages as it first reaches them, not one fault each: 1 MiB,
    // then as much again as it has, up to 8 MiB at a time (a small run
    // that uses little of it populates little).
    if (*at + need > g->ring_populated) {
        const size_t step = std::clamp(g->ring_populated, size_t(1) << 20, size_t(8) << 20);
        const size_t upto = std::min(g->ring_cap, (*at + need + step - 1) / step * step);
        (void)::madvise(g->up.data() + base + g->ring_populated, upto - g->ring_populated, MADV_POPULATE_WRITE);
        g->ring_populated = upto;
    }
    const size_t n = place(b, g->up.data() + base + *at, need);
    if (n == 0) return false;
    post(o, [&](wire::writer& w) {
        w.u64(base + *at);
        w.u64(n);
        w.u32(wire::k_release_after_use);
    });
    try_flush();
    g->ring_tail = *at + need;
    ++g->ring_count;
    g->queue.push_back({-1, *at + need});
    return true;
}

int free_slot() {
    if (!g->pending[g->next_slot]) return g->next_slot;
    if (!g->pending[g->next_slot ^ 1]) return g->next_slot ^ 1;
    return -1;
}

// Posts a batch to the kernel through a free slot of the up arena (or the
// ring, when the hook may run ahead). Returns the kernel's verdict on the
// batches of this hook so far: a refusal reaches the connector at its next
// emit (or in the hook's outcome).
template <class B>
sw_status send_batch(op o, const B* b) {
    progress();
    if (!b) return SW_SCHEMA;
    if (g->verdict != SW_OK) return g->verdict;
    if (g->slot_size == 0) {
        if (!g->up.reserve(size_t(4) << 20)) return SW_INTERNAL;
        g->slot_size = g->up.capacity() / 2;
    }
    take_arrived_acks();
    int slot = free_slot();
    if (slot < 0 && post_ahead(o, *b)) return g->verdict;
    // Waits for an acknowledgement: of a slot's batch, or of the ring's
    // oldest, whichever makes room first. (The slots' batches were posted
    // after a full ring: waiting for a slot alone would wait until the
    // kernel had read the whole ring.)
    while (slot < 0) {
        receive(true);
        slot = free_slot();
        if (slot < 0 && post_ahead(o, *b)) return g->verdict;
    }
    size_t n = place(*b, g->up.data() + static_cast<size_t>(slot) * g->slot_size, g->slot_size);
    if (n == 0) {
        // Larger than a slot: wait for the kernel to finish with all, grow.
        const size_t need = wire::encoded_size(*b);
        drain_acks();
        const size_t grown = ((need + need / 2) + 4095) & ~size_t(4095);
        if (need > wire::k_max_arena / 3 || !g->up.reserve(2 * grown)) {
            post(op::log, [&](wire::writer& w) {
                w.u32(SW_LOG_ERROR);
                w.str("a batch of " + std::to_string(need) +
                      " bytes does not fit the shared memory between worker and kernel; emit smaller batches");
            });
            return SW_INTERNAL;
        }
        g->slot_size = grown;
        slot = 0;
        n = place(*b, g->up.data(), g->slot_size);
    }
    post(o, [&](wire::writer& w) {
        w.u64(static_cast<uint64_t>(slot) * g->slot_size);
        w.u64(n);
        w.u32(0);
    });
    flush();
    g->pending[slot] = true;
    g->queue.push_back({slot});
    g->next_slot = slot ^ 1;
    return g->verdict;
}

sw_status host_emit(sw_host_ctx*, const sw_batch* b) noexcept {
    if (!in_hook(k_hook_emits)) return SW_INTERNAL;
    return send_batch(op::records, b);
}
sw_status host_emit_changes(sw_host_ctx*, const sw_change_batch* b) noexcept {
    if (!in_hook(k_hook_diff)) return SW_INTERNAL;
    return send_batch(op::changes, b);
}

void host_finding(sw_host_ctx*, const sw_finding* f) noexcept {
    if (!in_hook()) return;
    progress();
    if (!f || f->struct_size < sizeof(sw_finding)) return;
    constexpr size_t cap = 2048;
    post(op::finding, [&](wire::writer& w) {
        w.u32(f->severity);
        w.str(f->code, 256);
        w.str(f->entity, 256);
        w.str(f->file, cap);
        w.u64(f->line);
        w.u64(f->column);
        w.str(f->key, cap);
        w.str(f->message, wire::k_max_inline_text / 2);
    });
}

void host_change_result(sw_host_ctx*, size_t index, sw_status s, sw_str cat, sw_str msg) noexcept {
    // Only while the batch it speaks of is being applied: a late result would
    // be taken for one of the next batch.
    if (!in_hook(k_hook_apply)) return;
    progress();
    post(op::result, [&](wire::writer& w) {
        w.u64(index);
        w.u32(s);
        w.str(cat, 256);
        w.str(msg, 4096);
    });
}

sw_status host_checkpoint_save(sw_host_ctx*, sw_str token) noexcept {
    if (!in_hook()) return SW_INTERNAL;
    progress();
    if (token.len > wire::k_max_inline_text * 4) return SW_INTERNAL;
    return reply_status(ask(op::checkpoint_save, [&](wire::writer& w) { w.str(token); }));
}

sw_status host_checkpoint_load(sw_host_ctx*, sw_str* out) noexcept {
    if (!in_hook()) return SW_INTERNAL;
    progress();
    if (!out) return SW_INTERNAL;
    wire::frame f = ask(op::checkpoint_load, [](wire::writer&) {});
    wire::reader r(f.p, f.n);
    uint32_t s = r.u32();
    std::string_view token = r.str();
    if (f.o != op::reply_checkpoint || !r.ok()) return SW_INTERNAL;
    try {
        g->checkpoint_buf.assign(token);
    } catch (...) {
        return SW_INTERNAL;
    }
    *out = sw_str{g->checkpoint_buf.data(), g->checkpoint_buf.size()};
    return s <= SW_CANCELLED ? static_cast<sw_status>(s) : SW_INTERNAL;
}

int host_is_cancelled(sw_host_ctx*) noexcept {
    progress();
    return g->page && g->page->cancel.load(std::memory_order_relaxed) ? 1 : 0;
}

sw_status host_config_get(sw_host_ctx*, sw_str pointer, sw_str* out) noexcept {
    progress();
    return settings_value(g->settings, g->config_values, pointer, out);
}

void host_state_token(sw_host_ctx*, sw_str token) noexcept {
    if (!in_hook()) return;
    progress();
    post(op::token, [&](wire::writer& w) {
        w.u32(token.len > wire::k_max_inline_text ? 1 : 0);  // 1: too long, not sent
        w.str(token, wire::k_max_inline_text);
    });
}

sw_status host_acquire(sw_host_ctx*, uint32_t permits) noexcept {
    if (!in_hook()) return SW_INTERNAL;
    progress();
    sw_status s = reply_status(ask(op::acquire, [&](wire::writer& w) { w.u32(permits); }));
    progress();
    return s;
}

void host_layout(sw_host_ctx*, const sw_layout* l) noexcept {
    if (!in_hook()) return;
    progress();
    if (!l || l->struct_size < sizeof(sw_layout) || (l->column_count && !l->columns)) return;
    const size_t n = std::min<size_t>(l->column_count, 4096);
    post(op::layout, [&](wire::writer& w) {
        w.str(l->entity, 256);
        w.str(l->file, 2048);
        w.u32(static_cast<uint32_t>(n));
        for (size_t i = 0; i < n; ++i) w.str(l->columns[i], 256);
    });
}

void host_target_id(sw_host_ctx*, size_t index, sw_str id) noexcept {
    if (!in_hook(k_hook_apply)) return;
    progress();
    post(op::target_id, [&](wire::writer& w) {
        w.u64(index);
        w.u32(id.len > k_max_target_id ? 1 : 0);
        w.str(id, k_max_target_id);
    });
}

sw_status host_retry_wait(sw_host_ctx*, uint32_t attempt, uint32_t retry_after_ms) noexcept {
    if (!in_hook()) return SW_INTERNAL;
    progress();
    sw_status s = reply_status(ask(op::retry_wait, [&](wire::writer& w) {
        w.u32(attempt);
        w.u32(retry_after_ms);
    }));
    progress();
    return s;
}

const sw_host_api k_host = {sizeof(sw_host_api), SW_ABI_MAJOR, SW_ABI_MINOR, host_log, host_emit,
                            host_finding, host_change_result, host_checkpoint_save,
                            host_checkpoint_load, host_is_cancelled, host_config_get,
                            host_emit_changes, host_state_token, host_acquire, host_layout,
                            host_target_id, host_retry_wait};

// ---- hook calls -----------------------------------------------------------------

void done(sw_status s, const sw_error& err, uint64_t payload = 0) {
    // The kernel has every batch of this hook before it hears the outcome.
    drain_acks();
    post(op::done, [&](wire::writer& w) {
        w.u32(s);
        w.u32(err.retry_after_ms);
        w.str(std::string_view(err.category, strnlen(err.category, sizeof err.category)));
        w.str(std::string_view(err.message, strnlen(err.message, sizeof err.message)));
        w.u64(payload);
    });
    flush();
}

template <class F>
sw_status call(const char* hook, sw_error& err, F&& f) {
    hook_scope running(hook);
    return call_hook(hook, err, std::forward<F>(f));
}

std::vector<std::string_view> read_entities(wire::reader& r) {
    std::vector<std::string_view> out;
    uint32_t n = r.u32();
    for (uint32_t i = 0; i < n && r.ok(); ++i) out.push_back(r.str());
    return out;
}

using entities_fn = sw_status (*)(void*, const sw_str*, size_t, sw_error*);

void entities_hook(const char* hook, entities_fn fn, wire::reader& args) {
    sw_error err;
    auto names = read_entities(args);
    std::vector<sw_str> v;
    for (auto n : names) v.push_back({n.data(), n.size()});
    sw_status s = fn ? call(hook, err, [&] { return fn(g->instance, v.data(), v.size(), &err); }) : SW_OK;
    done(s, err);
}

void encode_contract(const contract_schema& c, std::string& out) {
    wire::writer w(out);
    w.u32(static_cast<uint32_t>(c.entities.size()));
    for (auto& e : c.entities) {
        w.str(e.name);
        w.str(e.key_name);
        w.u32(static_cast<uint32_t>(e.fields.size()));
        for (auto& f : e.fields) {
            w.str(f.name);
            w.u32(f.type);
            w.u32(f.required ? 1 : 0);
            w.u32(static_cast<uint32_t>(f.allowed.size()));
            for (auto& v : f.allowed) w.str(v);
            w.str(f.extension_prefix);
            w.u32(f.compare);
            w.u32((f.unordered ? 1u : 0u) | (f.match ? 2u : 0u) | (f.keeps_empty ? 4u : 0u));
        }
        w.u32(static_cast<uint32_t>(e.depends_on.size()));
        for (auto& d : e.depends_on) w.str(d);
    }
}

void serve(const std::string& who) {
    const sw_hooks& h = g->lib->hooks();
    for (;;) {
        long n = wire::recv_packet(g->sock, g->rbuf);
        if (n <= 0) die(0);  // the kernel closed the session
        if (!wire::split(g->rbuf.data(), static_cast<size_t>(n), g->frames) || g->frames.size() != 1) die(1);
        const wire::frame f = g->frames[0];
        wire::reader head(f.p, f.n);
        const uint64_t size = head.u64();
        if (!head.ok() || (size && !g->down.view(size))) die(1);
        wire::reader args(size ? g->down.data() : "", size);
        sw_error err;
        std::memset(&err, 0, sizeof err);
        g->verdict = SW_OK;
        switch (f.o) {
            case op::create: {
                std::string_view settings = args.str(), job = args.str(), base = args.str();
                try {
                    g->settings = nlohmann::json::parse(settings);
                } catch (...) {
                    g->settings = nlohmann::json::object();
                }
                sw_create_args a{sizeof(sw_create_args), {settings.data(), settings.size()}, {job.data(), job.size()},
                                 {base.data(), base.size()}};
                void* inst = nullptr;
                sw_status s = call("create", err, [&] { return h.create(&k_host, reinterpret_cast<sw_host_ctx*>(g), &a, &inst, &err); });
                if (s == SW_OK) g->instance = inst;
                done(s == SW_OK && !inst ? SW_INTERNAL : s, err, s == SW_OK && !inst ? 1 : 0);
                break;
            }
            case op::contract: {
                const sw_contract* c = nullptr;
                sw_status s = call("contract", err, [&] { return h.contract(g->instance, &c, &err); });
                if (s != SW_OK) {
                    done(s, err);
                    break;
                }
                // The checks run here, so a contract with bad pointers
                // crashes this process and not the kernel.
                auto copied = copy_contract(c, who);
                if (!copied) {
                    set_error(err, "bad_contract", copied.status().message());
                    done(SW_INTERNAL, err, 1);
                    break;
                }
                std::string bytes;
                encode_contract(*copied, bytes);
                if (!g->up.reserve(bytes.size())) die(1);
                std::memcpy(g->up.data(), bytes.data(), bytes.size());
                done(SW_OK, err, bytes.size());
                break;
            }
            case op::extract:
            case op::read_state: {
                // After the entities: how far the hook may run ahead of the
                // kernel (0: two batches, as every other hook).
                wire::reader names = args;
                (void)read_entities(names);
                const uint64_t ahead = names.ok() ? names.u64() : 0;
                g->ring_cap = names.ok() ? static_cast<size_t>(std::min<uint64_t>(ahead, wire::k_max_arena / 2)) : 0;
                if (f.o == op::extract) entities_hook("extract", h.extract, args);
                else entities_hook("read_state", h.read_state, args);
                if (g->ring_ready)  // the ring's memory goes back
                    (void)::fallocate(g->up.fd(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                      static_cast<off_t>(2 * g->slot_size), static_cast<off_t>(g->ring_cap));
                g->ring_cap = 0;
                g->ring_ready = false;
                break;
            }
            case op::state_token: entities_hook("state_token", h.state_token, args); break;
            case op::diff: {
                sw_batch b;
                std::string why;
                const bool end = size == 0;
                if (!end && !g->decoder.decode(g->down.data(), size, b, why)) die(1);
                sw_status s = call("diff", err, [&] { return h.diff(g->instance, end ? nullptr : &b, &err); });
                done(s, err);
                break;
            }
            case op::apply: {
                sw_change_batch b;
                std::string why;
                if (!g->decoder.decode(g->down.data(), size, b, why)) die(1);
                sw_status s = call("apply", err, [&] { return h.apply(g->instance, &b, &err); });
                done(s, err);
                break;
            }
            case op::commit: {
                sw_status s = h.commit ? call("commit", err, [&] { return h.commit(g->instance, &err); }) : SW_OK;
                done(s, err);
                break;
            }
            case op::abort: {
                if (h.abort) {
                    hook_scope running("abort");
                    try { h.abort(g->instance); } catch (...) {}
                }
                done(SW_OK, err);
                break;
            }
            case op::system_id: {
                sw_str out{nullptr, 0};
                sw_status s = h.system_id ? call("system_id", err, [&] { return h.system_id(g->instance, &out, &err); })
                                          : SW_OK;
                std::string_view id = out.ptr ? std::string_view(out.ptr, out.len) : std::string_view();
                if (s == SW_OK && !id.empty()) {
                    if (!g->up.reserve(id.size())) die(1);
                    std::memcpy(g->up.data(), id.data(), id.size());
                }
                done(s, err, s == SW_OK ? id.size() : 0);
                break;
            }
            case op::destroy: {
                if (g->instance) {
                    try { h.destroy(g->instance); } catch (...) {}
                    g->instance = nullptr;
                }
                done(SW_OK, err);
                die(0);
            }
            default: die(1);
        }
    }
}

void out_of_memory() {
    static const char msg[] = "syncwarden worker: an allocation failed under the memory limit\n";
    [[maybe_unused]] auto r = ::write(2, msg, sizeof msg - 1);
    ::_exit(wire::k_exit_oom);
}

void set_limit(int resource, uint64_t value) {
    if (!value) return;
    rlimit rl{value, value};
    ::setrlimit(resource, &rl);
}

}  // namespace

bool is_worker_command(int argc, char** argv) { return argc > 1 && std::strcmp(argv[1], k_worker_command) == 0; }

int worker_main(int argc, char** argv) {
    // Nothing of the kernel's may leak into the connector's process.
    ::close_range(wire::k_fd_library + 1, ~0u, 0);
    std::string so, sha256, release;
    sandbox_policy sandbox;
    bool probe = false;
    uint64_t memory_mb = 0, cpu = 0, files = 0, processes = 0;
    long parent = 0;
    for (int i = 2; i < argc; ++i) {
        std::string a = argv[i];
        auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
        if (a == "--so") so = next();
        else if (a == "--probe") probe = true;
        else if (a == "--sandbox") {
            try {
                sandbox = sandbox_policy::from_json(nlohmann::json::parse(next()));
            } catch (const std::exception&) {
                return 1;
            }
        }
        else if (a == "--sha256") sha256 = next();
        else if (a == "--release") release = next();
        else if (a == "--memory-mb") memory_mb = std::strtoull(next().c_str(), nullptr, 10);
        else if (a == "--cpu-seconds") cpu = std::strtoull(next().c_str(), nullptr, 10);
        else if (a == "--open-files") files = std::strtoull(next().c_str(), nullptr, 10);
        else if (a == "--processes") processes = std::strtoull(next().c_str(), nullptr, 10);
        else if (a == "--parent") parent = std::strtol(next().c_str(), nullptr, 10);
        // The operator's umask: what the connector writes (a vendor's drop)
        // is not the kernel's private data.
        else if (a == "--umask") ::umask(static_cast<mode_t>(std::strtoul(next().c_str(), nullptr, 8) & 0777));
    }
    // A crash is the kernel's to report: no handler (a sanitizer's, in a
    // sanitizer build) turns a connector's SIGSEGV into an exit code.
    for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL}) std::signal(sig, SIG_DFL);
    // Dies with the kernel; the check after closes the race with a kernel
    // that died before prctl.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (parent && ::getppid() != parent) return 1;
#if !defined(__SANITIZE_ADDRESS__) && !defined(SYNCWARDEN_SANITIZED)
    // A sanitizer reserves terabytes of shadow memory; no data limit fits it.
    set_limit(RLIMIT_DATA, memory_mb << 20);
#else
    (void)memory_mb;
#endif
    if (cpu) {
        rlimit rl{cpu, cpu + 5};  // SIGXCPU at the limit, SIGKILL 5 s later
        ::setrlimit(RLIMIT_CPU, &rl);
    }
    set_limit(RLIMIT_NOFILE, files);
    std::set_new_handler(out_of_memory);
    // Line by line, so a connector's output reaches the run's log even when
    // the process dies.
    std::setvbuf(stdout, nullptr, _IOLBF, 0);

    static worker_state state;
    g = &state;
    void* page = ::mmap(nullptr, sizeof(wire::control_page), PROT_READ | PROT_WRITE, MAP_SHARED, wire::k_fd_page, 0);
    if (page == MAP_FAILED) return 1;
    g->page = static_cast<wire::control_page*>(page);

    // The library, as the kernel opened it: read through the descriptor,
    // named by its path in every message.
    const std::string by_fd = "/proc/self/fd/" + std::to_string(wire::k_fd_library);
    auto refuse = [&](const std::string& message) {
        std::string m = message;
        for (size_t at; (at = m.find(by_fd)) != std::string::npos;) m.replace(at, by_fd.size(), so);
        post(op::load_failed, [&](wire::writer& w) { w.str(m); });
        flush();
        return 0;
    };
    // Checked before it is loaded, when the kernel left that to this process.
    if (!sha256.empty())
        if (auto st = verify_library(by_fd, sha256, release); !st) return refuse(st.message());
    // Confined before the library is loaded: its constructors run in the
    // sandbox, which lets it read the library through the descriptor (its
    // path may lie in folders this identity cannot pass).
    sandbox.library = {by_fd};
    if (auto st = confine_self(sandbox); !st) return refuse(st.message());
    // Counted per uid: only an id of its own makes the count its own.
    if (sandbox.uid) set_limit(RLIMIT_NPROC, processes);
    // A change of identity clears the parent-death signal.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (parent && ::getppid() != parent) return 1;
    // Loading runs the library's constructors: from here on, anything may happen.
    auto lib = load_connector(by_fd);
    if (!lib) return refuse(lib.status().message());
    g->lib = *lib;
    const connector_info& i = g->lib->info();
    const sw_hooks& h = g->lib->hooks();
    post(op::manifest, [&](wire::writer& w) {
        w.str(i.name);
        w.str(i.version);
        w.str(i.build_id);
        w.str(i.description);
        w.u32(i.abi_major);
        w.u32(i.abi_minor);
        w.u32(i.capabilities);
        w.u32(i.thread_safety);
        w.str(i.settings_schema, wire::k_max_inline_text * 4);
        w.u32((h.diff ? 1u : 0u) | (h.state_token ? 2u : 0u) | (h.commit ? 4u : 0u) | (h.abort ? 8u : 0u) |
              (h.system_id ? 16u : 0u));
    });
    flush();
    if (probe) return 0;
    serve(i.name + " " + i.version);
    return 0;
}

}  // namespace syncwarden::kernel
