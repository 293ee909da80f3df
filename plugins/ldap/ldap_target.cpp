// LDAP target: users under an organizational unit per school, and groups.
// Two directories: OpenLDAP (and other RFC 4519 servers: inetOrgPerson,
// groupOfNames) and Active Directory (user, group, sAMAccountName,
// userAccountControl, unicodePwd). See plugins/ldap/README.md for the layout
// and what each change does.
//
// Identity: a user's key (the source's sourcedId) is its employeeNumber; a
// group's is its cn. The target id the kernel keeps is the entry's
// entryUUID (objectGUID in Active Directory), which survives renames and
// moves. Users without an employeeNumber were made by hand: they are
// reported as unowned (keyed by that id, matched by uid) and adopted when
// the kernel plans it.
#include "ldap_client.hpp"

#include <ldap.h>

#include <syncwarden/connector.hpp>

#include <nlohmann/json.hpp>
#include <unicode/ustring.h>

#include <algorithm>
#include <cstdio>
#include <sys/random.h>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace syncwarden::ldap {
namespace {

using nlohmann::json;
using sdk::error;

enum user_field { u_uid, u_given, u_sn, u_cn, u_mail, u_school, u_active, u_password, u_count };
enum group_field { g_name, g_members, g_count };
constexpr const char* k_managed = "syncwarden";  // businessCategory of the groups this target manages

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

bool loopback(const std::string& url) {
    for (const char* h : {"ldap://127.0.0.1", "ldap://localhost", "ldap://[::1]"})
        if (url.rfind(h, 0) == 0 && (url.size() == std::strlen(h) || url[std::strlen(h)] == ':' ||
                                     url[std::strlen(h)] == '/'))
            return true;
    return false;
}

struct held {
    std::string dn, uuid, key;
    long uac = 0;  // Active Directory's userAccountControl as read (0: unknown)
};

// userAccountControl (MS-ADTS 2.2.16): a normal account, and its disabled bit.
constexpr long k_normal_account = 0x200, k_account_disable = 0x2;

// An objectGUID's 16 bytes in the form Active Directory shows it (the first
// three groups little-endian).
std::string guid_text(const std::string& b) {
    if (b.size() != 16) return b;
    auto u = [&](size_t i) { return static_cast<unsigned>(static_cast<unsigned char>(b[i])); };
    char out[37];
    std::snprintf(out, sizeof out, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u(3), u(2),
                  u(1), u(0), u(5), u(4), u(7), u(6), u(8), u(9), u(10), u(11), u(12), u(13), u(14), u(15));
    return out;
}

// unicodePwd's value: the password in double quotes, UTF-16LE (MS-ADTS
// 3.1.1.3.1.5.1), converted by ICU.
std::string unicode_pwd(const std::string& password) {
    const std::string quoted = "\"" + password + "\"";
    UErrorCode err = U_ZERO_ERROR;
    int32_t n = 0;
    u_strFromUTF8(nullptr, 0, &n, quoted.data(), static_cast<int32_t>(quoted.size()), &err);
    if (err != U_BUFFER_OVERFLOW_ERROR && U_FAILURE(err))
        throw error(SW_PERMANENT, "bad_encoding", "the password is not valid UTF-8");
    std::u16string w(static_cast<size_t>(n), u'\0');
    err = U_ZERO_ERROR;
    u_strFromUTF8(w.data(), n, nullptr, quoted.data(), static_cast<int32_t>(quoted.size()), &err);
    if (U_FAILURE(err)) throw error(SW_PERMANENT, "bad_encoding", "the password is not valid UTF-8");
    std::string out;
    for (char16_t c : w) {
        out += static_cast<char>(c & 0xff);
        out += static_cast<char>(c >> 8);
    }
    return out;
}

// A password nobody knows, for an Active Directory account that must be
// enabled but whose password the mapping does not set (a district that
// signs in through federation, or hands out passwords at the help desk).
// 24 characters from the kernel's random source, with all four character
// classes, so any complexity policy takes it.
std::string random_password() {
    static const std::string classes[] = {"ABCDEFGHJKLMNPQRSTUVWXYZ", "abcdefghijkmnopqrstuvwxyz", "23456789",
                                          "!#%+-=?@^_"};
    unsigned char bytes[24];
    size_t got = 0;
    while (got < sizeof bytes) {
        const ssize_t n = ::getrandom(bytes + got, sizeof bytes - got, 0);
        if (n <= 0) throw error(SW_RETRYABLE, "random", "no random bytes for an initial password");
        got += static_cast<size_t>(n);
    }
    std::string pw;
    for (size_t i = 0; i < sizeof bytes; ++i) {
        const std::string& c = classes[i % 4];
        pw += c[bytes[i] % c.size()];
    }
    return pw;
}

class ldap_target final : public sdk::connector {
public:
    ldap_target(const sdk::host& h, const sw_create_args& a) : connector(h, a) {
        json s;
        try {
            s = json::parse(settings_json());
        } catch (const json::exception& e) {
            throw error(SW_CONFIG, "settings", std::string("settings are not JSON: ") + e.what());
        }
        try {
            ls_.url = s.at("url").get<std::string>();
            ls_.bind_dn = s.at("bind_dn").get<std::string>();
            ls_.password = s.at("password").get<std::string>();
            base_ = s.at("base_dn").get<std::string>();
            ls_.starttls = s.value("starttls", ls_.url.rfind("ldaps://", 0) != 0);
            ls_.ca_file = s.value("ca_file", "");
            ls_.verify_tls = s.value("verify_tls", true);
            ls_.timeout_seconds = s.value("timeout_seconds", 30);
            users_ = s.value("users_ou", std::string("ou=people")) + "," + base_;
            groups_ = s.value("groups_ou", std::string("ou=groups")) + "," + base_;
            disabled_ = s.value("disabled_ou", std::string("ou=disabled,ou=people")) + "," + base_;
            page_size_ = s.value("page_size", 500);
            const std::string directory = s.value("directory", std::string("openldap"));
            if (directory != "openldap" && directory != "active_directory")
                throw error(SW_CONFIG, "settings",
                            "settings.directory is '" + directory + "'; it is \"openldap\" or \"active_directory\"");
            ad_ = directory == "active_directory";
            upn_suffix_ = s.value("upn_suffix", std::string());
            if (upn_suffix_.empty())  // dc=district,dc=org -> district.org
                for (const std::string& part : split_dn(base_))
                    if (lower(part.substr(0, 3)) == "dc=") upn_suffix_ += (upn_suffix_.empty() ? "" : ".") + part.substr(3);
        } catch (const json::exception& e) {
            throw error(SW_CONFIG, "settings", std::string("settings: ") + e.what());
        }
        if (ls_.url.rfind("ldaps://", 0) != 0 && !ls_.starttls && !loopback(ls_.url))
            throw error(SW_CONFIG, "settings",
                        "url " + ls_.url + " without StartTLS would send the password in clear text; use ldaps:// or "
                        "\"starttls\": true (plain ldap:// is allowed only to this machine)");
        builder_.entity("users", "sourcedId")
            .field("uid", SW_TYPE_STRING, SW_FIELD_REQUIRED).compare(SW_COMPARE_CASE_INSENSITIVE, SW_POLICY_MATCH)
            .field("givenName").compare(SW_COMPARE_CASE_INSENSITIVE)
            .field("sn", SW_TYPE_STRING, SW_FIELD_REQUIRED).compare(SW_COMPARE_CASE_INSENSITIVE)
            .field("cn", SW_TYPE_STRING, SW_FIELD_REQUIRED).compare(SW_COMPARE_CASE_INSENSITIVE)
            .field("mail", SW_TYPE_ITEMS).compare(SW_COMPARE_CASE_INSENSITIVE, SW_POLICY_UNORDERED)
            .field("school").compare(SW_COMPARE_CASE_INSENSITIVE)
            .field("active", SW_TYPE_BOOL)
            .field("userPassword").compare(SW_COMPARE_WRITE_ONLY);
        builder_.entity("groups", "sourcedId")
            .depends_on("users")
            .field("name").compare(SW_COMPARE_CASE_INSENSITIVE)
            .field("members", SW_TYPE_ITEMS).compare(SW_COMPARE_EXACT, SW_POLICY_UNORDERED);
        contract_ = &builder_.build();
    }

