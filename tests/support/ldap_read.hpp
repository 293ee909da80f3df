// What the directory fixtures (slapd_peer, samba_ad_peer) share: reading
// and writing a test directory over LDAP with libldap (their state is read
// back over the protocol, never from their files), a certificate for
// 127.0.0.1, and running a setup program.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace sw_test {

struct ldap_entry {
    std::string dn;
    std::map<std::string, std::vector<std::string>> attrs;  // names in lower case
    std::string first(const std::string& attr) const {
        auto it = attrs.find(attr);
        return it == attrs.end() || it->second.empty() ? std::string() : it->second.front();
    }
};

struct ldap_account {
    std::string url, dn, password;
    std::string ca_file;  // trusted for ldaps:// (a test's self-signed certificate)
};

// Every entry under `base` (subtree) matching `filter`; throws on failure.
std::vector<ldap_entry> ldap_search(const ldap_account& as, const std::string& base, const std::string& filter,
                                    const std::vector<std::string>& attrs);
// Adds an entry; throws on failure.
void ldap_add(const ldap_account& as, const std::string& dn, const std::map<std::string, std::vector<std::string>>& attrs);
// Whether a simple bind as `dn` with `password` succeeds (the account can
// sign in).
bool ldap_can_bind(const std::string& url, const std::string& ca_file, const std::string& dn,
                   const std::string& password);

// Runs a program, its output into `log` (or nowhere); its exit code.
int run_program(const std::vector<std::string>& args, const std::filesystem::path& log = {});

// A self-signed certificate for 127.0.0.1 (CN and IP subjectAltName),
// which is its own CA; throws when openssl fails.
void make_loopback_cert(const std::filesystem::path& cert, const std::filesystem::path& key);

}  // namespace sw_test
