#include <syncwarden/kernel/config.hpp>
#include <syncwarden/kernel/text.hpp>

#include "gate_config.hpp"
#include "json_reader.hpp"

#include <algorithm>
#include <cctype>
#include <set>
#include <tuple>
#include <type_traits>

using nlohmann::json;
namespace fs = std::filesystem;

namespace syncwarden::kernel {
namespace {

using config_detail::reader;
using config_detail::type_name;

Result<connector_ref> read_connector(const reader& r, const json& j, const std::string& path) {
    if (auto s = r.expect(j, json::value_t::object, path, "an object"); !s) return s;
    if (auto s = r.no_unknown(j, path, {"connector", "version", "settings", "env"}); !s) return s;
    connector_ref c;
    auto name = r.string(j, path, "connector", true);
    if (!name) return name.status();
    c.connector = *name;
    auto ver = r.string(j, path, "version", false, "*");
    if (!ver) return ver.status();
    c.version = *ver;
    if (auto it = j.find("settings"); it != j.end()) {
        if (auto s = r.expect(*it, json::value_t::object, path + ".settings", "an object"); !s) return s;
        c.settings = *it;
    }
    // Environment variables the kernel passes on to this connector's worker
    // (it starts with none of the kernel's but PATH, LANG, LC_* and TZ).
    if (auto it = j.find("env"); it != j.end()) {
        const std::string at = path + ".env";
        if (!it->is_array()) return r.fail(at, "expected a list of variable names, such as [\"HTTPS_PROXY\"]");
        for (size_t i = 0; i < it->size(); ++i) {
            const json& v = (*it)[i];
            const std::string name = v.is_string() ? v.get<std::string>() : "";
            const bool plain = !name.empty() && name.size() <= 128 &&
                               std::all_of(name.begin(), name.end(), [](unsigned char ch) {
                                   return std::isalnum(ch) || ch == '_';
                               }) && !std::isdigit(static_cast<unsigned char>(name[0]));
            if (!plain)
                return r.fail(at + "[" + std::to_string(i) + "]", "expected a variable name (letters, digits, _), found " + v.dump());
            if (name.rfind("SYNCWARDEN_", 0) == 0 || name == "CREDENTIALS_DIRECTORY")
                return r.fail(at + "[" + std::to_string(i) + "]", "'" + name + "' is the kernel's own and is never passed to a "
                              "connector; give the connector what it needs in its settings");
            c.env.push_back(name);
        }
    }
    return c;
}

// "{givenName}.{familyName}@school.org" -> literal, field, literal, field, literal
Result<std::vector<std::string>> split_template(const reader& r, const std::string& t,
                                                const std::string& path) {
    std::vector<std::string> parts;
    std::string lit;
    for (size_t i = 0; i < t.size(); ++i) {
        if (t[i] != '{') { lit += t[i]; continue; }
        auto close = t.find('}', i);
        if (close == std::string::npos || close == i + 1)
            return r.fail(path, "template has '{' at character " + std::to_string(i + 1) +
                                    " without a field name and '}'");
        parts.push_back(lit);
        lit.clear();
        parts.push_back(t.substr(i + 1, close - i - 1));
        i = close;
    }
    parts.push_back(lit);
    return parts;
}

// `where`: {field: value or [values]}.
Status read_where(const reader& r, const json& w, const std::string& path,
                  std::vector<std::pair<std::string, std::vector<std::string>>>& out) {
    if (auto st = r.expect(w, json::value_t::object, path, "an object of field: [values]"); !st) return st;
    for (auto& [field, allowed] : w.items()) {
        std::vector<std::string> values;
        auto wp = path + "." + field;
        if (allowed.is_string()) values.push_back(allowed);
        else if (allowed.is_array()) {
            for (size_t i = 0; i < allowed.size(); ++i) {
                if (!allowed[i].is_string())
                    return r.fail(wp + "[" + std::to_string(i) + "]", "expected a string, found " + type_name(allowed[i]));
                values.push_back(allowed[i]);
            }
        } else return r.fail(wp, "expected a string or an array of strings, found " + type_name(allowed));
        out.emplace_back(field, std::move(values));
    }
    return Status::ok();
}

Result<field_rule> read_collect(const reader& r, const json& j, const std::string& path) {
    field_rule rule;
    rule.path = path;
    rule.k = field_rule::kind::collect;
    if (auto s = r.no_unknown(j, path, {"collect"}); !s) return s;
    const std::string cp = path + ".collect";
    const json& c = j["collect"];
    if (auto s = r.expect(c, json::value_t::object, cp, "an object with 'from', 'by' and optionally 'value' and 'where'"); !s)
        return s;
    if (auto s = r.no_unknown(c, cp, {"from", "by", "value", "where"}); !s) return s;
    auto from = r.string(c, cp, "from", true);
    if (!from) return from.status();
    auto by = r.string(c, cp, "by", true);
    if (!by) return by.status();
    auto value = r.string(c, cp, "value", false);
    if (!value) return value.status();
    rule.collect.from = *from;
    rule.collect.by = *by;
    rule.collect.value = *value;
    if (auto w = c.find("where"); w != c.end())
        if (auto s = read_where(r, *w, cp + ".where", rule.collect.where); !s) return s;
    return rule;
}

Result<field_rule> read_rule(const reader& r, const json& j, const std::string& path) {
    field_rule rule;
    rule.path = path;
    if (j.is_string()) {
        rule.from = j.get<std::string>();
        return rule;
    }
    if (auto s = r.expect(j, json::value_t::object, path, "a source field name or an object"); !s) return s;
    if (j.contains("collect")) return read_collect(r, j, path);
    if (auto s = r.no_unknown(j, path, {"from", "template", "const", "collect", "table", "missing", "default", "transform",
                                        "unique"});
        !s)
        return s;
    if (auto u = j.find("unique"); u != j.end()) {
        if (!u->is_boolean()) return r.fail(path + ".unique", "expected true or false, found " + type_name(*u));
        rule.unique = u->get<bool>();
        if (rule.unique && j.contains("const"))
            return r.fail(path + ".unique", "a constant is the same for every record; unique needs 'from' or 'template'");
    }
    int kinds = j.contains("from") + j.contains("template") + j.contains("const");
    if (kinds != 1) return r.fail(path, "expected exactly one of 'from', 'template', 'const' or 'collect'");
    if (j.contains("from")) {
        auto v = r.string(j, path, "from", true);
        if (!v) return v.status();
        rule.from = *v;
    } else if (j.contains("template")) {
        rule.k = field_rule::kind::template_;
        auto v = r.string(j, path, "template", true);
        if (!v) return v.status();
        auto parts = split_template(r, *v, path + ".template");
        if (!parts) return parts.status();
        rule.parts = std::move(*parts);
    } else {
        rule.k = field_rule::kind::constant;
        auto v = r.string(j, path, "const", false);
        if (!v) return v.status();
        rule.value = *v;
    }
    auto table = r.string(j, path, "table", false);
    if (!table) return table.status();
    rule.table = *table;
    auto missing = r.string(j, path, "missing", false, "error");
    if (!missing) return missing.status();
    if (*missing == "error") rule.missing = field_rule::on_missing::error;
    else if (*missing == "keep") rule.missing = field_rule::on_missing::keep;
    else if (*missing == "empty") rule.missing = field_rule::on_missing::empty;
    else return r.fail(path + ".missing", "expected \"error\", \"keep\" or \"empty\", found \"" + *missing + "\"");
    if (j.contains("default")) {
        auto d = r.string(j, path, "default", false);
        if (!d) return d.status();
        rule.default_value = *d;
        rule.missing = field_rule::on_missing::use_default;
    }
    if (j.contains("transform")) {
        // One transform, or a list applied in order.
        const auto& t = j["transform"];
        std::vector<std::pair<std::string, nlohmann::json>> items;
        if (t.is_array())
            for (size_t i = 0; i < t.size(); ++i) items.emplace_back(path + ".transform[" + std::to_string(i) + "]", t[i]);
        else
            items.emplace_back(path + ".transform", t);
        for (auto& [where, v] : items) {
            static const char* known[] = {"lower", "upper", "trim", "ascii", "username"};
            const bool ok = v.is_string() && std::find(std::begin(known), std::end(known), v.get<std::string>()) != std::end(known);
            if (!ok)
                return r.fail(where, "expected \"lower\", \"upper\", \"trim\", \"ascii\" or \"username\" (or a list "
                                     "of them), found " + v.dump());
            rule.transform.push_back(v.get<std::string>());
        }
    }
    return rule;
}

Result<entity_mapping> read_entity(const reader& r, const json& j, const std::string& path,
                                   const job_config& job) {
    if (auto s = r.expect(j, json::value_t::object, path, "an object"); !s) return s;
    if (auto s = r.no_unknown(j, path, {"target", "source", "where", "distinct", "fields"}); !s) return s;
    entity_mapping m;
    m.path = path;
    auto t = r.string(j, path, "target", true);
    if (!t) return t.status();
    auto s = r.string(j, path, "source", true);
    if (!s) return s.status();
    m.target = *t;
    m.source = *s;
    if (auto w = j.find("where"); w != j.end())
        if (auto st = read_where(r, *w, path + ".where", m.where); !st) return st;
    auto distinct = r.string(j, path, "distinct", false);
    if (!distinct) return distinct.status();
    m.distinct = *distinct;
    auto f = j.find("fields");
    if (f == j.end()) return r.fail(path, "missing required field 'fields'");
    if (auto st = r.expect(*f, json::value_t::object, path + ".fields", "an object of target field: rule"); !st) return st;
    for (auto& [name, rule_json] : f->items()) {
        auto rule = read_rule(r, rule_json, path + ".fields." + name);
        if (!rule) return rule.status();
        if (!rule->table.empty() && !job.tables.count(rule->table))
            return r.fail(path + ".fields." + name + ".table",
                          "no mapping table '" + rule->table + "' in $.mapping.tables");
        m.fields.emplace_back(name, std::move(*rule));
    }
    return m;
}

Status read_runtime(const reader& r, const json& j, job_runtime& rt) {
    if (auto it = j.find("isolation"); it != j.end()) {
        if (!it->is_string() || (*it != "worker" && *it != "in-process"))
            return r.fail("$.isolation", "expected \"worker\" (the default) or \"in-process\", found " + it->dump());
        rt.in_process = *it == "in-process";
    }
    if (auto l = j.find("limits"); l != j.end()) {
        if (auto s = r.expect(*l, json::value_t::object, "$.limits", "an object"); !s) return s;
        if (auto s = r.no_unknown(*l, "$.limits", {"memory_mb", "cpu_seconds", "open_files", "read_ahead_mb", "processes",
                                                  "output_mb"});
            !s)
            return s;
        for (auto [key, field, min] : {std::tuple{"memory_mb", &rt.memory_mb, 64}, std::tuple{"cpu_seconds", &rt.cpu_seconds, 1},
                                       std::tuple{"open_files", &rt.open_files, 16},
                                       std::tuple{"processes", &rt.processes, 1}}) {
            auto v = l->find(key);
            if (v == l->end()) continue;
            if (!v->is_number_unsigned() || (v->get<uint64_t>() != 0 && v->get<uint64_t>() < static_cast<uint64_t>(min)))
                return r.fail(std::string("$.limits.") + key, "expected 0 (no limit) or a whole number of at least " +
                                                                  std::to_string(min) + ", found " + v->dump());
            *field = v->get<uint64_t>();
        }
        if (auto v = l->find("read_ahead_mb"); v != l->end()) {
            if (!v->is_number_unsigned() || v->get<uint64_t>() > 1024)
                return r.fail("$.limits.read_ahead_mb", "expected a whole number of MiB from 0 (off) to 1024, found " +
                                                            v->dump());
            rt.read_ahead_mb = v->get<uint64_t>();
        }
        if (auto v = l->find("output_mb"); v != l->end()) {
            if (!v->is_number_unsigned() || v->get<uint64_t>() > 4096)
                return r.fail("$.limits.output_mb", "expected a whole number of MiB from 0 (keep none) to 4096, found " +
                                                        v->dump());
            rt.output_mb = v->get<uint64_t>();
        }
    }
    if (auto d = j.find("deadlines"); d != j.end()) {
        if (auto s = r.expect(*d, json::value_t::object, "$.deadlines", "an object"); !s) return s;
        if (auto s = r.no_unknown(*d, "$.deadlines", {"contract", "extract", "diff", "apply", "stall", "grace"}); !s)
            return s;
        for (auto [key, field] : {std::pair{"contract", &rt.contract}, std::pair{"extract", &rt.extract},
                                  std::pair{"diff", &rt.diff}, std::pair{"apply", &rt.apply},
                                  std::pair{"stall", &rt.stall}, std::pair{"grace", &rt.grace}}) {
            auto v = d->find(key);
            if (v == d->end()) continue;
            auto ms = parse_duration(*v);
            if (!ms) return r.fail(std::string("$.deadlines.") + key, ms.status().message());
            *field = *ms;
        }
    }
    return Status::ok();
}

std::string number_text(double v) {
    if (v == static_cast<double>(static_cast<long long>(v))) return std::to_string(static_cast<long long>(v));
    return json(v).dump();
}

Status read_retry(const reader& r, const json& j, retry_policy& p) {
    auto number = [&](const json& obj, const std::string& path, const char* key, double min, double max,
                      auto& field) -> Status {
        auto v = obj.find(key);
        if (v == obj.end()) return Status::ok();
        if (!v->is_number() || v->get<double>() < min || v->get<double>() > max)
            return r.fail(path + "." + key, "expected a number from " + number_text(min) + " to " + number_text(max) +
                                                ", found " + v->dump());
        field = static_cast<std::decay_t<decltype(field)>>(v->get<double>());
        return Status::ok();
    };
    auto duration = [&](const json& obj, const std::string& path, const char* key,
                        std::chrono::milliseconds& field) -> Status {
        auto v = obj.find(key);
        if (v == obj.end()) return Status::ok();
        auto d = parse_duration(*v);
        if (!d) return r.fail(path + "." + key, d.status().message());
        field = *d;
        return Status::ok();
    };
    if (auto it = j.find("retry"); it != j.end()) {
        const std::string path = "$.retry";
        if (auto s = r.expect(*it, json::value_t::object, path, "an object"); !s) return s;
        if (auto s = r.no_unknown(*it, path, {"initial_interval", "backoff_coefficient", "max_interval", "max_attempts",
                                              "max_elapsed", "never_retry", "breaker"});
            !s)
            return s;
        for (auto st : {duration(*it, path, "initial_interval", p.initial), duration(*it, path, "max_interval", p.max_interval),
                        duration(*it, path, "max_elapsed", p.max_elapsed),
                        number(*it, path, "backoff_coefficient", 1, 100, p.coefficient),
                        number(*it, path, "max_attempts", 1, 1000, p.max_attempts)})
            if (!st) return st;
        if (auto n = it->find("never_retry"); n != it->end()) {
            if (!n->is_array()) return r.fail(path + ".never_retry", "expected an array of categories, found " + n->dump());
            for (size_t i = 0; i < n->size(); ++i) {
                if (!(*n)[i].is_string())
                    return r.fail(path + ".never_retry[" + std::to_string(i) + "]", "expected a category (a string)");
                p.never_retry.insert((*n)[i].get<std::string>());
            }
        }
        if (auto b = it->find("breaker"); b != it->end()) {
            const std::string bp = path + ".breaker";
            if (auto s = r.expect(*b, json::value_t::object, bp, "an object"); !s) return s;
            if (auto s = r.no_unknown(*b, bp, {"consecutive_failures", "failure_rate", "window"}); !s) return s;
            for (auto st : {number(*b, bp, "consecutive_failures", 0, 1e6, p.breaker_consecutive),
                            number(*b, bp, "failure_rate", 0.01, 1, p.breaker_rate),
                            number(*b, bp, "window", 0, 1e6, p.breaker_window)})
                if (!st) return st;
        }
    }
    if (auto it = j.find("rate_limit"); it != j.end()) {
        const std::string path = "$.rate_limit";
        if (auto s = r.expect(*it, json::value_t::object, path, "an object"); !s) return s;
        if (auto s = r.no_unknown(*it, path, {"requests_per_second", "burst"}); !s) return s;
        for (auto st : {number(*it, path, "requests_per_second", 0.001, 1e6, p.rate_per_second),
                        number(*it, path, "burst", 1, 1e6, p.burst)})
            if (!st) return st;
    }
    return Status::ok();
}

// Paths of the "daemon" block are relative to the config file's folder.
Status read_daemon(const reader& r, const json& j, kernel_config& cfg) {
    auto it = j.find("daemon");
    if (it == j.end()) return Status::ok();
    const std::string path = "$.daemon";
    if (auto s = r.expect(*it, json::value_t::object, path, "an object"); !s) return s;
    if (auto s = r.no_unknown(*it, path, {"jobs_dir", "inbox_dir", "socket", "max_runs", "max_runs_per_target",
                                          "poll", "stop_timeout", "max_connections", "idle_timeout"});
        !s)
        return s;
    daemon_config& d = cfg.daemon;
    for (auto [key, field] : {std::pair{"jobs_dir", &d.jobs_dir}, std::pair{"inbox_dir", &d.inbox_dir},
                              std::pair{"socket", &d.socket}}) {
        auto v = r.string(*it, path, key, false);
        if (!v) return v.status();
        if (v->empty()) continue;
        fs::path p(*v);
        *field = p.is_absolute() ? p : cfg.file.parent_path() / p;
    }
    for (auto [key, field] : {std::pair{"max_runs", &d.max_runs}, std::pair{"max_runs_per_target", &d.max_runs_per_target}}) {
        auto v = it->find(key);
        if (v == it->end()) continue;
        if (!v->is_number_unsigned() || v->get<uint64_t>() > 1000)
            return r.fail(path + "." + key, "expected 0 (no limit) or a whole number of runs up to 1000, found " + v->dump());
        *field = static_cast<size_t>(v->get<uint64_t>());
    }
    if (auto v = it->find("max_connections"); v != it->end()) {
        if (!v->is_number_unsigned() || v->get<uint64_t>() < 1 || v->get<uint64_t>() > 4096)
            return r.fail(path + ".max_connections", "expected a whole number of connections from 1 to 4096, found " +
                                                         v->dump());
        d.max_connections = static_cast<size_t>(v->get<uint64_t>());
    }
    for (auto [key, field] : {std::pair{"poll", &d.poll}, std::pair{"stop_timeout", &d.stop_timeout},
                              std::pair{"idle_timeout", &d.idle_timeout}}) {
        auto v = it->find(key);
        if (v == it->end()) continue;
        auto dur = parse_duration(*v);
        if (!dur) return r.fail(path + "." + key, dur.status().message());
        if (std::string(key) == "poll" && (dur->count() < 100 || dur->count() > 3600000))
            return r.fail(path + ".poll", "expected a duration from 100ms to 1h, found " + v->dump());
        if (std::string(key) == "idle_timeout" && (dur->count() < 100 || dur->count() > 3600000))
            return r.fail(path + ".idle_timeout", "expected a duration from 100ms to 1h, found " + v->dump());
        *field = *dur;
    }
    return Status::ok();
}

// The "sandbox" block: which missing layers an operator accepts, and the
// ids workers take when the kernel runs as root.
Status read_sandbox(const reader& r, const json& j, kernel_config& cfg) {
    auto it = j.find("sandbox");
    if (it == j.end()) return Status::ok();
    const std::string path = "$.sandbox";
    if (auto s = r.expect(*it, json::value_t::object, path, "an object"); !s) return s;
    if (auto s = r.no_unknown(*it, path, {"require", "accept_missing", "first_id", "id_count"}); !s) return s;
    sandbox_config& c = cfg.sandbox;
    if (auto v = it->find("require"); v != it->end()) {
        if (!v->is_boolean()) return r.fail(path + ".require", "expected true or false, found " + v->dump());
        c.require = v->get<bool>();
    }
    if (auto v = it->find("accept_missing"); v != it->end()) {
        if (!v->is_array()) return r.fail(path + ".accept_missing", "expected a list of layers, such as [\"network\"]");
        for (size_t i = 0; i < v->size(); ++i) {
            const json& l = (*v)[i];
            const auto& layers = sandbox_layers();
            if (!l.is_string() || std::find(layers.begin(), layers.end(), l.get<std::string>()) == layers.end() ||
                l == "environment")
                return r.fail(path + ".accept_missing[" + std::to_string(i) + "]",
                              "expected one of \"identity\", \"files\", \"network\", \"syscalls\", found " + l.dump());
            c.accept_missing.push_back(l.get<std::string>());
        }
    }
    for (auto [key, field] : {std::pair{"first_id", &c.first_id}, std::pair{"id_count", &c.id_count}}) {
        auto v = it->find(key);
        if (v == it->end()) continue;
        if (!v->is_number_unsigned() || v->get<uint64_t>() < 1 || v->get<uint64_t>() > 0xfffffff0ull)
            return r.fail(path + "." + key, "expected a whole number from 1 to 4294967280, found " + v->dump());
        *field = static_cast<uint32_t>(v->get<uint64_t>());
    }
    if (c.first_id < 1000 || uint64_t(c.first_id) + c.id_count > 0xfffffff0ull)
        return r.fail(path + ".first_id", "the ids first_id .. first_id + id_count must lie between 1000 and "
                                          "4294967280, away from the system's own users");
    return Status::ok();
}

Status read_schedule(const reader& r, const json& j, std::optional<job_schedule>& out) {
    auto it = j.find("schedule");
    if (it == j.end()) return Status::ok();
    const std::string path = "$.schedule";
    if (auto s = r.expect(*it, json::value_t::object, path, "an object such as {\"cron\": \"0 2 * * 1-5\", \"tz\": "
                                                            "\"America/Chicago\"}");
        !s)
        return s;
    if (auto s = r.no_unknown(*it, path, {"cron", "tz", "overlap", "catch_up", "pause_after_failures"}); !s) return s;
    auto c = it->find("cron");
    if (c == it->end() || !c->is_string())
        return r.fail(path + ".cron", "expected a cron expression (five fields, such as \"0 2 * * 1-5\")");
    std::string tz = "UTC";
    if (auto z = it->find("tz"); z != it->end()) {
        if (!z->is_string()) return r.fail(path + ".tz", "expected an IANA time zone name such as \"America/Chicago\"");
        tz = z->get<std::string>();
    }
    auto cron = cron_schedule::parse(c->get<std::string>(), tz);
    if (!cron) return r.fail(path + (cron.status().message().rfind("time zone", 0) == 0 ? ".tz" : ".cron"),
                             cron.status().message());
    job_schedule sch{std::move(cron.value()), {}};
    if (auto o = it->find("overlap"); o != it->end()) {
        if (!o->is_string() || (*o != "skip" && *o != "queue"))
            return r.fail(path + ".overlap", "expected \"skip\" (the default: a fire while the last run still goes "
                                             "is skipped) or \"queue\" (it waits, one at most), found " + o->dump());
        sch.policy.on_overlap = *o == "queue" ? schedule_policy::overlap::queue : schedule_policy::overlap::skip;
    }
    if (auto w = it->find("catch_up"); w != it->end()) {
        auto d = parse_duration(*w);
        if (!d) return r.fail(path + ".catch_up", d.status().message());
        sch.policy.catch_up = std::chrono::duration_cast<std::chrono::seconds>(*d);
    }
    if (auto n = it->find("pause_after_failures"); n != it->end()) {
        if (!n->is_number_unsigned() || n->get<uint64_t>() > 1000)
            return r.fail(path + ".pause_after_failures",
                          "expected 0 (never pause) or a whole number of failed runs in a row, up to 1000, found " +
                              n->dump());
        sch.policy.pause_after = static_cast<unsigned>(n->get<uint64_t>());
    }
    out = std::move(sch);
    return Status::ok();
}

}  // namespace

Result<std::chrono::milliseconds> parse_duration(const json& j) {
    using std::chrono::milliseconds;
    const std::string what = "expected a duration such as \"90s\", \"5m\", \"2h\", \"30d\", \"500ms\" or a number of "
                             "seconds (0: none), found " + j.dump();
    if (j.is_number()) {
        double v = j.get<double>();
        if (v < 0 || v > 1e9) return Status::error(error_kind::config, what);
        return milliseconds(static_cast<long long>(v * 1000));
    }
    if (!j.is_string()) return Status::error(error_kind::config, what);
    const std::string t = j.get<std::string>();
    size_t digits = 0;
    while (digits < t.size() && std::isdigit(static_cast<unsigned char>(t[digits]))) ++digits;
    if (digits == 0 || digits > 9) return Status::error(error_kind::config, what);
    long long n = std::stoll(t.substr(0, digits));
    const std::string unit = t.substr(digits);
    if (unit == "ms") return milliseconds(n);
    if (unit == "s") return milliseconds(n * 1000);
    if (unit == "m" || unit == "min") return milliseconds(n * 60000);
    if (unit == "h") return milliseconds(n * 3600000);
    if (unit == "d") return milliseconds(n * 86400000);
    return Status::error(error_kind::config, what);
}

Result<job_config> load_job(const fs::path& file) {
    auto parsed = parse_json_file(file);
    if (!parsed) return parsed.status();
    const json& j = *parsed;
    reader r(file);
    if (auto s = r.expect(j, json::value_t::object, "$", "an object"); !s) return s;
    if (auto s = r.no_unknown(j, "$", {"name", "description", "source", "target", "mapping", "apply", "isolation",
                                         "limits", "deadlines", "retry", "rate_limit", "gates", "schedule",
                                         "resume_interrupted"}); !s) return s;
    job_config job;
    job.file = fs::absolute(file);
    job.base_dir = job.file.parent_path();
    auto name = r.string(j, "$", "name", true);
    if (!name) return name.status();
    // A job's name becomes file names (the daemon's copies, locks): a plain
    // word, never a path.
    const bool plain = name->size() <= 128 && *name != "." && *name != ".." &&
                       std::all_of(name->begin(), name->end(), [](unsigned char ch) {
                           return std::isalnum(ch) || ch == '.' || ch == '_' || ch == '-';
                       });
    if (!plain)
        return r.fail("$.name", "a job's name is letters, digits, '.', '_' and '-', at most 128 of them (not '.' or "
                                "'..'), found \"" + printable(*name) + "\"");
    job.name = *name;
    for (auto [key, ref] : {std::pair{"source", &job.source}, std::pair{"target", &job.target}}) {
        auto it = j.find(key);
        if (it == j.end()) return r.fail("$", std::string("missing required field '") + key + "'");
        auto c = read_connector(r, *it, std::string("$.") + key);
        if (!c) return c.status();
        *ref = std::move(*c);
    }
    auto m = j.find("mapping");
    if (m == j.end()) return r.fail("$", "missing required field 'mapping'");
    if (auto s = r.expect(*m, json::value_t::object, "$.mapping", "an object"); !s) return s;
    if (auto s = r.no_unknown(*m, "$.mapping", {"tables", "entities"}); !s) return s;
    if (auto t = m->find("tables"); t != m->end()) {
        if (auto s = r.expect(*t, json::value_t::object, "$.mapping.tables", "an object of tables"); !s) return s;
        for (auto& [tname, rows] : t->items()) {
            auto tp = "$.mapping.tables." + tname;
            if (auto s = r.expect(rows, json::value_t::object, tp, "an object of \"from\": \"to\""); !s) return s;
            for (auto& [k, v] : rows.items()) {
                if (!v.is_string()) return r.fail(tp + "." + k, "expected a string, found " + type_name(v));
                job.tables[tname][k] = v.get<std::string>();
            }
        }
    }
    auto ents = m->find("entities");
    if (ents == m->end()) return r.fail("$.mapping", "missing required field 'entities'");
    if (auto s = r.expect(*ents, json::value_t::array, "$.mapping.entities", "an array"); !s) return s;
    if (ents->empty()) return r.fail("$.mapping.entities", "expected at least one entity mapping");
    std::set<std::string> targets;
    for (size_t i = 0; i < ents->size(); ++i) {
        auto path = "$.mapping.entities[" + std::to_string(i) + "]";
        auto e = read_entity(r, (*ents)[i], path, job);
        if (!e) return e.status();
        if (!targets.insert(e->target).second)
            return r.fail(path + ".target", "target entity '" + e->target + "' is mapped twice");
        job.entities.push_back(std::move(*e));
    }
    if (auto a = j.find("apply"); a != j.end()) {
        if (auto s = r.expect(*a, json::value_t::object, "$.apply", "an object"); !s) return s;
        if (auto s = r.no_unknown(*a, "$.apply", {"batch_size"}); !s) return s;
        if (auto b = a->find("batch_size"); b != a->end()) {
            if (!b->is_number_integer() || b->get<long long>() < 1 || b->get<long long>() > 100000)
                return r.fail("$.apply.batch_size", "expected a whole number from 1 to 100000, found " + b->dump());
            job.batch_size = b->get<size_t>();
        }
    }
    if (auto s = read_runtime(r, j, job.runtime); !s) return s;
    if (auto s = read_retry(r, j, job.retry); !s) return s;
    if (auto s = config_detail::read_gates(r, j, job.gates); !s) return s;
    if (auto s = read_schedule(r, j, job.schedule); !s) return s;
    if (auto v = j.find("resume_interrupted"); v != j.end()) {
        if (!v->is_boolean())
            return r.fail("$.resume_interrupted", "expected true (the daemon resumes a run of this job it stopped, when "
                                                  "it starts again) or false (the default), found " + v->dump());
        job.resume_interrupted = v->get<bool>();
    }
    return job;
}

Result<kernel_config> load_kernel_config(const fs::path& file, const fs::path& default_data_dir) {
    kernel_config cfg;
    cfg.data_dir = default_data_dir;
    if (file.empty()) return cfg;
    auto parsed = parse_json_file(file);
    if (!parsed) return parsed.status();
    const json& j = *parsed;
    reader r(file);
    cfg.file = fs::absolute(file);
    if (auto s = r.expect(j, json::value_t::object, "$", "an object"); !s) return s;
    if (auto s = r.no_unknown(j, "$", {"data_dir", "log_level", "store", "retention", "daemon", "sandbox"}); !s) return s;
    if (auto it = j.find("retention"); it != j.end()) {
        if (auto s = r.expect(*it, json::value_t::object, "$.retention", "an object"); !s) return s;
        if (auto s = r.no_unknown(*it, "$.retention", {"plans_days", "change_results_days", "logs_days"}); !s) return s;
        for (auto [key, field] : {std::pair{"plans_days", &cfg.retention.plans_days},
                                  std::pair{"change_results_days", &cfg.retention.change_results_days},
                                  std::pair{"logs_days", &cfg.retention.logs_days}}) {
            auto v = it->find(key);
            if (v == it->end()) continue;
            const std::string path = std::string("$.retention.") + key;
            if (v->is_string() && *v == "forever") *field = std::nullopt;
            else if (v->is_number_integer() && v->get<int64_t>() >= 1 && v->get<int64_t>() <= 36500)
                *field = static_cast<int>(v->get<int64_t>());
            else
                return r.fail(path, "expected a number of days (1 or more) or \"forever\", found " + v->dump());
        }
    }
    auto dd = r.string(j, "$", "data_dir", false);
    if (!dd) return dd.status();
    if (!dd->empty()) {
        fs::path p(*dd);
        cfg.data_dir = p.is_absolute() ? p : cfg.file.parent_path() / p;
    }
    auto lvl = r.string(j, "$", "log_level", false, "info");
    if (!lvl) return lvl.status();
    static const std::set<std::string> levels{"debug", "info", "warn", "error"};
    if (!levels.count(*lvl))
        return r.fail("$.log_level", "expected one of debug, info, warn, error, found \"" + *lvl + "\"");
    cfg.log_level = *lvl;
    auto store = r.string(j, "$", "store", false, "sqlite");
    if (!store) return store.status();
    if (*store != "sqlite")
        return r.fail("$.store", "expected \"sqlite\" (the only store so far), found \"" + *store + "\"");
    cfg.store = *store;
    if (auto s = read_daemon(r, j, cfg); !s) return s;
    if (auto s = read_sandbox(r, j, cfg); !s) return s;
    return cfg;
}

}  // namespace syncwarden::kernel
