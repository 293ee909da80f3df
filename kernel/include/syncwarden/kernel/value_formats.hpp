// The formats a source's values come in, field by field, sampled during
// extract: the schema drift gate compares them with the job's last good run
// and reports a field whose values changed shape (dates that were
// YYYY-MM-DD and are now M/D/YYYY).
#pragma once

#include <syncwarden/connector.h>
#include <syncwarden/kernel/schema.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace syncwarden::kernel {

// The shape of one value, in words an operator reads: "YYYY-MM-DD",
// "M/D/YYYY", "whole number", "email address", ...; "" for an empty value.
const char* value_format(std::string_view v);

struct field_formats {
    std::map<std::string, uint64_t> counts;      // format -> values seen
    std::map<std::string, std::string> example;  // format -> the key of the first record with it
    uint64_t total() const;
};
// entity -> field -> formats
using format_profile = std::map<std::string, std::map<std::string, field_formats>>;

class format_sampler {
public:
    // Looks at every record of the first few thousand of an entity, then at
    // one in 32: enough to see a format change, cheap on millions.
    void offer(const entity_schema& es, const sw_record& rec);
    const format_profile& profile() const { return profile_; }

private:
    format_profile profile_;
    std::map<std::string, uint64_t> seen_;
    const entity_schema* last_entity_ = nullptr;  // schemas outlive the sampler
    uint64_t* last_count_ = nullptr;
    // Per field of last_entity_: its formats in profile_ (null when not
    // sampled), and the counter of the format it had last.
    struct place {
        field_formats* formats = nullptr;
        const char* format = nullptr;
        uint64_t* count = nullptr;
    };
    std::vector<place> places_;
};

nlohmann::json to_json(const format_profile& p);
format_profile format_profile_from_json(const nlohmann::json& j);

// A field whose values mostly (90%+) had one format in the last good run
// and now mostly (over half) do not.
struct format_change {
    std::string entity, field;
    std::string was, now;        // the dominant formats
    double was_share = 0, now_share_of_was = 0, now_share = 0;
    std::string example_key;     // a record with the new format
};
std::vector<format_change> compare_formats(const format_profile& before, const format_profile& now);

}  // namespace syncwarden::kernel
