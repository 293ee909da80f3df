#include <syncwarden/kernel/os_user.hpp>

#include <cstdlib>
#include <pwd.h>
#include <unistd.h>

namespace syncwarden::kernel {

os_user os_user_of(uint32_t uid) {
    os_user u;
    u.uid = uid;
    if (const passwd* pw = ::getpwuid(static_cast<uid_t>(uid))) u.name = pw->pw_name;
    else u.name = std::to_string(uid);
    return u;
}

os_user authenticated_user() {
    const char* child = std::getenv("SYNCWARDEN_DAEMON_CHILD");
    const char* peer = std::getenv("SYNCWARDEN_PEER_UID");
    if (child && peer && *peer && std::strtol(child, nullptr, 10) == static_cast<long>(::getppid())) {
        char* end = nullptr;
        const unsigned long v = std::strtoul(peer, &end, 10);
        if (end && *end == '\0' && v <= 0xffffffffu) return os_user_of(static_cast<uint32_t>(v));
    }
    return os_user_of(static_cast<uint32_t>(::geteuid()));
}

}  // namespace syncwarden::kernel
