// People's identifiers outside the plans: the audit log, the logs and the
// run store refer to a record key or a quoted value by its keyed hash
// (HMAC-SHA256 with the data dir's own secret), never in clear. The same
// value always has the same hash in one data dir, so an operator can match
// a failure in the store with its change in the plan, and nobody without
// the secret can test a guess.
#pragma once

#include <syncwarden/kernel/result.hpp>

#include <filesystem>
#include <string>
#include <string_view>

namespace syncwarden::kernel::pii {

// Where the secret lives in a data dir.
std::filesystem::path key_file(const std::filesystem::path& data_dir);
// Loads (or creates: 32 random bytes, mode 0600 in a 0700 folder) the data
// dir's secret and makes it this process's. Refuses a file others can read.
Status use_data_dir_key(const std::filesystem::path& data_dir);

// "h:" and the first 16 hex digits of HMAC-SHA256(secret, value). Before
// use_data_dir_key, a secret made for this process alone is used.
std::string keyed(std::string_view value);

// The text with each quoted span ('...' or "...", the quote opening at the
// start of a word) and each e-mail address replaced by its keyed hash, in
// angle brackets: "value 'Zoë' is not in the table" becomes
// "value <h:1f0c...> is not in the table".
std::string redact(std::string_view text);

// A secret's value this process has handed to a connector: from now on
// redact() writes it as "<secret NAME>" wherever it appears, so that a
// connector that logs or quotes its credential does not leak it into the
// logs or the store. Its common encodings go too: base64 (standard and
// URL-safe, at any alignment, so inside a Basic-auth header), percent-
// encoding (either hex case, '+' for space), JSON escapes and hex.
// Values shorter than 4 bytes are not tracked. False for a value shorter
// than k_short_secret, which cannot be told from ordinary text reliably:
// the caller warns.
inline constexpr size_t k_short_secret = 8;
bool scrub_secret(const std::string& value, const std::string& name);
// The text with only those secret values replaced, for what the operator
// reads on the terminal (where record keys and values stay readable).
std::string without_secrets(std::string_view text);

// Makes the data dir private: the folder 0700 and, when it was open to
// others, everything in it 0700 (folders) or 0600 (files); from then on
// this process creates files 0600 (umask 077). Worker processes get the
// operator's umask back for what their connectors write.
Status make_private(const std::filesystem::path& data_dir);
// The umask this process started with.
unsigned operator_umask();

}  // namespace syncwarden::kernel::pii
