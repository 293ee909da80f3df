#include <syncwarden/kernel/schema.hpp>

#include <algorithm>
#include <cctype>
#include <cstddef>
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
bool is_date(std::string_view v) {
    return v.size() >= 10 && all_digits(v, 0, 4) && v[4] == '-' && all_digits(v, 5, 7) &&
           v[7] == '-' && all_digits(v, 8, 10) && v.substr(5, 2) >= "01" && v.substr(5, 2) <= "12" &&
           v.substr(8, 2) >= "01" && v.substr(8, 2) <= "31";
}

}  // namespace

const char* type_name(sw_field_type t) {
    switch (t) {
        case SW_TYPE_STRING: return "string";
        case SW_TYPE_INT: return "int";
        case SW_TYPE_BOOL: return "bool";
        case SW_TYPE_DATE: return "date";
        case SW_TYPE_DATETIME: return "datetime";
        case SW_TYPE_LIST: return "list";
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
        default: return {};
    }
}

std::string field_schema::enum_problem(std::string_view v) const {
    if (allowed.empty()) return {};
    auto one = [&](std::string_view item) -> std::string {
        if (std::binary_search(allowed.begin(), allowed.end(), item)) return {};
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
    if (type != SW_TYPE_LIST) return one(v);
    size_t pos = 0;
    while (pos <= v.size()) {
        size_t end = v.find(',', pos);
        auto item = v.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
        if (!item.empty())
            if (auto p = one(item); !p.empty()) return p;
        if (end == std::string_view::npos) break;
        pos = end + 1;
    }
    return {};
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
    if (c->struct_size < sizeof(sw_contract))
        return bad("sw_contract.struct_size is " + std::to_string(c->struct_size) +
                   ", expected at least " + std::to_string(sizeof(sw_contract)));
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
        entity_schema es{text(ed.name), text(ed.key_name), {}};
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
            if (fd.type > SW_TYPE_LIST) return bad(fw + " (" + fs.name + ").type is " + std::to_string(fd.type) + ", expected 0..5");
            if (!fnames.insert(fs.name).second) return bad("field '" + es.name + "." + fs.name + "' is declared twice");
            es.fields.push_back(std::move(fs));
        }
        out.entities.push_back(std::move(es));
    }
    if (c->struct_size >= offsetof(sw_contract, enum_count) + sizeof c->enum_count && c->enum_count) {
        if (c->enum_count > 100000) return bad("enum_count is " + std::to_string(c->enum_count) + ", expected at most 100000");
        if (!c->enums) return bad("enums is NULL but enum_count is " + std::to_string(c->enum_count));
        // Stepped through by the elements' own size: a later minor may
        // append fields to sw_enum_def.
        const size_t stride = c->enums[0].struct_size;
        if (stride < sizeof(sw_enum_def))
            return bad("enums[0].struct_size is " + std::to_string(stride) + ", expected at least " +
                       std::to_string(sizeof(sw_enum_def)));
        for (size_t i = 0; i < c->enum_count; ++i) {
            const auto& ed = *reinterpret_cast<const sw_enum_def*>(reinterpret_cast<const char*>(c->enums) + i * stride);
            const std::string where = "enums[" + std::to_string(i) + "]";
            if (ed.struct_size != stride) return bad(where + ".struct_size differs from enums[0]'s");
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
    return out;
}

}  // namespace syncwarden::kernel
