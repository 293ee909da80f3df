#include <syncwarden/kernel/plan.hpp>
#include <cstdio>

namespace syncwarden::kernel {

const char* kind_name(sw_change_kind k) {
    switch (k) {
        case SW_CHANGE_CREATE: return "create";
        case SW_CHANGE_UPDATE: return "update";
        case SW_CHANGE_DELETE: return "delete";
    }
    return "?";
}

// Not a cryptographic digest: an identifier that is stable for the same
// (run, entity, key, kind), computed millions of times per large plan.
std::string change_id(const std::string& run_id, std::string_view entity, std::string_view key,
                      sw_change_kind kind) {
    std::string material;
    material.reserve(run_id.size() + entity.size() + key.size() + 3);
    material += run_id;
    material += '\x1f';
    material += entity;
    material += '\x1f';
    material += key;
    material += static_cast<char>('0' + kind);
    uint64_t a = hash_bytes(material);
    material += '\x1e';
    uint64_t b = hash_bytes(material);
    char out[25];
    std::snprintf(out, sizeof out, "%016llx%08llx", static_cast<unsigned long long>(a),
                  static_cast<unsigned long long>(b >> 32));
    return out;
}

std::map<std::string, change_counts> plan::counts() const {
    std::map<std::string, change_counts> out;
    for (auto& ep : entities) {
        auto& c = out[ep.schema.name];
        for (auto& ch : ep.changes) {
            if (ch.kind == SW_CHANGE_CREATE) ++c.create;
            else if (ch.kind == SW_CHANGE_UPDATE) ++c.update;
            else ++c.remove;
        }
    }
    return out;
}

size_t plan::total() const {
    size_t n = 0;
    for (auto& ep : entities) n += ep.changes.size();
    return n;
}

// Merge join over both sets in key order. In bulk mode a current record the
// source no longer sends is deleted; in delta mode it is left alone.
void keyed_diff(entity_plan& ep) {
    auto& d = ep.desired;
    auto& c = ep.current;
    (void)d.sort_by_key();
    (void)c.sort_by_key();
    ep.changes.clear();
    ep.changed_fields.clear();
    size_t i = 0, j = 0;
    const size_t nf = d.field_count();
    while (i < d.size() || j < c.size()) {
        int cmp;
        if (i == d.size()) cmp = 1;
        else if (j == c.size()) cmp = -1;
        else {
            auto a = d.key(d.sorted(i)), b = c.key(c.sorted(j));
            cmp = a < b ? -1 : (a == b ? 0 : 1);
        }
        if (cmp < 0) {
            uint32_t di = static_cast<uint32_t>(d.sorted(i++));
            if (d.state(di) == SW_RECORD_TOBEDELETED) continue;
            planned_change ch{SW_CHANGE_CREATE, di, 0, static_cast<uint32_t>(ep.changed_fields.size()),
                              static_cast<uint32_t>(nf)};
            for (size_t f = 0; f < nf; ++f) ep.changed_fields.push_back(static_cast<uint16_t>(f));
            ep.changes.push_back(ch);
        } else if (cmp > 0) {
            uint32_t ci = static_cast<uint32_t>(c.sorted(j++));
            if (ep.mode == SW_MODE_BULK) ep.changes.push_back({SW_CHANGE_DELETE, 0, ci, 0, 0});
        } else {
            uint32_t di = static_cast<uint32_t>(d.sorted(i++)), ci = static_cast<uint32_t>(c.sorted(j++));
            // Duplicate keys were reported before the diff; skip the extras.
            while (i < d.size() && d.key(d.sorted(i)) == d.key(di)) ++i;
            while (j < c.size() && c.key(c.sorted(j)) == c.key(ci)) ++j;
            if (d.state(di) == SW_RECORD_TOBEDELETED) {
                ep.changes.push_back({SW_CHANGE_DELETE, di, ci, 0, 0});
                continue;
            }
            uint32_t begin = static_cast<uint32_t>(ep.changed_fields.size());
            for (size_t f = 0; f < nf; ++f)
                if (d.field(di, f) != c.field(ci, f)) ep.changed_fields.push_back(static_cast<uint16_t>(f));
            uint32_t n = static_cast<uint32_t>(ep.changed_fields.size()) - begin;
            if (n) ep.changes.push_back({SW_CHANGE_UPDATE, di, ci, begin, n});
        }
    }
}

}  // namespace syncwarden::kernel
