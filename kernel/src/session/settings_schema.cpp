#include "settings_schema.hpp"

#include <syncwarden/kernel/config.hpp>

#include <valijson/adapters/nlohmann_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validator.hpp>

namespace syncwarden::kernel {
namespace {

// valijson's context is {"<root>", "[files]", "[0]", "[requried]"}: the
// JSON path the rest of the kernel's messages use, plus what the settings
// hold there and what the schema says the value is for.
struct located {
    std::string path, value, description;
};

located locate(const std::string& where, const std::vector<std::string>& context, const nlohmann::json& settings,
               const nlohmann::json& schema) {
    located out{where, "", ""};
    const nlohmann::json* value = &settings;
    const nlohmann::json* sub = &schema;
    for (const std::string& c : context) {
        if (c == "<root>") continue;
        std::string inner = c.size() >= 2 && c.front() == '[' && c.back() == ']' ? c.substr(1, c.size() - 2) : c;
        if (inner.size() >= 2 && inner.front() == '"' && inner.back() == '"') inner = inner.substr(1, inner.size() - 2);
        const bool index = !inner.empty() && inner.find_first_not_of("0123456789") == std::string::npos;
        out.path += index ? "[" + inner + "]" : "." + inner;
        if (value && index && value->is_array() && std::stoul(inner) < value->size()) value = &(*value)[std::stoul(inner)];
        else if (value && !index && value->is_object() && value->contains(inner)) value = &(*value)[inner];
        else value = nullptr;
        if (sub && index && sub->contains("items")) sub = &(*sub)["items"];
        else if (sub && !index && sub->contains("properties") && (*sub)["properties"].contains(inner))
            sub = &(*sub)["properties"][inner];
        else sub = nullptr;
    }
    if (value && !value->is_object() && !value->is_array())
        out.value = value->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    if (sub && sub->contains("description") && (*sub)["description"].is_string()) out.description = (*sub)["description"];
    return out;
}

}  // namespace

Status validate_settings(const std::string& schema_text, const nlohmann::json& settings, const std::string& where,
                         const std::string& who) {
    valijson::Schema schema;
    nlohmann::json doc;
    // A connector's text: held to the kernel's depth and size limits.
    auto parsed = parse_json_text(schema_text, who + "'s settings schema");
    if (!parsed)
        return Status::error(error_kind::connector, parsed.status().message() + "; this is a defect of the connector");
    try {
        doc = std::move(*parsed);
        valijson::SchemaParser parser;
        valijson::adapters::NlohmannJsonAdapter adapter(doc);
        parser.populateSchema(adapter, schema);
    } catch (const std::exception& e) {
        return Status::error(error_kind::connector, who + ": its settings schema is not a usable JSON Schema (" +
                                                        e.what() + "); this is a defect of the connector");
    }
    valijson::Validator validator(valijson::Validator::kStrongTypes);
    valijson::ValidationResults results;
    valijson::adapters::NlohmannJsonAdapter target(settings);
    try {
        if (validator.validate(schema, target, &results)) return Status::ok();
    } catch (const std::exception& e) {
        return Status::error(error_kind::connector, who + ": its settings schema could not be applied (" + e.what() +
                                                        "); this is a defect of the connector");
    }
    // valijson reports each failure and then the compound rules that
    // contain it; the innermost one is the useful one.
    std::string msg;
    std::string last_path;
    valijson::ValidationResults::Error e;
    size_t n = 0;
    while (results.popError(e)) {
        const located at = locate(where, e.context, settings, doc);
        if (at.path == last_path || (!last_path.empty() && last_path.rfind(at.path, 0) == 0)) continue;
        last_path = at.path;
        if (n++ >= 5) continue;
        std::string what = e.description;
        if (!what.empty() && what.back() == '.') what.pop_back();
        if (what.rfind("Failed to match regex", 0) == 0) what = "not of the expected form";
        if (what.rfind("Failed to match against any enum values", 0) == 0) what = "not one of the allowed values";
        msg += (msg.empty() ? "" : "; ") + at.path + (at.value.empty() ? "" : " is " + at.value) + ": " + what;
        if (!at.description.empty()) msg += " (expected " + at.description + ")";
    }
    if (n > 5) msg += "; and " + std::to_string(n - 5) + " more";
    return Status::error(error_kind::config, msg + ". `syncwarden connectors schema " +
                                                   who.substr(0, who.find(' ')) + "` shows every setting it accepts");
}

sw_status settings_value(const nlohmann::json& settings, std::map<std::string, std::string>& cache, sw_str pointer,
                         sw_str* out) noexcept {
    try {
        if (!out) return SW_INTERNAL;
        std::string p = pointer.ptr ? std::string(pointer.ptr, pointer.len) : std::string();
        auto it = cache.find(p);
        if (it == cache.end()) {
            nlohmann::json::json_pointer jp(p);
            if (!settings.contains(jp)) return SW_CONFIG;
            const auto& v = settings.at(jp);
            it = cache.emplace(p, v.is_string() ? v.get<std::string>() : v.dump()).first;
        }
        *out = sw_str{it->second.data(), it->second.size()};
        return SW_OK;
    } catch (...) {
        return SW_CONFIG;  // not a valid JSON pointer
    }
}

}  // namespace syncwarden::kernel