    static const char* settings_schema() {
        return R"schema({
  "$schema": "http://json-schema.org/draft-07/schema#",
  "title": "ldap settings",
  "type": "object",
  "required": ["url", "bind_dn", "password", "base_dn"],
  "additionalProperties": false,
  "properties": {
    "url": {"type": "string", "pattern": "^ldaps?://", "x-syncwarden-grant": "endpoint", "description": "ldaps://host:636, or ldap://host:389 with StartTLS"},
    "starttls": {"type": "boolean", "description": "StartTLS on an ldap:// URL (default: true; false only to this machine)"},
    "bind_dn": {"type": "string", "minLength": 1},
    "password": {"type": "string", "minLength": 1, "description": "put it in the secret store: {\"$secret\": NAME}"},
    "base_dn": {"type": "string", "minLength": 1, "description": "dc=district,dc=org"},
    "users_ou": {"type": "string", "default": "ou=people", "description": "where users go, relative to base_dn; one OU per school below it"},
    "groups_ou": {"type": "string", "default": "ou=groups", "description": "where groups go, relative to base_dn"},
    "disabled_ou": {"type": "string", "default": "ou=disabled,ou=people", "description": "where an inactive user is moved, relative to base_dn"},
    "ca_file": {"type": "string", "x-syncwarden-grant": "read-path", "description": "a PEM file of certificates to trust besides the system's"},
    "verify_tls": {"type": "boolean", "default": true, "description": "false turns certificate checks off; never do that outside a test"},
    "timeout_seconds": {"type": "integer", "minimum": 1, "maximum": 600, "default": 30},
    "page_size": {"type": "integer", "minimum": 1, "maximum": 100000, "default": 500, "description": "entries per page of a search"},
    "directory": {"enum": ["openldap", "active_directory"], "default": "openldap",
                  "description": "openldap: inetOrgPerson and groupOfNames (RFC 4519); active_directory: user and group, sAMAccountName, userAccountControl, unicodePwd"},
    "upn_suffix": {"type": "string", "description": "active_directory: the userPrincipalName suffix (default: base_dn's dc= parts, district.org)"}
  }
})schema";
    }

    const sw_contract& contract() override { return *contract_; }
    std::string system_id() override { return "ldap " + ls_.url + " " + base_; }

    // The parts of a DN, split at its unescaped commas.
    static std::vector<std::string> split_dn(const std::string& dn) {
        std::vector<std::string> parts;
        std::string cur;
        for (size_t i = 0; i < dn.size(); ++i) {
            if (dn[i] == '\\' && i + 1 < dn.size()) {
                cur += dn[i];
                cur += dn[++i];
            } else if (dn[i] == ',') {
                parts.push_back(cur);
                cur.clear();
            } else if (dn[i] == ' ' && cur.empty()) {
                continue;
            } else {
                cur += dn[i];
            }
        }
        if (!cur.empty()) parts.push_back(cur);
        return parts;
    }

    void read_state(const std::vector<std::string>& entities) override {
        const bool users = std::find(entities.begin(), entities.end(), "users") != entities.end();
        const bool groups = std::find(entities.begin(), entities.end(), "groups") != entities.end();
        list_users(users);
        if (groups) list_groups(true);
    }

    void apply(const sw_change_batch& b) override {
        if (!users_listed_) list_users(false);
        const std::string entity(sdk::from_sw(b.entity));
        const bool is_users = entity == "users";
        if (!is_users && entity != "groups")
            throw error(SW_PERMANENT, "unknown_entity", "ldap holds users and groups, not '" + entity + "'");
        if (!is_users && !groups_listed_) list_groups(false);
        for (size_t i = 0; i < b.change_count; ++i) {
            try {
                if (is_users) apply_user(b, i, b.changes[i]);
                else apply_group(b, i, b.changes[i]);
                host_api().change_result(i, SW_OK, "", "");
            } catch (const error& e) {
                // A server that is busy, gone or refuses the bind: this change
                // and the rest of the batch wait for the kernel's retry.
                host_api().change_result(i, e.status(), e.category(), e.what());
                if (e.status() == SW_RETRYABLE || e.status() == SW_AUTH || e.status() == SW_CANCELLED) throw;
            }
        }
    }

    void commit() override {
        if (created_ || moved_ || adopted_)
            host_api().log(SW_LOG_INFO, "ldap: " + std::to_string(created_) + " entries added, " +
                                            std::to_string(moved_) + " renamed or moved, " +
                                            std::to_string(adopted_) + " adopted");
    }

