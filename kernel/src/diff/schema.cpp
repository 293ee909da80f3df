#include <syncwarden/kernel/schema.hpp>
#include <syncwarden/kernel/record_set.hpp>

#include <unicode/unistr.h>

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <cstring>
#include <functional>
#include <map>
#include <set>

namespace syncwarden::kernel {
namespace {

std::string text(sw_str s) { return s.ptr ? std::string(s.ptr, s.len) : std::string(); }
bool bad_str(sw_str s) { return s.len > 0 && s.ptr == nullptr; }
bool all_digits(std::string_view v, size_t from, size_t to) {
    for (size_t i = from; i < to; ++i)
        if (!std::isdigit(static_cast<unsigned char>(v[i]))) return false;
    return true;
}
// YYYY-MM-DD at the start: month 01-12, day 01-31. The two-digit parts are
// read as numbers (this runs for every date of millions of records).
bool is_date(std::string_view v) {
    if (v.size() < 10 || !all_digits(v, 0, 4) || v[4] != '-' || !all_digits(v, 5, 7) || v[7] != '-' ||
        !all_digits(v, 8, 10))
        return false;
    const int month = (v[5] - '0') * 10 + (v[6] - '0'), day = (v[8] - '0') * 10 + (v[9] - '0');
    return month >= 1 && month <= 12 && day >= 1 && day <= 31;
}

// A contract array of 1.3+ elements (enums, policies, dependencies), stepped
// through by the elements' own struct_size so that a later minor may append
// fields to them. `problem` is empty when the array is usable.
template <class T>
struct stepped {
    const T* first = nullptr;
    size_t count = 0, stride = 0;
    std::string problem;
    stepped(const T* arr, size_t n, const std::string& name, const std::string& count_name) : first(arr), count(n) {
        if (n > 100000) problem = count_name + " is " + std::to_string(n) + ", expected at most 100000";
        else if (!arr) problem = name + " is NULL but " + count_name + " is " + std::to_string(n);
        else if ((stride = arr[0].struct_size) < sizeof(T))
            problem = name + "[0].struct_size is " + std::to_string(stride) + ", expected at least " +
                      std::to_string(sizeof(T));
    }
    // Element i, or nullptr when its struct_size differs from the first's.
    const T* at(size_t i) const {
        const T* e = reinterpret_cast<const T*>(reinterpret_cast<const char*>(first) + i * stride);
        return e->struct_size == stride ? e : nullptr;
    }
};

}  // namespace

const char* type_name(sw_field_type t) {
    switch (t) {
        case SW_TYPE_STRING: return "string";
        case SW_TYPE_INT: return "int";
        case SW_TYPE_BOOL: return "bool";
        case SW_TYPE_DATE: return "date";
        case SW_TYPE_DATETIME: return "datetime";
        case SW_TYPE_LIST: return "list";
        case SW_TYPE_ITEMS: return "items";
    }
    return "?";
}

std::string check_value(sw_field_type type, std::string_view v) {
    if (v.empty()) return {};
    switch (type) {
        case SW_TYPE_INT: {
            size_t from = (v[0] == '-' || v[0] == '+') ? 1 : 0;
            if (from < v.size() && all_digits(v, from, v.size())) return {};
            return "expected a whole number";
        }
        case SW_TYPE_BOOL:
            return (v == "true" || v == "false") ? "" : "expected true or false";
        case SW_TYPE_DATE:
            return (v.size() == 10 && is_date(v)) ? "" : "expected a date YYYY-MM-DD";
        case SW_TYPE_DATETIME:
            return is_date(v) ? "" : "expected an ISO 8601 date-time";
        case SW_TYPE_ITEMS:
            if (v.front() == SW_ITEM_SEP || v.back() == SW_ITEM_SEP ||
                v.find("\x1f\x1f") != std::string_view::npos)
                return "a list with an empty item (items are separated by SW_ITEM_SEP, 0x1F, and none is empty)";
            return {};
        default: return {};
    }
}

bool field_schema::allows(std::string_view item) const {
    // A vocabulary is a handful of words, most of different lengths: the
    // lengths are compared first, the bytes only where they match.
    if (allowed.size() <= 32) {
        for (auto& a : allowed)
            if (same_bytes(a, item)) return true;
        return false;
    }
    return std::binary_search(allowed.begin(), allowed.end(), item);
}

std::string field_schema::enum_problem(std::string_view v) const {
    if (allowed.empty()) return {};
    if (!is_list() && allows(v)) return {};
    auto one = [&](std::string_view item) -> std::string {
        if (allows(item)) return {};
        if (!extension_prefix.empty() && item.substr(0, extension_prefix.size()) == extension_prefix) return {};
        std::string list;
        for (size_t i = 0; i < allowed.size() && i < 16; ++i) list += (i ? ", " : "") + allowed[i];
        if (allowed.size() > 16) list += ", ...";
        std::string hint;
        for (auto& a : allowed)
            if (a.size() == item.size() && std::equal(a.begin(), a.end(), item.begin(), [](char x, char y) {
                    return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
                }))
                hint = "; values are compared exactly, case included: did the source mean '" + a + "'?";
        return "'" + std::string(item) + "' is not one of the values the contract allows (" + list + ")" +
               (extension_prefix.empty() ? "" : " or an extension '" + extension_prefix + "...'") + hint;
    };
    if (!is_list()) return one(v);
    for (auto item : list_items(v, separator()))
        if (auto p = one(item); !p.empty()) return p;
    return {};
}

std::vector<std::string_view> list_items(std::string_view v, char sep) {
    std::vector<std::string_view> out;
    size_t pos = 0;
    while (pos <= v.size()) {
        size_t end = v.find(sep, pos);
        auto item = v.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
        if (!item.empty()) out.push_back(item);
        if (end == std::string_view::npos) break;
        pos = end + 1;
    }
    return out;
}

namespace {

bool ascii_only(std::string_view v) {
    for (unsigned char c : v)
        if (c >= 0x80) return false;
    return true;
}

// Full Unicode case folding (ICU), so that "STRASSE" and "straße" or "ΣΑΣ"
// and "σας" are one name, as an LDAP caseIgnoreMatch or a SCIM
// case-insensitive attribute treats them.
std::string folded(std::string_view v) {
    if (ascii_only(v)) {
        std::string out(v);
        for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        return out;
    }
    std::string out;
    icu::UnicodeString::fromUTF8(icu::StringPiece(v.data(), static_cast<int32_t>(v.size()))).foldCase().toUTF8String(out);
    return out;
}

bool same_text(std::string_view a, std::string_view b, bool fold) {
    if (a == b) return true;
    if (!fold) return false;
    if (a.size() == b.size() && ascii_only(a) && ascii_only(b))
        return std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
            return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
        });
    return folded(a) == folded(b);
}

}  // namespace

