#include <syncwarden/kernel/gate_policy.hpp>

#include <cctype>
#include <cmath>
#include <cstdio>

namespace syncwarden::kernel {
namespace {

std::string percent_text(double p) {
    char buf[32];
    if (p == std::floor(p)) std::snprintf(buf, sizeof buf, "%.0f%%", p);
    else std::snprintf(buf, sizeof buf, "%g%%", p);
    return buf;
}

gate_limit percent_limit(double p) {
    gate_limit l;
    l.percent = p;
    return l;
}

}  // namespace

std::string gate_limit::text() const {
    if (off) return "off";
    std::string out;
    if (count) out = std::to_string(*count);
    if (percent) out += (out.empty() ? "" : " or ") + percent_text(*percent);
    return out.empty() ? "none" : out;
}

std::string protect_rule::text() const {
    const char* how_text = how == match::exact ? "is" : how == match::prefix ? "starts with" : "matches";
    return field + " " + how_text + " '" + value + "' (" + path + ")";
}

gate_limit gate_policy::threshold(const std::string& entity, const std::string& kind) const {
    for (const char* scope : {entity.c_str(), "*"}) {
        auto e = thresholds.find(scope);
        if (e == thresholds.end()) continue;
        auto k = e->second.find(kind);
        if (k != e->second.end()) return k->second;
    }
    // Clever's published defaults: hold above 10% deleted, 75% updated.
    if (kind == "delete" || kind == "deactivate") return percent_limit(10);
    if (kind == "update") return percent_limit(75);
    return {};
}

gate_limit gate_policy::shrink_limit(const std::string& source_entity) const {
    for (const char* scope : {source_entity.c_str(), "*"})
        if (auto it = shrink.find(scope); it != shrink.end()) return it->second;
    return percent_limit(10);
}

const gate_limit* gate_allowance::find(const std::string& entity, const std::string& kind) const {
    if (auto it = limits.find(entity + "." + kind); it != limits.end()) return &it->second;
    if (auto it = limits.find(kind); it != limits.end()) return &it->second;
    return nullptr;
}

std::optional<gate_limit> parse_limit_text(const std::string& text, std::string& error) {
    gate_limit l;
    if (text == "off") {
        l.off = true;
        return l;
    }
    // "500", "10%", "12.5%", or both joined by '/': "500/10%"
    size_t pos = 0;
    while (pos <= text.size()) {
        size_t end = text.find('/', pos);
        std::string part = text.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
        const bool pct = !part.empty() && part.back() == '%';
        if (pct) part.pop_back();
        bool digits = !part.empty();
        int dots = 0;
        for (char c : part) {
            if (c == '.') ++dots;
            else if (!std::isdigit(static_cast<unsigned char>(c))) digits = false;
        }
        if (!digits || dots > (pct ? 1 : 0) || part.size() > 15) {
            error = "expected a count (500), a percentage (\"10%\"), both (\"500/10%\") or \"off\", found \"" + text +
                    "\"";
            return std::nullopt;
        }
        if (pct) l.percent = std::stod(part);
        else l.count = std::stoull(part);
        if (end == std::string::npos) break;
        pos = end + 1;
    }
    return l;
}

}  // namespace syncwarden::kernel
