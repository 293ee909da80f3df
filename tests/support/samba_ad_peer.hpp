// Samba's Active Directory domain controller as a test fixture: a domain
// provisioned into a test's folder (samba-tool), served by `samba` with only
// its LDAP service, on 127.0.0.1, with a certificate made for the test, and
// stopped with the fixture. Its state is read back over LDAP.
//
// Samba's LDAP ports are not settable (389 and 636): the fixture checks that
// they are free on 127.0.0.1 and refuses to start otherwise, and the tests
// that use it run in one process (one domain, one ctest entry). samba runs
// as root only; CI runs the tests as root.
#pragma once

#include "ldap_read.hpp"

#include <filesystem>
#include <string>
#include <sys/types.h>
#include <vector>

namespace sw_test {

class samba_ad_peer {
public:
    // Why this machine cannot run the fixture at all ("" when it can): not
    // root. (Samba missing, or its ports taken, fail the start instead.)
    static std::string unavailable();
    // Provisions LAKESIDE.TEST (base DC=lakeside,DC=test) with the default
    // password policy (complexity on), the Administrator's password
    // `password`, and starts it.
    samba_ad_peer(const std::filesystem::path& dir, const std::string& password);
    ~samba_ad_peer();
    samba_ad_peer(const samba_ad_peer&) = delete;
    samba_ad_peer& operator=(const samba_ad_peer&) = delete;

    static std::string ldaps_url() { return "ldaps://127.0.0.1:636"; }
    static std::string starttls_url() { return "ldap://127.0.0.1:389"; }
    static std::string base() { return "DC=lakeside,DC=test"; }
    static std::string admin_dn() { return "CN=Administrator,CN=Users,DC=lakeside,DC=test"; }
    std::filesystem::path ca_file() const { return dir_ / "cert.pem"; }

    std::vector<ldap_entry> search(const std::string& filter, const std::vector<std::string>& attrs,
                                   const std::string& base = samba_ad_peer::base()) const;
    void add(const std::string& dn, const std::map<std::string, std::vector<std::string>>& attrs) const;
    // Whether `dn` can sign in with `password` (a simple bind over LDAPS).
    bool can_bind(const std::string& dn, const std::string& password) const;

private:
    void stop();
    std::filesystem::path dir_;
    std::string password_;
    pid_t pid_ = -1;
};

}  // namespace sw_test
