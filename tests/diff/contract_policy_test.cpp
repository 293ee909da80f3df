// ABI 1.4 contract features in the kernel: compare policies and
// dependencies as copy_contract checks them, the comparisons the diff makes
// with them, the apply order, and lists mapped between the two list kinds.
#include <syncwarden/connector.hpp>
#include <syncwarden/kernel/mapper.hpp>
#include <syncwarden/kernel/plan.hpp>
#include <syncwarden/kernel/record_checker.hpp>
#include <syncwarden/kernel/schema.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

using namespace syncwarden::kernel;
namespace sdk = syncwarden::sdk;
using ::testing::HasSubstr;

namespace {

std::string refusal(const sw_contract& c) {
    auto r = copy_contract(&c, "connector x");
    return r.is_ok() ? std::string("accepted") : r.status().message();
}

TEST(contract_policies, are_copied_with_the_contract) {
    sdk::contract_builder b;
    b.entity("users", "id")
        .field("userName").compare(SW_COMPARE_CASE_INSENSITIVE)
        .field("password").compare(SW_COMPARE_WRITE_ONLY)
        .field("emails", SW_TYPE_ITEMS).compare(SW_COMPARE_EXACT, SW_POLICY_UNORDERED);
    b.entity("groups", "id").depends_on("users").field("members", SW_TYPE_ITEMS);
    auto c = copy_contract(&b.build(), "x");
    ASSERT_TRUE(c.is_ok()) << c.status().message();
    const auto& users = *c->find("users");
    EXPECT_EQ(users.fields[0].compare, SW_COMPARE_CASE_INSENSITIVE);
    EXPECT_EQ(users.fields[1].compare, SW_COMPARE_WRITE_ONLY);
    EXPECT_TRUE(users.fields[2].unordered);
    EXPECT_EQ(users.fields[2].type, SW_TYPE_ITEMS);
    EXPECT_EQ(c->find("groups")->depends_on, std::vector<std::string>{"users"});
    EXPECT_FALSE(users.fields[0].keeps_empty);
}

TEST(contract_policies, that_cannot_work_are_refused_with_what_to_fix) {
    {
        sdk::contract_builder b;
        b.entity("users", "id").field("name").compare(SW_COMPARE_EXACT, SW_POLICY_UNORDERED);
        EXPECT_THAT(refusal(b.build()), HasSubstr("policies[0] (users.name) is unordered, but the field is a string"));
    }
    {
        // A C connector can send any number; sw_compare holds only 0..3.
        sdk::contract_builder b;
        b.entity("users", "id").field("name").compare(SW_COMPARE_EXACT);
        sw_contract c = b.build();
        sw_field_policy bad = c.policies[0];
        bad.compare = 9;
        c.policies = &bad;
        EXPECT_THAT(refusal(c), HasSubstr("policies[0] (users.name).compare is 9, expected 0..3"));
    }
    {
        sdk::contract_builder b;
        b.entity("users", "id").field("name", SW_TYPE_STRING, SW_FIELD_REQUIRED).compare(SW_COMPARE_IGNORE);
        EXPECT_THAT(refusal(b.build()), HasSubstr("is required and ignored"));
    }
    {
        sdk::contract_builder b;
        b.entity("users", "id")
            .field("userName").compare(SW_COMPARE_CASE_INSENSITIVE, SW_POLICY_MATCH)
            .field("mail").compare(SW_COMPARE_EXACT, SW_POLICY_MATCH);
        EXPECT_THAT(refusal(b.build()), HasSubstr("users.userName already is; an entity has at most one"));
    }
    {
        sdk::contract_builder b;
        b.entity("users", "id").field("emails", SW_TYPE_ITEMS).compare(SW_COMPARE_EXACT, SW_POLICY_MATCH);
        EXPECT_THAT(refusal(b.build()), HasSubstr("is a match field, which must be a single value"));
    }
    {
        sdk::contract_builder b;
        b.entity("users", "id").field("emails", SW_TYPE_ITEMS, SW_FIELD_EMPTY_IS_VALUE);
        EXPECT_THAT(refusal(b.build()), HasSubstr("users.fields[0] (emails) is not a string field but has "
                                                  "SW_FIELD_EMPTY_IS_VALUE"));
    }
    {
        sdk::contract_builder b;
        b.entity("groups", "id").depends_on("people").field("name");
        EXPECT_THAT(refusal(b.build()), HasSubstr("dependencies[0].depends_on 'people' is not an entity of the contract"));
    }
    {
        sdk::contract_builder b;
        b.entity("a", "id").depends_on("b").field("x");
        b.entity("b", "id").depends_on("c").field("x");
        b.entity("c", "id").depends_on("a").field("x");
        EXPECT_THAT(refusal(b.build()), HasSubstr("its dependencies form a cycle (a -> b -> c -> a)"));
    }
}

TEST(contract_policies, a_contract_of_an_older_minor_is_read_up_to_its_size) {
    sdk::contract_builder b;
    b.entity("users", "id").field("name").compare(SW_COMPARE_CASE_INSENSITIVE);
    sw_contract c = b.build();
    c.struct_size = offsetof(sw_contract, policies);  // a 1.3 connector: no policies
    auto r = copy_contract(&c, "x");
    ASSERT_TRUE(r.is_ok()) << r.status().message();
    EXPECT_EQ(r->entities[0].fields[0].compare, SW_COMPARE_EXACT);
    c.struct_size = offsetof(sw_contract, entities);
    EXPECT_THAT(refusal(c), HasSubstr("sw_contract.struct_size is 8, expected at least 24"));
}

field_schema field(sw_field_type t, sw_compare how, bool unordered = false) {
    field_schema f;
    f.name = "f";
    f.type = t;
    f.compare = how;
    f.unordered = unordered;
    return f;
}

TEST(compare_policies, decide_what_the_diff_sees_as_the_same) {
    auto exact = field(SW_TYPE_STRING, SW_COMPARE_EXACT);
    EXPECT_FALSE(exact.same("Ada", "ada"));
    auto ci = field(SW_TYPE_STRING, SW_COMPARE_CASE_INSENSITIVE);
    EXPECT_TRUE(ci.same("Ada.Lovelace", "ada.lovelace"));
    EXPECT_TRUE(ci.same("ŁUKASIEWICZ", "łukasiewicz"));
    EXPECT_TRUE(ci.same("STRASSE", "straße"));  // full case folding, as LDAP's caseIgnoreMatch
    EXPECT_FALSE(ci.same("ada", "adam"));
    EXPECT_TRUE(field(SW_TYPE_STRING, SW_COMPARE_WRITE_ONLY).same("old-secret", "new-secret"));
    EXPECT_TRUE(field(SW_TYPE_STRING, SW_COMPARE_IGNORE).same("2026-01-01", ""));
    auto set = field(SW_TYPE_ITEMS, SW_COMPARE_EXACT, true);
    EXPECT_TRUE(set.same("b\x1f" "a\x1f" "a", "a\x1f" "b"));
    EXPECT_FALSE(set.same("a\x1f" "b", "a\x1f" "c"));
    EXPECT_FALSE(set.same("A\x1f" "b", "a\x1f" "b"));
    auto ci_set = field(SW_TYPE_LIST, SW_COMPARE_CASE_INSENSITIVE, true);
    EXPECT_TRUE(ci_set.same("CN=Ada,OU=x", "OU=x,cn=ada"));
}

TEST(compare_policies, keep_the_diff_from_planning_what_the_server_rewrote) {
    entity_plan ep;
    ep.schema.name = "users";
    ep.schema.key_name = "id";
    ep.schema.fields = {field(SW_TYPE_STRING, SW_COMPARE_CASE_INSENSITIVE), field(SW_TYPE_STRING, SW_COMPARE_IGNORE)};
    ep.desired = record_set(2);
    ep.current = record_set(2);
    std::string_view held[] = {"ada.lovelace", "2026-11-28T10:00:00Z"};
    ep.current.add("u1", held, 0);
    ep.current.add("u2", held, 0);
    streaming_diff d(ep);
    std::string_view same_but_case[] = {"Ada.Lovelace", ""};
    std::string_view renamed[] = {"Ada.King", ""};
    ASSERT_TRUE(d.offer("u1", same_but_case, false));
    ASSERT_TRUE(d.offer("u2", renamed, false));
    d.finish();
    ASSERT_EQ(ep.changes.size(), 1u);
    EXPECT_EQ(ep.key_of(ep.changes[0]), "u2");
    ASSERT_EQ(ep.changes[0].changed_count, 1u);
    EXPECT_EQ(ep.changed_fields[ep.changes[0].changed_begin], 0u);
}

TEST(apply_order, puts_each_entity_after_those_it_depends_on_and_keeps_the_rest_in_order) {
    entity_schema groups, users, schools, other;
    groups.name = "groups";
    groups.depends_on = {"users", "schools"};
    users.name = "users";
    users.depends_on = {"schools"};
    schools.name = "schools";
    other.name = "other";
    EXPECT_EQ(apply_order({&groups, &other, &users, &schools}),
              (std::vector<std::string>{"other", "schools", "users", "groups"}));
    EXPECT_EQ(apply_order({&other, &schools}), (std::vector<std::string>{"other", "schools"}));
}

struct mapping_case {
    entity_schema src, tgt;
    job_config job;
    entity_mapping m;
    mapping_case(sw_field_type from, sw_field_type to) {
        src.name = "in";
        src.key_name = "id";
        src.fields = {field(from, SW_COMPARE_EXACT)};
        src.fields[0].name = "v";
        tgt = src;
        tgt.name = "out";
        tgt.fields[0].type = to;
        job.file = "job.json";
        m.source = "in";
        m.target = "out";
        m.path = "$.mapping.entities[0]";
        field_rule key, v;
        key.from = "id";
        v.from = "v";
        v.path = "$.mapping.entities[0].fields.v";
        m.fields = {{"id", key}, {"v", v}};
    }
    std::string map(std::string_view value, std::string& error) {
        auto em = entity_mapper::compile(m, job, src, tgt);
        EXPECT_TRUE(em.is_ok()) << em.status().message();
        sw_str vals[] = {{value.data(), value.size()}};
        sw_record rec{{"k", 1}, vals, 1, SW_RECORD_ACTIVE};
        std::string key;
        std::vector<std::string> out;
        if (em->map(rec, key, out, error) != entity_mapper::outcome::mapped) return "<failed>";
        return out[0];
    }
};

TEST(list_mapping, converts_between_comma_lists_and_items) {
    std::string error;
    EXPECT_EQ(mapping_case(SW_TYPE_LIST, SW_TYPE_ITEMS).map("09,10,,11", error), "09\x1f" "10\x1f" "11");
    EXPECT_EQ(mapping_case(SW_TYPE_ITEMS, SW_TYPE_LIST).map("a\x1f" "b", error), "a,b");
    EXPECT_EQ(mapping_case(SW_TYPE_STRING, SW_TYPE_ITEMS).map("Math, Period 1", error), "Math, Period 1");
    EXPECT_EQ(mapping_case(SW_TYPE_ITEMS, SW_TYPE_ITEMS).map("cn=a,ou=x\x1f" "cn=b,ou=x", error),
              "cn=a,ou=x\x1f" "cn=b,ou=x");
    EXPECT_EQ(mapping_case(SW_TYPE_ITEMS, SW_TYPE_LIST).map("cn=a,ou=x", error), "<failed>");
    EXPECT_THAT(error, HasSubstr("the item 'cn=a,ou=x' holds a comma, which a comma-separated list cannot hold"));
}

TEST(list_mapping, maps_each_item_through_a_table) {
    mapping_case c(SW_TYPE_LIST, SW_TYPE_ITEMS);
    c.job.tables["grades"] = {{"09", "Grade 9"}, {"10", "Grade 10"}};
    c.m.fields[1].second.table = "grades";
    c.m.fields[1].second.missing = field_rule::on_missing::empty;
    std::string error;
    EXPECT_EQ(c.map("09,10,12", error), "Grade 9\x1f" "Grade 10");
}

TEST(items_values, with_an_empty_item_are_bad_values) {
    EXPECT_EQ(check_value(SW_TYPE_ITEMS, "a\x1f" "b"), "");
    EXPECT_THAT(check_value(SW_TYPE_ITEMS, "a\x1f\x1f" "b"), HasSubstr("an empty item"));
    EXPECT_THAT(check_value(SW_TYPE_ITEMS, "\x1f" "b"), HasSubstr("an empty item"));
}


// Identity rules: a user name made from a template, transliterated with ICU.
TEST(identity_rules, a_template_with_the_username_transform_gives_ascii_names) {
    entity_schema src, tgt;
    src.name = "users";
    src.key_name = "id";
    src.fields.resize(2);
    src.fields[0].name = "givenName";
    src.fields[1].name = "familyName";
    tgt.name = "people";
    tgt.key_name = "id";
    tgt.fields.resize(1);
    tgt.fields[0].name = "userName";
    job_config job;
    job.file = "job.json";
    entity_mapping m;
    m.source = "users";
    m.target = "people";
    field_rule key, name;
    key.from = "id";
    name.k = field_rule::kind::template_;
    name.parts = {"", "givenName", ".", "familyName", ""};
    name.transform = {"username"};
    m.fields = {{"id", key}, {"userName", name}};
    auto em = entity_mapper::compile(m, job, src, tgt);
    ASSERT_TRUE(em.is_ok()) << em.status().message();
    auto user_name = [&](std::string given, std::string family) {
        sw_str vals[] = {{given.data(), given.size()}, {family.data(), family.size()}};
        sw_record rec{{"k", 1}, vals, 2, SW_RECORD_ACTIVE};
        std::string k, error;
        std::vector<std::string> out;
        EXPECT_EQ(em->map(rec, k, out, error), entity_mapper::outcome::mapped) << error;
        return out[0];
    };
    EXPECT_EQ(user_name("Zoë", "Łukasiewicz"), "zoe.lukasiewicz");
    EXPECT_EQ(user_name("Renée", "O'Brien-Straße"), "renee.obrien-strasse");
    EXPECT_EQ(user_name("Ψάρης", "Νίκος"), "psares.nikos");
    EXPECT_EQ(user_name("Ada", "Lovelace"), "ada.lovelace");
    EXPECT_EQ(user_name("Zoë", "Ng@district.org"), "zoe.ng@district.org");
}

TEST(identity_rules, lower_and_upper_know_more_than_ascii) {
    mapping_case c(SW_TYPE_STRING, SW_TYPE_STRING);
    c.m.fields[1].second.transform = {"lower"};
    std::string error;
    EXPECT_EQ(c.map("ÉLODIE ÇA", error), "élodie ça");
    c.m.fields[1].second.transform = {"trim", "ascii", "upper"};
    EXPECT_EQ(c.map("  Zoë ", error), "ZOE");
}

}  // namespace

