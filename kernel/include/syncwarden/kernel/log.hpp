// Structured logs: one JSON object a line with fixed fields
// (ts, level, run_id, job, connector, phase, event, msg).
#pragma once

#include <cstdint>
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

// What connectors say (their stdout and stderr lines, their host log()
// calls) is the run's, not the shared log's: it goes to
// <data_dir>/logs/runs/<run_id>.jsonl (0600; retention removes it with the
// run's plan), through the same redaction, and at most `cap` bytes of it a
// run; what is over the cap is counted, not kept. A line with no run id is
// the current run's (set_current_run: in-process connectors). Before
// init_logging it goes nowhere.
inline constexpr uint64_t k_default_output_cap = 16ull << 20;
void set_current_run(const std::string& run_id, uint64_t cap_bytes);
// `sw_level`: SW_LOG_DEBUG .. SW_LOG_ERROR; debug lines are kept only when
// the kernel logs at debug level.
void log_connector_output(const log_fields& f, uint32_t sw_level, std::string_view msg);
struct connector_output {
    std::string file;  // relative to the data dir; "" when nothing was said
    uint64_t lines = 0, bytes = 0, dropped_lines = 0, dropped_bytes = 0, cap = 0;
};
connector_output connector_output_of(const std::string& run_id);
std::filesystem::path run_log_file(const std::filesystem::path& data_dir, const std::string& run_id);

}  // namespace syncwarden::kernel
