// Checks what a connector emits against its own contract. Every problem is
// reported as a finding; a bad record is skipped, never stored.
#pragma once

#include <syncwarden/connector.h>
#include <syncwarden/kernel/schema.hpp>
#include <syncwarden/kernel/store.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace syncwarden::kernel {

// The first value that breaks its field's contract: a required field left
// empty (only for active records) or a value that does not fit its type.
struct value_problem {
    const char* code = nullptr;  // "missing_required", "bad_value", "enum_value"; null when all is well
    std::string what;
    size_t field = SIZE_MAX;     // the field's index in the entity
};
value_problem find_value_problem(const entity_schema& es, const std::string_view* values, bool active);

class record_checker {
public:
    using report_fn = std::function<void(finding_record)>;
    // `who` and `hook` name the connector and the hook in messages.
    record_checker(const contract_schema& contract, std::string who, std::string hook, report_fn report);

    // The batch's entity, or null when the whole batch is refused.
    const entity_schema* check_batch(const sw_batch& b) const;
    // Shape, key, record state and UTF-8. Used alone for state read back
    // from a target.
    bool check_shape(const sw_record& rec, const entity_schema& es) const;
    // Shape, required fields (for active records) and value types.
    bool check_record(const sw_record& rec, const entity_schema& es) const;
    // Where a field of an entity was read: file and 1-based column, for the
    // findings about its values. Without one, findings name no file.
    using locate_fn = std::function<std::pair<std::string, uint64_t>(const std::string& entity, const std::string& field)>;
    void set_locator(locate_fn f) { locate_ = std::move(f); }

private:
    bool bad(const entity_schema& es, const sw_record& rec, const char* code, const std::string& msg) const;
    std::string encoding_hint() const;
    const contract_schema& contract_;
    std::string who_, hook_;
    report_fn report_;
    locate_fn locate_;
    uint32_t highest_state_;  // the highest sw_record_state this hook may emit
    mutable std::vector<std::string_view> values_;  // scratch for check_record
};

}  // namespace syncwarden::kernel
