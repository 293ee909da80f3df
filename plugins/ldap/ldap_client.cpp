#include "ldap_client.hpp"

#include <ldap.h>

#include <algorithm>
#include <cstring>
#include <memory>

namespace syncwarden::ldap {

sdk::error ldap_error(int rc, const std::string& what, const std::string& diagnostic) {
    std::string msg = what + ": " + ldap_err2string(rc) + " (LDAP result " + std::to_string(rc) + ")";
    if (!diagnostic.empty()) msg += ": " + diagnostic;
    switch (rc) {
        case LDAP_BUSY:
        case LDAP_UNAVAILABLE:
        case LDAP_TIMELIMIT_EXCEEDED:
            return sdk::error(SW_RETRYABLE, "server_busy", msg);
        case LDAP_SERVER_DOWN:
        case LDAP_CONNECT_ERROR:
        case LDAP_TIMEOUT:
            return sdk::error(SW_RETRYABLE, "connection", msg);
        case LDAP_INVALID_CREDENTIALS:
        case LDAP_INSUFFICIENT_ACCESS:
        case LDAP_STRONG_AUTH_REQUIRED:
        case LDAP_INAPPROPRIATE_AUTH:
        case LDAP_CONFIDENTIALITY_REQUIRED:
            return sdk::error(SW_AUTH, "auth", msg + "; check bind_dn, the password and its rights");
        case LDAP_CONSTRAINT_VIOLATION:
            return sdk::error(SW_PERMANENT, "constraint_violation", msg);
        case LDAP_OBJECT_CLASS_VIOLATION:
            return sdk::error(SW_PERMANENT, "object_class_violation", msg);
        case LDAP_INVALID_SYNTAX:
            return sdk::error(SW_PERMANENT, "invalid_syntax", msg);
        case LDAP_UNDEFINED_TYPE:
            return sdk::error(SW_PERMANENT, "undefined_attribute", msg);
        case LDAP_ALREADY_EXISTS:
            return sdk::error(SW_PERMANENT, "already_exists", msg);
        case LDAP_NO_SUCH_OBJECT:
            return sdk::error(SW_PERMANENT, "no_such_object", msg);
        case LDAP_INVALID_DN_SYNTAX:
            return sdk::error(SW_PERMANENT, "invalid_dn", msg);
        case LDAP_SIZELIMIT_EXCEEDED:
            return sdk::error(SW_PERMANENT, "size_limit", msg + "; the server does not page this search");
        default:
            return sdk::error(SW_PERMANENT, "ldap_" + std::to_string(rc), msg);
    }
}

std::string filter_value(std::string_view v) {
    std::string out;
    static const char* hex = "0123456789abcdef";
    for (unsigned char c : v) {
        if (c == '*' || c == '(' || c == ')' || c == '\\' || c == 0) {
            out += '\\';
            out += hex[c >> 4];
            out += hex[c & 15];
        } else {
            out += static_cast<char>(c);
        }
    }
    return out;
}

std::optional<size_t> next_range(std::string_view attr) {
    const auto at = attr.find(";range=");
    if (at == std::string_view::npos) return std::nullopt;
    const auto dash = attr.find('-', at);
    if (dash == std::string_view::npos) return std::nullopt;
    const std::string_view end = attr.substr(dash + 1);
    if (end.empty() || end == "*") return std::nullopt;
    size_t last = 0;
    for (char c : end) {
        if (c < '0' || c > '9') return std::nullopt;
        last = last * 10 + static_cast<size_t>(c - '0');
    }
    return last + 1;
}

std::string dn_value(std::string_view v) {
    std::string out;
    for (size_t i = 0; i < v.size(); ++i) {
        const char c = v[i];
        const bool edge = (i == 0 && (c == ' ' || c == '#')) || (i + 1 == v.size() && c == ' ');
        if (edge || c == ',' || c == '+' || c == '"' || c == '\\' || c == '<' || c == '>' || c == ';' || c == '=')
            out += '\\';
        out += c;
    }
    return out;
}

namespace {

// LDAPMod arrays for libldap; the strings stay owned by `mods`.
struct mod_list {
    std::vector<LDAPMod> m;
    std::vector<std::vector<berval>> vals;
    std::vector<std::vector<berval*>> ptrs;
    std::vector<LDAPMod*> list;
    explicit mod_list(const std::vector<mod>& mods) : m(mods.size()), vals(mods.size()), ptrs(mods.size()) {
        for (size_t i = 0; i < mods.size(); ++i) {
            for (auto& v : mods[i].values)
                vals[i].push_back({static_cast<ber_len_t>(v.size()), const_cast<char*>(v.data())});
            for (auto& b : vals[i]) ptrs[i].push_back(&b);
            ptrs[i].push_back(nullptr);
            m[i].mod_op = LDAP_MOD_BVALUES | (mods[i].op == mod::add       ? LDAP_MOD_ADD
                                              : mods[i].op == mod::replace ? LDAP_MOD_REPLACE
                                                                           : LDAP_MOD_DELETE);
            m[i].mod_type = const_cast<char*>(mods[i].attr.c_str());
            m[i].mod_bvalues = ptrs[i].data();
            list.push_back(&m[i]);
        }
        list.push_back(nullptr);
    }
};

// One entry of an answer: its DN and attributes (names in lower case).
entry entry_of(LDAP* ld, LDAPMessage* e) {
    entry en;
    char* dn = ldap_get_dn(ld, e);
    en.dn = dn ? dn : "";
    ldap_memfree(dn);
    BerElement* ber = nullptr;
    for (char* a = ldap_first_attribute(ld, e, &ber); a; a = ldap_next_attribute(ld, e, ber)) {
        std::string name(a);
        std::transform(name.begin(), name.end(), name.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        berval** vals = ldap_get_values_len(ld, e, a);
        for (int i = 0; vals && vals[i]; ++i) en.attrs[name].emplace_back(vals[i]->bv_val, vals[i]->bv_len);
        ldap_value_free_len(vals);
        ldap_memfree(a);
    }
    if (ber) ber_free(ber, 0);
    return en;
}

struct msg_free {
    void operator()(LDAPMessage* m) const { ldap_msgfree(m); }
};

}  // namespace

client::client(const ldap_settings& s) : url_(s.url) {
    int rc = ldap_initialize(&ld_, s.url.c_str());
    if (rc != LDAP_SUCCESS)
        throw sdk::error(SW_CONFIG, "settings", "url '" + s.url + "' is not an LDAP URL: " + ldap_err2string(rc));
    int v3 = LDAP_VERSION3;
    ldap_set_option(ld_, LDAP_OPT_PROTOCOL_VERSION, &v3);
    ldap_set_option(ld_, LDAP_OPT_REFERRALS, LDAP_OPT_OFF);
    timeval tv{s.timeout_seconds, 0};
    ldap_set_option(ld_, LDAP_OPT_NETWORK_TIMEOUT, &tv);
    ldap_set_option(ld_, LDAP_OPT_TIMEOUT, &tv);
    // TLS: verification on unless the settings turn it off; a CA file adds
    // to what is trusted. A new TLS context makes the options take effect.
    int require = s.verify_tls ? LDAP_OPT_X_TLS_DEMAND : LDAP_OPT_X_TLS_NEVER;
    ldap_set_option(ld_, LDAP_OPT_X_TLS_REQUIRE_CERT, &require);
    if (!s.ca_file.empty()) ldap_set_option(ld_, LDAP_OPT_X_TLS_CACERTFILE, s.ca_file.c_str());
    int min_tls = LDAP_OPT_X_TLS_PROTOCOL_TLS1_2;
    ldap_set_option(ld_, LDAP_OPT_X_TLS_PROTOCOL_MIN, &min_tls);
    int zero = 0;
    ldap_set_option(ld_, LDAP_OPT_X_TLS_NEWCTX, &zero);
    if (s.starttls && s.url.rfind("ldaps://", 0) != 0) {
        rc = ldap_start_tls_s(ld_, nullptr, nullptr);
        if (rc != LDAP_SUCCESS) {
            auto d = diagnostic();
            throw sdk::error(rc == LDAP_SERVER_DOWN || rc == LDAP_CONNECT_ERROR ? SW_RETRYABLE : SW_CONFIG,
                             rc == LDAP_SERVER_DOWN || rc == LDAP_CONNECT_ERROR ? "connection" : "tls",
                             "StartTLS with " + s.url + " failed: " + ldap_err2string(rc) +
                                 (d.empty() ? "" : " (" + d + ")") +
                                 "; check ca_file, or the server's certificate and name");
        }
    }
    berval cred{static_cast<ber_len_t>(s.password.size()), const_cast<char*>(s.password.data())};
    rc = ldap_sasl_bind_s(ld_, s.bind_dn.c_str(), LDAP_SASL_SIMPLE, &cred, nullptr, nullptr, nullptr);
    if (rc != LDAP_SUCCESS) throw ldap_error(rc, "binding to " + s.url + " as " + s.bind_dn, diagnostic());
}

client::~client() {
    if (ld_) ldap_unbind_ext_s(ld_, nullptr, nullptr);
}

std::string client::diagnostic() {
    char* msg = nullptr;
    ldap_get_option(ld_, LDAP_OPT_DIAGNOSTIC_MESSAGE, &msg);
    std::string out = msg ? msg : "";
    if (msg) ldap_memfree(msg);
    return out;
}

int client::check(int rc, const std::string& what, const std::vector<int>& ok) {
    if (rc == LDAP_SUCCESS || std::find(ok.begin(), ok.end(), rc) != ok.end()) return rc;
    throw ldap_error(rc, what, diagnostic());
}

void client::search(const std::string& base, const std::string& filter, const std::vector<std::string>& attrs,
                    int page_size, const std::function<void(entry&&)>& each) {
    std::vector<char*> names;
    for (auto& a : attrs) names.push_back(const_cast<char*>(a.c_str()));
    names.push_back(nullptr);
    berval cookie{0, nullptr};
    std::string kept_cookie;
    for (;;) {
        LDAPControl* page = nullptr;
        int rc = ldap_create_page_control(ld_, static_cast<ber_int_t>(page_size), kept_cookie.empty() ? nullptr : &cookie,
                                          0, &page);
        if (rc != LDAP_SUCCESS) throw ldap_error(rc, "making the paged-results control");
        LDAPControl* ctrls[] = {page, nullptr};
        LDAPMessage* raw = nullptr;
        rc = ldap_search_ext_s(ld_, base.c_str(), LDAP_SCOPE_SUBTREE, filter.c_str(), names.data(), 0, ctrls, nullptr,
                               nullptr, 0, &raw);
        ldap_control_free(page);
        std::unique_ptr<LDAPMessage, msg_free> res(raw);
        if (rc == LDAP_NO_SUCH_OBJECT) return;  // nothing there yet
        check(rc, "searching " + base + " for " + filter, {});
        for (LDAPMessage* e = ldap_first_entry(ld_, res.get()); e; e = ldap_next_entry(ld_, e))
            each(entry_of(ld_, e));
        // The server's answer carries the cookie of the next page.
        LDAPControl** rctrls = nullptr;
        int err = LDAP_SUCCESS;
        rc = ldap_parse_result(ld_, res.get(), &err, nullptr, nullptr, nullptr, &rctrls, 0);
        if (rc != LDAP_SUCCESS) throw ldap_error(rc, "reading the answer to a search of " + base);
        LDAPControl* pr = ldap_control_find(LDAP_CONTROL_PAGEDRESULTS, rctrls, nullptr);
        kept_cookie.clear();
        if (pr) {
            berval next{0, nullptr};
            ber_int_t estimate = 0;
            if (ldap_parse_pageresponse_control(ld_, pr, &estimate, &next) == LDAP_SUCCESS && next.bv_len) {
                kept_cookie.assign(next.bv_val, next.bv_len);
            }
            if (next.bv_val) ber_memfree(next.bv_val);
        }
        ldap_controls_free(rctrls);
        if (kept_cookie.empty()) return;
        cookie = {static_cast<ber_len_t>(kept_cookie.size()), kept_cookie.data()};
    }
}

std::optional<entry> client::read(const std::string& dn, const std::vector<std::string>& attrs) {
    std::vector<char*> names;
    for (auto& a : attrs) names.push_back(const_cast<char*>(a.c_str()));
    names.push_back(nullptr);
    LDAPMessage* raw = nullptr;
    int rc = ldap_search_ext_s(ld_, dn.c_str(), LDAP_SCOPE_BASE, "(objectClass=*)", names.data(), 0, nullptr, nullptr,
                               nullptr, 0, &raw);
    std::unique_ptr<LDAPMessage, msg_free> res(raw);
    if (rc == LDAP_NO_SUCH_OBJECT) return std::nullopt;
    check(rc, "reading " + dn, {});
    LDAPMessage* e = ldap_first_entry(ld_, res.get());
    if (!e) return std::nullopt;
    return entry_of(ld_, e);
}

int client::add(const std::string& dn, const std::vector<mod>& mods, std::vector<int> ok) {
    mod_list ml(mods);
    return check(ldap_add_ext_s(ld_, dn.c_str(), ml.list.data(), nullptr, nullptr), "adding " + dn, ok);
}

int client::modify(const std::string& dn, const std::vector<mod>& mods, std::vector<int> ok) {
    if (mods.empty()) return LDAP_SUCCESS;
    mod_list ml(mods);
    return check(ldap_modify_ext_s(ld_, dn.c_str(), ml.list.data(), nullptr, nullptr), "modifying " + dn, ok);
}

int client::rename(const std::string& dn, const std::string& new_rdn, const std::string& new_parent,
                   std::vector<int> ok) {
    return check(ldap_rename_s(ld_, dn.c_str(), new_rdn.c_str(), new_parent.empty() ? nullptr : new_parent.c_str(), 1,
                               nullptr, nullptr),
                 "moving " + dn + " to " + new_rdn + (new_parent.empty() ? "" : "," + new_parent), ok);
}

int client::remove(const std::string& dn, std::vector<int> ok) {
    return check(ldap_delete_ext_s(ld_, dn.c_str(), nullptr, nullptr), "deleting " + dn, ok);
}

}  // namespace syncwarden::ldap
