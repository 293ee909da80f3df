// What the OneRoster 1.1 / 1.2 CSV binding says about each file.
#pragma once

#include <syncwarden/connector.h>

#include <string>
#include <vector>

namespace syncwarden::oneroster {

struct column_spec {
    const char* name;
    sw_field_type type;
    bool required_11;   // a required column in OneRoster 1.1
    bool required_12;   // a required column in OneRoster 1.2
    bool required_value;  // declared required in the connector's contract
    const char* refers_to;  // entity whose sourcedId this column holds, or nullptr
};

struct entity_spec {
    const char* name;   // entity, and the file name without ".csv"
    std::vector<column_spec> columns;  // without sourcedId, status, dateLastModified
};

// In the order the files are read: referenced entities before referencing ones.
const std::vector<entity_spec>& entities();
const entity_spec* find_entity(const std::string& name);

// Headers read as another name: misspellings seen in real exports, and the
// OneRoster 1.0 names of users columns 1.1 renamed (userId, agents).
const char* header_alias(const std::string& entity, const std::string& header);
// Why header_alias renames it, for the warning.
std::string alias_reason(const std::string& header);
// The values an enumerated column may hold (OneRoster 1.1 and 1.2 together;
// case-sensitive, as the specification says), or nullptr. Values that start
// with k_extension_prefix are extensions the binding allows.
const std::vector<std::string>* vocabulary(const std::string& entity, const std::string& column);
inline constexpr const char* k_extension_prefix = "ext:";

// metadata.* and ext_* columns: extensions the CSV binding allows.
bool is_extension_column(const std::string& header);

}  // namespace syncwarden::oneroster
