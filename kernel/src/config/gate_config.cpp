#include "gate_config.hpp"

#include <syncwarden/kernel/config.hpp>

namespace syncwarden::kernel::config_detail {
namespace {

const char* k_limit_forms =
    "expected a count (500), a percentage (\"10%\"), both ({\"count\": 500, \"percent\": 10}) or \"off\"";

Result<gate_limit> read_limit(const reader& r, const json& j, const std::string& path) {
    if (j.is_number_unsigned() || (j.is_number_integer() && j.get<long long>() >= 0)) {
        gate_limit l;
        l.count = j.get<uint64_t>();
        return l;
    }
    if (j.is_string()) {
        std::string error;
        auto l = parse_limit_text(j.get<std::string>(), error);
        if (!l) return r.fail(path, error);
        return *l;
    }
    if (j.is_object()) {
        if (auto s = r.no_unknown(j, path, {"count", "percent"}); !s) return s;
        gate_limit l;
        if (auto c = j.find("count"); c != j.end()) {
            if (!c->is_number_integer() || c->get<long long>() < 0)
                return r.fail(path + ".count", "expected a whole number of at least 0, found " + c->dump());
            l.count = c->get<uint64_t>();
        }
        if (auto p = j.find("percent"); p != j.end()) {
            if (!p->is_number() || p->get<double>() < 0 || p->get<double>() > 1e6)
                return r.fail(path + ".percent", "expected a percentage from 0 to 1000000, found " + p->dump());
            l.percent = p->get<double>();
        }
        if (!l.set()) return r.fail(path, std::string(k_limit_forms) + ", found {}");
        return l;
    }
    return r.fail(path, std::string(k_limit_forms) + ", found " + j.dump());
}

Status read_thresholds(const reader& r, const json& j, gate_policy& p) {
    const std::string path = "$.gates.thresholds";
    if (auto s = r.expect(j, json::value_t::object, path, "an object of target entity (or \"*\"): limits"); !s)
        return s;
    for (auto& [entity, kinds] : j.items()) {
        const std::string ep = path + "." + entity;
        if (auto s = r.expect(kinds, json::value_t::object, ep, "an object of change kind: limit"); !s) return s;
        if (auto s = r.no_unknown(kinds, ep, {"create", "update", "delete", "deactivate"}); !s) return s;
        for (auto& [kind, limit] : kinds.items()) {
            auto l = read_limit(r, limit, ep + "." + kind);
            if (!l) return l.status();
            p.thresholds[entity][kind] = *l;
        }
    }
    return Status::ok();
}

Status read_shrink(const reader& r, const json& j, gate_policy& p) {
    const std::string path = "$.gates.shrink";
    if (!j.is_object()) {
        auto l = read_limit(r, j, path);
        if (!l) return l.status();
        p.shrink["*"] = *l;
        return Status::ok();
    }
    for (auto& [entity, limit] : j.items()) {
        auto l = read_limit(r, limit, path + "." + entity);
        if (!l) return l.status();
        p.shrink[entity] = *l;
    }
    return Status::ok();
}

Status read_protect(const reader& r, const json& j, gate_policy& p) {
    const std::string path = "$.gates.protect";
    if (auto s = r.expect(j, json::value_t::array, path, "an array of rules"); !s) return s;
    for (size_t i = 0; i < j.size(); ++i) {
        const std::string rp = path + "[" + std::to_string(i) + "]";
        const json& rule = j[i];
        if (auto s = r.expect(rule, json::value_t::object, rp, "an object"); !s) return s;
        if (auto s = r.no_unknown(rule, rp, {"entity", "field", "exact", "prefix", "regex"}); !s) return s;
        protect_rule pr;
        pr.path = rp;
        auto e = r.string(rule, rp, "entity", false, "*");
        if (!e) return e.status();
        auto f = r.string(rule, rp, "field", true);
        if (!f) return f.status();
        pr.entity = *e;
        pr.field = *f;
        int forms = rule.contains("exact") + rule.contains("prefix") + rule.contains("regex");
        if (forms != 1) return r.fail(rp, "expected exactly one of 'exact', 'prefix' or 'regex'");
        const char* key = rule.contains("exact") ? "exact" : rule.contains("prefix") ? "prefix" : "regex";
        pr.how = rule.contains("exact")    ? protect_rule::match::exact
                 : rule.contains("prefix") ? protect_rule::match::prefix
                                           : protect_rule::match::regex;
        auto v = r.string(rule, rp, key, pr.how != protect_rule::match::exact);
        if (!v) return v.status();
        pr.value = *v;
        if (pr.how == protect_rule::match::regex) {
            try {
                pr.re = std::regex(pr.value, std::regex::ECMAScript);
            } catch (const std::regex_error& ex) {
                return r.fail(rp + ".regex", "not a valid regular expression (ECMAScript): " + std::string(ex.what()));
            }
        }
        p.protect.push_back(std::move(pr));
    }
    return Status::ok();
}

Status read_deprovision(const reader& r, const json& j, gate_policy& p) {
    const std::string path = "$.gates.deprovision";
    if (auto s = r.expect(j, json::value_t::object, path, "an object of target entity: policy"); !s) return s;
    for (auto& [entity, pol] : j.items()) {
        const std::string pp = path + "." + entity;
        if (auto s = r.expect(pol, json::value_t::object, pp, "an object"); !s) return s;
        if (auto s = r.no_unknown(pol, pp, {"action", "set", "delete_after"}); !s) return s;
        deprovision_policy d;
        d.path = pp;
        auto action = r.string(pol, pp, "action", true);
        if (!action) return action.status();
        if (*action != "delete" && *action != "deactivate")
            return r.fail(pp + ".action", "expected \"delete\" or \"deactivate\", found \"" + *action + "\"");
        d.deactivate = *action == "deactivate";
        if (auto set = pol.find("set"); set != pol.end()) {
            if (auto s = r.expect(*set, json::value_t::object, pp + ".set", "an object of target field: value"); !s)
                return s;
            for (auto& [field, value] : set->items()) {
                if (!value.is_string())
                    return r.fail(pp + ".set." + field, "expected a string, found " + type_name(value));
                d.set.emplace_back(field, value.get<std::string>());
            }
        }
        if (d.deactivate && d.set.empty())
            return r.fail(pp + ".set", "a deactivate policy needs the fields to set, such as {\"status\": \"inactive\"}");
        if (!d.deactivate && !d.set.empty())
            return r.fail(pp + ".set", "only a deactivate policy sets fields; remove 'set' or use \"action\": \"deactivate\"");
        if (auto after = pol.find("delete_after"); after != pol.end()) {
            if (!d.deactivate)
                return r.fail(pp + ".delete_after", "only a deactivate policy has a grace period before the delete");
            auto ms = parse_duration(*after);
            if (!ms) return r.fail(pp + ".delete_after", ms.status().message());
            d.delete_after = *ms;
        }
        p.deprovision[entity] = std::move(d);
    }
    return Status::ok();
}

Status read_severity(const reader& r, const json& j, gate_policy& p) {
    const std::string path = "$.gates.findings";
    if (auto s = r.expect(j, json::value_t::object, path, "an object of finding code (or ENTITY.CODE): severity"); !s)
        return s;
    for (auto& [code, sev] : j.items()) {
        if (!sev.is_string() || (sev != "error" && sev != "warning" && sev != "info"))
            return r.fail(path + "." + code, "expected \"error\" (blocks the run), \"warning\" or \"info\", found " +
                                                 sev.dump());
        p.severity[code] = sev.get<std::string>();
    }
    return Status::ok();
}

}  // namespace

Status read_gates(const reader& r, const json& j, gate_policy& p) {
    auto g = j.find("gates");
    if (g == j.end()) return Status::ok();
    if (auto s = r.expect(*g, json::value_t::object, "$.gates", "an object"); !s) return s;
    if (auto s = r.no_unknown(*g, "$.gates", {"thresholds", "shrink", "protect", "deprovision", "findings"}); !s) return s;
    if (auto t = g->find("thresholds"); t != g->end())
        if (auto s = read_thresholds(r, *t, p); !s) return s;
    if (auto t = g->find("shrink"); t != g->end())
        if (auto s = read_shrink(r, *t, p); !s) return s;
    if (auto t = g->find("protect"); t != g->end())
        if (auto s = read_protect(r, *t, p); !s) return s;
    if (auto t = g->find("deprovision"); t != g->end())
        if (auto s = read_deprovision(r, *t, p); !s) return s;
    if (auto t = g->find("findings"); t != g->end())
        if (auto s = read_severity(r, *t, p); !s) return s;
    return Status::ok();
}

}  // namespace syncwarden::kernel::config_detail
