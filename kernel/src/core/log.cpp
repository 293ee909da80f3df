#include <syncwarden/kernel/log.hpp>
#include <syncwarden/kernel/pii.hpp>

#include <nlohmann/json.hpp>
#include <spdlog/sinks/daily_file_sink.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <fcntl.h>
#include <map>
#include <mutex>
#include <unistd.h>

namespace syncwarden::kernel {
namespace {

std::shared_ptr<spdlog::logger>& logger() {
    static std::shared_ptr<spdlog::logger> l =
        std::make_shared<spdlog::logger>("syncwarden", std::make_shared<spdlog::sinks::null_sink_mt>());
    return l;
}

std::string line_of(spdlog::level::level_enum lvl, const log_fields& f, std::string_view msg) {
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
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

void emit(spdlog::level::level_enum lvl, const log_fields& f, std::string_view msg) {
    auto& l = logger();
    if (!l->should_log(lvl)) return;
    std::string line = line_of(lvl, f, msg);
    line.pop_back();
    l->log(lvl, "{}", line);
}

// The runs' own logs of what their connectors said.
struct run_outputs {
    std::mutex mu;
    std::filesystem::path data_dir;  // empty until init_logging
    std::string current;
    uint64_t current_cap = k_default_output_cap;
    struct one {
        int fd = -1;
        connector_output stats;
    };
    std::map<std::string, one> runs;
};
run_outputs& outputs() {
    static run_outputs o;
    return o;
}

}  // namespace

std::filesystem::path run_log_file(const std::filesystem::path& data_dir, const std::string& run_id) {
    return data_dir / "logs" / "runs" / (run_id + ".jsonl");
}

void set_current_run(const std::string& run_id, uint64_t cap_bytes) {
    auto& o = outputs();
    std::lock_guard l(o.mu);
    o.current = run_id;
    o.current_cap = cap_bytes;
    auto& r = o.runs[run_id];
    r.stats.cap = cap_bytes;
}

void log_connector_output(const log_fields& f, uint32_t sw_level, std::string_view msg) {
    static const spdlog::level::level_enum map[] = {spdlog::level::debug, spdlog::level::info, spdlog::level::warn,
                                                     spdlog::level::err};
    const auto lvl = sw_level < 4 ? map[sw_level] : spdlog::level::info;
    if (!logger()->should_log(lvl)) return;
    auto& o = outputs();
    std::lock_guard l(o.mu);
    if (o.data_dir.empty()) return;
    const std::string run = f.run_id.empty() ? o.current : f.run_id;
    if (run.empty() || run.find('/') != std::string::npos) {
        // No run (a probe of a library being installed): the shared log,
        // a line at most 1 KiB.
        emit(lvl, f, msg.substr(0, 1024));
        return;
    }
    auto [it, fresh] = o.runs.try_emplace(run);
    auto& r = it->second;
    if (fresh) r.stats.cap = run == o.current ? o.current_cap : k_default_output_cap;
    log_fields g = f;
    g.run_id = run;
    const std::string line = line_of(lvl, g, msg);
    if (r.stats.bytes + line.size() > r.stats.cap) {
        if (r.stats.dropped_lines++ == 0 && r.fd >= 0) {
            log_fields h = g;
            h.event = "connector_output_capped";
            const std::string note = line_of(spdlog::level::warn, h,
                                             "the connectors' output reached this run's cap of " +
                                                 std::to_string(r.stats.cap) + " bytes (limits.output_mb): what "
                                                 "follows is counted, not kept");
            [[maybe_unused]] auto w = ::write(r.fd, note.data(), note.size());
        }
        r.stats.dropped_bytes += line.size();
        return;
    }
    if (r.fd < 0) {
        const auto file = run_log_file(o.data_dir, run);
        std::error_code ec;
        std::filesystem::create_directories(file.parent_path(), ec);
        r.fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (r.fd < 0) return;
        r.stats.file = std::filesystem::path("logs") / "runs" / (run + ".jsonl");
    }
    if (::write(r.fd, line.data(), line.size()) == static_cast<ssize_t>(line.size())) {
        r.stats.bytes += line.size();
        ++r.stats.lines;
    }
}

connector_output connector_output_of(const std::string& run_id) {
    auto& o = outputs();
    std::lock_guard l(o.mu);
    auto it = o.runs.find(run_id);
    return it == o.runs.end() ? connector_output{} : it->second.stats;
}

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
        auto& o = outputs();
        std::lock_guard g(o.mu);
        o.data_dir = data_dir;
    } catch (const std::exception&) {
        // Logging is best effort: a read-only data dir must not stop a run.
    }
}

void log_info(const log_fields& f, std::string_view msg) { emit(spdlog::level::info, f, msg); }
void log_warn(const log_fields& f, std::string_view msg) { emit(spdlog::level::warn, f, msg); }

void log_connector(const std::string& who, uint32_t sw_level, std::string_view msg) {
    log_connector_output({"", "", who, "", "connector_log"}, sw_level, msg);
}

}  // namespace syncwarden::kernel
