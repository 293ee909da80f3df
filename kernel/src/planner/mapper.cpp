#include <syncwarden/kernel/mapper.hpp>
#include <syncwarden/kernel/text.hpp>

#include <unicode/translit.h>
#include <unicode/unistr.h>

#include <algorithm>
#include <map>
#include <memory>
#include <cctype>

namespace syncwarden::kernel {
namespace {

bool ascii_only(const std::string& v) {
    for (unsigned char c : v)
        if (c >= 0x80) return false;
    return true;
}

// ICU transforms, built once per thread (a Transliterator is not
// thread-safe to share).
std::string icu_transform(const std::string& v, const char* id) {
    thread_local std::map<std::string, std::unique_ptr<icu::Transliterator>> cache;
    auto& t = cache[id];
    if (!t) {
        UErrorCode status = U_ZERO_ERROR;
        t.reset(icu::Transliterator::createInstance(icu::UnicodeString::fromUTF8(id), UTRANS_FORWARD, status));
        if (U_FAILURE(status)) t.reset();
    }
    if (!t) return v;
    icu::UnicodeString u = icu::UnicodeString::fromUTF8(v);
    t->transliterate(u);
    std::string out;
    u.toUTF8String(out);
    return out;
}

std::string transformed(std::string v, const std::string& how) {
    if (how == "lower") {
        if (!ascii_only(v)) return icu_transform(v, "Any-Lower");
        std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return std::tolower(c); });
    } else if (how == "upper") {
        if (!ascii_only(v)) return icu_transform(v, "Any-Upper");
        std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return std::toupper(c); });
    } else if (how == "trim") {
        auto b = v.find_first_not_of(" \t\r\n");
        auto e = v.find_last_not_of(" \t\r\n");
        v = b == std::string::npos ? std::string() : v.substr(b, e - b + 1);
    } else if (how == "ascii") {
        // Any script to Latin, then Latin to ASCII: Zoë -> Zoe, Łukasiewicz
        // -> Lukasiewicz, Straße -> Strasse, Ψάρης -> Psares.
        if (!ascii_only(v)) v = icu_transform(v, "Any-Latin; Latin-ASCII");
    } else if (how == "username") {
        v = transformed(transformed(std::move(v), "ascii"), "lower");
        std::string out;
        for (char c : v)
            if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' || c == '@') out += c;
        v = std::move(out);
    }
    return v;
}

}  // namespace

