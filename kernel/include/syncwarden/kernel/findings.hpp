// The findings of one run: what connectors reported and what the kernel
// found in their data. Error findings about an entity the job uses block the
// run (they fail it, or hold it when their records are kept; see add());
// errors about other entities are kept as warnings.
#pragma once

#include <syncwarden/kernel/store.hpp>

#include <map>
#include <set>
#include <string>
#include <vector>

namespace syncwarden::kernel {

class finding_log {
public:
    static constexpr size_t k_max_kept = 10000;

    void use_entity(const std::string& entity) { used_.insert(entity); }
    // The job's severities by code or "ENTITY.CODE" (gate_policy::severity).
    void set_severities(std::map<std::string, std::string> s) { severity_ = std::move(s); }
    // `record_kept`: the finding is about a record the kernel saw and left
    // as the target holds it (neither updated nor deleted), so a run held by
    // it can be approved. Other error findings (a row the source could not
    // read, a connector's defect, a target record in error) mean records
    // are missing from the plan: the run fails instead.
    void add(finding_record f, bool record_kept = false);

    size_t blocking() const { return blocking_; }
    // Blocking findings whose records are not in the plan.
    size_t blocking_unsafe() const { return unsafe_; }
    const std::string& first_unsafe() const { return first_unsafe_; }
    const std::vector<finding_record>& kept() const { return kept_; }
    size_t not_kept() const { return not_kept_; }
    size_t total() const { return kept_.size() + not_kept_; }
    // "file:line:col: message" of the first blocking finding, or "".
    std::string first_blocking() const;

private:
    std::set<std::string> used_;
    std::map<std::string, std::string> severity_;
    std::vector<finding_record> kept_;
    size_t not_kept_ = 0, blocking_ = 0, unsafe_ = 0;
    std::string first_unsafe_;
    static std::string where(const finding_record& f);
};

}  // namespace syncwarden::kernel
