#include <syncwarden/kernel/gates.hpp>
#include <syncwarden/kernel/pii.hpp>

#include <set>

namespace syncwarden::kernel {
namespace {

// A rule compiled against one entity's schema: which value it reads.
struct bound_rule {
    const protect_rule* rule;
    int field;  // -1: the key
};

bool matches(const bound_rule& b, std::string_view v) {
    switch (b.rule->how) {
        case protect_rule::match::exact: return v == b.rule->value;
        case protect_rule::match::prefix: return v.substr(0, b.rule->value.size()) == b.rule->value;
        case protect_rule::match::regex: return std::regex_search(v.begin(), v.end(), b.rule->re);
    }
    return false;
}

Result<std::vector<bound_rule>> bind_rules(const entity_plan& ep, const deprovision_context& ctx) {
    std::vector<bound_rule> out;
    for (auto& r : ctx.policy.protect) {
        if (r.entity != "*" && r.entity != ep.schema.name) continue;
        int field = -1;
        if (r.field != ep.schema.key_name) {
            auto i = ep.schema.index_of(r.field);
            if (!i) {
                if (r.entity == "*") continue;  // a rule for all entities binds where the field exists
                std::string names = ep.schema.key_name;
                for (auto& f : ep.schema.fields) names += ", " + f.name;
                return Status::error(error_kind::config, ctx.job_file + ": " + r.path + ".field: '" + r.field +
                                                             "' is not a field of the target entity '" +
                                                             ep.schema.name + "' (fields: " + names + ")");
            }
            field = static_cast<int>(*i);
        }
        out.push_back({&r, field});
    }
    return out;
}

// The deactivate policy's fields as indexes into the entity's schema.
Result<std::vector<std::pair<size_t, std::string>>> bind_policy(const entity_plan& ep, const deprovision_policy& d,
                                                                const deprovision_context& ctx) {
    std::vector<std::pair<size_t, std::string>> out;
    for (auto& [field, value] : d.set) {
        auto i = ep.schema.index_of(field);
        if (!i)
            return Status::error(error_kind::config, ctx.job_file + ": " + d.path + ".set." + field + ": '" + field +
                                                         "' is not a field of the target entity '" + ep.schema.name +
                                                         "'; a deactivate policy sets fields the target has");
        out.emplace_back(*i, value);
    }
    return out;
}

}  // namespace

Result<deactivation_changes> protect_and_deprovision(plan& p, const deprovision_context& ctx) {
    deactivation_changes out;
    for (auto& [entity, d] : ctx.policy.deprovision) {
        bool known = false;
        for (auto& ep : p.entities) known = known || ep.schema.name == entity;
        if (!known)
            return Status::error(error_kind::config, ctx.job_file + ": " + d.path + ": '" + entity +
                                                         "' is not a target entity this job maps");
    }
    for (auto& r : ctx.policy.protect) {
        if (r.entity == "*") continue;
        bool known = false;
        for (auto& ep : p.entities) known = known || ep.schema.name == r.entity;
        if (!known)
            return Status::error(error_kind::config, ctx.job_file + ": " + r.path + ".entity: '" + r.entity +
                                                         "' is not a target entity this job maps");
    }
    for (auto& ep : p.entities) {
        auto rules = bind_rules(ep, ctx);
        if (!rules) return rules.status();
        auto pit = ctx.policy.deprovision.find(ep.schema.name);
        const deprovision_policy* pol = pit == ctx.policy.deprovision.end() || !pit->second.deactivate ? nullptr : &pit->second;
        std::vector<std::pair<size_t, std::string>> set;
        if (pol) {
            auto b = bind_policy(ep, *pol, ctx);
            if (!b) return b.status();
            set = std::move(*b);
        }
        // Nothing to do for an entity without rules or policy: its plan (8M
        // changes on a first delivery) is not copied.
        if (rules->empty() && !pol) continue;
        static const std::map<std::string, std::chrono::system_clock::time_point> k_none;
        auto sit = ctx.deactivated_since.find(ep.schema.name);
        const auto& since = sit == ctx.deactivated_since.end() ? k_none : sit->second;
        auto inactive = [&](size_t cur) {
            for (auto& [f, v] : set)
                if (ep.current.field(cur, f) != v) return false;
            return true;
        };
        const size_t nf = ep.schema.fields.size();
        std::vector<std::string_view> values(nf);
        // Rewritten in place: a change is only ever dropped or replaced.
        size_t kept = 0;
        for (size_t i = 0; i < ep.changes.size(); ++i) {
            const planned_change c = ep.changes[i];
            if (c.kind != SW_CHANGE_DELETE) {
                ep.changes[kept++] = c;
                continue;
            }
            const std::string_view key = ep.current.key(c.current);
            const bound_rule* hit = nullptr;
            for (auto& b : *rules)
                if (matches(b, b.field < 0 ? key : ep.current.field(c.current, static_cast<size_t>(b.field)))) {
                    hit = &b;
                    break;
                }
            if (hit) {
                ep.protected_records.push_back({std::string(key), hit->rule->text(), pol ? "deactivate" : "delete"});
                continue;
            }
            if (!pol) {
                ep.changes[kept++] = c;
                continue;
            }
            if (inactive(c.current)) {
                // Deactivated before: deleted once its grace period is over.
                auto t = since.find(pii::keyed(key));
                if (pol->delete_after && t != since.end() && ctx.now - t->second >= *pol->delete_after)
                    ep.changes[kept++] = c;
                continue;
            }
            for (size_t f = 0; f < nf; ++f) values[f] = ep.current.field(c.current, f);
            for (auto& [f, v] : set) values[f] = v;
            const uint32_t begin = static_cast<uint32_t>(ep.changed_fields.size());
            for (auto& [f, v] : set)
                if (ep.current.field(c.current, f) != v) ep.changed_fields.push_back(static_cast<uint16_t>(f));
            const uint32_t d = static_cast<uint32_t>(ep.desired.size());
            ep.desired.add(key, values.data(), 0);
            planned_change u{SW_CHANGE_UPDATE, d, c.current, begin, static_cast<uint32_t>(ep.changed_fields.size()) - begin};
            u.deactivate = true;
            ep.changes[kept++] = u;
        }
        ep.changes.resize(kept);
        if (!pol) continue;
        // What the store knows of deactivated records (by keyed hash),
        // brought up to date with what the target holds now: inactive
        // records it does not know yet are added; whatever is no longer
        // inactive in the target (active again, or gone) is forgotten.
        std::set<std::string> still;
        for (size_t i = 0; i < ep.current.size(); ++i) {
            if (!inactive(i)) continue;
            std::string h = pii::keyed(ep.current.key(i));
            if (since.count(h)) still.insert(std::move(h));
            else out.first_seen[ep.schema.name].push_back(std::move(h));
        }
        for (auto& [key, t] : since)
            if (!still.count(key)) out.forget[ep.schema.name].push_back(key);
    }
    return out;
}

}  // namespace syncwarden::kernel
