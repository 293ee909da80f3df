#include "oneroster_schema.hpp"

#include <map>

namespace syncwarden::oneroster {
namespace {

constexpr sw_field_type S = SW_TYPE_STRING, L = SW_TYPE_LIST, B = SW_TYPE_BOOL, D = SW_TYPE_DATE;

}  // namespace

const std::vector<entity_spec>& entities() {
    static const std::vector<entity_spec> all = {
        {"orgs", {{"name", S, true, true, true, nullptr},
                  {"type", S, true, true, true, nullptr},
                  {"identifier", S, false, false, false, nullptr},
                  {"parentSourcedId", S, false, false, false, "orgs"}}},
        {"academicSessions", {{"title", S, true, true, true, nullptr},
                              {"type", S, true, true, true, nullptr},
                              {"startDate", D, true, true, true, nullptr},
                              {"endDate", D, true, true, true, nullptr},
                              {"parentSourcedId", S, false, false, false, "academicSessions"},
                              {"schoolYear", S, true, true, true, nullptr}}},
        {"courses", {{"schoolYearSourcedId", S, false, false, false, "academicSessions"},
                     {"title", S, true, true, true, nullptr},
                     {"courseCode", S, false, false, false, nullptr},
                     {"grades", L, false, false, false, nullptr},
                     {"orgSourcedId", S, true, true, true, "orgs"},
                     {"subjects", L, false, false, false, nullptr},
                     {"subjectCodes", L, false, false, false, nullptr}}},
        {"classes", {{"title", S, true, true, true, nullptr},
                     {"grades", L, false, false, false, nullptr},
                     {"courseSourcedId", S, true, true, true, "courses"},
                     {"classCode", S, false, false, false, nullptr},
                     {"classType", S, true, true, true, nullptr},
                     {"location", S, false, false, false, nullptr},
                     {"schoolSourcedId", S, true, true, true, "orgs"},
                     {"termSourcedIds", L, true, true, true, "academicSessions"},
                     {"subjects", L, false, false, false, nullptr},
                     {"subjectCodes", L, false, false, false, nullptr},
                     {"periods", L, false, false, false, nullptr}}},
        {"roles", {{"userSourcedId", S, false, true, true, "users"},
                   {"roleType", S, false, true, true, nullptr},
                   {"role", S, false, true, true, nullptr},
                   {"beginDate", D, false, false, false, nullptr},
                   {"endDate", D, false, false, false, nullptr},
                   {"orgSourcedId", S, false, true, true, "orgs"},
                   {"userProfileSourcedId", S, false, false, false, "userProfiles"}}},
        {"users", {{"enabledUser", B, true, true, true, nullptr},
                   {"orgSourcedIds", L, true, false, false, "orgs"},
                   {"role", S, true, false, false, nullptr},
                   {"username", S, true, true, true, nullptr},
                   {"userIds", L, false, false, false, nullptr},
                   {"givenName", S, true, true, true, nullptr},
                   {"familyName", S, true, true, true, nullptr},
                   {"middleName", S, false, false, false, nullptr},
                   {"identifier", S, false, false, false, nullptr},
                   {"email", S, false, false, false, nullptr},
                   {"sms", S, false, false, false, nullptr},
                   {"phone", S, false, false, false, nullptr},
                   {"agentSourcedIds", L, false, false, false, "users"},
                   {"grades", L, false, false, false, nullptr},
                   {"password", S, false, false, false, nullptr},
                   {"userMasterIdentifier", S, false, false, false, nullptr},
                   {"preferredGivenName", S, false, false, false, nullptr},
                   {"preferredMiddleName", S, false, false, false, nullptr},
                   {"preferredFamilyName", S, false, false, false, nullptr},
                   {"primaryOrgSourcedId", S, false, false, false, "orgs"},
                   {"pronouns", S, false, false, false, nullptr}}},
        {"enrollments", {{"classSourcedId", S, true, true, true, "classes"},
                         {"schoolSourcedId", S, true, true, true, "orgs"},
                         {"userSourcedId", S, true, true, true, "users"},
                         {"role", S, true, true, true, nullptr},
                         {"primary", B, false, false, false, nullptr},
                         {"beginDate", D, false, false, false, nullptr},
                         {"endDate", D, false, false, false, nullptr}}},
        {"demographics", {{"birthDate", D, false, false, false, nullptr},
                          {"sex", S, false, false, false, nullptr},
                          {"americanIndianOrAlaskaNative", B, false, false, false, nullptr},
                          {"asian", B, false, false, false, nullptr},
                          {"blackOrAfricanAmerican", B, false, false, false, nullptr},
                          {"nativeHawaiianOrOtherPacificIslander", B, false, false, false, nullptr},
                          {"white", B, false, false, false, nullptr},
                          {"demographicRaceTwoOrMoreRaces", B, false, false, false, nullptr},
                          {"hispanicOrLatinoEthnicity", B, false, false, false, nullptr},
                          {"countryOfBirthCode", S, false, false, false, nullptr},
                          {"stateOfBirthAbbreviation", S, false, false, false, nullptr},
                          {"cityOfBirth", S, false, false, false, nullptr},
                          {"publicSchoolResidenceStatus", S, false, false, false, nullptr}}},
        {"userProfiles", {{"userSourcedId", S, false, true, true, "users"},
                          {"profileType", S, false, true, true, nullptr},
                          {"vendorId", S, false, true, true, nullptr},
                          {"applicationId", S, false, false, false, nullptr},
                          {"description", S, false, false, false, nullptr},
                          {"credentialType", S, false, true, true, nullptr},
                          {"username", S, false, true, true, nullptr},
                          {"password", S, false, false, false, nullptr}}},
    };
    return all;
}

const entity_spec* find_entity(const std::string& name) {
    for (auto& e : entities())
        if (e.name == name) return &e;
    return nullptr;
}

namespace {
// OneRoster 1.0 names of users columns that 1.1 renamed.
const std::map<std::string, const char*>& renamed_in_11() {
    static const std::map<std::string, const char*> m = {
        {"userId", "userIds"},
        {"agents", "agentSourcedIds"},
    };
    return m;
}
}  // namespace

const char* header_alias(const std::string& entity, const std::string& header) {
    static const std::map<std::string, const char*> misspelled = {
        {"prefferedGivenName", "preferredGivenName"},
        {"prefferedMiddleName", "preferredMiddleName"},
        {"prefferedFamilyName", "preferredFamilyName"},
        {"dataLastModified", "dateLastModified"},
    };
    if (auto it = misspelled.find(header); it != misspelled.end()) return it->second;
    if (entity == "users")
        if (auto it = renamed_in_11().find(header); it != renamed_in_11().end()) return it->second;
    return nullptr;
}

std::string alias_reason(const std::string& header) {
    return renamed_in_11().count(header) ? "its OneRoster 1.0 name, renamed in 1.1" : "misspelled header";
}

const std::vector<std::string>* vocabulary(const std::string& entity, const std::string& column) {
    // RoleEnum: 1.1's values and 1.2's (which split administrator).
    static const std::vector<std::string> roles = {
        "administrator", "aide",     "counselor", "districtAdministrator", "guardian", "parent",  "principal",
        "proctor",       "relative", "siteAdministrator", "student", "systemAdministrator", "teacher"};
    static const std::map<std::string, std::vector<std::string>> by_column = {
        {"orgs.type", {"department", "district", "local", "national", "school", "state"}},
        {"academicSessions.type", {"gradingPeriod", "schoolYear", "semester", "term"}},
        {"classes.classType", {"homeroom", "scheduled"}},
        {"roles.roleType", {"primary", "secondary"}},
        {"enrollments.role", {"administrator", "proctor", "student", "teacher"}},
        {"demographics.sex", {"female", "male", "other", "unspecified"}},
    };
    if (column == "role" && (entity == "users" || entity == "roles")) return &roles;
    auto it = by_column.find(entity + "." + column);
    return it == by_column.end() ? nullptr : &it->second;
}

bool is_extension_column(const std::string& header) {
    return header.rfind("metadata.", 0) == 0 || header.rfind("ext_", 0) == 0;
}

}  // namespace syncwarden::oneroster
