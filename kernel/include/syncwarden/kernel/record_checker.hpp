// Checks what a connector emits against its own contract. Every problem is
// reported as a finding; a bad record is skipped, never stored.
#pragma once

#include <syncwarden/connector.h>
#include <syncwarden/kernel/schema.hpp>
#include <syncwarden/kernel/store.hpp>

#include <functional>
#include <string>

namespace syncwarden::kernel {

class record_checker {
public:
    using report_fn = std::function<void(finding_record)>;
    // `who` and `hook` name the connector and the hook in messages.
    record_checker(const contract_schema& contract, std::string who, std::string hook, report_fn report);

    // The batch's entity, or null when the whole batch is refused.
    const entity_schema* check_batch(const sw_batch& b) const;
    // Shape only: value count and key. Used for state read back from a target.
    bool check_shape(const sw_record& rec, const entity_schema& es) const;
    // Shape, required fields (for active records) and value types.
    bool check_record(const sw_record& rec, const entity_schema& es) const;

private:
    bool bad(const entity_schema& es, const sw_record& rec, const char* code, const std::string& msg) const;
    const contract_schema& contract_;
    std::string who_, hook_;
    report_fn report_;
};

}  // namespace syncwarden::kernel