Result<entity_mapper> entity_mapper::compile(const entity_mapping& m, const job_config& job,
                                             const entity_schema& src, const entity_schema& tgt) {
    auto fail = [&](const std::string& path, const std::string& what) {
        return Status::error(error_kind::config, job.file.string() + ": " + path + ": " + what);
    };
    auto source_index = [&](const std::string& name, int& out) {
        if (name == src.key_name) { out = -1; return true; }
        auto i = src.index_of(name);
        if (!i) return false;
        out = static_cast<int>(*i);
        return true;
    };
    auto known_source = [&] {
        std::string s = src.key_name;
        for (auto& f : src.fields) s += ", " + f.name;
        return s;
    };
    entity_mapper em;
    em.source_ = m.source;
    em.target_ = m.target;
    em.field_rule_.assign(tgt.fields.size(), -1);
    for (auto& [field, allowed] : m.where) {
        int idx;
        if (!source_index(field, idx))
            return fail(m.path + ".where." + field, "'" + field + "' is not a field of source entity '" +
                                                        src.name + "' (fields: " + known_source() + ")");
        em.where_.emplace_back(idx, allowed);
    }
    if (!m.distinct.empty()) {
        int idx;
        if (!source_index(m.distinct, idx) || idx < 0)
            return fail(m.path + ".distinct", "'" + m.distinct + "' is not a field of source entity '" + src.name +
                                                  "' (fields: " + known_source() + ")");
        em.distinct_ = idx;
        const auto& df = src.fields[static_cast<size_t>(idx)];
        em.distinct_split_ = df.is_list() ? df.separator() : 0;
    }
    for (auto& field : m.fields) {
        // Named, not bound: lambdas below capture them (clang 14 cannot
        // capture a structured binding).
        const auto& target_field = field.first;
        const auto& fr = field.second;
        rule r;
        r.target_field = target_field;
        if (fr.k == field_rule::kind::collect) {
            auto ti = tgt.index_of(target_field);
            if (!ti)
                return fail(fr.path, target_field == tgt.key_name
                                         ? "the key cannot be collected; collect fills a list field"
                                         : "'" + target_field + "' is not a field of target entity '" + tgt.name + "'");
            const field_schema& tf = tgt.fields[*ti];
            if (!tf.is_list())
                return fail(fr.path + ".collect", "collect fills a list, but '" + target_field + "' of '" + tgt.name +
                                                      "' is a single value; collect into a list or items field");
            em.collects_.push_back({*ti, &fr, tf.separator()});
            em.field_rule_[*ti] = static_cast<int>(em.rules_.size());
            r.pieces.clear();  // empty until the planner fills it
            em.rules_.push_back(std::move(r));
            continue;
        }
        auto check_source = [&](const std::string& name, int& idx) -> Status {
            if (source_index(name, idx)) return Status::ok();
            return fail(fr.path, "'" + name + "' is not a field of source entity '" + src.name +
                                     "' (fields: " + known_source() + ")");
        };
        if (fr.k == field_rule::kind::from) {
            int idx;
            if (auto s = check_source(fr.from, idx); !s) return s;
            r.pieces.push_back({false, {}, idx});
            if (idx >= 0 && src.fields[static_cast<size_t>(idx)].is_list())
                r.split = src.fields[static_cast<size_t>(idx)].separator();
        } else if (fr.k == field_rule::kind::template_) {
            for (size_t i = 0; i < fr.parts.size(); ++i) {
                if (i % 2 == 0) {
                    if (!fr.parts[i].empty()) r.pieces.push_back({true, fr.parts[i], 0});
                    continue;
                }
                int idx;
                if (auto s = check_source(fr.parts[i], idx); !s) return s;
                r.pieces.push_back({false, {}, idx});
            }
        } else {
            r.pieces.push_back({true, fr.value, 0});
        }
        if (!fr.table.empty()) {
            r.table = &job.tables.at(fr.table);
            r.table_name = fr.table;
        }
        r.missing = fr.missing;
        r.default_value = fr.default_value;
        r.transform = fr.transform;
        int rule_index = static_cast<int>(em.rules_.size());
        if (target_field == tgt.key_name && fr.unique)
            return fail(fr.path + ".unique", "the key names the record; a unique name belongs in a field");
        if (target_field == tgt.key_name) em.key_rule_ = rule_index;
        else if (auto ti = tgt.index_of(target_field)) {
            em.field_rule_[*ti] = rule_index;
            if (fr.unique) em.unique_.push_back(*ti);
            const field_schema& tf = tgt.fields[*ti];
            if (fr.k == field_rule::kind::from && r.pieces.size() == 1 && r.pieces[0].field >= 0)
                r.pass_empty = tf.keeps_empty && src.fields[static_cast<size_t>(r.pieces[0].field)].keeps_empty;
            // Lists convert between the two kinds (ABI 1.4): items are
            // joined the way the target field holds them.
            if (tf.type == SW_TYPE_ITEMS) {
                r.join = SW_ITEM_SEP;
            } else if (r.split) {
                r.join = ',';
            }
        } else {
            std::string known = tgt.key_name;
            for (auto& f : tgt.fields) known += ", " + f.name;
            return fail(fr.path, "'" + target_field + "' is not a field of target entity '" + tgt.name +
                                     "' (fields: " + known + ")");
        }
        r.copy = r.pieces.size() == 1 && !r.pieces[0].literal && !r.table && !r.split && !r.join &&
                 r.transform.empty();
        em.rules_.push_back(std::move(r));
    }
    if (em.key_rule_ < 0)
        return fail(m.path + ".fields", "the target key '" + tgt.key_name + "' of '" + tgt.name +
                                            "' is not mapped; add \"" + tgt.key_name + "\": {\"from\": ...}");
    for (size_t i = 0; i < tgt.fields.size(); ++i)
        if (tgt.fields[i].required && em.field_rule_[i] < 0)
            return fail(m.path + ".fields", "required target field '" + tgt.fields[i].name + "' of '" +
                                                tgt.name + "' is not mapped");
    return em;
}

