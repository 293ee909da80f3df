// The worker wire on the kernel's side: a compromised worker sends any
// bytes. A packet is split into frames, and each frame decoded as the
// kernel decodes records and changes, and read as host calls are.
#include "../kernel/src/worker/wire.hpp"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace wire = syncwarden::kernel::wire;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const char* p = reinterpret_cast<const char*>(data);
    std::vector<wire::frame> frames;
    wire::batch_decoder dec;
    std::string why;
    auto within = [&](const void* q, size_t n, const char* base, size_t len) {
        const char* c = static_cast<const char*>(q);
        return n == 0 || (c >= base && c + n <= base + len);
    };
    auto check = [&](const char* fp, size_t fn) {
        sw_batch b{};
        if (dec.decode(fp, fn, b, why))
            for (size_t i = 0; i < b.record_count; ++i) {
                const sw_record& r = b.records[i];
                if (!within(r.key.ptr, r.key.len, fp, fn)) std::abort();
                for (size_t k = 0; k < r.value_count; ++k)
                    if (!within(r.values[k].ptr, r.values[k].len, fp, fn)) std::abort();
            }
        sw_change_batch c{};
        if (dec.decode(fp, fn, c, why))
            for (size_t i = 0; i < c.change_count; ++i)
                if (!within(c.changes[i].key.ptr, c.changes[i].key.len, fp, fn)) std::abort();
        wire::reader rd(fp, fn);
        while (rd.ok() && !rd.at_end()) {
            (void)rd.u32();
            (void)rd.str();
        }
    };
    if (wire::split(p, size, frames))
        for (auto& f : frames) check(f.p, f.n);
    check(p, size);

    // And the way back: records made of the input's pieces (split at NUL)
    // encode and decode to themselves.
    std::vector<sw_str> pieces;
    for (size_t at = 0; at <= size;) {
        size_t end = at;
        while (end < size && p[end] != 0) ++end;
        pieces.push_back({p + at, end - at});
        at = end + 1;
    }
    std::vector<sw_record> recs;
    for (size_t i = 0; i + 2 < pieces.size(); i += 3)
        recs.push_back({pieces[i], &pieces[i + 1], 2, SW_RECORD_ACTIVE});
    sw_batch b{sizeof b, {"items", 5}, SW_MODE_BULK, recs.data(), recs.size()};
    std::string buf(wire::encoded_size(b), '\0');
    wire::encode(b, buf.data());
    sw_batch back{};
    if (!dec.decode(buf.data(), buf.size(), back, why) || back.record_count != recs.size()) std::abort();
    for (size_t i = 0; i < recs.size(); ++i) {
        const sw_record& r = back.records[i];
        if (r.value_count != 2 || r.key.len != recs[i].key.len ||
            (r.key.len && std::memcmp(r.key.ptr, recs[i].key.ptr, r.key.len) != 0))
            std::abort();
        for (size_t k = 0; k < 2; ++k)
            if (r.values[k].len != recs[i].values[k].len ||
                (r.values[k].len && std::memcmp(r.values[k].ptr, recs[i].values[k].ptr, r.values[k].len) != 0))
                std::abort();
    }
    return 0;
}
