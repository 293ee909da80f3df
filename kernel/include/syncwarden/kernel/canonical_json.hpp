// Canonical JSON, RFC 8785 (JCS): the one byte sequence for a JSON value
// that an auditor's tool reproduces from the same value. Object members are
// sorted by their names' UTF-16 code units, there is no whitespace, strings
// escape only what JSON requires, and numbers are written as ECMAScript
// writes them.
#pragma once

#include <syncwarden/kernel/result.hpp>

#include <nlohmann/json.hpp>

#include <string>

namespace syncwarden::kernel {

// Fails for what JCS cannot express: NaN, infinities, invalid UTF-8, and
// integers beyond 2^53 (which ECMAScript would round).
Result<std::string> canonical_json(const nlohmann::json& value);

}  // namespace syncwarden::kernel