bool field_schema::same(std::string_view held, std::string_view want) const {
    if (compare == SW_COMPARE_WRITE_ONLY || compare == SW_COMPARE_IGNORE) return true;
    if (held == want) return true;
    const bool fold = compare == SW_COMPARE_CASE_INSENSITIVE;
    if (!(unordered && is_list())) return same_text(held, want, fold);
    auto as_set = [&](std::string_view v) {
        std::vector<std::string> items;
        for (auto item : list_items(v, separator())) items.push_back(fold ? folded(item) : std::string(item));
        std::sort(items.begin(), items.end());
        items.erase(std::unique(items.begin(), items.end()), items.end());
        return items;
    };
    return as_set(held) == as_set(want);
}

std::string field_schema::match_key(std::string_view v) const {
    return compare == SW_COMPARE_CASE_INSENSITIVE ? folded(v) : std::string(v);
}

std::optional<size_t> entity_schema::match_field() const {
    for (size_t i = 0; i < fields.size(); ++i)
        if (fields[i].match) return i;
    return std::nullopt;
}

std::vector<std::string> apply_order(const std::vector<const entity_schema*>& entities) {
    // Kahn's algorithm, taking the earliest ready entity each time, so that
    // entities with no dependencies keep their order.
    std::map<std::string, size_t> at;
    for (size_t i = 0; i < entities.size(); ++i) at[entities[i]->name] = i;
    std::vector<std::vector<size_t>> needs(entities.size());
    for (size_t i = 0; i < entities.size(); ++i)
        for (auto& d : entities[i]->depends_on)
            if (auto it = at.find(d); it != at.end() && it->second != i) needs[i].push_back(it->second);
    std::vector<bool> placed(entities.size(), false);
    std::vector<std::string> out;
    while (out.size() < entities.size()) {
        bool progress = false;
        for (size_t i = 0; i < entities.size(); ++i) {
            if (placed[i]) continue;
            if (std::all_of(needs[i].begin(), needs[i].end(), [&](size_t n) { return placed[n]; })) {
                placed[i] = true;
                out.push_back(entities[i]->name);
                progress = true;
                break;
            }
        }
        if (!progress)  // a cycle: copy_contract refuses those; keep the rest in order
            for (size_t i = 0; i < entities.size(); ++i)
                if (!placed[i]) {
                    placed[i] = true;
                    out.push_back(entities[i]->name);
                }
    }
    return out;
}

