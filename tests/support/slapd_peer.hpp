// OpenLDAP's slapd as a test fixture: a throw-away config and database in a
// test's folder, on loopback, on a free port, stopped with the fixture
// (../shared/docs/TEST-PEERS.md). Its state is read back over LDAP with
// libldap, never from its files.
#pragma once

#include "ldap_read.hpp"

#include <filesystem>
#include <map>
#include <string>
#include <sys/types.h>
#include <thread>
#include <vector>

namespace sw_test {

class slapd_peer {
public:
    struct options {
        bool tls = false;    // a certificate made for the test; StartTLS offered
        bool ldaps = false;  // with tls: listen for LDAPS (TLS from the first byte) instead
        // What one search may return without the paged-results control: a
        // reader that does not page fails on more entries than this.
        int size_limit = 10;
    };
    // Starts slapd with base dc=district,dc=org holding ou=people,
    // ou=groups and the service account; the admin is
    // cn=admin,dc=district,dc=org with `password`.
    slapd_peer(const std::filesystem::path& dir, const std::string& password, options o);
    slapd_peer(const std::filesystem::path& dir, const std::string& password) : slapd_peer(dir, password, options{}) {}
    ~slapd_peer();
    slapd_peer(const slapd_peer&) = delete;
    slapd_peer& operator=(const slapd_peer&) = delete;

    std::string url() const { return std::string(ldaps_ ? "ldaps" : "ldap") + "://127.0.0.1:" + std::to_string(port_); }
    static std::string base() { return "dc=district,dc=org"; }
    static std::string admin_dn() { return "cn=admin,dc=district,dc=org"; }
    // The account a connector binds as: it may write everything, with the
    // server's limits (the admin has none); its password is the admin's.
    static std::string service_dn() { return "cn=syncwarden,dc=district,dc=org"; }
    // The CA (the self-signed certificate) when started with tls.
    std::filesystem::path ca_file() const { return dir_ / "cert.pem"; }

    using entry = ldap_entry;
    // Every entry under `base` matching `filter`, with the attributes asked
    // for (and entryUUID).
    std::vector<entry> search(const std::string& filter, const std::vector<std::string>& attrs = {"*", "entryUUID"},
                              const std::string& base = slapd_peer::base()) const;
    // Adds an entry as the admin (made "by hand").
    void add(const std::string& dn, const std::map<std::string, std::vector<std::string>>& attrs) const;

private:
    void stop();
    std::string url_for(int port) const {
        return std::string(ldaps_ ? "ldaps" : "ldap") + "://127.0.0.1:" + std::to_string(port) + "/";
    }
    std::filesystem::path dir_;
    std::string password_;
    bool ldaps_ = false;
    pid_t pid_ = -1;
    int port_ = 0;
    std::thread drain_;
};

}  // namespace sw_test
