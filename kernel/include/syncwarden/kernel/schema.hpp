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
    // ABI 1.3 enumerations: the values the field may hold, sorted; empty
    // when any value goes. Values starting with `extension_prefix` pass.
    std::vector<std::string> allowed;
    std::string extension_prefix;
    // "" when `v` is allowed, else what is wrong with it.
    std::string enum_problem(std::string_view v) const;
};

struct entity_schema {
    std::string name, key_name;
    std::vector<field_schema> fields;
    std::optional<size_t> index_of(std::string_view field) const;
};

struct contract_schema {
    std::vector<entity_schema> entities;
    const entity_schema* find(std::string_view entity) const;
};

// Copies and checks what the contract hook returned. `who` names the
// connector in messages.
Result<contract_schema> copy_contract(const sw_contract* c, const std::string& who);

// "" when `value` fits `type`, else what is wrong with it.
std::string check_value(sw_field_type type, std::string_view value);
const char* type_name(sw_field_type t);

}  // namespace syncwarden::kernel