// The checker's fast path takes a value as plain ASCII by whole words; a NUL
// byte or a byte above 0x7f anywhere, in values of every short length, must
// still be seen (a NUL is no text; invalid UTF-8 is refused, valid is kept).
TEST(record_checker, sees_a_nul_or_a_non_ascii_byte_at_every_place_of_every_length) {
    sdk::contract_builder b;
    b.entity("users", "id").field("name");
    auto c = copy_contract(&b.build(), "x");
    ASSERT_TRUE(c.is_ok());
    const entity_schema& es = *c->find("users");
    std::vector<std::string> codes;
    record_checker checker(*c, "src", "extract", [&](finding_record f) { codes.push_back(f.code); });
    auto check = [&](const std::string& v) {
        codes.clear();
        const sw_str val{v.data(), v.size()};
        const sw_record rec{{"k1", 2}, &val, 1, SW_RECORD_ACTIVE};
        return checker.check_shape(rec, es);
    };
    for (size_t len = 1; len <= 24; ++len) {
        const std::string ascii(len, 'a');
        EXPECT_TRUE(check(ascii)) << len;
        for (size_t at = 0; at < len; ++at) {
            std::string nul = ascii, high = ascii;
            nul[at] = '\0';
            high[at] = '\xff';
            EXPECT_FALSE(check(nul)) << "NUL at " << at << " of " << len;
            EXPECT_EQ(codes, std::vector<std::string>{"bad_encoding"});
            EXPECT_FALSE(check(high)) << "0xff at " << at << " of " << len;
            if (at + 2 <= len) {
                std::string utf8 = ascii;
                utf8.replace(at, 2, "\xc3\xa9");  // é
                EXPECT_TRUE(check(utf8)) << "é at " << at << " of " << len;
            }
        }
    }
    EXPECT_TRUE(check(std::string(1, '\x01')));
    EXPECT_TRUE(check("\x7f\x7f\x7f\x7f\x7f"));
}

