#include <syncwarden/kernel/gates.hpp>

#include <cstdio>

namespace syncwarden::kernel {
namespace {

std::string percent_of(uint64_t n, uint64_t base) {
    if (base == 0) return "";
    const double p = 100.0 * static_cast<double>(n) / static_cast<double>(base);
    char buf[32];
    // One decimal (two below 1%), without a trailing ".0": 10.1% over a 10%
    // limit must not read as 10%.
    std::snprintf(buf, sizeof buf, p < 1 && p > 0 ? "%.2f" : "%.1f", p);
    std::string out = buf;
    if (out.size() > 2 && out.compare(out.size() - 2, 2, ".0") == 0) out.resize(out.size() - 2);
    return out + "%";
}

// Whether `n` (out of `base`) is over the limit. A percentage of an empty
// base is never over: there is nothing to take a share of.
bool over(const gate_limit& l, uint64_t n, uint64_t base) {
    if (l.off) return false;
    if (l.count && n > *l.count) return true;
    if (l.percent && base > 0 && 100.0 * static_cast<double>(n) > *l.percent * static_cast<double>(base)) return true;
    return false;
}

// Decides a verdict from the job's limit and the run's allowance, and says
// so after `what`.
void decide(gate_verdict& v, const gate_limit& job_limit, const gate_limit* allowed, const std::string& allow_text,
            const std::string& what) {
    v.limit = job_limit.text();
    const bool job_over = over(job_limit, v.count, v.base);
    if (!job_over) {
        v.verdict = "pass";
        v.message = what + (job_limit.set() && !job_limit.off ? ", limit " + v.limit : ", no limit");
        return;
    }
    if (allowed && !over(*allowed, v.count, v.base)) {
        v.verdict = "allowed";
        v.message = what + ": over the limit " + v.limit + ", allowed for this run by --allow " + allow_text;
        return;
    }
    v.verdict = "hold";
    v.message = what + ", limit " + v.limit +
                (allowed ? " (and over --allow " + allow_text + ")" : "");
}

std::string allow_text(const gate_allowance& a, const std::string& entity, const std::string& kind) {
    const std::string exact = entity + "." + kind + "=";
    for (auto& g : a.as_given)
        if (g.rfind(exact, 0) == 0) return g;
    for (auto& g : a.as_given)
        if (g.rfind(kind + "=", 0) == 0) return g;
    return "";
}

void threshold_verdicts(const gate_input& in, std::vector<gate_verdict>& out) {
    const auto counts = in.p.counts();
    for (auto& ep : in.p.entities) {
        const std::string& name = ep.schema.name;
        const change_counts& c = counts.count(name) ? counts.at(name) : change_counts{};
        const uint64_t size = ep.current.size();
        if (c.total() == 0) {
            out.push_back({"threshold", name, "", "pass", 0, size, "",
                           "no changes planned for " + name + " (the target holds " + grouped(size) + ")"});
            continue;
        }
        for (const char* kind : k_gate_kinds) {
            const std::string k = kind;
            // An adoption changes a record the target holds: it counts as an update.
            const uint64_t n = k == "create"   ? c.create
                               : k == "update" ? c.update + c.adopt
                               : k == "delete" ? c.remove
                                               : c.deactivate;
            const gate_limit limit = in.policy.threshold(name, k);
            // No change of a kind is never over a limit.
            if (n == 0) continue;
            gate_verdict v{"threshold", name, k, "", n, size, "", ""};
            std::string what = "would " + k + " " + grouped(n) + " ";
            if (k == "create") {
                what += "new " + name + " into a target that holds " + grouped(size);
                if (size > 0) what += " (" + percent_of(n, size) + ")";
            } else {
                what += "of " + grouped(size) + " " + name;
                if (size > 0) what += " (" + percent_of(n, size) + ")";
            }
            // A first sync into an empty target creates everything; only an
            // explicit count limits it.
            if (k == "create" && size == 0 && limit.percent && !limit.count) {
                v.verdict = "pass";
                v.limit = limit.text();
                v.message = what + ": a first sync into an empty target is not held for its creates";
                out.push_back(std::move(v));
                continue;
            }
            decide(v, limit, in.allow.find(name, k), allow_text(in.allow, name, k), what);
            out.push_back(std::move(v));
        }
    }
}

void shrink_verdicts(const gate_input& in, std::vector<gate_verdict>& out) {
    for (auto& [entity, now] : in.sources) {
        gate_verdict v{"shrink", entity, "", "pass", now.active, 0, "", ""};
        const gate_limit limit = in.policy.shrink_limit(entity);
        v.limit = limit.text();
        if (!now.sent) {
            v.message = "the source sent nothing for " + entity + ", so nothing of it is deleted";
            out.push_back(std::move(v));
            continue;
        }
        if (now.delta) {
            v.message = "the source sent " + entity + " as changes only (delta): there is no size to compare";
            out.push_back(std::move(v));
            continue;
        }
        const source_count* before = nullptr;
        if (in.last_good)
            if (auto it = in.last_good->second.sources.find(entity); it != in.last_good->second.sources.end() &&
                                                                   it->second.sent && !it->second.delta)
                before = &it->second;
        std::string sent = "the source sent " + grouped(now.active) + " " + entity;
        if (now.tobedeleted) sent += " (and " + grouped(now.tobedeleted) + " marked tobedeleted)";
        if (!before) {
            v.message = sent + "; no earlier good run to compare with";
            out.push_back(std::move(v));
            continue;
        }
        v.base = before->active;
        const std::string since = "the last good run " + in.last_good->first + " had " + grouped(before->active);
        if (now.active >= before->active) {
            v.message = sent + "; " + since;
            out.push_back(std::move(v));
            continue;
        }
        const uint64_t lost = before->active - now.active;
        v.count = lost;
        std::string what = now.active == 0 ? "the source sent no " + entity + " at all (0 records); " + since
                                           : sent + "; " + since + ": " + grouped(lost) + " fewer (" +
                                                 percent_of(lost, before->active) + " shrink)";
        if (now.active == 0) {
            // An entity that had records and now has none is held whatever
            // the percentage: this is what a truncated export looks like.
            gate_limit at_zero = limit;
            if (!limit.off) at_zero.percent = std::min(limit.percent.value_or(99.999), 99.999);
            decide(v, at_zero, in.allow.find(entity, "shrink"), allow_text(in.allow, entity, "shrink"), what);
            v.limit = limit.text();
        } else {
            decide(v, limit, in.allow.find(entity, "shrink"), allow_text(in.allow, entity, "shrink"), what);
        }
        out.push_back(std::move(v));
    }
}

}  // namespace

std::string grouped(uint64_t n) {
    std::string digits = std::to_string(n), out;
    for (size_t i = 0; i < digits.size(); ++i) {
        if (i && (digits.size() - i) % 3 == 0) out += ',';
        out += digits[i];
    }
    return out;
}

nlohmann::json run_profile::to_json() const {
    nlohmann::json s = nlohmann::json::object(), t = nlohmann::json::object();
    for (auto& [e, c] : sources)
        s[e] = {{"active", c.active}, {"tobedeleted", c.tobedeleted}, {"sent", c.sent}, {"delta", c.delta}};
    for (auto& [e, n] : target_sizes) t[e] = n;
    nlohmann::json l = nlohmann::json::object();
    for (auto& [e, x] : layouts) l[e] = {{"file", x.file}, {"columns", x.columns}};
    return {{"sources", s}, {"targets", t}, {"layouts", l}, {"formats", kernel::to_json(formats)}};
}

run_profile run_profile::from_json(const nlohmann::json& j) {
    run_profile p;
    if (!j.is_object()) return p;
    if (auto s = j.find("sources"); s != j.end() && s->is_object())
        for (auto& [e, c] : s->items())
            p.sources[e] = {c.value("active", uint64_t{0}), c.value("tobedeleted", uint64_t{0}), c.value("sent", false),
                            c.value("delta", false)};
    if (auto l = j.find("layouts"); l != j.end() && l->is_object())
        for (auto& [e, x] : l->items()) {
            if (!x.is_object() || !x.contains("columns") || !x["columns"].is_array()) continue;
            source_layout sl;
            sl.file = x.value("file", "");
            for (auto& c : x["columns"])
                if (c.is_string()) sl.columns.push_back(c.get<std::string>());
            p.layouts[e] = std::move(sl);
        }
    if (auto f = j.find("formats"); f != j.end()) p.formats = format_profile_from_json(*f);
    if (auto t = j.find("targets"); t != j.end() && t->is_object())
        for (auto& [e, n] : t->items())
            if (n.is_number_unsigned()) p.target_sizes[e] = n.get<uint64_t>();
    return p;
}

std::vector<gate_verdict> evaluate_gates(const gate_input& in) {
    std::vector<gate_verdict> out;
    // What the target would lose first: that is what an operator reads first.
    threshold_verdicts(in, out);
    shrink_verdicts(in, out);
    if (in.findings.blocking() > 0 && in.findings.blocking_unsafe() == 0)
        out.push_back({"findings", "", "", "hold", in.findings.blocking(), 0, "0",
                       grouped(in.findings.blocking()) + " error finding(s) in the input; the records in error are "
                                                         "left as they are in the target. First: " +
                           in.findings.first_blocking()});
    return out;
}

nlohmann::json verdicts_json(const std::vector<gate_verdict>& vs) {
    nlohmann::json out = nlohmann::json::array();
    for (auto& v : vs)
        out.push_back({{"gate", v.gate}, {"entity", v.entity}, {"kind", v.kind}, {"verdict", v.verdict},
                       {"count", v.count}, {"base", v.base}, {"limit", v.limit}, {"message", v.message}});
    return out;
}

std::string hold_reason(const std::vector<gate_verdict>& v) {
    std::string out;
    for (auto& x : v)
        if (x.holds()) out += (out.empty() ? "" : "; ") + x.message;
    return out;
}

}  // namespace syncwarden::kernel
