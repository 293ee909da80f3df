#include "ldap_read.hpp"

#include <ldap.h>

#include <cctype>
#include <fcntl.h>
#include <stdexcept>
#include <sys/wait.h>
#include <unistd.h>

namespace sw_test {
namespace {

struct conn {
    LDAP* ld = nullptr;
    int rc = LDAP_SUCCESS;
    conn(const std::string& url, const std::string& ca_file, const std::string& dn, const std::string& password) {
        if (ldap_initialize(&ld, url.c_str()) != LDAP_SUCCESS) throw std::runtime_error("ldap_initialize " + url);
        int v3 = LDAP_VERSION3;
        ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &v3);
        ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF);
        if (url.rfind("ldaps://", 0) == 0) {
            ldap_set_option(ld, LDAP_OPT_X_TLS_CACERTFILE, ca_file.c_str());
            int zero = 0;
            ldap_set_option(ld, LDAP_OPT_X_TLS_NEWCTX, &zero);
        }
        berval cred{static_cast<ber_len_t>(password.size()), const_cast<char*>(password.data())};
        rc = ldap_sasl_bind_s(ld, dn.c_str(), LDAP_SASL_SIMPLE, &cred, nullptr, nullptr, nullptr);
    }
    void must_be_bound(const std::string& dn) const {
        if (rc != LDAP_SUCCESS) throw std::runtime_error("bind as " + dn + ": " + ldap_err2string(rc));
    }
    ~conn() { ldap_unbind_ext_s(ld, nullptr, nullptr); }
};

}  // namespace

std::vector<ldap_entry> ldap_search(const ldap_account& as, const std::string& base, const std::string& filter,
                                    const std::vector<std::string>& attrs) {
    conn c(as.url, as.ca_file, as.dn, as.password);
    c.must_be_bound(as.dn);
    std::vector<char*> names;
    for (auto& a : attrs) names.push_back(const_cast<char*>(a.c_str()));
    names.push_back(nullptr);
    LDAPMessage* res = nullptr;
    int rc = ldap_search_ext_s(c.ld, base.c_str(), LDAP_SCOPE_SUBTREE, filter.c_str(), names.data(), 0, nullptr,
                               nullptr, nullptr, 0, &res);
    std::vector<ldap_entry> out;
    if (rc != LDAP_SUCCESS && rc != LDAP_NO_SUCH_OBJECT) {
        ldap_msgfree(res);
        throw std::runtime_error("search " + filter + ": " + ldap_err2string(rc));
    }
    for (LDAPMessage* e = ldap_first_entry(c.ld, res); e; e = ldap_next_entry(c.ld, e)) {
        ldap_entry en;
        char* dn = ldap_get_dn(c.ld, e);
        en.dn = dn;
        ldap_memfree(dn);
        BerElement* ber = nullptr;
        for (char* a = ldap_first_attribute(c.ld, e, &ber); a; a = ldap_next_attribute(c.ld, e, ber)) {
            std::string name(a);
            for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
            berval** vals = ldap_get_values_len(c.ld, e, a);
            for (int i = 0; vals && vals[i]; ++i) en.attrs[name].emplace_back(vals[i]->bv_val, vals[i]->bv_len);
            ldap_value_free_len(vals);
            ldap_memfree(a);
        }
        ber_free(ber, 0);
        out.push_back(std::move(en));
    }
    ldap_msgfree(res);
    return out;
}

void ldap_add(const ldap_account& as, const std::string& dn, const std::map<std::string, std::vector<std::string>>& attrs) {
    conn c(as.url, as.ca_file, as.dn, as.password);
    c.must_be_bound(as.dn);
    std::vector<LDAPMod> mods(attrs.size());
    std::vector<std::vector<berval>> values(attrs.size());
    std::vector<std::vector<berval*>> ptrs(attrs.size());
    std::vector<LDAPMod*> list;
    size_t i = 0;
    for (auto& [name, vs] : attrs) {
        for (auto& v : vs) values[i].push_back({static_cast<ber_len_t>(v.size()), const_cast<char*>(v.data())});
        for (auto& v : values[i]) ptrs[i].push_back(&v);
        ptrs[i].push_back(nullptr);
        mods[i].mod_op = LDAP_MOD_ADD | LDAP_MOD_BVALUES;
        mods[i].mod_type = const_cast<char*>(name.c_str());
        mods[i].mod_bvalues = ptrs[i].data();
        list.push_back(&mods[i]);
        ++i;
    }
    list.push_back(nullptr);
    int rc = ldap_add_ext_s(c.ld, dn.c_str(), list.data(), nullptr, nullptr);
    if (rc != LDAP_SUCCESS) {
        char* diag = nullptr;
        ldap_get_option(c.ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag);
        std::string why = diag ? diag : "";
        ldap_memfree(diag);
        throw std::runtime_error("add " + dn + ": " + ldap_err2string(rc) + (why.empty() ? "" : " (" + why + ")"));
    }
}

bool ldap_can_bind(const std::string& url, const std::string& ca_file, const std::string& dn,
                   const std::string& password) {
    conn c(url, ca_file, dn, password);
    return c.rc == LDAP_SUCCESS;
}

int run_program(const std::vector<std::string>& args, const std::filesystem::path& log) {
    pid_t pid = ::fork();
    if (pid == 0) {
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
        argv.push_back(nullptr);
        int out = log.empty() ? ::open("/dev/null", O_WRONLY) : ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
        ::dup2(out, 1);
        ::dup2(out, 2);
        ::execvp(argv[0], argv.data());
        ::_exit(127);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void make_loopback_cert(const std::filesystem::path& cert, const std::filesystem::path& key) {
    if (run_program({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                     "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key.string(), "-out", cert.string()}) != 0)
        throw std::runtime_error("openssl could not make the test certificate");
}

}  // namespace sw_test
