// A connector's settings, checked against the JSON Schema its manifest
// declares (ABI 1.1), before the connector sees them.
#pragma once

#include <syncwarden/connector.h>

#include <map>

#include <syncwarden/kernel/result.hpp>

#include <nlohmann/json.hpp>

#include <string>

namespace syncwarden::kernel {

// `where` names the settings in messages ("job.json: $.target.settings");
// `who` the connector ("vendor-csv 1.2.0"). Every violation is listed with
// its JSON path. A schema that is not valid JSON Schema is the connector's
// defect.
Status validate_settings(const std::string& schema_text, const nlohmann::json& settings, const std::string& where,
                         const std::string& who);

// The host's config_get: the value at a JSON pointer into the settings,
// unquoted for strings and as JSON text otherwise, kept in `cache` so that it
// stays valid until destroy. SW_CONFIG when absent or not a pointer.
sw_status settings_value(const nlohmann::json& settings, std::map<std::string, std::string>& cache, sw_str pointer,
                         sw_str* out) noexcept;

}  // namespace syncwarden::kernel
