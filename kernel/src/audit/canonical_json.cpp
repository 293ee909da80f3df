#include <syncwarden/kernel/canonical_json.hpp>
#include <syncwarden/kernel/text.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <vector>

namespace syncwarden::kernel {
namespace {

// UTF-16 code units of a UTF-8 string known to be valid.
std::u16string utf16(std::string_view s) {
    std::u16string out;
    for (size_t i = 0; i < s.size();) {
        const auto c = static_cast<unsigned char>(s[i]);
        uint32_t cp;
        size_t n;
        if (c < 0x80) { cp = c; n = 1; }
        else if (c < 0xe0) { cp = c & 0x1f; n = 2; }
        else if (c < 0xf0) { cp = c & 0x0f; n = 3; }
        else { cp = c & 0x07; n = 4; }
        for (size_t k = 1; k < n && i + k < s.size(); ++k) cp = cp << 6 | (static_cast<unsigned char>(s[i + k]) & 0x3f);
        i += n;
        if (cp >= 0x10000) {
            cp -= 0x10000;
            out.push_back(static_cast<char16_t>(0xd800 + (cp >> 10)));
            out.push_back(static_cast<char16_t>(0xdc00 + (cp & 0x3ff)));
        } else {
            out.push_back(static_cast<char16_t>(cp));
        }
    }
    return out;
}

void put_string(std::string& out, const std::string& s) {
    out += '"';
    for (char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (c < 0x20) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\u%04x", c);
                    out += buf;
                } else {
                    out += ch;
                }
        }
    }
    out += '"';
}

// ECMAScript's Number::toString for a finite double (RFC 8785 3.2.2.3):
// the shortest digits that read back as the same double, placed by the
// decimal exponent.
void put_double(std::string& out, double v) {
    if (v == 0) {
        out += '0';  // -0 too
        return;
    }
    if (v < 0) {
        out += '-';
        v = -v;
    }
    char buf[64];
    auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
    std::string sci(buf, r.ptr);  // d.ddde[+-]xx
    const size_t e = sci.find('e');
    std::string digits = sci.substr(0, e);
    digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
    while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
    const int k = static_cast<int>(digits.size());
    const int n = std::stoi(sci.substr(e + 1)) + 1;  // value = 0.digits × 10^n
    if (k <= n && n <= 21) {
        out += digits;
        out.append(static_cast<size_t>(n - k), '0');
    } else if (0 < n && n <= 21) {
        out += digits.substr(0, static_cast<size_t>(n));
        out += '.';
        out += digits.substr(static_cast<size_t>(n));
    } else if (-6 < n && n <= 0) {
        out += "0.";
        out.append(static_cast<size_t>(-n), '0');
        out += digits;
    } else {
        out += digits[0];
        if (k > 1) {
            out += '.';
            out += digits.substr(1);
        }
        out += 'e';
        out += n - 1 >= 0 ? '+' : '-';
        out += std::to_string(std::abs(n - 1));
    }
}

// Where a value sits, built into a JSON path only when an error names it.
struct where {
    const where* parent = nullptr;
    const std::string* key = nullptr;  // a member, or
    size_t index = 0;                  // an element
    std::string path() const {
        if (!parent) return "$";
        return parent->path() + (key ? "." + *key : "[" + std::to_string(index) + "]");
    }
};

// UTF-8 byte order is code point order, which is UTF-16 order unless a name
// holds a code point from U+E000 (lead byte 0xEE and up): then the names
// are sorted as UTF-16, as JCS requires.
bool needs_utf16_sort(const std::string& name) {
    for (char c : name)
        if (static_cast<unsigned char>(c) >= 0xee) return true;
    return false;
}

Status put(std::string& out, const nlohmann::json& v, const where& at) {
    using t = nlohmann::json::value_t;
    switch (v.type()) {
        case t::null: out += "null"; return Status::ok();
        case t::boolean: out += v.get<bool>() ? "true" : "false"; return Status::ok();
        case t::number_integer:
        case t::number_unsigned: {
            constexpr uint64_t k_max = uint64_t(1) << 53;
            const bool neg = v.is_number_integer() && v.get<int64_t>() < 0;
            const uint64_t mag = neg ? static_cast<uint64_t>(-(v.get<int64_t>() + 1)) + 1 : v.get<uint64_t>();
            if (mag > k_max)
                return Status::error(error_kind::internal, at.path() + ": the integer " + v.dump() +
                                                               " is beyond 2^53, which canonical JSON cannot keep exact");
            char buf[24];
            char* p = buf;
            if (neg) *p++ = '-';
            p = std::to_chars(p, buf + sizeof buf, mag).ptr;
            out.append(buf, p);
            return Status::ok();
        }
        case t::number_float: {
            const double d = v.get<double>();
            if (!std::isfinite(d)) return Status::error(error_kind::internal, at.path() + ": NaN or infinity has no JSON form");
            put_double(out, d);
            return Status::ok();
        }
        case t::string: {
            const auto& s = v.get_ref<const std::string&>();
            if (utf8_invalid_at(s) != std::string_view::npos)
                return Status::error(error_kind::internal, at.path() + ": a string that is not valid UTF-8");
            put_string(out, s);
            return Status::ok();
        }
        case t::array: {
            out += '[';
            for (size_t i = 0; i < v.size(); ++i) {
                if (i) out += ',';
                if (auto s = put(out, v[i], where{&at, nullptr, i}); !s) return s;
            }
            out += ']';
            return Status::ok();
        }
        case t::object: {
            std::vector<std::pair<const std::string*, const nlohmann::json*>> members;
            members.reserve(v.size());
            bool utf16_order = false;
            for (auto it = v.begin(); it != v.end(); ++it) {
                if (utf8_invalid_at(it.key()) != std::string_view::npos)
                    return Status::error(error_kind::internal, at.path() + ": a member name that is not valid UTF-8");
                utf16_order |= needs_utf16_sort(it.key());
                members.emplace_back(&it.key(), &*it);
            }
            if (utf16_order)
                std::sort(members.begin(), members.end(),
                          [](const auto& a, const auto& b) { return utf16(*a.first) < utf16(*b.first); });
            else
                std::sort(members.begin(), members.end(), [](const auto& a, const auto& b) { return *a.first < *b.first; });
            out += '{';
            for (size_t i = 0; i < members.size(); ++i) {
                if (i) out += ',';
                put_string(out, *members[i].first);
                out += ':';
                if (auto s = put(out, *members[i].second, where{&at, members[i].first, 0}); !s) return s;
            }
            out += '}';
            return Status::ok();
        }
        default:
            return Status::error(error_kind::internal, at.path() + ": a value JSON cannot hold (binary)");
    }
}

}  // namespace

Result<std::string> canonical_json(const nlohmann::json& value) {
    std::string out;
    out.reserve(256);
    if (auto s = put(out, value, where{}); !s) return s;
    return out;
}

}  // namespace syncwarden::kernel
