// Structured logs: one JSON object a line with fixed fields
// (ts, level, run_id, job, connector, phase, event, msg).
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace syncwarden::kernel {

struct log_fields {
    std::string run_id, job, connector, phase, event;
};

// Sends logs to <data_dir>/logs/syncwarden_YYYY-MM-DD.jsonl, a file a day.
// Before this, logs go nowhere.
void init_logging(const std::filesystem::path& data_dir, const std::string& level);
void log_info(const log_fields& f, std::string_view msg);
void log_warn(const log_fields& f, std::string_view msg);
void log_connector(const std::string& who, uint32_t sw_level, std::string_view msg);

}  // namespace syncwarden::kernel
