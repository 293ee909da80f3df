// Unique names under identity rules (config/README.md, "Identity rules"):
// the second person whose template gives zoe.garcia gets zoe.garcia2, the
// third zoe.garcia3, and each keeps the name at every later run. The kernel
// remembers which key got which name in the run store, by keyed hashes only.
#pragma once

#include <syncwarden/kernel/store.hpp>

#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace syncwarden::kernel {

// `name` with the counter `n` (n > 1) before its '@', or at its end.
std::string with_counter(std::string_view name, uint32_t n);

class name_registry {
public:
    explicit name_registry(std::string system) : system_(std::move(system)) {}

    // Loads what the store holds for one target entity and field.
    Status load(run_store& store, const std::string& entity, const std::string& field);
    // The name `key` gets for the name `base` its rule gave: the one it was
    // given before for the same base, else the first of base, base2, base3
    // ... that no other key was ever given.
    std::string assign(const std::string& entity, const std::string& field, std::string_view key,
                       std::string_view base);
    // What this run gave that the store does not hold yet.
    const std::vector<assigned_name_record>& fresh() const { return fresh_; }

private:
    struct names {
        std::unordered_map<std::string, assigned_name_record> by_key;  // key hash -> its current name
        std::unordered_map<std::string, std::string> owner;            // name hash -> key hash
    };
    std::string system_;
    std::map<std::pair<std::string, std::string>, names> fields_;
    std::vector<assigned_name_record> fresh_;
};

}  // namespace syncwarden::kernel