// Dates are YYYY-MM-DD with a month 01-12 and a day 01-31; a date-time
// starts with one. An enumeration allows exactly its words.
TEST(value_checks, dates_need_a_month_and_a_day_in_range_and_enums_their_exact_words) {
    for (const char* ok : {"2026-01-01", "2026-12-31", "0000-10-09", "2026-09-30"})
        EXPECT_EQ(check_value(SW_TYPE_DATE, ok), "") << ok;
    for (const char* bad : {"2026-00-10", "2026-13-01", "2026-10-00", "2026-10-32", "2026-1-10", "2026/10/10",
                            "2026-10-1a", "2026-10-10T", "20261010"})
        EXPECT_EQ(check_value(SW_TYPE_DATE, bad), "expected a date YYYY-MM-DD") << bad;
    EXPECT_EQ(check_value(SW_TYPE_DATETIME, "2026-10-10T08:00:00Z"), "");
    EXPECT_EQ(check_value(SW_TYPE_DATETIME, "2026-19-10T08:00:00Z"), "expected an ISO 8601 date-time");
    field_schema f;
    f.name = "role";
    f.allowed = {"aide", "student", "teacher"};
    for (const char* ok : {"aide", "student", "teacher"}) EXPECT_EQ(f.enum_problem(ok), "") << ok;
    for (const char* bad : {"Student", "studen", "students", "", "teacherx", "aid"})
        EXPECT_THAT(f.enum_problem(bad), HasSubstr("is not one of the values the contract allows")) << bad;
    for (int i = 0; i < 40; ++i) f.allowed.push_back("w" + std::to_string(100 + i));  // past the short scan
    std::sort(f.allowed.begin(), f.allowed.end());
    EXPECT_EQ(f.enum_problem("w139"), "");
    EXPECT_EQ(f.enum_problem("teacher"), "");
    EXPECT_THAT(f.enum_problem("w140"), HasSubstr("is not one of"));
}

