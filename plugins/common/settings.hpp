// The job's settings object for a connector, parsed, or an SW_CONFIG error.
#pragma once

#include <syncwarden/connector.hpp>

#include <nlohmann/json.hpp>

#include <string>

namespace syncwarden::csv {

inline nlohmann::json parse_settings(const std::string& json) {
    try {
        auto s = nlohmann::json::parse(json);
        if (!s.is_object()) throw sdk::error(SW_CONFIG, "settings", "settings must be a JSON object");
        return s;
    } catch (const nlohmann::json::exception& e) {
        throw sdk::error(SW_CONFIG, "settings", std::string("settings are not JSON: ") + e.what());
    }
}

}  // namespace syncwarden::csv
