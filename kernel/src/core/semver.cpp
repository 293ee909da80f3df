#include <syncwarden/kernel/semver.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <sstream>

namespace syncwarden::kernel {
namespace {

bool parse_number(std::string_view s, unsigned& out) {
    if (s.empty() || (s.size() > 1 && s[0] == '0')) return false;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && p == s.data() + s.size();
}

// Dot-separated identifiers of [0-9A-Za-z-], none empty; numeric ones
// without leading zeros when `numeric_rule` (pre-release, semver §9).
bool valid_identifiers(std::string_view s, bool numeric_rule, std::string& why) {
    size_t start = 0;
    while (true) {
        size_t dot = s.find('.', start);
        std::string_view id = s.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
        if (id.empty()) {
            why = "an empty identifier in '" + std::string(s) + "'";
            return false;
        }
        bool numeric = true;
        for (char c : id) {
            if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') {
                why = "'" + std::string(id) + "' may hold only letters, digits and '-'";
                return false;
            }
            if (!std::isdigit(static_cast<unsigned char>(c))) numeric = false;
        }
        if (numeric_rule && numeric && id.size() > 1 && id[0] == '0') {
            why = "the numeric identifier '" + std::string(id) + "' has a leading zero";
            return false;
        }
        if (dot == std::string_view::npos) return true;
        start = dot + 1;
    }
}

Status bad(std::string_view text, const std::string& why) {
    return Status::error(error_kind::config,
                         "'" + std::string(text) + "' is not a version: " + why);
}

// Parses "1", "1.2" or "1.2.3"; `parts` says how many were given.
Result<semver> parse_partial(std::string_view text, int& parts) {
    semver v;
    std::string_view rest = text;
    std::string why;
    auto plus = rest.find('+');
    if (plus != std::string_view::npos) {
        v.build = std::string(rest.substr(plus + 1));
        rest = rest.substr(0, plus);
        if (!valid_identifiers(v.build, false, why)) return bad(text, "build metadata: " + why);
    }
    auto dash = rest.find('-');
    if (dash != std::string_view::npos) {
        v.prerelease = std::string(rest.substr(dash + 1));
        rest = rest.substr(0, dash);
        if (v.prerelease.empty()) return bad(text, "empty pre-release after '-'");
        if (!valid_identifiers(v.prerelease, true, why)) return bad(text, "pre-release: " + why);
    }
    unsigned* slots[3] = {&v.major, &v.minor, &v.patch};
    parts = 0;
    while (!rest.empty()) {
        if (parts == 3) return bad(text, "more than three numbers");
        auto dot = rest.find('.');
        auto piece = rest.substr(0, dot);
        if (!parse_number(piece, *slots[parts]))
            return bad(text, "'" + std::string(piece) + "' is not a number");
        ++parts;
        if (dot == std::string_view::npos) break;
        rest = rest.substr(dot + 1);
        if (rest.empty()) return bad(text, "ends with '.'");
    }
    if (parts == 0) return bad(text, "empty");
    return v;
}

}  // namespace

Result<semver> semver::parse(std::string_view text) {
    int parts = 0;
    auto r = parse_partial(text, parts);
    if (!r) return r;
    if (parts != 3) return bad(text, "expected MAJOR.MINOR.PATCH, for example 1.2.0");
    return r;
}

std::string semver::str() const {
    std::ostringstream o;
    o << major << '.' << minor << '.' << patch;
    if (!prerelease.empty()) o << '-' << prerelease;
    if (!build.empty()) o << '+' << build;
    return o.str();
}

