// A small C++ face on OpenLDAP's libldap for the ldap target: one bound
// connection (StartTLS or LDAPS, certificate checks on), paged searches, and
// add, modify, rename and delete, with every result code mapped to the
// kernel's error classes (README.md, "Errors").
#pragma once

#include <syncwarden/connector.hpp>

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

typedef struct ldap LDAP;

namespace syncwarden::ldap {

struct ldap_settings {
    std::string url;       // ldap://host:port or ldaps://host:port
    bool starttls = true;  // for ldap://
    std::string ca_file;
    bool verify_tls = true;
    std::string bind_dn, password;
    int timeout_seconds = 30;
};

struct entry {
    std::string dn;
    std::map<std::string, std::vector<std::string>> attrs;  // attribute names in lower case
    std::string first(const std::string& attr) const {
        auto it = attrs.find(attr);
        return it == attrs.end() || it->second.empty() ? std::string() : it->second.front();
    }
    std::vector<std::string> all(const std::string& attr) const {
        auto it = attrs.find(attr);
        return it == attrs.end() ? std::vector<std::string>() : it->second;
    }
};

// One change of one attribute: add, replace (no values: remove the
// attribute, whether or not it is there) or delete values.
struct mod {
    enum kind { add, replace, remove } op;
    std::string attr;
    std::vector<std::string> values;
};

// The kernel's class of an LDAP result code: busy, unavailable, time limit
// and a lost connection are retryable; bad credentials and too few rights
// are `auth`; the rest are permanent, named by the code.
sdk::error ldap_error(int rc, const std::string& what, const std::string& diagnostic = {});

// For an attribute read by range (Active Directory's ranged retrieval,
// "member;range=0-1499"): where the next range starts; nothing when the name
// is not ranged or its range ends in "*" (the last).
std::optional<size_t> next_range(std::string_view attr);

// RFC 4515 and RFC 4514 escaping of a value put into a filter or a DN.
std::string filter_value(std::string_view v);
std::string dn_value(std::string_view v);

class client {
public:
    explicit client(const ldap_settings& s);  // connects, StartTLS, binds; throws sdk::error
    ~client();
    client(const client&) = delete;
    client& operator=(const client&) = delete;

    // Every entry under `base` (subtree) matching `filter`, `page_size` at a
    // time with the paged-results control (RFC 2696).
    void search(const std::string& base, const std::string& filter, const std::vector<std::string>& attrs,
                int page_size, const std::function<void(entry&&)>& each);
    std::optional<entry> read(const std::string& dn, const std::vector<std::string>& attrs);
    // The result code; throws on anything but success and the codes in `ok`.
    int add(const std::string& dn, const std::vector<mod>& mods, std::vector<int> ok = {});
    int modify(const std::string& dn, const std::vector<mod>& mods, std::vector<int> ok = {});
    int rename(const std::string& dn, const std::string& new_rdn, const std::string& new_parent,
               std::vector<int> ok = {});
    int remove(const std::string& dn, std::vector<int> ok = {});

private:
    int check(int rc, const std::string& what, const std::vector<int>& ok);
    std::string diagnostic();
    LDAP* ld_ = nullptr;
    std::string url_;
};

}  // namespace syncwarden::ldap
