#include <syncwarden/kernel/findings.hpp>

namespace syncwarden::kernel {

void finding_log::add(finding_record f, bool record_kept) {
    if (!severity_.empty() && f.severity != "error") {
        auto it = severity_.find(f.entity + "." + f.code);
        if (it == severity_.end()) it = severity_.find(f.code);
        if (it != severity_.end() && it->second != f.severity) {
            f.message += " (" + it->second + " by the job's $.gates.findings)";
            f.severity = it->second;
            // Reported as less than an error, its record was not dropped.
            record_kept = true;
        }
    }
    bool used = f.entity.empty() || used_.count(f.entity);
    if (f.severity == "error") {
        if (used) {
            ++blocking_;
            if (!record_kept && first_unsafe_.empty()) first_unsafe_ = where(f);
            unsafe_ += !record_kept;
        }
        else {
            f.severity = "warning";
            f.message += " (entity not used by this job, so it does not block the run)";
        }
    }
    if (kept_.size() < k_max_kept) kept_.push_back(std::move(f));
    else ++not_kept_;
}

std::string finding_log::where(const finding_record& f) {
    if (f.file.empty()) return f.message;
    std::string at = f.file;
    if (f.line) at += ":" + std::to_string(f.line) + (f.column ? ":" + std::to_string(f.column) : "");
    else if (f.column) at += " (column " + std::to_string(f.column) + ")";
    return at + ": " + f.message;
}

std::string finding_log::first_blocking() const {
    for (auto& f : kept_)
        if (f.severity == "error") return where(f);
    return "";
}

}  // namespace syncwarden::kernel
