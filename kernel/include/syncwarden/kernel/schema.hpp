// The kernel's own copy of a connector's data contract, checked for sanity
// when it crosses the ABI.
#pragma once

#include <syncwarden/connector.h>
#include <syncwarden/kernel/result.hpp>

#include <optional>
#include <string>
#include <vector>

namespace syncwarden::kernel {

struct field_schema {
    std::string name;
    sw_field_type type = SW_TYPE_STRING;
    bool required = false;
    bool keeps_empty = false;  // SW_FIELD_EMPTY_IS_VALUE: the empty string is a value, not absent
    // ABI 1.3 enumerations: the values the field may hold, sorted; empty
    // when any value goes. Values starting with `extension_prefix` pass.
    std::vector<std::string> allowed;
    std::string extension_prefix;
    // ABI 1.4 compare policy: how the diff compares this field; a list's
    // items as a set when `unordered`.
    sw_compare compare = SW_COMPARE_EXACT;
    bool unordered = false;
    bool match = false;  // SW_POLICY_MATCH: identifies an unowned record to adopt
    // "" when `v` is allowed, else what is wrong with it.
    std::string enum_problem(std::string_view v) const;
    // Whether one value (a list's item) is among `allowed`.
    bool allows(std::string_view item) const;
    bool is_list() const { return type == SW_TYPE_LIST || type == SW_TYPE_ITEMS; }
    char separator() const { return type == SW_TYPE_ITEMS ? SW_ITEM_SEP : ','; }
    // Whether the diff sees no difference between the target's value `held`
    // and the desired value `want` (per the compare policy; write_only and
    // ignore fields never differ).
    bool same(std::string_view held, std::string_view want) const;
    bool compared_exactly() const { return compare == SW_COMPARE_EXACT && !unordered; }
    // What two values that are the same() under the policy have in common
    // (case-folded for case_insensitive), for indexing match fields.
    std::string match_key(std::string_view v) const;
};

struct entity_schema {
    std::string name, key_name;
    std::vector<field_schema> fields;
    // ABI 1.4: entities this one refers to (applied first, deleted last).
    std::vector<std::string> depends_on;
    std::optional<size_t> index_of(std::string_view field) const;
    // The SW_POLICY_MATCH field, if any.
    std::optional<size_t> match_field() const;
};

struct contract_schema {
    std::vector<entity_schema> entities;
    const entity_schema* find(std::string_view entity) const;
};

// The items of a list value, split at `sep`; empty items are skipped.
std::vector<std::string_view> list_items(std::string_view v, char sep);

// Where each entity's changes go in an apply, for entities that depend on
// each other: names in the order their creates and updates are applied
// (every entity after those it depends on; otherwise in the given order).
// Deletes go in the reverse order. `entities` must be free of cycles (a
// checked contract is).
std::vector<std::string> apply_order(const std::vector<const entity_schema*>& entities);

// Copies and checks what the contract hook returned. `who` names the
// connector in messages.
Result<contract_schema> copy_contract(const sw_contract* c, const std::string& who);

// "" when `value` fits `type`, else what is wrong with it.
std::string check_value(sw_field_type type, std::string_view value);
const char* type_name(sw_field_type t);

}  // namespace syncwarden::kernel
