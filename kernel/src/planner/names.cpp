#include <syncwarden/kernel/names.hpp>
#include <syncwarden/kernel/pii.hpp>

namespace syncwarden::kernel {

std::string with_counter(std::string_view name, uint32_t n) {
    if (n <= 1) return std::string(name);
    const size_t at = name.find('@');
    std::string out(name.substr(0, at));
    out += std::to_string(n);
    if (at != std::string_view::npos) out += name.substr(at);
    return out;
}

Status name_registry::load(run_store& store, const std::string& entity, const std::string& field) {
    auto rows = store.assigned_names(system_, entity, field);
    if (!rows) return rows.status();
    auto& f = fields_[{entity, field}];
    for (auto& r : *rows) {
        f.owner[r.name_hash] = r.key_hash;
        if (r.current) f.by_key[r.key_hash] = r;
    }
    return Status::ok();
}

std::string name_registry::assign(const std::string& entity, const std::string& field, std::string_view key,
                                  std::string_view base) {
    if (base.empty()) return {};
    auto& f = fields_[{entity, field}];
    const std::string kh = pii::keyed(key), bh = pii::keyed(base);
    auto held = f.by_key.find(kh);
    if (held != f.by_key.end() && held->second.base_hash == bh) return with_counter(base, held->second.counter);
    // New, or the rule now gives another name (a rename): the first free one.
    // The key's earlier names stay its own, so no one else is given them.
    if (held != f.by_key.end()) {
        auto before = held->second;
        before.current = false;
        fresh_.push_back(before);
    }
    for (uint32_t n = 1;; ++n) {
        std::string name = with_counter(base, n);
        const std::string nh = pii::keyed(name);
        auto o = f.owner.find(nh);
        if (o != f.owner.end() && o->second != kh) continue;
        assigned_name_record r{system_, entity, field, nh, kh, bh, n, true};
        f.owner[nh] = kh;
        f.by_key[kh] = r;
        fresh_.push_back(r);
        return name;
    }
}

}  // namespace syncwarden::kernel
