// The operating-system user on whose behalf this process acts, as the
// operating system vouches for it: the process's own uid, or, in a command
// the daemon runs for a client of its control socket, that client's uid as
// SO_PEERCRED gave it. A name typed with --as is what an operator says; this
// is who it was.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

namespace syncwarden::kernel {

struct os_user {
    uint32_t uid = 0;
    std::string name;  // from the user database; the uid in digits when it has none

    std::string text() const { return name + " (uid " + std::to_string(uid) + ")"; }
    nlohmann::json to_json() const { return {{"uid", uid}, {"name", name}}; }
};

// SYNCWARDEN_PEER_UID counts only in a child of the daemon (its
// SYNCWARDEN_DAEMON_CHILD names this process's parent).
os_user authenticated_user();
os_user os_user_of(uint32_t uid);

}  // namespace syncwarden::kernel
