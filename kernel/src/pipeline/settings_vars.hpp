// Variables in connector settings: "${data_dir}" and "${job_dir}" in
// strings. Anything else that looks like a variable is a config error, so a
// typo never becomes a folder named "${HOME}".
#pragma once

#include <syncwarden/kernel/result.hpp>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>

namespace syncwarden::kernel {

// `where` names the settings object in errors: "job.json: $.target.settings".
Result<nlohmann::json> expand_settings(const nlohmann::json& settings, const std::filesystem::path& data_dir,
                                       const std::filesystem::path& job_dir, const std::string& where);

}  // namespace syncwarden::kernel
