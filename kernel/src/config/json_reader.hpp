// Reads values out of one JSON config document; every error names the file
// and the JSON path. Shared by the job file's readers.
#pragma once

#include <syncwarden/kernel/result.hpp>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <set>
#include <string>

namespace syncwarden::kernel::config_detail {

using nlohmann::json;

inline std::string type_name(const json& j) {
    if (j.is_null()) return "null";
    return j.type_name();
}

// Reads values out of one JSON document, naming file and JSON path on error.
class reader {
public:
    explicit reader(std::filesystem::path file) : file_(std::move(file)) {}

    Status fail(const std::string& path, const std::string& what) const {
        return Status::error(error_kind::config, file_.string() + ": " + path + ": " + what);
    }
    Status expect(const json& j, json::value_t t, const std::string& path, const char* what) const {
        bool ok = j.type() == t || (t == json::value_t::number_unsigned && j.is_number_integer() &&
                                    j.get<long long>() >= 0);
        if (ok) return Status::ok();
        return fail(path, std::string("expected ") + what + ", found " + type_name(j));
    }
    Result<std::string> string(const json& obj, const std::string& path, const char* key,
                               bool required, std::string fallback = {}) const {
        auto it = obj.find(key);
        if (it == obj.end()) {
            if (required) return fail(path, std::string("missing required field '") + key + "'");
            return fallback;
        }
        if (!it->is_string())
            return fail(path + "." + key, "expected a string, found " + type_name(*it));
        if (required && it->get<std::string>().empty())
            return fail(path + "." + key, "must not be empty");
        return it->get<std::string>();
    }
    Status no_unknown(const json& obj, const std::string& path, std::set<std::string> known) const {
        for (auto& [k, v] : obj.items())
            if (!known.count(k)) {
                std::string list;
                for (auto& n : known) list += (list.empty() ? "" : ", ") + n;
                return fail(path + "." + k, "unknown field; expected one of: " + list);
            }
        return Status::ok();
    }

private:
    std::filesystem::path file_;
};


}  // namespace syncwarden::kernel::config_detail
