#include <syncwarden/kernel/text.hpp>

namespace syncwarden::kernel {
namespace {

// Length of the valid UTF-8 sequence at s[i], or 0 when it is invalid.
[[gnu::always_inline]] inline size_t sequence_length(std::string_view s, size_t i) {
    const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
    const unsigned char c = b(i);
    if (c < 0x80) return 1;
    size_t n;
    unsigned char lo = 0x80, hi = 0xbf;  // the allowed range of the second byte
    if (c >= 0xc2 && c <= 0xdf) n = 2;
    else if (c == 0xe0) { n = 3; lo = 0xa0; }
    else if (c >= 0xe1 && c <= 0xec) n = 3;
    else if (c == 0xed) { n = 3; hi = 0x9f; }  // no UTF-16 surrogates
    else if (c >= 0xee && c <= 0xef) n = 3;
    else if (c == 0xf0) { n = 4; lo = 0x90; }
    else if (c >= 0xf1 && c <= 0xf3) n = 4;
    else if (c == 0xf4) { n = 4; hi = 0x8f; }
    else return 0;
    if (i + n > s.size()) return 0;
    if (b(i + 1) < lo || b(i + 1) > hi) return 0;
    for (size_t k = 2; k < n; ++k)
        if (b(i + k) < 0x80 || b(i + k) > 0xbf) return 0;
    return n;
}

}  // namespace

size_t utf8_invalid_at(std::string_view s) {
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    const size_t n = s.size();
    size_t i = 0;
    while (i < n) {
        if (p[i] < 0x80) {
            // Runs of ASCII are the common case: skip them eight bytes at a time.
            for (; i + 8 <= n; i += 8) {
                uint64_t w;
                __builtin_memcpy(&w, p + i, 8);
                if (w & 0x8080808080808080ULL) break;
            }
            while (i < n && p[i] < 0x80) ++i;
            continue;
        }
        const size_t len = sequence_length(s, i);
        if (len == 0) return i;
        i += len;
    }
    return std::string_view::npos;
}

void append_json_string(std::string& out, std::string_view v) {
    static const char* hex = "0123456789abcdef";
    const auto* p = reinterpret_cast<const unsigned char*>(v.data());
    const size_t n = v.size();
    out += '"';
    size_t i = 0;
    while (i < n) {
        // Copy the longest run that needs no escaping in one append: a
        // plan has millions of values, nearly all of them plain text.
        const size_t start = i;
        while (i < n) {
            const unsigned char c = p[i];
            if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
                ++i;
                continue;
            }
            if (c >= 0x80) {
                const size_t len = sequence_length(v, i);
                if (len) {
                    i += len;
                    continue;
                }
            }
            break;
        }
        out.append(v.data() + start, i - start);
        if (i == n) break;
        const unsigned char c = p[i++];
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (c >= 0x80) {
                    out += "\xef\xbf\xbd";  // an invalid byte becomes U+FFFD
                } else {
                    out += "\\u00";
                    out += hex[c >> 4];
                    out += hex[c & 15];
                }
        }
    }
    out += '"';
}

std::string printable(std::string_view v) {
    static const char* hex = "0123456789abcdef";
    std::string out;
    out.reserve(v.size());
    size_t i = 0;
    while (i < v.size()) {
        const unsigned char c = static_cast<unsigned char>(v[i]);
        if (c >= 0x80) {
            size_t n = sequence_length(v, i);
            // C1 controls (U+0080..U+009F) can drive a terminal too.
            if (n == 2 && c == 0xc2 && static_cast<unsigned char>(v[i + 1]) < 0xa0) n = 0;
            if (n == 0) {
                out += "\\x";
                out += hex[c >> 4];
                out += hex[c & 15];
                ++i;
            } else {
                out.append(v.data() + i, n);
                i += n;
            }
            continue;
        }
        if (c == '\n') out += "\\n";
        else if (c == '\r') out += "\\r";
        else if (c == '\t') out += "\\t";
        else if (c < 0x20 || c == 0x7f) {
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 15];
        } else {
            out += static_cast<char>(c);
        }
        ++i;
    }
    return out;
}

}  // namespace syncwarden::kernel
