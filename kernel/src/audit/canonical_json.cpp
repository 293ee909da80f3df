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

Status put(std::string& out, const nlohmann::json& v, const std::string& path) {
    using t = nlohmann::json::value_t;
    switch (v.type()) {
        case t::null: out += "null"; return Status::ok();
        case t::boolean: out += v.get<bool>() ? "true" : "false"; return Status::ok();
        case t::number_integer:
        case t::number_unsigned: {
            // Beyond 2^53 an ECMAScript reader would round the number.
            constexpr uint64_t k_max = uint64_t(1) << 53;
            const bool neg = v.is_number_integer() && v.get<int64_t>() < 0;
            const uint64_t mag = neg ? static_cast<uint64_t>(-(v.get<int64_t>() + 1)) + 1 : v.get<uint64_t>();
            if (mag > k_max)
                return Status::error(error_kind::internal, path + ": the integer " + v.dump() +
                                                               " is beyond 2^53, which canonical JSON cannot keep exact");
            out += v.dump();
            return Status::ok();
        }
        case t::number_float: {
            const double d = v.get<double>();
            if (!std::isfinite(d)) return Status::error(error_kind::internal, path + ": NaN or infinity has no JSON form");
            put_double(out, d);
            return Status::ok();
        }
        case t::string: {
            const auto& s = v.get_ref<const std::string&>();
            if (utf8_invalid_at(s) != std::string_view::npos)
                return Status::error(error_kind::internal, path + ": a string that is not valid UTF-8");
            put_string(out, s);
            return Status::ok();
        }
        case t::array: {
            out += '[';
            for (size_t i = 0; i < v.size(); ++i) {
                if (i) out += ',';
                if (auto s = put(out, v[i], path + "[" + std::to_string(i) + "]"); !s) return s;
            }
            out += ']';
            return Status::ok();
        }
        case t::object: {
            std::vector<std::pair<std::u16string, const std::string*>> keys;
            for (auto it = v.begin(); it != v.end(); ++it) {
                if (utf8_invalid_at(it.key()) != std::string_view::npos)
                    return Status::error(error_kind::internal, path + ": a member name that is not valid UTF-8");
                keys.emplace_back(utf16(it.key()), &it.key());
            }
            std::sort(keys.begin(), keys.end());
            out += '{';
            for (size_t i = 0; i < keys.size(); ++i) {
                if (i) out += ',';
                put_string(out, *keys[i].second);
                out += ':';
                if (auto s = put(out, v.at(*keys[i].second), path + "." + *keys[i].second); !s) return s;
            }
            out += '}';
            return Status::ok();
        }
        default:
            return Status::error(error_kind::internal, path + ": a value JSON cannot hold (binary)");
    }
}

}  // namespace

Result<std::string> canonical_json(const nlohmann::json& value) {
    std::string out;
    if (auto s = put(out, value, "$"); !s) return s;
    return out;
}

}  // namespace syncwarden::kernel