// A record as the wire decoder lays it out: key and values one after another
// in one buffer (an empty value between them), checked as a whole. A NUL or
// a byte that is not UTF-8 anywhere in it is still found, in the value it
// is in.
TEST(record_checker, checks_a_record_held_in_one_buffer_at_every_place) {
    sdk::contract_builder b;
    b.entity("users", "id").field("given").field("middle").field("family");
    auto c = copy_contract(&b.build(), "x");
    ASSERT_TRUE(c.is_ok());
    const entity_schema& es = *c->find("users");
    std::vector<std::string> messages;
    record_checker checker(*c, "src", "extract", [&](finding_record f) { messages.push_back(f.code + ": " + f.message); });
    const std::string whole = "u-0001AnnelieseMüller-Lüdenscheidt";  // key 6, given 9, middle 0, family rest
    const size_t key_len = 6, given_len = 9;
    auto check = [&](const std::string& buf) {
        messages.clear();
        const sw_str vals[3] = {{buf.data() + key_len, given_len},
                                {nullptr, 0},
                                {buf.data() + key_len + given_len, buf.size() - key_len - given_len}};
        const sw_record rec{{buf.data(), key_len}, vals, 3, SW_RECORD_ACTIVE};
        return checker.check_shape(rec, es);
    };
    EXPECT_TRUE(check(whole));
    EXPECT_TRUE(messages.empty());
    for (size_t at = 0; at < whole.size(); ++at) {
        if (static_cast<unsigned char>(whole[at]) >= 0x80) continue;  // part of ü
        std::string nul = whole, high = whole;
        nul[at] = '\0';
        high[at] = '\xff';
        const std::string field = at < key_len ? "id" : at < key_len + given_len ? "given" : "family";
        EXPECT_FALSE(check(nul)) << "NUL at " << at;
        ASSERT_EQ(messages.size(), 1u);
        EXPECT_THAT(messages[0], HasSubstr("bad_encoding: "));
        EXPECT_THAT(messages[0], HasSubstr(field)) << at;
        EXPECT_FALSE(check(high)) << "0xff at " << at;
        ASSERT_EQ(messages.size(), 1u);
        EXPECT_THAT(messages[0], HasSubstr(field + " is not valid UTF-8")) << at;
    }
}
