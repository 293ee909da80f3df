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
