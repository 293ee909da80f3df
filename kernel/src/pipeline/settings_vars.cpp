#include "settings_vars.hpp"

namespace syncwarden::kernel {
namespace {

Result<std::string> expand_string(const std::string& v, const std::string& data_dir, const std::string& job_dir,
                                  const std::string& path) {
    std::string out;
    size_t i = 0;
    while (i < v.size()) {
        size_t at = v.find("${", i);
        if (at == std::string::npos) {
            out.append(v, i, std::string::npos);
            break;
        }
        out.append(v, i, at - i);
        size_t end = v.find('}', at + 2);
        std::string name = end == std::string::npos ? "" : v.substr(at + 2, end - at - 2);
        if (end == std::string::npos || name.find("${") != std::string::npos)
            return Status::error(error_kind::config,
                                 path + ": '" + v + "' has a '${' at character " + std::to_string(at + 1) +
                                     " that is not a complete variable; write ${data_dir} or ${job_dir}");
        if (name == "data_dir") out += data_dir;
        else if (name == "job_dir") out += job_dir;
        else
            return Status::error(error_kind::config, path + ": unknown variable '${" + name +
                                                         "}'; settings know ${data_dir} and ${job_dir}");
        i = end + 1;
    }
    return out;
}

Result<nlohmann::json> expand(const nlohmann::json& j, const std::string& data_dir, const std::string& job_dir,
                              const std::string& path) {
    if (j.is_string()) {
        auto s = expand_string(j.get<std::string>(), data_dir, job_dir, path);
        if (!s) return s.status();
        return nlohmann::json(*s);
    }
    nlohmann::json out = j;
    if (j.is_array()) {
        for (size_t i = 0; i < j.size(); ++i) {
            auto e = expand(j[i], data_dir, job_dir, path + "[" + std::to_string(i) + "]");
            if (!e) return e;
            out[i] = std::move(*e);
        }
    } else if (j.is_object()) {
        for (auto& [k, v] : j.items()) {
            auto e = expand(v, data_dir, job_dir, path + "." + k);
            if (!e) return e;
            out[k] = std::move(*e);
        }
    }
    return out;
}

}  // namespace

Result<nlohmann::json> expand_settings(const nlohmann::json& settings, const std::filesystem::path& data_dir,
                                       const std::filesystem::path& job_dir, const std::string& where) {
    return expand(settings, data_dir.string(), job_dir.string(), where);
}

}  // namespace syncwarden::kernel