private:
    client& conn() {
        if (!conn_) conn_ = std::make_unique<client>(ls_);
        return *conn_;
    }
    void pace() {
        host_api().acquire(1);
        if (host_api().cancelled()) throw error(SW_CANCELLED, "cancelled", "run cancelled");
    }

    // ---- reading -------------------------------------------------------------

    // The id the kernel keeps: entryUUID, or objectGUID in Active Directory.
    std::string id_of(const entry& e) const { return ad_ ? guid_text(e.first("objectguid")) : e.first("entryuuid"); }
    std::string id_attr() const { return ad_ ? "objectGUID" : "entryUUID"; }
    std::string rdn_for(const std::string& uid) const { return (ad_ ? "CN=" : "uid=") + dn_value(uid); }

    // The RDN value of the OU right under users_ou that holds `dn`, if any.
    bool disabled(const std::string& dn) const {
        const std::string d = lower(dn), suffix = "," + lower(disabled_);
        return d.size() > suffix.size() && d.compare(d.size() - suffix.size(), suffix.size(), suffix) == 0;
    }

    void list_users(bool emit) {
        users_listed_ = true;
        by_uuid_.clear();
        by_key_.clear();
        dn_key_.clear();
        std::unique_ptr<sdk::batch_writer> out;
        if (emit) out = std::make_unique<sdk::batch_writer>(host_api(), "users", SW_MODE_BULK);
        const std::vector<std::string> attrs =
            ad_ ? std::vector<std::string>{"sAMAccountName", "givenName", "sn", "displayName", "mail", "otherMailbox",
                                           "department", "employeeNumber", "objectGUID", "userAccountControl"}
                : std::vector<std::string>{"uid", "givenName", "sn", "cn", "mail", "ou", "employeeNumber", "entryUUID"};
        conn().search(users_, ad_ ? "(&(objectCategory=person)(objectClass=user))" : "(objectClass=inetOrgPerson)",
                      attrs, page_size_, [&](entry&& e) {
                          held h{e.dn, id_of(e), e.first("employeenumber"), std::atol(e.first("useraccountcontrol").c_str())};
                          by_uuid_[h.uuid] = h;
                          if (!h.key.empty()) {
                              by_key_[h.key] = h;
                              dn_key_[lower(h.dn)] = h.key;
                          }
                          if (!out) return;
                          std::vector<std::string> v(u_count);
                          v[u_given] = e.first("givenname");
                          v[u_sn] = e.first("sn");
                          if (ad_) {
                              v[u_uid] = e.first("samaccountname");
                              v[u_cn] = e.first("displayname");
                              std::vector<std::string> mail = e.all("mail");
                              for (auto& m : e.all("othermailbox")) mail.push_back(m);
                              v[u_mail] = sdk::join_items(mail);
                              v[u_school] = e.first("department");
                              v[u_active] = (h.uac & k_account_disable) || disabled(e.dn) ? "false" : "true";
                          } else {
                              v[u_uid] = e.first("uid");
                              v[u_cn] = e.first("cn");
                              v[u_mail] = sdk::join_items(e.all("mail"));
                              v[u_school] = e.first("ou");
                              v[u_active] = disabled(e.dn) ? "false" : "true";
                          }
                          if (h.key.empty()) out->add(h.uuid, v, SW_RECORD_UNOWNED);
                          else out->add(h.key, v);
                      });
        if (out) out->flush();
    }

    void list_groups(bool emit) {
        groups_listed_ = true;
        groups_by_uuid_.clear();
        std::unique_ptr<sdk::batch_writer> out;
        if (emit) out = std::make_unique<sdk::batch_writer>(host_api(), "groups", SW_MODE_BULK);
        // Active Directory answers at most MaxValRange (1500) values of an
        // attribute per read: member is asked for by range, and the rest
        // read after the search (not inside it, on the same connection).
        std::vector<entry> found;
        conn().search(groups_,
                      ad_ ? std::string("(&(objectClass=group)(adminDescription=") + k_managed + "))"
                          : std::string("(&(objectClass=groupOfNames)(businessCategory=") + k_managed + "))",
                      {"cn", "description", ad_ ? "member;range=0-*" : "member", ad_ ? "objectGUID" : "entryUUID"},
                      page_size_, [&](entry&& e) { found.push_back(std::move(e)); });
        for (entry& e : found) {
            held h{e.dn, id_of(e), e.first("cn")};
            groups_by_uuid_[h.uuid] = h;
            if (!out) continue;
            // Members are users' DNs; the kernel speaks of keys. The group's
            // own DN stands in for "no member" (groupOfNames must have one).
            std::vector<std::string> keys;
            for (auto& m : all_members(e))
                if (auto it = dn_key_.find(lower(m)); it != dn_key_.end()) keys.push_back(it->second);
            out->add(h.key, {e.first("description"), sdk::join_items(keys)});
        }
        if (out) out->flush();
    }

    // Every value of member: "member", or "member;range=A-B" then the next
    // ranges until one ends in "*".
    std::vector<std::string> all_members(const entry& first) {
        std::vector<std::string> out;
        entry cur = first;
        for (int reads = 0;; ++reads) {
            std::string ranged;
            for (auto& [name, values] : cur.attrs)
                if (name == "member" || name.rfind("member;range=", 0) == 0) {
                    out.insert(out.end(), values.begin(), values.end());
                    ranged = name;
                }
            const auto next = next_range(ranged);
            if (!next) return out;
            if (reads > 100000) throw error(SW_PERMANENT, "bad_response", first.dn + ": member ranges do not end");
            auto more = conn().read(first.dn, {"member;range=" + std::to_string(*next) + "-*"});
            if (!more) return out;
            cur = std::move(*more);
        }
    }

    // ---- users ---------------------------------------------------------------

    static std::string value(const sw_change& c, size_t f) {
        return f < c.value_count ? std::string(sdk::from_sw(c.values[f])) : std::string();
    }
    std::string parent_for(const std::string& school, bool active) const {
        if (!active) return disabled_;
        return school.empty() ? users_ : "ou=" + dn_value(school) + "," + users_;
    }
    // Adds the organizational unit `dn` (and the ones above it, up to
    // base_dn) when missing.
    void ensure_ou(const std::string& dn) {
        if (lower(dn) == lower(base_) || known_ous_.count(lower(dn))) return;
        if (!conn().read(dn, {"ou"})) {
            const size_t comma = dn.find(',');
            if (comma != std::string::npos) ensure_ou(dn.substr(comma + 1));
            const std::string rdn = dn.substr(0, comma);
            const size_t eq = rdn.find('=');
            conn().add(dn, {{mod::add, "objectClass", {"organizationalUnit"}}, {mod::add, "ou", {rdn.substr(eq + 1)}}},
                       {LDAP_ALREADY_EXISTS});
        }
        known_ous_.insert(lower(dn));
    }
    held& find_user(const std::string& uuid, const std::string& key) {
        auto it = by_uuid_.find(uuid);
        if (it == by_uuid_.end())
            throw error(SW_PERMANENT, "no_such_object",
                        "users '" + key + "': no entry has the " + id_attr() + " " + uuid + " (deleted by hand?)");
        return it->second;
    }

    void apply_user(const sw_change_batch& b, size_t i, const sw_change& c) {
        pace();
        const std::string key(sdk::from_sw(c.key));
        const std::string uid = value(c, u_uid);
        const bool active = value(c, u_active) != "false";
        auto or_uid = [&](size_t f) {
            auto v = value(c, f);
            return v.empty() ? uid : v;
        };
        if (ad_ && c.kind != SW_CHANGE_DELETE) check_sam_account_name(key, uid);
        if (c.kind == SW_CHANGE_CREATE) {
            const std::string parent = parent_for(value(c, u_school), active);
            ensure_ou(parent);
            const std::string dn = rdn_for(uid) + "," + parent;
            std::vector<mod> attrs;
            const std::string mails = value(c, u_mail);
            auto mail = sdk::split_items(mails);
            if (ad_) {
                // The password in the same add lets the account be enabled
                // at once (AD refuses to enable one without a password).
                const std::string pw = value(c, u_password).empty() ? random_password() : value(c, u_password);
                attrs = {{mod::add, "objectClass", {"top", "person", "organizationalPerson", "user"}},
                         {mod::add, "sAMAccountName", {uid}},
                         {mod::add, "userPrincipalName", {uid + "@" + upn_suffix_}},
                         {mod::add, "sn", {or_uid(u_sn)}},
                         {mod::add, "displayName", {or_uid(u_cn)}},
                         {mod::add, "employeeNumber", {key}},
                         {mod::add, "unicodePwd", {unicode_pwd(pw)}},
                         {mod::add, "userAccountControl",
                          {std::to_string(k_normal_account | (active ? 0 : k_account_disable))}}};
                for (auto [f, attr] : {std::pair{u_given, "givenName"}, {u_school, "department"}})
                    if (!value(c, f).empty()) attrs.push_back({mod::add, attr, {value(c, f)}});
                if (!mail.empty()) attrs.push_back({mod::add, "mail", {std::string(mail.front())}});
                if (mail.size() > 1) attrs.push_back({mod::add, "otherMailbox", {mail.begin() + 1, mail.end()}});
            } else {
                attrs = {{mod::add, "objectClass", {"inetOrgPerson", "organizationalPerson", "person", "top"}},
                         {mod::add, "uid", {uid}},
                         {mod::add, "cn", {or_uid(u_cn)}},
                         {mod::add, "sn", {or_uid(u_sn)}},
                         {mod::add, "employeeNumber", {key}}};
                for (auto [f, attr] : {std::pair{u_given, "givenName"}, {u_school, "ou"}, {u_password, "userPassword"}})
                    if (!value(c, f).empty()) attrs.push_back({mod::add, attr, {value(c, f)}});
                if (!mail.empty()) attrs.push_back({mod::add, "mail", {mail.begin(), mail.end()}});
            }
            if (conn().add(dn, attrs, {LDAP_ALREADY_EXISTS}) == LDAP_ALREADY_EXISTS) {
                adopt_existing(i, key, uid, dn);
                return;
            }
            auto made = conn().read(dn, {id_attr(), "userAccountControl"});
            const std::string uuid = made ? id_of(*made) : "";
            remember({dn, uuid, key, made ? std::atol(made->first("useraccountcontrol").c_str()) : 0});
            host_api().target_id(i, uuid);
            ++created_;
            return;
        }
        held& h = find_user(std::string(sdk::target_id_of(b, i)), key);
        if (c.kind == SW_CHANGE_DELETE) {
            conn().remove(h.dn, {LDAP_NO_SUCH_OBJECT});
            forget(h);
            return;
        }
        // Attributes first, on the entry where it is; then a rename or move.
        std::vector<mod> mods;
        bool rename = false, move = false;
        for (size_t k = 0; k < c.changed_count; ++k) {
            switch (c.changed_fields[k]) {
                case u_uid:
                    rename = true;
                    if (ad_) {
                        mods.push_back(replace("sAMAccountName", uid));
                        mods.push_back(replace("userPrincipalName", uid + "@" + upn_suffix_));
                    }
                    break;
                case u_given: mods.push_back(replace("givenName", value(c, u_given))); break;
                case u_sn: mods.push_back(replace("sn", or_uid(u_sn))); break;
                case u_cn: mods.push_back(replace(ad_ ? "displayName" : "cn", or_uid(u_cn))); break;
                case u_mail: {
                    const std::string mails = value(c, u_mail);
                    auto mail = sdk::split_items(mails);
                    if (!ad_) {
                        mods.push_back({mod::replace, "mail", {mail.begin(), mail.end()}});
                    } else {
                        mods.push_back(replace("mail", mail.empty() ? std::string() : std::string(mail.front())));
                        mods.push_back({mod::replace, "otherMailbox",
                                        mail.size() > 1 ? std::vector<std::string>(mail.begin() + 1, mail.end())
                                                        : std::vector<std::string>()});
                    }
                    break;
                }
                case u_school:
                    mods.push_back(replace(ad_ ? "department" : "ou", value(c, u_school)));
                    move = true;
                    break;
                case u_active:
                    move = true;
                    if (ad_) {
                        // Only the disabled bit: an administrator's other
                        // flags (password never expires, ...) stay.
                        const long uac = (h.uac ? h.uac : k_normal_account);
                        const long next = active ? (uac & ~k_account_disable) : (uac | k_account_disable);
                        mods.push_back(replace("userAccountControl", std::to_string(next)));
                        h.uac = next;
                    }
                    break;
                default: break;  // the password is set on create only
            }
        }
        if (c.kind == SW_CHANGE_ADOPT) {
            mods.push_back({mod::replace, "employeeNumber", {key}});
            ++adopted_;
        }
        conn().modify(h.dn, mods);
        if (rename || move) {
            const std::string rdn = rdn_for(uid);
            const std::string parent = parent_for(value(c, u_school), active);
            if (move) ensure_ou(parent);
            conn().rename(h.dn, rdn, move ? parent : std::string());
            const std::string old_dn = h.dn;
            const std::string new_dn = rdn + "," + (move ? parent : old_dn.substr(old_dn.find(',') + 1));
            // What referential integrity would do: the groups that list the
            // old DN list the new one. (Active Directory's member is a
            // linked attribute: it follows the entry by itself.)
            if (!ad_) repoint_members(old_dn, new_dn);
            const long uac = h.uac;
            forget(h);
            remember({new_dn, std::string(sdk::target_id_of(b, i)), key, uac});
            ++moved_;
        } else if (c.kind == SW_CHANGE_ADOPT) {
            held adopted = h;
            adopted.key = key;
            remember(adopted);
        }
        host_api().target_id(i, std::string(sdk::target_id_of(b, i)));
    }

    // Why `name` cannot be an sAMAccountName ("" when it can): at most 20
    // characters, none of " / \\ [ ] : ; | = , + * ? < > @, and not only dots
    // and spaces.
    static std::string sam_account_name_problem(const std::string& name) {
        UErrorCode err = U_ZERO_ERROR;
        int32_t n = 0;
        u_strFromUTF8(nullptr, 0, &n, name.data(), static_cast<int32_t>(name.size()), &err);
        if (n > 20) return "is " + std::to_string(n) + " characters; Active Directory's sAMAccountName holds at most 20";
        if (name.find_first_of("\"/\\[]:;|=,+*?<>@") != std::string::npos)
            return "holds one of \" / \\ [ ] : ; | = , + * ? < > @, which sAMAccountName may not";
        if (name.find_first_not_of(". ") == std::string::npos) return "is only dots and spaces";
        return {};
    }
    void check_sam_account_name(const std::string& key, const std::string& uid) const {
        if (auto why = sam_account_name_problem(uid); !why.empty())
            throw error(SW_PERMANENT, "invalid_uid",
                        "users '" + key + "': uid '" + uid + "' " + why +
                            ". Shorten or change the mapping's username rule (the `username` transform, or a "
                            "template of fewer parts)");
    }

    static mod replace(const char* attr, const std::string& v) {
        return v.empty() ? mod{mod::replace, attr, {}} : mod{mod::replace, attr, {v}};
    }

    // The create found an entry at its DN: one made by hand (no
    // employeeNumber) is adopted; one with this key is ours already (a
    // create sent again); another's is a conflict.
    void adopt_existing(size_t i, const std::string& key, const std::string& uid, const std::string& dn) {
        auto e = conn().read(dn, {"employeeNumber", id_attr(), "userAccountControl"});
        if (!e && ad_) {
            // Not this DN: Active Directory keeps sAMAccountName and
            // userPrincipalName unique in the whole domain, and another
            // account holds one of them.
            std::optional<entry> holder;
            conn().search(base_, "(|(sAMAccountName=" + filter_value(uid) + ")(userPrincipalName=" +
                                     filter_value(uid + "@" + upn_suffix_) + "))",
                          {"employeeNumber"}, page_size_, [&](entry&& found) { holder = std::move(found); });
            if (holder)
                throw error(SW_PERMANENT, "already_exists",
                            "adding " + dn + ": the account " + holder->dn +
                                (holder->first("employeenumber").empty()
                                     ? std::string()
                                     : " (employeeNumber " + holder->first("employeenumber") + ")") +
                                " already has this sAMAccountName or userPrincipalName, which Active Directory keeps "
                                "unique in the whole domain. Rename one of them, or move that account under " + users_ +
                                " so that it is adopted");
        }
        if (!e) throw error(SW_RETRYABLE, "already_exists", "adding " + dn + ": it exists, then did not; try again");
        const std::string owner = e->first("employeenumber");
        if (!owner.empty() && owner != key)
            throw error(SW_PERMANENT, "already_exists",
                        "adding " + dn + ": the entry exists and belongs to employeeNumber " + owner +
                            "; two people map to the same uid (make user names unique in the mapping)");
        if (owner.empty()) {
            conn().modify(dn, {{mod::replace, "employeeNumber", {key}}});
            ++adopted_;
        }
        remember({dn, id_of(*e), key, std::atol(e->first("useraccountcontrol").c_str())});
        host_api().target_id(i, id_of(*e));
    }

    void repoint_members(const std::string& old_dn, const std::string& new_dn) {
        std::vector<std::string> groups;
        conn().search(groups_, "(member=" + filter_value(old_dn) + ")", {"1.1"}, page_size_,
                      [&](entry&& e) { groups.push_back(e.dn); });
        for (auto& g : groups)
            conn().modify(g, {{mod::remove, "member", {old_dn}}, {mod::add, "member", {new_dn}}},
                          {LDAP_NO_SUCH_ATTRIBUTE, LDAP_TYPE_OR_VALUE_EXISTS});
    }

    void remember(const held& h) {
        by_uuid_[h.uuid] = h;
        by_key_[h.key] = h;
        dn_key_[lower(h.dn)] = h.key;
    }
    void forget(const held& h) {
        const held copy = h;
        dn_key_.erase(lower(copy.dn));
        by_key_.erase(copy.key);
        by_uuid_.erase(copy.uuid);
    }

    // ---- groups --------------------------------------------------------------

    std::vector<std::string> member_dns(const sw_change& c, const std::string& group_dn, const std::string& key) {
        std::vector<std::string> dns;
        const std::string members = value(c, g_members);
        for (auto m : sdk::split_items(members)) {
            auto it = by_key_.find(std::string(m));
            if (it == by_key_.end())
                throw error(SW_PERMANENT, "no_such_member",
                            "groups '" + key + "': member '" + std::string(m) + "' is not a user in " + users_);
            dns.push_back(it->second.dn);
        }
        if (dns.empty() && !ad_) dns.push_back(group_dn);  // groupOfNames needs a member
        return dns;
    }

    void apply_group(const sw_change_batch& b, size_t i, const sw_change& c) {
        pace();
        const std::string key(sdk::from_sw(c.key));
        if (c.kind == SW_CHANGE_CREATE) {
            const std::string dn = "cn=" + dn_value(key) + "," + groups_;
            ensure_ou(groups_);
            std::vector<mod> attrs;
            if (ad_) {
                // A global security group (the default groupType). Its
                // sAMAccountName is the key where it fits the 20 characters
                // and characters AD takes; else AD makes one up.
                attrs = {{mod::add, "objectClass", {"top", "group"}},
                         {mod::add, "cn", {key}},
                         {mod::add, "adminDescription", {k_managed}}};
                if (sam_account_name_problem(key).empty()) attrs.push_back({mod::add, "sAMAccountName", {key}});
                auto members = member_dns(c, dn, key);
                if (!members.empty()) attrs.push_back({mod::add, "member", members});
            } else {
                attrs = {{mod::add, "objectClass", {"groupOfNames", "top"}},
                         {mod::add, "cn", {key}},
                         {mod::add, "businessCategory", {k_managed}},
                         {mod::add, "member", member_dns(c, dn, key)}};
            }
            if (!value(c, g_name).empty()) attrs.push_back({mod::add, "description", {value(c, g_name)}});
            conn().add(dn, attrs);
            auto made = conn().read(dn, {id_attr()});
            const std::string uuid = made ? id_of(*made) : "";
            groups_by_uuid_[uuid] = {dn, uuid, key};
            host_api().target_id(i, uuid);
            ++created_;
            return;
        }
        const std::string uuid(sdk::target_id_of(b, i));
        auto it = groups_by_uuid_.find(uuid);
        if (it == groups_by_uuid_.end())
            throw error(SW_PERMANENT, "no_such_object", "groups '" + key + "': no group has the " + id_attr() + " " + uuid);
        if (c.kind == SW_CHANGE_DELETE) {
            conn().remove(it->second.dn, {LDAP_NO_SUCH_OBJECT});
            groups_by_uuid_.erase(it);
            return;
        }
        std::vector<mod> mods;
        for (size_t k = 0; k < c.changed_count; ++k) {
            if (c.changed_fields[k] == g_name) mods.push_back(replace("description", value(c, g_name)));
            if (c.changed_fields[k] == g_members)
                mods.push_back({mod::replace, "member", member_dns(c, it->second.dn, key)});
        }
        conn().modify(it->second.dn, mods);
        host_api().target_id(i, uuid);
    }

    ldap_settings ls_;
    std::string base_, users_, groups_, disabled_;
    int page_size_ = 500;
    std::unique_ptr<client> conn_;
    bool users_listed_ = false, groups_listed_ = false;
    bool ad_ = false;          // directory: active_directory
    std::string upn_suffix_;   // userPrincipalName's part after the '@'
    std::map<std::string, held> by_uuid_, by_key_, groups_by_uuid_;
    std::map<std::string, std::string> dn_key_;  // lower-case DN -> key
    std::set<std::string> known_ous_;
    size_t created_ = 0, moved_ = 0, adopted_ = 0;
    sdk::contract_builder builder_;
    const sw_contract* contract_ = nullptr;
};

}  // namespace
}  // namespace syncwarden::ldap

SW_CONNECTOR(syncwarden::ldap::ldap_target, "ldap", "1.0.0", SW_CAP_TARGET | SW_CAP_TARGET_IDS,
             "users and groups in an LDAP directory (OpenLDAP, Active Directory)")
