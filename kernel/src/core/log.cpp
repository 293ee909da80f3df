#include <syncwarden/kernel/log.hpp>
#include <syncwarden/kernel/pii.hpp>

#include <nlohmann/json.hpp>
#include <spdlog/sinks/daily_file_sink.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <chrono>

namespace syncwarden::kernel {
namespace {

std::shared_ptr<spdlog::logger>& logger() {
    static std::shared_ptr<spdlog::logger> l =
        std::make_shared<spdlog::logger>("syncwarden", std::make_shared<spdlog::sinks::null_sink_mt>());
    return l;
}

void emit(spdlog::level::level_enum lvl, const log_fields& f, std::string_view msg) {
    auto& l = logger();
    if (!l->should_log(lvl)) return;
    nlohmann::json j{{"ts", std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::system_clock::now().time_since_epoch()).count()},
                     {"level", spdlog::level::to_string_view(lvl).data()},
                     {"run_id", f.run_id},
                     {"job", f.job},
                     {"connector", f.connector},
                     {"phase", f.phase},
                     {"event", f.event},
                     // Record keys and values are quoted in messages: each
                     // quoted span becomes its keyed hash, as do e-mail
                     // addresses (pii.hpp).
                     {"msg", pii::redact(msg)}};
    l->log(lvl, "{}", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

}  // namespace

void init_logging(const std::filesystem::path& data_dir, const std::string& level) {
    try {
        std::filesystem::create_directories(data_dir / "logs");
        // One file a day (syncwarden_YYYY-MM-DD.jsonl), so that the
        // retention policy removes whole days.
        auto sink = std::make_shared<spdlog::sinks::daily_file_sink_mt>((data_dir / "logs" / "syncwarden.jsonl").string(), 0, 0);
        auto l = std::make_shared<spdlog::logger>("syncwarden", sink);
        l->set_pattern("%v");
        l->set_level(spdlog::level::from_str(level));
        l->flush_on(spdlog::level::info);
        logger() = l;
    } catch (const std::exception&) {
        // Logging is best effort: a read-only data dir must not stop a run.
    }
}

void log_info(const log_fields& f, std::string_view msg) { emit(spdlog::level::info, f, msg); }
void log_warn(const log_fields& f, std::string_view msg) { emit(spdlog::level::warn, f, msg); }

void log_connector(const std::string& who, uint32_t sw_level, std::string_view msg) {
    static const spdlog::level::level_enum map[] = {spdlog::level::debug, spdlog::level::info,
                                                     spdlog::level::warn, spdlog::level::err};
    emit(sw_level < 4 ? map[sw_level] : spdlog::level::info, {"", "", who, "", "connector_log"}, msg);
}

}  // namespace syncwarden::kernel
