#include <syncwarden/kernel/audit.hpp>
#include <syncwarden/kernel/log.hpp>
#include <syncwarden/kernel/retention.hpp>

#include <chrono>
#include <ctime>

namespace fs = std::filesystem;

namespace syncwarden::kernel {
namespace {

std::string cutoff_of(const clock& clk, const std::optional<int>& days) {
    if (!days) return {};
    return iso8601(clk.now() - std::chrono::hours(24) * *days);
}

// A daily log file's date (syncwarden_YYYY-MM-DD.jsonl), as YYYY-MM-DD.
std::string log_date(const std::string& name) {
    static const std::string prefix = "syncwarden_", suffix = ".jsonl";
    if (name.size() != prefix.size() + 10 + suffix.size() || name.rfind(prefix, 0) != 0) return {};
    return name.substr(prefix.size(), 10);
}

}  // namespace

Result<retention_report> apply_retention(run_store& store, const fs::path& data_dir, const retention_policy& policy,
                                         const clock& clk, bool dry_run) {
    retention_report rep;
    const std::string plans_cutoff = cutoff_of(clk, policy.plans_days);
    const std::string results_cutoff = cutoff_of(clk, policy.change_results_days);
    const std::string logs_cutoff = cutoff_of(clk, policy.logs_days);
    std::vector<std::pair<std::string, std::string>> plan_files;  // binary, human
    std::vector<fs::path> run_logs;
    if (!plans_cutoff.empty()) {
        auto runs = store.finished_before(plans_cutoff);
        if (!runs) return runs.status();
        for (auto& r : *runs) {
            // The run's own log (what its connectors said) goes with its plan.
            if (std::error_code ec; fs::exists(run_log_file(data_dir, r.run_id), ec))
                run_logs.push_back(run_log_file(data_dir, r.run_id));
            if (r.plan_file.empty() && r.plan_path.empty()) continue;
            if (!r.plan_purged_at.empty()) {
                // Purged before; a file left behind (a failed removal) goes now.
                plan_files.emplace_back(r.plan_file, r.plan_path);
                continue;
            }
            if (r.state == "held") {
                rep.kept_held.push_back(r.run_id);
                continue;
            }
            rep.plans.push_back(r.run_id);
            plan_files.emplace_back(r.plan_file, r.plan_path);
        }
    }
    if (!results_cutoff.empty()) {
        auto runs = store.finished_before(results_cutoff);
        if (!runs) return runs.status();
        for (auto& r : *runs)
            if (r.change_results) {
                rep.results_of.push_back(r.run_id);
                rep.results += r.change_results;
            }
    }
    std::vector<fs::path> log_files;
    if (!logs_cutoff.empty()) {
        std::error_code ec;
        const std::string day = logs_cutoff.substr(0, 10);
        for (auto it = fs::directory_iterator(data_dir / "logs", ec); !ec && it != fs::directory_iterator();
             it.increment(ec)) {
            const std::string d = log_date(it->path().filename().string());
            if (!d.empty() && d < day) {
                log_files.push_back(it->path());
                rep.logs.push_back(it->path().filename().string());
            }
        }
    }
    if (dry_run) return rep;
    if (!rep.plans.empty() || !rep.results_of.empty() || !rep.logs.empty()) {
        auto log = audit_log::open(store, data_dir, clk);
        if (!log) return log.status();
        auto days = [](const std::optional<int>& d) { return d ? nlohmann::json(*d) : nlohmann::json("forever"); };
        nlohmann::json data{{"policy",
                             {{"plans_days", days(policy.plans_days)},
                              {"change_results_days", days(policy.change_results_days)},
                              {"logs_days", days(policy.logs_days)}}},
                            {"plans_of", rep.plans},
                            {"change_results_of", rep.results_of},
                            {"change_results", rep.results},
                            {"log_files", rep.logs}};
        const std::string at = iso8601(clk.now());
        if (auto s = store.in_transaction([&] {
                if (auto x = store.purge(rep.plans, rep.results_of, at); !x) return x;
                return (*log)->append({{"retention_applied", "", data}});
            });
            !s)
            return s;
    }
    // The files go once the store no longer points at them.
    std::error_code ec;
    // The store's paths name where the plans were written; a data dir may
    // have been copied or moved since. Only this data dir's plans/ folder is
    // ever touched: the file of that name in it.
    for (auto& [bin, human] : plan_files)
        for (auto& stored : {bin, human})
            if (!stored.empty()) fs::remove(data_dir / "plans" / fs::path(stored).filename(), ec);
    for (auto& f : log_files) fs::remove(f, ec);
    for (auto& f : run_logs) fs::remove(f, ec);
    return rep;
}

}  // namespace syncwarden::kernel
