// Files only the kernel's own user may read: the keys and secrets in the
// data dir's keys/ folder.
#pragma once

#include <syncwarden/kernel/result.hpp>

#include <filesystem>
#include <string>

namespace syncwarden::kernel {

// Creates `file` holding `content`, mode 0600 in a folder of mode 0700,
// unless it exists (then it is left as it is: of two processes creating it
// at once, one wins). `what` names it in errors ("the master key").
Status create_private_file(const std::filesystem::path& file, const std::string& content, const std::string& what);

// Reads it, at most `max` bytes. Refuses a file others can read, naming its
// mode and the chmod that fixes it.
Result<std::string> read_private_file(const std::filesystem::path& file, const std::string& what, size_t max = 4096);

}  // namespace syncwarden::kernel
