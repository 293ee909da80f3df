#include "custom_diff.hpp"

#include <cstddef>

#include <syncwarden/kernel/text.hpp>

#include <algorithm>

namespace syncwarden::kernel {
namespace {

// Takes the changes a target's diff hook emits into a new plan.
class plan_sink final : public change_sink {
public:
    plan_sink(connector_session& target, plan& plans, std::vector<entity_plan>& result,
              const std::map<std::string, size_t>& target_index, const std::function<void(finding_record)>& add_finding)
        : target_(target), plans_(plans), result_(result), target_index_(target_index), add_finding_(add_finding) {}

    sw_status on_changes(const sw_change_batch& b) override {
        std::string entity(view(b.entity));
        if (b.struct_size < offsetof(sw_change_batch, attempt) || !target_index_.count(entity) || (b.change_count && !b.changes)) {
            add_finding_({"error", "schema_drift", entity, "", 0, 0, "", target_.who() + " diff: emitted changes for an unknown entity or a malformed batch"});
            return SW_SCHEMA;
        }
        auto& np = result_[target_index_.at(entity)];
        const auto& cur = plans_.entities[target_index_.at(entity)].current;
        const size_t nf = np.schema.fields.size();
        for (size_t i = 0; i < b.change_count; ++i) {
            const sw_change& c = b.changes[i];
            if (c.value_count != nf || (nf && !c.values) || c.kind > SW_CHANGE_DELETE) {
                add_finding_({"error", "schema_drift", entity, "", 0, 0, std::string(view(c.key)),
                             target_.who() + " diff: change has " + std::to_string(c.value_count) + " values, expected " + std::to_string(nf)});
                continue;
            }
            views_.resize(nf);
            for (size_t f = 0; f < nf; ++f) views_[f] = value_in(c.values[f], np.schema.fields[f].keeps_empty);
            planned_change pc{static_cast<sw_change_kind>(c.kind), 0, 0,
                              static_cast<uint32_t>(np.changed_fields.size()), 0};
            auto existing = cur.find(view(c.key));
            if (c.kind != SW_CHANGE_DELETE) {
                pc.desired = static_cast<uint32_t>(np.desired.size());
                np.desired.add(view(c.key), views_.data(), 0);
            }
            if (c.kind != SW_CHANGE_CREATE) {
                pc.current = static_cast<uint32_t>(np.current.size());
                if (existing) {
                    std::vector<std::string_view> cv(nf);
                    for (size_t f = 0; f < nf; ++f) cv[f] = cur.field(*existing, f);
                    np.current.add(view(c.key), cv.data(), 0);
                } else {
                    np.current.add(view(c.key), views_.data(), 0);
                }
            }
            for (size_t k = 0; k < c.changed_count && c.changed_fields; ++k)
                if (c.changed_fields[k] < nf) {
                    np.changed_fields.push_back(static_cast<uint16_t>(c.changed_fields[k]));
                    ++pc.changed_count;
                }
            np.changes.push_back(pc);
        }
        return SW_OK;
    }

private:
    connector_session& target_;
    plan& plans_;
    std::vector<entity_plan>& result_;
    const std::map<std::string, size_t>& target_index_;
    const std::function<void(finding_record)>& add_finding_;
    std::vector<std::string_view> views_;
};

}  // namespace

Status run_custom_diff(connector_session& target, plan& plans, const std::map<std::string, size_t>& target_index,
                       run_services& rs, const std::function<void(finding_record)>& add_finding) {
    std::vector<entity_plan> result;
    for (auto& ep : plans.entities) {
        entity_plan np;
        np.schema = ep.schema;
        np.mode = ep.mode;
        np.desired = record_set(ep.schema.fields.size());
        np.current = record_set(ep.schema.fields.size());
        result.push_back(std::move(np));
    }
    plan_sink sink(target, plans, result, target_index, add_finding);
    for (auto& ep : plans.entities) {
        auto& d = ep.desired;
        const size_t batch = 1000;
        for (size_t start = 0; start < d.size(); start += batch) {
            std::vector<std::vector<sw_str>> vals;
            std::vector<sw_record> recs;
            for (size_t n = start; n < std::min(d.size(), start + batch); ++n) {
                size_t i = d.sorted(n);
                std::vector<sw_str> v;
                for (size_t f = 0; f < d.field_count(); ++f) v.push_back(value_out(d.field(i, f)));
                vals.push_back(std::move(v));
            }
            for (size_t n = start, k = 0; n < std::min(d.size(), start + batch); ++n, ++k) {
                auto key = d.key(d.sorted(n));
                recs.push_back({{key.data(), key.size()}, vals[k].data(), vals[k].size(), d.state(d.sorted(n))});
            }
            sw_batch b{sizeof(sw_batch), {ep.schema.name.data(), ep.schema.name.size()},
                       static_cast<uint32_t>(ep.mode), recs.data(), recs.size()};
            if (auto s = target.diff(&b, sink, rs); !s) return s;
        }
    }
    if (auto s = target.diff(nullptr, sink, rs); !s) return s;
    for (size_t i = 0; i < result.size(); ++i) plans.entities[i] = std::move(result[i]);
    return Status::ok();
}

}  // namespace syncwarden::kernel
