// How the ldap target classes LDAP result codes (plugins/ldap/README.md,
// "Errors"): what the kernel retries, what stops the run, and the category
// a permanent failure carries. The table is the README's.
#include "ldap_client.hpp"

#include <ldap.h>

#include <gtest/gtest.h>

namespace {

struct expected_class {
    int rc;
    sw_status status;
    const char* category;
};

TEST(ldap_result_codes, are_classed_as_the_readme_says) {
    const expected_class table[] = {
        {LDAP_BUSY, SW_RETRYABLE, "server_busy"},
        {LDAP_UNAVAILABLE, SW_RETRYABLE, "server_busy"},
        {LDAP_TIMELIMIT_EXCEEDED, SW_RETRYABLE, "server_busy"},
        {LDAP_SERVER_DOWN, SW_RETRYABLE, "connection"},
        {LDAP_CONNECT_ERROR, SW_RETRYABLE, "connection"},
        {LDAP_TIMEOUT, SW_RETRYABLE, "connection"},
        {LDAP_INVALID_CREDENTIALS, SW_AUTH, "auth"},
        {LDAP_INSUFFICIENT_ACCESS, SW_AUTH, "auth"},
        {LDAP_STRONG_AUTH_REQUIRED, SW_AUTH, "auth"},
        {LDAP_CONSTRAINT_VIOLATION, SW_PERMANENT, "constraint_violation"},
        {LDAP_OBJECT_CLASS_VIOLATION, SW_PERMANENT, "object_class_violation"},
        {LDAP_INVALID_SYNTAX, SW_PERMANENT, "invalid_syntax"},
        {LDAP_ALREADY_EXISTS, SW_PERMANENT, "already_exists"},
        {LDAP_NO_SUCH_OBJECT, SW_PERMANENT, "no_such_object"},
        {LDAP_SIZELIMIT_EXCEEDED, SW_PERMANENT, "size_limit"},
        {LDAP_OTHER, SW_PERMANENT, "ldap_80"},
    };
    for (auto& t : table) {
        auto e = syncwarden::ldap::ldap_error(t.rc, "modifying uid=x,ou=people", "the server's words");
        EXPECT_EQ(e.status(), t.status) << t.rc;
        EXPECT_EQ(e.category(), t.category) << t.rc;
        const std::string what = e.what();
        EXPECT_NE(what.find("modifying uid=x,ou=people: "), std::string::npos) << what;
        EXPECT_NE(what.find("(LDAP result " + std::to_string(t.rc) + "): the server's words"), std::string::npos)
            << what;
    }
}

TEST(ldap_escaping, keeps_values_from_changing_a_filter_or_a_dn) {
    using syncwarden::ldap::dn_value;
    using syncwarden::ldap::filter_value;
    EXPECT_EQ(filter_value("a*b(c)\\d"), "a\\2ab\\28c\\29\\5cd");
    EXPECT_EQ(dn_value("Smith, John"), "Smith\\, John");
    EXPECT_EQ(dn_value(" lead"), "\\ lead");
    EXPECT_EQ(dn_value("#1=2+3"), "\\#1\\=2\\+3");
}

}  // namespace

// Active Directory's ranged retrieval: "member;range=0-1499" means more
// from 1500; a range ending in "*" is the last.
TEST(ldap_ranges, say_where_the_next_read_starts) {
    using syncwarden::ldap::next_range;
    EXPECT_EQ(next_range("member;range=0-1499"), std::optional<size_t>(1500));
    EXPECT_EQ(next_range("member;range=1500-2999"), std::optional<size_t>(3000));
    EXPECT_EQ(next_range("member;range=3000-*"), std::nullopt);
    EXPECT_EQ(next_range("member"), std::nullopt);
    EXPECT_EQ(next_range(""), std::nullopt);
    EXPECT_EQ(next_range("member;range=0-x"), std::nullopt);
}
