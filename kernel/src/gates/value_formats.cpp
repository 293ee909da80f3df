#include <syncwarden/kernel/value_formats.hpp>

#include <cctype>

namespace syncwarden::kernel {
namespace {

bool digits(std::string_view v, size_t from, size_t to) {
    if (from >= to || to > v.size()) return false;
    for (size_t i = from; i < to; ++i)
        if (!std::isdigit(static_cast<unsigned char>(v[i]))) return false;
    return true;
}

// Digits separated by `sep` in three groups, the last of four digits.
bool day_month_year(std::string_view v, char sep) {
    const size_t a = v.find(sep);
    if (a == std::string_view::npos) return false;
    const size_t b = v.find(sep, a + 1);
    if (b == std::string_view::npos) return false;
    return a >= 1 && a <= 2 && b - a - 1 >= 1 && b - a - 1 <= 2 && v.size() - b - 1 == 4 && digits(v, 0, a) &&
           digits(v, a + 1, b) && digits(v, b + 1, v.size());
}

constexpr uint64_t k_all_of_first = 2048;
constexpr uint64_t k_then_one_in = 32;

}  // namespace

const char* value_format(std::string_view v) {
    if (v.empty()) return "";
    if (v.size() == 10 && digits(v, 0, 4) && v[4] == '-' && digits(v, 5, 7) && v[7] == '-' && digits(v, 8, 10))
        return "YYYY-MM-DD";
    if (v.size() > 10 && digits(v, 0, 4) && v[4] == '-' && digits(v, 5, 7) && v[7] == '-' && digits(v, 8, 10) &&
        (v[10] == 'T' || v[10] == ' '))
        return "ISO 8601 date-time";
    if (day_month_year(v, '/')) return "M/D/YYYY";
    if (day_month_year(v, '.')) return "D.M.YYYY";
    if (day_month_year(v, '-')) return "M-D-YYYY";
    const size_t sign = (v[0] == '-' || v[0] == '+') ? 1 : 0;
    if (digits(v, sign, v.size())) return "whole number";
    if (auto dot = v.find('.'); dot != std::string_view::npos && digits(v, sign, dot) && digits(v, dot + 1, v.size()))
        return "decimal number";
    if (v == "true" || v == "false") return "true/false";
    if (v == "TRUE" || v == "FALSE" || v == "True" || v == "False") return "TRUE/FALSE";
    if (auto at = v.find('@'); at != std::string_view::npos && at > 0 && v.find('.', at) != std::string_view::npos &&
                               v.find(' ') == std::string_view::npos)
        return "email address";
    bool letters = true, alnum = true;
    for (char c : v) {
        const auto u = static_cast<unsigned char>(c);
        letters = letters && (std::isalpha(u) || u >= 0x80);
        alnum = alnum && (std::isalnum(u) || u >= 0x80 || c == '-' || c == '_');
    }
    if (letters) return "word";
    if (alnum) return "code";
    return "text";
}

uint64_t field_formats::total() const {
    uint64_t n = 0;
    for (auto& [f, c] : counts) n += c;
    return n;
}

void format_sampler::offer(const entity_schema& es, const sw_record& rec) {
    if (rec.state != SW_RECORD_ACTIVE || rec.value_count != es.fields.size()) return;
    // The entity of the last record (a batch holds one entity, and its
    // schema lives as long as the run), its counter and its fields' places
    // in the profile: no search by name per record.
    if (&es != last_entity_) {
        last_entity_ = &es;
        last_count_ = &seen_[es.name];
        auto& fields = profile_[es.name];
        places_.assign(es.fields.size(), place{});
        for (size_t f = 0; f < es.fields.size(); ++f)
            // A list's shape is its items' business; enumerations are checked exactly.
            if (es.fields[f].type != SW_TYPE_LIST && es.fields[f].allowed.empty())
                places_[f].formats = &fields[es.fields[f].name];
    }
    uint64_t& n = *last_count_;
    ++n;
    if (n > k_all_of_first && n % k_then_one_in != 0) return;
    for (size_t f = 0; f < es.fields.size(); ++f) {
        place& at = places_[f];
        if (!at.formats) continue;
        const char* fmt = value_format(std::string_view(rec.values[f].ptr ? rec.values[f].ptr : "", rec.values[f].len));
        if (!*fmt) continue;
        // A field's values mostly keep one format: its counter is kept.
        if (fmt != at.format) {
            at.format = fmt;
            at.count = &at.formats->counts[fmt];
        }
        if (++*at.count == 1) at.formats->example[fmt] = std::string(rec.key.ptr ? rec.key.ptr : "", rec.key.len);
    }
}

nlohmann::json to_json(const format_profile& p) {
    nlohmann::json out = nlohmann::json::object();
    for (auto& [entity, fields] : p)
        for (auto& [field, ff] : fields) out[entity][field] = ff.counts;
    return out;
}

format_profile format_profile_from_json(const nlohmann::json& j) {
    format_profile out;
    if (!j.is_object()) return out;
    for (auto& [entity, fields] : j.items()) {
        if (!fields.is_object()) continue;
        for (auto& [field, counts] : fields.items()) {
            if (!counts.is_object()) continue;
            for (auto& [fmt, n] : counts.items())
                if (n.is_number_unsigned()) out[entity][field].counts[fmt] = n.get<uint64_t>();
        }
    }
    return out;
}

std::vector<format_change> compare_formats(const format_profile& before, const format_profile& now) {
    std::vector<format_change> out;
    constexpr uint64_t k_min_values = 20;
    for (auto& [entity, fields] : now) {
        auto be = before.find(entity);
        if (be == before.end()) continue;
        for (auto& [field, ff] : fields) {
            auto bf = be->second.find(field);
            if (bf == be->second.end()) continue;
            const uint64_t bt = bf->second.total(), nt = ff.total();
            if (bt < k_min_values || nt < k_min_values) continue;
            auto dominant = [](const field_formats& x) {
                std::pair<std::string, uint64_t> best{"", 0};
                for (auto& [f, c] : x.counts)
                    if (c > best.second) best = {f, c};
                return best;
            };
            auto [was, was_n] = dominant(bf->second);
            const double was_share = static_cast<double>(was_n) / static_cast<double>(bt);
            auto it = ff.counts.find(was);
            const double now_share_of_was = it == ff.counts.end() ? 0 : static_cast<double>(it->second) / static_cast<double>(nt);
            if (was_share < 0.9 || now_share_of_was >= 0.5) continue;
            auto [is, is_n] = dominant(ff);
            auto ex = ff.example.find(is);
            out.push_back({entity, field, was, is, was_share, now_share_of_was,
                           static_cast<double>(is_n) / static_cast<double>(nt),
                           ex == ff.example.end() ? "" : ex->second});
        }
    }
    return out;
}

}  // namespace syncwarden::kernel
