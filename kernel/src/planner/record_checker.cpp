#include <syncwarden/kernel/record_checker.hpp>
#include <syncwarden/kernel/text.hpp>

#include <cstring>

namespace syncwarden::kernel {
namespace {
}  // namespace

record_checker::record_checker(const contract_schema& contract, std::string who, std::string hook, report_fn report)
    : contract_(contract), who_(std::move(who)), hook_(std::move(hook)), report_(std::move(report)),
      // Unowned records (ABI 1.4) are what a target holds, never a source's.
      highest_state_(hook_ == "read_state" ? SW_RECORD_UNOWNED : SW_RECORD_TOBEDELETED) {}

const entity_schema* record_checker::check_batch(const sw_batch& b) const {
    auto drift = [&](const std::string& entity, const std::string& msg) {
        report_({"error", "schema_drift", entity, "", 0, 0, "", who_ + " " + hook_ + ": " + msg});
        return nullptr;
    };
    if (b.struct_size < sizeof(sw_batch))
        return drift("", "sw_batch.struct_size is " + std::to_string(b.struct_size) + ", expected at least " +
                             std::to_string(sizeof(sw_batch)));
    std::string entity(view(b.entity));
    const entity_schema* es = contract_.find(entity);
    if (!es) return drift("", "emitted records for '" + entity + "', which its contract does not declare");
    if (b.record_count && !b.records)
        return drift(entity, "records is NULL but record_count is " + std::to_string(b.record_count));
    if (b.mode > SW_MODE_DELTA) {
        report_({"error", "connector_defect", entity, "", 0, 0, "",
                 who_ + " " + hook_ + ": a batch of '" + entity + "' has mode " + std::to_string(b.mode) +
                     ", which is neither bulk (0) nor delta (1); its records were not used. This is a defect of "
                     "the connector: report it to its authors"});
        return nullptr;
    }
    return es;
}

namespace {

// Whether every byte is ASCII and none is NUL: ORs the bytes together (and
// the classic has-a-zero-byte test per word), so the common case costs no
// UTF-8 decoding. Most values are short: the tail is read as two
// overlapping words (or halves, or three bytes) instead of byte by byte.
bool plain(sw_str s) {
    const char* p = s.ptr;
    size_t n = s.ptr ? s.len : 0;
    constexpr uint64_t lo = 0x0101010101010101ULL, hi = 0x8080808080808080ULL;
    auto bad = [](uint64_t w) { return ((w | ((w - lo) & ~w)) & hi) != 0; };
    auto load8 = [](const char* at) {
        uint64_t w;
        std::memcpy(&w, at, 8);
        return w;
    };
    auto load4 = [](const char* at) {
        uint32_t w;
        std::memcpy(&w, at, 4);
        return static_cast<uint64_t>(w) * 0x0000000100000001ULL;  // both halves: no false zero byte
    };
    if (n >= 8) {
        for (; n > 8; p += 8, n -= 8)
            if (bad(load8(p))) return false;
        return !bad(load8(p + n - 8));
    }
    if (n >= 4) return !bad(load4(p)) && !bad(load4(p + n - 4));
    for (; n; --n) {
        const auto c = static_cast<unsigned char>(*p++);
        if (c == 0 || c >= 0x80) return false;
    }
    return true;
}

}  // namespace

std::string record_checker::encoding_hint() const {
    return hook_ == "extract" ? "; the source is not UTF-8: tell the connector the export's encoding (oneroster-csv: "
                                "the \"encoding\" setting) or convert the file"
                              : "; the target holds text that is not UTF-8: repair it in the target";
}

bool record_checker::bad(const entity_schema& es, const sw_record& rec, const char* code,
                         const std::string& msg) const {
    std::string key(view(rec.key));
    report_({"error", code, es.name, "", 0, 0, key, who_ + ": " + es.name + " '" + key + "': " + msg});
    return false;
}

bool record_checker::check_shape(const sw_record& rec, const entity_schema& es) const {
    if (rec.value_count != es.fields.size() || (rec.value_count && !rec.values))
        return bad(es, rec, "schema_drift", "record has " + std::to_string(rec.value_count) +
                                                " values, the contract declares " + std::to_string(es.fields.size()) +
                                                " fields");
    if (rec.key.len == 0) return bad(es, rec, "missing_key", "record has an empty " + es.key_name);
    if (rec.state > highest_state_)
        return bad(es, rec, "connector_defect",
                   "record state is " + std::to_string(rec.state) +
                       (highest_state_ == SW_RECORD_UNOWNED ? ", which is not active (0), tobedeleted (1) or unowned (2)"
                                                            : ", which is neither active (0) nor tobedeleted (1)") +
                       "; this is a defect of the connector");
    // A NUL byte is no text; inside the kernel one NUL is the empty string
    // of a field that tells it from absent.
    auto nul = [&](const std::string& what, std::string_view v) {
        const size_t at = v.find('\0');
        if (at == std::string_view::npos) return true;
        return bad(es, rec, "bad_encoding",
                   what + " holds a NUL byte at byte " + std::to_string(at + 1) + " ('" + printable(v) +
                       "'), which no text value may hold" + encoding_hint());
    };
    // A record the wire decoder made holds its key and values one after
    // another: one check of the whole text instead of one per value.
    if (rec.key.ptr) {
        const char* end = rec.key.ptr + rec.key.len;
        bool adjacent = true;
        for (size_t f = 0; f < rec.value_count && adjacent; ++f) {
            if (rec.values[f].len == 0) continue;
            adjacent = rec.values[f].ptr == end;
            end += rec.values[f].len;
        }
        if (adjacent && plain({rec.key.ptr, static_cast<size_t>(end - rec.key.ptr)})) return true;
    }
    if (!plain(rec.key)) {
        if (auto at = utf8_invalid_at(view(rec.key)); at != std::string_view::npos)
            return bad(es, rec, "bad_encoding",
                       es.key_name + " is not valid UTF-8 at byte " + std::to_string(at + 1) + encoding_hint());
        if (!nul(es.key_name, view(rec.key))) return false;
    }
    for (size_t f = 0; f < rec.value_count; ++f) {
        if (plain(rec.values[f])) continue;
        if (auto at = utf8_invalid_at(view(rec.values[f])); at != std::string_view::npos)
            return bad(es, rec, "bad_encoding",
                       es.fields[f].name + " is not valid UTF-8 at byte " + std::to_string(at + 1) + " ('" +
                           printable(view(rec.values[f])) + "')" + encoding_hint());
        if (!nul(es.fields[f].name, view(rec.values[f]))) return false;
    }
    return true;
}

value_problem find_value_problem(const entity_schema& es, const std::string_view* values, bool active) {
    for (size_t f = 0; f < es.fields.size(); ++f) {
        const std::string_view v = values[f];
        const field_schema& fs = es.fields[f];
        if (v.empty() || is_empty_value(v)) {
            if (fs.required && active)
                return {"missing_required",
                        "required field " + fs.name + (v.empty() ? " is empty" : " is the empty string"), f};
            continue;
        }
        if (!fs.allowed.empty() && active)
            if (auto why = fs.enum_problem(v); !why.empty()) return {"enum_value", fs.name + " is " + why, f};
        if (fs.type == SW_TYPE_STRING || fs.type == SW_TYPE_LIST) continue;
        if (auto why = check_value(fs.type, v); !why.empty())
            return {"bad_value", fs.name + " is '" + std::string(v) + "': " + why, f};
    }
    return {};
}

bool record_checker::check_record(const sw_record& rec, const entity_schema& es) const {
    if (!check_shape(rec, es)) return false;
    values_.resize(es.fields.size());
    for (size_t f = 0; f < es.fields.size(); ++f) values_[f] = value_in(rec.values[f], es.fields[f].keeps_empty);
    auto p = find_value_problem(es, values_.data(), rec.state == SW_RECORD_ACTIVE);
    if (!p.code) return true;
    if (!locate_ || p.field >= es.fields.size()) return bad(es, rec, p.code, p.what);
    auto [file, column] = locate_(es.name, es.fields[p.field].name);
    std::string key(view(rec.key));
    report_({"error", p.code, es.name, file, 0, column, key, who_ + ": " + es.name + " '" + key + "': " + p.what});
    return false;
}

}  // namespace syncwarden::kernel
