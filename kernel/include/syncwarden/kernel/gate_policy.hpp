// The safety gates of a job (config/README.md, "Safety gates"): change
// thresholds, the source shrink guard, protected records and the
// deprovisioning policy. Defaults hold a run that would delete or deactivate
// more than 10% of an entity, or update more than 75% of it.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <regex>
#include <string>
#include <vector>

namespace syncwarden::kernel {

// A limit on a number of changes or records: an absolute count and/or a
// percentage of a base. It trips when either is exceeded. `off` never trips.
struct gate_limit {
    std::optional<uint64_t> count;
    std::optional<double> percent;
    bool off = false;
    bool set() const { return off || count || percent; }
    // "10%", "500", "500 or 10%", "off"
    std::string text() const;
};

// The four kinds of change a threshold counts. `deactivate` is a delete
// that the deprovisioning policy turned into an update.
inline constexpr const char* k_gate_kinds[] = {"create", "update", "delete", "deactivate"};

struct protect_rule {
    std::string entity;  // a target entity, or "*"
    std::string field;   // a target field or the entity's key name
    enum class match { exact, prefix, regex } how = match::exact;
    std::string value;
    std::regex re;       // match::regex
    std::string path;    // JSON path, for messages: "$.gates.protect[0]"
    // "username prefix 'admin.' ($.gates.protect[0])"
    std::string text() const;
};

struct deprovision_policy {
    bool deactivate = false;                                  // else delete
    std::vector<std::pair<std::string, std::string>> set;     // target field -> value
    std::optional<std::chrono::milliseconds> delete_after;    // grace after deactivation
    std::string path;
};

struct gate_policy {
    // [target entity or "*"][kind] -> limit; a named entity's limits win over
    // "*", which wins over the defaults.
    std::map<std::string, std::map<std::string, gate_limit>> thresholds;
    // [source entity or "*"] -> how far the source may shrink since the
    // last good run.
    std::map<std::string, gate_limit> shrink;
    std::vector<protect_rule> protect;
    std::map<std::string, deprovision_policy> deprovision;  // by target entity
    // Severity of findings by code, or "ENTITY.CODE": "error" makes a
    // finding block (hold) the run, "warning" and "info" report it only.
    // A finding the source or kernel reports as an error stays one: its
    // record is not in the plan.
    std::map<std::string, std::string> severity;

    // The limit in force for a target entity and kind (defaults included).
    gate_limit threshold(const std::string& entity, const std::string& kind) const;
    gate_limit shrink_limit(const std::string& source_entity) const;
};

// One run's pre-approved limits (`--allow delete=60%`, `students.delete=60%`,
// `shrink=50%`), recorded with the run. The key is "KIND" or "ENTITY.KIND".
struct gate_allowance {
    std::map<std::string, gate_limit> limits;
    std::vector<std::string> as_given;
    const gate_limit* find(const std::string& entity, const std::string& kind) const;
};

// Parses "10%", "500", "off", or a JSON-ish "500/10%"; what is wrong otherwise.
std::optional<gate_limit> parse_limit_text(const std::string& text, std::string& error);

}  // namespace syncwarden::kernel
