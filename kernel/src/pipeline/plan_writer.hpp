#pragma once

#include <syncwarden/kernel/plan.hpp>
#include <syncwarden/kernel/store.hpp>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <vector>

namespace syncwarden::kernel {

// One line for people: "update students/s-1: first_name 'Ann' -> 'Anne'".
std::string change_line(const entity_plan& ep, const planned_change& c);

// Streams the whole plan to `file` (written to a temp file, then renamed).
Status write_plan(const std::filesystem::path& file, const plan& p, const nlohmann::json& header,
                  const std::vector<finding_record>& findings);

}  // namespace syncwarden::kernel
