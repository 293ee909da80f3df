// Text the kernel emits: UTF-8 checks, JSON strings, and text made safe to
// print on an operator's terminal. One place, so no command writes invalid
// JSON or lets a connector's bytes drive the terminal.
#pragma once

#include <syncwarden/connector.h>

#include <cstddef>
#include <string>
#include <string_view>

namespace syncwarden::kernel {

inline std::string_view view(sw_str s) { return s.ptr ? std::string_view(s.ptr, s.len) : std::string_view(); }
inline sw_str to_sw(std::string_view s) { return sw_str{s.data(), s.size()}; }

// The empty string of a field that tells it from absent (SW_FIELD_EMPTY_IS_VALUE,
// ABI 1.4) is held inside the kernel as one NUL byte, which no value may
// hold (the record checker refuses it); absent is the zero-length value.
// One marker keeps a record one string per field everywhere: in the diff's
// arena, the plan file and the worker wire.
inline constexpr std::string_view k_empty_value{"\0", 1};
inline bool is_empty_value(std::string_view v) { return v.size() == 1 && v[0] == '\0'; }
// A connector's value as the kernel holds it.
inline std::string_view value_in(sw_str s, bool keeps_empty) {
    if (!s.ptr) return {};
    if (s.len == 0) return keeps_empty ? k_empty_value : std::string_view();
    return {s.ptr, s.len};
}
// A value as the kernel hands it to a connector: absent is {NULL, 0}.
inline sw_str value_out(std::string_view v) {
    if (v.empty()) return {nullptr, 0};
    if (is_empty_value(v)) return {"", 0};
    return {v.data(), v.size()};
}
// A value as text for people and JSON (absent and empty both "").
inline std::string_view value_text(std::string_view v) { return is_empty_value(v) ? std::string_view() : v; }

// The byte offset of the first invalid UTF-8 sequence, or npos when `s` is
// valid UTF-8 (overlong forms, surrogates and code points past U+10FFFF are
// invalid).
size_t utf8_invalid_at(std::string_view s);

// Appends `s` as a JSON string literal (quotes included). Invalid UTF-8 bytes
// become U+FFFD, so the output is always valid JSON.
void append_json_string(std::string& out, std::string_view s);

// `s` with control characters (newlines, ESC, ...) and invalid UTF-8 shown as
// escapes, for one line of terminal output.
std::string printable(std::string_view s);

}  // namespace syncwarden::kernel
