#include <syncwarden/kernel/plan.hpp>
#include <cstdio>

namespace syncwarden::kernel {

const char* kind_name(sw_change_kind k) {
    switch (k) {
        case SW_CHANGE_CREATE: return "create";
        case SW_CHANGE_UPDATE: return "update";
        case SW_CHANGE_DELETE: return "delete";
        case SW_CHANGE_ADOPT: return "adopt";
    }
    return "?";
}

// Not a cryptographic digest: an identifier computed millions of times per
// large plan. Every piece is length-prefixed, so no two inputs share one
// material string.
std::string change_id(std::string_view job, std::string_view entity, std::string_view key, sw_change_kind kind,
                      const record_set* desired, size_t desired_index) {
    thread_local std::string material;
    material.clear();
    auto piece = [](std::string_view v) {
        const uint32_t n = static_cast<uint32_t>(v.size());
        material.append(reinterpret_cast<const char*>(&n), sizeof n);
        material.append(v);
    };
    piece(job);
    piece(entity);
    piece(key);
    material += static_cast<char>('0' + kind);
    if (desired && kind != SW_CHANGE_DELETE)
        for (size_t f = 0; f < desired->field_count(); ++f) piece(desired->field(desired_index, f));
    uint64_t a = hash_bytes(material);
    material += '\x1e';
    uint64_t b = hash_bytes(material);
    static const char* hex = "0123456789abcdef";
    std::string out(24, '0');
    for (int i = 0; i < 16; ++i) out[static_cast<size_t>(i)] = hex[(a >> (60 - 4 * i)) & 15];
    for (int i = 0; i < 8; ++i) out[static_cast<size_t>(16 + i)] = hex[(b >> (60 - 4 * i)) & 15];
    return out;
}

std::map<std::string, change_counts> plan::counts() const {
    std::map<std::string, change_counts> out;
    for (auto& ep : entities) {
        auto& c = out[ep.schema.name];
        for (auto& ch : ep.changes) {
            if (ch.kind == SW_CHANGE_CREATE) ++c.create;
            else if (ch.deactivate) ++c.deactivate;
            else if (ch.kind == SW_CHANGE_UPDATE) ++c.update;
            else if (ch.kind == SW_CHANGE_ADOPT) ++c.adopt;
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

streaming_diff::streaming_diff(entity_plan& ep) : ep_(ep) {
    target_dups_ = ep_.current.build_index();
    follow_ = target_dups_.empty();  // a key held twice is looked up: the index knows the copy compared
    seen_.assign(ep_.current.size(), 0);
    exact_.assign(ep_.desired.field_count(), 1);
    for (size_t f = 0; f < ep_.schema.fields.size() && f < exact_.size(); ++f)
        exact_[f] = ep_.schema.fields[f].compared_exactly();
    // Unowned records (ABI 1.4) by their match field, for adoption; the
    // first of two with one match value wins.
    match_ = ep_.schema.match_field();
    if (match_ && ep_.unowned.size() && ep_.unowned.field_count() == ep_.schema.fields.size()) {
        const field_schema& mf = ep_.schema.fields[*match_];
        for (uint32_t u = 0; u < ep_.unowned.size(); ++u) {
            auto v = ep_.unowned.field(u, *match_);
            if (!v.empty()) unowned_by_match_.emplace(mf.match_key(v), u);
        }
        adopted_.assign(ep_.unowned.size(), 0);
    }
    ep_.changes.clear();
    ep_.changed_fields.clear();
}

bool streaming_diff::offer(std::string_view key, const std::string_view* values, bool tobedeleted) {
    const uint32_t nf = static_cast<uint32_t>(ep_.desired.field_count());
    auto cur = find_current(key);
    if (cur) next_ = static_cast<uint32_t>(*cur + 1);
    if (!cur) {
        if (tobedeleted) return true;  // never delivered: nothing to remove
        // An account made by hand with this match value is adopted instead
        // of being duplicated.
        if (!unowned_by_match_.empty() && !values[*match_].empty()) {
            auto it = unowned_by_match_.find(ep_.schema.fields[*match_].match_key(values[*match_]));
            if (it != unowned_by_match_.end() && !adopted_[it->second]) {
                const uint32_t u = it->second;
                adopted_[u] = 1;
                const uint32_t begin = static_cast<uint32_t>(ep_.changed_fields.size());
                for (uint16_t f = 0; f < nf; ++f) {
                    const std::string_view held = ep_.unowned.field(u, f);
                    if (values[f] == held || (!exact_[f] && ep_.schema.fields[f].same(held, values[f]))) continue;
                    ep_.changed_fields.push_back(f);
                }
                const uint32_t d = static_cast<uint32_t>(ep_.desired.size());
                ep_.desired.add(key, values, 0);
                ep_.changes.push_back({SW_CHANGE_ADOPT, d, u, begin,
                                       static_cast<uint32_t>(ep_.changed_fields.size()) - begin});
                return true;
            }
        }
        uint32_t d = static_cast<uint32_t>(ep_.desired.size());
        ep_.desired.add(key, values, 0);
        ep_.changes.push_back({SW_CHANGE_CREATE, d, 0, static_cast<uint32_t>(ep_.changed_fields.size()), nf});
        for (uint16_t f = 0; f < nf; ++f) ep_.changed_fields.push_back(f);
        return true;
    }
    const uint32_t c = static_cast<uint32_t>(*cur);
    if (seen_[c]) return false;
    seen_[c] = 1;
    if (tobedeleted) {
        ep_.changes.push_back({SW_CHANGE_DELETE, 0, c, 0, 0});
        return true;
    }
    const uint32_t begin = static_cast<uint32_t>(ep_.changed_fields.size());
    for (uint16_t f = 0; f < nf; ++f) {
        const std::string_view held = ep_.current.field(c, f);
        if (same_bytes(values[f], held)) continue;
        // Compare policies (ABI 1.4) only where the bytes differ.
        if (!exact_[f] && ep_.schema.fields[f].same(held, values[f])) continue;
        ep_.changed_fields.push_back(f);
    }
    const uint32_t n = static_cast<uint32_t>(ep_.changed_fields.size()) - begin;
    if (n == 0) return true;
    uint32_t d = static_cast<uint32_t>(ep_.desired.size());
    ep_.desired.add(key, values, 0);
    ep_.changes.push_back({SW_CHANGE_UPDATE, d, c, begin, n});
    return true;
}

void streaming_diff::keep(std::string_view key) {
    if (auto cur = ep_.current.lookup(key)) seen_[*cur] = 1;
}

// In bulk mode a current record the source no longer sends is deleted; in
// delta mode, or when the source sent nothing at all for the entity (a file
// absent from the export), it is left alone. A second copy of a key the
// target holds twice is never deleted when the source sends that key: the
// index only knows the first copy, and deleting "the other one" would tell
// the target to delete a live record.
std::vector<std::string_view> streaming_diff::finish() {
    for (auto& d : target_dups_)
        if (seen_[d.first]) seen_[d.second] = 1;
    if (ep_.mode == SW_MODE_BULK && ep_.source_sent)
        for (uint32_t c = 0; c < ep_.current.size(); ++c)
            if (!seen_[c]) ep_.changes.push_back({SW_CHANGE_DELETE, 0, c, 0, 0});
    // Creates are the only keys not checked against `seen_`.
    std::vector<std::string_view> dups;
    for (auto& d : ep_.desired.sort_by_key()) dups.push_back(ep_.desired.key(d.second));
    return dups;
}

void keyed_diff(entity_plan& ep) {
    record_set input = std::move(ep.desired);
    ep.desired = record_set(input.field_count());
    streaming_diff d(ep);
    std::vector<std::string_view> values(input.field_count());
    for (size_t i = 0; i < input.size(); ++i) {
        for (size_t f = 0; f < values.size(); ++f) values[f] = input.field(i, f);
        (void)d.offer(input.key(i), values.data(), input.state(i) == SW_RECORD_TOBEDELETED);
    }
    (void)d.finish();
    // `input` dies here; ep.desired holds copies of what changed.
}

}  // namespace syncwarden::kernel
