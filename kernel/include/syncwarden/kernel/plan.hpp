// A change plan: per target entity, the creates, field-level updates and
// deletes that take the target from its current to its desired state.
#pragma once

#include <syncwarden/connector.h>
#include <syncwarden/kernel/record_set.hpp>
#include <syncwarden/kernel/schema.hpp>

#include <map>
#include <optional>
#include <unordered_map>
#include <string>
#include <vector>

namespace syncwarden::kernel {

struct planned_change {
    sw_change_kind kind;
    uint32_t desired = 0;       // index into desired (create, update, adopt)
    uint32_t current = 0;       // index into current (update, delete); into unowned (adopt)
    uint32_t changed_begin = 0; // into entity_plan::changed_fields
    uint32_t changed_count = 0;
    // An update the deprovisioning policy made of a delete: it sets the
    // policy's fields (status=inactive) instead of removing the record.
    bool deactivate = false;
};

// A delete or deactivation that a protect rule kept out of the plan.
struct protected_record {
    std::string key;
    std::string rule;       // protect_rule::text()
    std::string would;      // "delete" or "deactivate"
};

struct entity_plan {
    entity_schema schema;         // the target's
    sw_batch_mode mode = SW_MODE_BULK;
    // Whether the source emitted any batch (even an empty one) for the source
    // entity. Without one the source said nothing, and nothing is deleted.
    bool source_sent = false;
    record_set desired{0}, current{0};
    // ABI 1.4: what the target holds that is no source record's (an
    // account made by hand), keyed by the target's id; adopted, never
    // updated or deleted.
    record_set unowned{0};
    std::vector<planned_change> changes;
    std::vector<uint16_t> changed_fields;
    std::vector<protected_record> protected_records;

    std::string_view key_of(const planned_change& c) const {
        return c.kind == SW_CHANGE_CREATE || c.kind == SW_CHANGE_ADOPT ? desired.key(c.desired)
                                                                        : current.key(c.current);
    }
    // The record a change starts from: the current one, or for an adoption
    // the unowned one.
    const record_set& held_by(const planned_change& c) const {
        return c.kind == SW_CHANGE_ADOPT ? unowned : current;
    }
};

struct change_counts {
    size_t create = 0, update = 0, remove = 0, deactivate = 0, adopt = 0;
    size_t total() const { return create + update + remove + deactivate + adopt; }
};

struct plan {
    std::vector<entity_plan> entities;
    std::map<std::string, change_counts> counts() const;
    size_t total() const;
};

const char* kind_name(sw_change_kind k);
// "deactivate" for a deactivating update, else kind_name(c.kind).
inline const char* kind_name(const planned_change& c) { return c.deactivate ? "deactivate" : kind_name(c.kind); }
// The content id of a change: job, entity, key, kind and the desired values
// (none for a delete), hashed to 24 hex digits. No run id: the same change
// planned twice has the same id.
std::string change_id(std::string_view job, std::string_view entity, std::string_view key, sw_change_kind kind,
                      const record_set* desired, size_t desired_index);

// The kernel's generic keyed diff, fed one desired record at a time.
// Construction indexes ep.current; offer() compares a record with the
// current one of the same key and stores it in ep.desired only when it
// differs; finish() plans the deletes of a bulk entity.
class streaming_diff {
public:
    explicit streaming_diff(entity_plan& ep);
    // Keys the target holds more than once (the first one is compared).
    const std::vector<record_set::duplicate>& target_duplicates() const { return target_dups_; }
    // False when this key was offered before: a duplicate in the source.
    bool offer(std::string_view key, const std::string_view* values, bool tobedeleted);
    // Marks the target's record of this key as sent, without a change: a
    // source record in error is neither updated nor deleted.
    void keep(std::string_view key);
    // Returns the keys planned for creation more than once.
    std::vector<std::string_view> finish();

private:
    entity_plan& ep_;
    std::vector<uint8_t> seen_;  // per current record: the source sent it
    std::vector<uint8_t> exact_; // per field: compared byte for byte (no ABI 1.4 policy)
    // ABI 1.4 adoption: unowned records by their match field's match_key.
    std::optional<size_t> match_;
    std::unordered_map<std::string, uint32_t> unowned_by_match_;
    std::vector<uint8_t> adopted_;
    std::vector<record_set::duplicate> target_dups_;
    // The target's record after the last one matched. A target usually
    // lists its records in the order the source last sent them (a file
    // drop is written in that order), so the next key offered is most often
    // this one: a comparison with a record next to the last instead of a
    // hash probe to a random place. Off when the target holds a key twice.
    uint32_t next_ = 0;
    bool follow_ = true;
    std::optional<size_t> find_current(std::string_view key) {
        if (follow_ && next_ < ep_.current.size() && same_bytes(ep_.current.key(next_), key)) return next_;
        return ep_.current.lookup_near(key, next_);
    }
};

// The whole diff at once, for an entity_plan whose desired set is filled.
void keyed_diff(entity_plan& ep);

}  // namespace syncwarden::kernel