bool entity_mapper::value_of(const rule& r, const sw_record& rec, std::string& v, std::string& error) const {
    v.clear();
    for (auto& p : r.pieces) {
        if (p.literal) v += p.text;
        else v += p.field < 0 ? view(rec.key) : view(rec.values[p.field]);
    }
    // Through the table: the value, or each item of a list.
    auto lookup = [&](const std::string& in, std::string& out) {
        if (!r.table) {
            out = in;
            return true;
        }
        auto it = r.table->find(in);
        if (it != r.table->end()) { out = it->second; return true; }
        switch (r.missing) {
            case field_rule::on_missing::keep: out = in; return true;
            case field_rule::on_missing::empty: out.clear(); return true;
            case field_rule::on_missing::use_default: out = r.default_value; return true;
            case field_rule::on_missing::error: break;
        }
        error = r.target_field + ": value '" + in + "' is not in mapping table '" + r.table_name +
                "'; add it to the table or set \"missing\"";
        return false;
    };
    if (!v.empty() && (r.split || r.join)) {
        // A list: split into items (a plain value is one item), map each,
        // and join them the way the target field holds a list.
        const char join = r.join ? r.join : r.split;
        std::string out, mapped;
        auto add = [&](std::string_view item) {
            if (!lookup(std::string(item), mapped)) return false;
            if (mapped.empty()) return true;
            if (join == ',' && r.split != ',' && mapped.find(',') != std::string::npos) {
                error = r.target_field + ": the item '" + mapped + "' holds a comma, which a comma-separated list " +
                        "cannot hold; make the target field an items list (ABI 1.4) or map the item";
                return false;
            }
            if (!out.empty()) out += join;
            out += mapped;
            return true;
        };
        if (r.split) {
            for (auto item : list_items(v, r.split))
                if (!add(item)) return false;
        } else if (!add(v)) {
            return false;
        }
        v = std::move(out);
    } else if (r.table && !v.empty()) {
        std::string mapped;
        if (!lookup(v, mapped)) return false;
        v = std::move(mapped);
    }
    for (auto& how : r.transform) v = transformed(std::move(v), how);
    if (r.pass_empty && v.empty()) {
        const sw_str& from = rec.values[r.pieces[0].field];
        if (from.ptr && from.len == 0) v.assign(k_empty_value);
    }
    return true;
}

// filtered (with the key, or an empty one) when the record does not match `where`.
entity_mapper::outcome entity_mapper::map_where(const sw_record& rec, std::string& key, std::string& error) const {
    error.clear();
    for (auto& [idx, allowed] : where_) {
        auto v = idx < 0 ? view(rec.key) : view(rec.values[idx]);
        if (std::find(allowed.begin(), allowed.end(), v) == allowed.end()) {
            // The key still matters: the record may have left this entity.
            if (!value_of(rules_[static_cast<size_t>(key_rule_)], rec, key, error)) key.clear();
            return outcome::filtered;
        }
    }
    return outcome::mapped;
}

entity_mapper::outcome entity_mapper::map(const sw_record& rec, std::string& key,
                                          std::vector<std::string>& values, std::string& error,
                                          bool check_where) const {
    error.clear();
    if (check_where)
        if (const outcome o = map_where(rec, key, error); o != outcome::mapped) return o;
    if (!value_of(rules_[static_cast<size_t>(key_rule_)], rec, key, error)) return outcome::failed;
    values.resize(field_rule_.size());
    for (size_t i = 0; i < field_rule_.size(); ++i) {
        if (field_rule_[i] < 0) values[i].clear();
        else if (!value_of(rules_[static_cast<size_t>(field_rule_[i])], rec, values[i], error)) return outcome::failed;
    }
    return outcome::mapped;
}

entity_mapper::outcome entity_mapper::map(const sw_record& rec, std::string& key, std::vector<std::string>& values,
                                          std::vector<std::string_view>& views, std::string& error) const {
    const outcome o = map_where(rec, key, error);
    if (o != outcome::mapped) return o;
    if (!value_of(rules_[static_cast<size_t>(key_rule_)], rec, key, error)) return outcome::failed;
    values.resize(field_rule_.size());
    views.resize(field_rule_.size());
    for (size_t i = 0; i < field_rule_.size(); ++i) {
        if (field_rule_[i] < 0) {
            views[i] = {};
            continue;
        }
        const rule& r = rules_[static_cast<size_t>(field_rule_[i])];
        if (r.copy) {
            const int f = r.pieces[0].field;
            const sw_str& from = f < 0 ? rec.key : rec.values[f];
            views[i] = view(from);
            if (r.pass_empty && views[i].empty() && from.ptr) views[i] = k_empty_value;
            continue;
        }
        if (!value_of(r, rec, values[i], error)) return outcome::failed;
        views[i] = values[i];
    }
    return outcome::mapped;
}

}  // namespace syncwarden::kernel