std::strong_ordering semver::operator<=>(const semver& o) const {
    if (auto c = major <=> o.major; c != 0) return c;
    if (auto c = minor <=> o.minor; c != 0) return c;
    if (auto c = patch <=> o.patch; c != 0) return c;
    // A release sorts after its pre-releases; pre-releases compare
    // identifier by identifier (semver §11). Build metadata does not count.
    if (prerelease.empty() != o.prerelease.empty())
        return prerelease.empty() ? std::strong_ordering::greater : std::strong_ordering::less;
    std::string_view a = prerelease, b = o.prerelease;
    while (!a.empty() || !b.empty()) {
        if (a.empty()) return std::strong_ordering::less;  // fewer identifiers, all equal so far
        if (b.empty()) return std::strong_ordering::greater;
        auto da = a.find('.'), db = b.find('.');
        std::string_view x = a.substr(0, da), y = b.substr(0, db);
        a = da == std::string_view::npos ? std::string_view() : a.substr(da + 1);
        b = db == std::string_view::npos ? std::string_view() : b.substr(db + 1);
        auto is_num = [](std::string_view id) {
            return !id.empty() && std::all_of(id.begin(), id.end(), [](char c) { return c >= '0' && c <= '9'; });
        };
        const bool nx = is_num(x), ny = is_num(y);
        if (nx != ny) return nx ? std::strong_ordering::less : std::strong_ordering::greater;
        if (nx && x.size() != y.size()) return x.size() <=> y.size();  // no leading zeros: longer is larger
        if (auto c = x.compare(y) <=> 0; c != 0) return c;
    }
    return std::strong_ordering::equal;
}

Result<semver_range> semver_range::parse(std::string_view text) {
    semver_range r;
    r.text_ = std::string(text);
    std::istringstream in{std::string(text)};
    std::string tok;
    while (in >> tok) {
        std::string_view t = tok;
        op o = op::eq;
        char sigil = 0;
        if (t == "*" || t == "x") continue;
        if (t.starts_with(">=")) { o = op::ge; t.remove_prefix(2); }
        else if (t.starts_with("<=")) { o = op::le; t.remove_prefix(2); }
        else if (t.starts_with('>')) { o = op::gt; t.remove_prefix(1); }
        else if (t.starts_with('<')) { o = op::lt; t.remove_prefix(1); }
        else if (t.starts_with('=')) { o = op::eq; t.remove_prefix(1); }
        else if (t.starts_with('^') || t.starts_with('~')) { sigil = t[0]; t.remove_prefix(1); }
        int parts = 0;
        auto v = parse_partial(t, parts);
        if (!v) return Status::error(error_kind::config, "version range '" + std::string(text) +
                                                             "': " + v.status().message());
        semver lo = *v;
        if (sigil || (o == op::eq && parts < 3)) {
            semver hi;
            if (sigil == '^' && lo.major > 0) hi = {lo.major + 1, 0, 0, "", ""};
            else if (sigil == '^' && parts >= 2 && lo.minor > 0) hi = {0, lo.minor + 1, 0, "", ""};
            else if (sigil == '^' && parts == 3) hi = {0, 0, lo.patch + 1, "", ""};
            else if (parts == 1) hi = {lo.major + 1, 0, 0, "", ""};
            else hi = {lo.major, lo.minor + 1, 0, "", ""};  // ~1.2.3, ~1.2, =1.2, ^0.0
            r.bounds_.push_back({op::ge, lo});
            r.bounds_.push_back({op::lt, hi});
        } else {
            if (parts < 3 && (o == op::le || o == op::gt)) {
                // "<=1.2" means anything in 1.2.x
                lo = parts == 1 ? semver{lo.major + 1, 0, 0, "", ""} : semver{lo.major, lo.minor + 1, 0, "", ""};
                o = (o == op::le) ? op::lt : op::ge;
            }
            r.bounds_.push_back({o, lo});
        }
    }
    return r;
}

bool semver_range::matches(const semver& v) const {
    // Pre-releases match only a bound that names the same major.minor.patch.
    if (!v.prerelease.empty()) {
        bool named = false;
        for (auto& b : bounds_)
            if (b.v.major == v.major && b.v.minor == v.minor && b.v.patch == v.patch &&
                !b.v.prerelease.empty())
                named = true;
        if (!named) return false;
    }
    for (auto& b : bounds_) {
        auto c = v <=> b.v;
        bool ok = false;
        switch (b.o) {
            case op::eq: ok = c == 0; break;
            case op::lt: ok = c < 0; break;
            case op::le: ok = c <= 0; break;
            case op::gt: ok = c > 0; break;
            case op::ge: ok = c >= 0; break;
        }
        if (!ok) return false;
    }
    return true;
}

}  // namespace syncwarden::kernel
