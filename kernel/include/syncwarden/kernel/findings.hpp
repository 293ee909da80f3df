// The findings of one run: what connectors reported and what the kernel
// found in their data. Error findings about an entity the job uses block the
// run; errors about other entities are kept as warnings.
#pragma once

#include <syncwarden/kernel/store.hpp>

#include <set>
#include <string>
#include <vector>

namespace syncwarden::kernel {

class finding_log {
public:
    static constexpr size_t k_max_kept = 10000;

    void use_entity(const std::string& entity) { used_.insert(entity); }
    void add(finding_record f);

    size_t blocking() const { return blocking_; }
    const std::vector<finding_record>& kept() const { return kept_; }
    size_t not_kept() const { return not_kept_; }
    size_t total() const { return kept_.size() + not_kept_; }
    // "file:line:col: message" of the first blocking finding, or "".
    std::string first_blocking() const;

private:
    std::set<std::string> used_;
    std::vector<finding_record> kept_;
    size_t not_kept_ = 0, blocking_ = 0;
};

}  // namespace syncwarden::kernel