std::optional<size_t> entity_schema::index_of(std::string_view field) const {
    for (size_t i = 0; i < fields.size(); ++i)
        if (fields[i].name == field) return i;
    return std::nullopt;
}

const entity_schema* contract_schema::find(std::string_view entity) const {
    for (auto& e : entities)
        if (e.name == entity) return &e;
    return nullptr;
}

Result<contract_schema> copy_contract(const sw_contract* c, const std::string& who) {
    auto bad = [&](const std::string& what) {
        return Status::error(error_kind::connector,
                             who + ": the contract hook returned an unusable contract: " + what +
                                 "; fix the connector's contract");
    };
    if (!c) return bad("NULL contract pointer");
    // A connector built for an older minor has a shorter contract: 1.0's
    // ends before the enumerations. Later fields are read where it covers them.
    constexpr size_t v10_size = offsetof(sw_contract, enums);
    if (c->struct_size < v10_size)
        return bad("sw_contract.struct_size is " + std::to_string(c->struct_size) + ", expected at least " +
                   std::to_string(v10_size));
    if (c->entity_count == 0) return bad("no entities");
    if (c->entity_count > 10000) return bad("entity_count is " + std::to_string(c->entity_count) + ", expected at most 10000");
    if (!c->entities) return bad("entities is NULL but entity_count is " + std::to_string(c->entity_count));
    contract_schema out;
    std::set<std::string> names;
    for (size_t e = 0; e < c->entity_count; ++e) {
        const sw_entity_def& ed = c->entities[e];
        std::string where = "entities[" + std::to_string(e) + "]";
        if (ed.struct_size < sizeof(sw_entity_def))
            return bad(where + ".struct_size is " + std::to_string(ed.struct_size) + ", expected at least " +
                       std::to_string(sizeof(sw_entity_def)));
        if (bad_str(ed.name) || bad_str(ed.key_name)) return bad(where + " has a string with len > 0 and ptr NULL");
        entity_schema es{text(ed.name), text(ed.key_name), {}, {}};
        if (es.name.empty()) return bad(where + ".name is empty");
        if (es.key_name.empty()) return bad(where + " (" + es.name + ").key_name is empty");
        if (!names.insert(es.name).second) return bad("entity '" + es.name + "' is declared twice");
        if (ed.field_count > 4096) return bad(where + ".field_count is " + std::to_string(ed.field_count) + ", expected at most 4096");
        if (ed.field_count && !ed.fields) return bad(where + ".fields is NULL but field_count is " + std::to_string(ed.field_count));
        std::set<std::string> fnames{es.key_name};
        for (size_t f = 0; f < ed.field_count; ++f) {
            const sw_field_def& fd = ed.fields[f];
            std::string fw = es.name + ".fields[" + std::to_string(f) + "]";
            if (fd.struct_size < sizeof(sw_field_def))
                return bad(fw + ".struct_size is " + std::to_string(fd.struct_size) + ", expected at least " +
                           std::to_string(sizeof(sw_field_def)));
            if (bad_str(fd.name)) return bad(fw + ".name has len > 0 and ptr NULL");
            field_schema fs;
            fs.name = text(fd.name);
            fs.type = static_cast<sw_field_type>(fd.type);
            fs.required = (fd.flags & SW_FIELD_REQUIRED) != 0;
            if (fs.name.empty()) return bad(fw + ".name is empty");
            if (fd.type > SW_TYPE_ITEMS) return bad(fw + " (" + fs.name + ").type is " + std::to_string(fd.type) + ", expected 0..6");
            if (!fnames.insert(fs.name).second) return bad("field '" + es.name + "." + fs.name + "' is declared twice");
            fs.keeps_empty = (fd.flags & SW_FIELD_EMPTY_IS_VALUE) != 0;
            if (fs.keeps_empty && fs.type != SW_TYPE_STRING)
                return bad(fw + " (" + fs.name + ") is not a string field but has SW_FIELD_EMPTY_IS_VALUE; only a "
                                                 "string tells the empty string from absent (a list's empty value "
                                                 "is no items)");
            es.fields.push_back(std::move(fs));
        }
        out.entities.push_back(std::move(es));
    }
    if (c->struct_size >= offsetof(sw_contract, enum_count) + sizeof c->enum_count && c->enum_count) {
        const stepped<sw_enum_def> all(c->enums, c->enum_count, "enums", "enum_count");
        if (!all.problem.empty()) return bad(all.problem);
        for (size_t i = 0; i < c->enum_count; ++i) {
            const std::string where = "enums[" + std::to_string(i) + "]";
            const sw_enum_def* at = all.at(i);
            if (!at) return bad(where + ".struct_size differs from enums[0]'s");
            const auto& ed = *at;
            if (bad_str(ed.entity) || bad_str(ed.field) || bad_str(ed.extension_prefix) ||
                (ed.value_count && !ed.values))
                return bad(where + " has a NULL pointer with a length above 0");
            auto* es = const_cast<entity_schema*>(out.find(text(ed.entity)));
            if (!es) return bad(where + ".entity '" + text(ed.entity) + "' is not an entity of the contract");
            auto fi = es->index_of(text(ed.field));
            if (!fi) return bad(where + ".field '" + text(ed.field) + "' is not a field of '" + es->name + "'");
            auto& f = es->fields[*fi];
            for (size_t v = 0; v < ed.value_count; ++v) {
                if (bad_str(ed.values[v])) return bad(where + ".values has a NULL pointer with a length above 0");
                f.allowed.push_back(text(ed.values[v]));
            }
            std::sort(f.allowed.begin(), f.allowed.end());
            f.extension_prefix = text(ed.extension_prefix);
        }
    }
    // 1.4: compare policies and dependencies, stepped through by their own
    // size like the enumerations.
    auto covers = [&](size_t end) { return c->struct_size >= end; };
    if (covers(offsetof(sw_contract, policy_count) + sizeof c->policy_count) && c->policy_count) {
        const stepped<sw_field_policy> all(c->policies, c->policy_count, "policies", "policy_count");
        if (!all.problem.empty()) return bad(all.problem);
        for (size_t i = 0; i < c->policy_count; ++i) {
            const std::string where = "policies[" + std::to_string(i) + "]";
            const sw_field_policy* at = all.at(i);
            if (!at) return bad(where + ".struct_size differs from policies[0]'s");
            const auto& pd = *at;
            if (bad_str(pd.entity) || bad_str(pd.field)) return bad(where + " has a NULL pointer with a length above 0");
            auto* es = const_cast<entity_schema*>(out.find(text(pd.entity)));
            if (!es) return bad(where + ".entity '" + text(pd.entity) + "' is not an entity of the contract");
            auto fi = es->index_of(text(pd.field));
            if (!fi) return bad(where + ".field '" + text(pd.field) + "' is not a field of '" + es->name + "'");
            auto& f = es->fields[*fi];
            if (pd.compare > SW_COMPARE_IGNORE)
                return bad(where + " (" + es->name + "." + f.name + ").compare is " + std::to_string(pd.compare) +
                           ", expected 0..3 (exact, case_insensitive, write_only, ignore)");
            const uint32_t known = SW_POLICY_UNORDERED | SW_POLICY_MATCH;
            if (pd.flags & ~known)
                return bad(where + " (" + es->name + "." + f.name + ").flags has unknown bits " +
                           std::to_string(pd.flags & ~known));
            if (pd.flags & SW_POLICY_MATCH) {
                if (auto other = es->match_field(); other && *other != *fi)
                    return bad(where + " (" + es->name + "." + f.name + ") is a match field, but " + es->name + "." +
                               es->fields[*other].name + " already is; an entity has at most one");
                if (f.is_list() || pd.compare == SW_COMPARE_WRITE_ONLY || pd.compare == SW_COMPARE_IGNORE)
                    return bad(where + " (" + es->name + "." + f.name + ") is a match field, which must be a single "
                               "value the kernel compares (not a list, not write_only or ignore)");
                f.match = true;
            }
            if ((pd.flags & SW_POLICY_UNORDERED) && !f.is_list())
                return bad(where + " (" + es->name + "." + f.name + ") is unordered, but the field is a " +
                           type_name(f.type) + ", not a list");
            if (pd.compare == SW_COMPARE_IGNORE && f.required)
                return bad(where + " (" + es->name + "." + f.name + ") is required and ignored: a field the "
                           "kernel never sends cannot be required");
            f.compare = static_cast<sw_compare>(pd.compare);
            f.unordered = (pd.flags & SW_POLICY_UNORDERED) != 0;
        }
    }
    if (covers(offsetof(sw_contract, dependency_count) + sizeof c->dependency_count) && c->dependency_count) {
        const stepped<sw_dependency> all(c->dependencies, c->dependency_count, "dependencies", "dependency_count");
        if (!all.problem.empty()) return bad(all.problem);
        for (size_t i = 0; i < c->dependency_count; ++i) {
            const std::string where = "dependencies[" + std::to_string(i) + "]";
            const sw_dependency* at = all.at(i);
            if (!at) return bad(where + ".struct_size differs from dependencies[0]'s");
            const auto& dd = *at;
            if (bad_str(dd.entity) || bad_str(dd.depends_on)) return bad(where + " has a NULL pointer with a length above 0");
            auto* es = const_cast<entity_schema*>(out.find(text(dd.entity)));
            if (!es) return bad(where + ".entity '" + text(dd.entity) + "' is not an entity of the contract");
            const std::string on = text(dd.depends_on);
            if (!out.find(on)) return bad(where + ".depends_on '" + on + "' is not an entity of the contract");
            if (on == es->name) return bad(where + ": '" + on + "' depends on itself");
            if (std::find(es->depends_on.begin(), es->depends_on.end(), on) == es->depends_on.end())
                es->depends_on.push_back(on);
        }
        // A cycle has no apply order: find one and name it.
        std::map<std::string, int> mark;  // 1 = on the path, 2 = done
        std::vector<std::string> path;
        std::string cycle;
        std::function<bool(const entity_schema&)> visit = [&](const entity_schema& e) {
            mark[e.name] = 1;
            path.push_back(e.name);
            for (auto& d : e.depends_on) {
                if (mark[d] == 1) {
                    auto from = std::find(path.begin(), path.end(), d);
                    for (auto it = from; it != path.end(); ++it) cycle += *it + " -> ";
                    cycle += d;
                    return true;
                }
                if (mark[d] == 0 && visit(*out.find(d))) return true;
            }
            path.pop_back();
            mark[e.name] = 2;
            return false;
        };
        for (auto& e : out.entities)
            if (mark[e.name] == 0 && visit(e))
                return bad("its dependencies form a cycle (" + cycle + "), so no entity of it can be applied first");
    }
    return out;
}

}  // namespace syncwarden::kernel
