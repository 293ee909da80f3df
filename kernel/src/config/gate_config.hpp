#pragma once

#include <syncwarden/kernel/gate_policy.hpp>

#include "json_reader.hpp"

namespace syncwarden::kernel::config_detail {

// Reads $.gates of a job file into `p`.
Status read_gates(const reader& r, const json& j, gate_policy& p);

}  // namespace syncwarden::kernel::config_detail
