// LDAP target (OpenLDAP, Active Directory's LDAP): users as inetOrgPerson
// under an organizational unit per school, groups as groupOfNames. See
// plugins/ldap/README.md for the layout and what each change does.
//
// Identity: a user's key (the source's sourcedId) is its employeeNumber; a
// group's is its cn. The target id the kernel keeps is the entry's
// entryUUID, which survives renames and moves. Users without an
// employeeNumber were made by hand: they are reported as unowned (keyed by
// entryUUID, matched by uid) and adopted when the kernel plans it.
#include "ldap_client.hpp"

#include <ldap.h>

#include <syncwarden/connector.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
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
};

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
    "url": {"type": "string", "pattern": "^ldaps?://", "description": "ldaps://host:636, or ldap://host:389 with StartTLS"},
    "starttls": {"type": "boolean", "description": "StartTLS on an ldap:// URL (default: true; false only to this machine)"},
    "bind_dn": {"type": "string", "minLength": 1},
    "password": {"type": "string", "minLength": 1, "description": "put it in the secret store: {\"$secret\": NAME}"},
    "base_dn": {"type": "string", "minLength": 1, "description": "dc=district,dc=org"},
    "users_ou": {"type": "string", "default": "ou=people", "description": "where users go, relative to base_dn; one OU per school below it"},
    "groups_ou": {"type": "string", "default": "ou=groups", "description": "where groups go, relative to base_dn"},
    "disabled_ou": {"type": "string", "default": "ou=disabled,ou=people", "description": "where an inactive user is moved, relative to base_dn"},
    "ca_file": {"type": "string", "description": "a PEM file of certificates to trust besides the system's"},
    "verify_tls": {"type": "boolean", "default": true, "description": "false turns certificate checks off; never do that outside a test"},
    "timeout_seconds": {"type": "integer", "minimum": 1, "maximum": 600, "default": 30},
    "page_size": {"type": "integer", "minimum": 1, "maximum": 100000, "default": 500, "description": "entries per page of a search"}
  }
})schema";
    }

    const sw_contract& contract() override { return *contract_; }
    std::string system_id() override { return "ldap " + ls_.url + " " + base_; }

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
        conn().search(users_, "(objectClass=inetOrgPerson)",
                      {"uid", "givenName", "sn", "cn", "mail", "ou", "employeeNumber", "entryUUID"}, page_size_,
                      [&](entry&& e) {
                          held h{e.dn, e.first("entryuuid"), e.first("employeenumber")};
                          by_uuid_[h.uuid] = h;
                          if (!h.key.empty()) {
                              by_key_[h.key] = h;
                              dn_key_[lower(h.dn)] = h.key;
                          }
                          if (!out) return;
                          std::vector<std::string> v(u_count);
                          v[u_uid] = e.first("uid");
                          v[u_given] = e.first("givenname");
                          v[u_sn] = e.first("sn");
                          v[u_cn] = e.first("cn");
                          v[u_mail] = sdk::join_items(e.all("mail"));
                          v[u_school] = e.first("ou");
                          v[u_active] = disabled(e.dn) ? "false" : "true";
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
        conn().search(groups_, std::string("(&(objectClass=groupOfNames)(businessCategory=") + k_managed + "))",
                      {"cn", "description", "member", "entryUUID"}, page_size_, [&](entry&& e) {
                          held h{e.dn, e.first("entryuuid"), e.first("cn")};
                          groups_by_uuid_[h.uuid] = h;
                          if (!out) return;
                          // Members are users' DNs; the kernel speaks of keys.
                          // The group's own DN stands in for "no member"
                          // (groupOfNames must have one).
                          std::vector<std::string> keys;
                          for (auto& m : e.all("member"))
                              if (auto it = dn_key_.find(lower(m)); it != dn_key_.end()) keys.push_back(it->second);
                          out->add(h.key, {e.first("description"), sdk::join_items(keys)});
                      });
        if (out) out->flush();
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
                        "users '" + key + "': no entry has the entryUUID " + uuid + " (deleted by hand?)");
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
        if (c.kind == SW_CHANGE_CREATE) {
            const std::string parent = parent_for(value(c, u_school), active);
            ensure_ou(parent);
            const std::string dn = "uid=" + dn_value(uid) + "," + parent;
            std::vector<mod> attrs{{mod::add, "objectClass", {"inetOrgPerson", "organizationalPerson", "person", "top"}},
                                   {mod::add, "uid", {uid}},
                                   {mod::add, "cn", {or_uid(u_cn)}},
                                   {mod::add, "sn", {or_uid(u_sn)}},
                                   {mod::add, "employeeNumber", {key}}};
            for (auto [f, attr] : {std::pair{u_given, "givenName"}, {u_school, "ou"}, {u_password, "userPassword"}})
                if (!value(c, f).empty()) attrs.push_back({mod::add, attr, {value(c, f)}});
            const std::string mails = value(c, u_mail);
            auto mail = sdk::split_items(mails);
            if (!mail.empty()) attrs.push_back({mod::add, "mail", {mail.begin(), mail.end()}});
            if (conn().add(dn, attrs, {LDAP_ALREADY_EXISTS}) == LDAP_ALREADY_EXISTS) {
                adopt_existing(b, i, key, dn);
                return;
            }
            auto made = conn().read(dn, {"entryUUID"});
            const std::string uuid = made ? made->first("entryuuid") : "";
            remember({dn, uuid, key});
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
                case u_uid: rename = true; break;
                case u_given: mods.push_back(replace("givenName", value(c, u_given))); break;
                case u_sn: mods.push_back(replace("sn", or_uid(u_sn))); break;
                case u_cn: mods.push_back(replace("cn", or_uid(u_cn))); break;
                case u_mail: {
                    const std::string mails = value(c, u_mail);
                    auto mail = sdk::split_items(mails);
                    mods.push_back({mod::replace, "mail", {mail.begin(), mail.end()}});
                    break;
                }
                case u_school:
                    mods.push_back(replace("ou", value(c, u_school)));
                    move = true;
                    break;
                case u_active: move = true; break;
                default: break;  // the password is set on create only
            }
        }
        if (c.kind == SW_CHANGE_ADOPT) {
            mods.push_back({mod::replace, "employeeNumber", {key}});
            ++adopted_;
        }
        conn().modify(h.dn, mods);
        if (rename || move) {
            const std::string rdn = "uid=" + dn_value(uid);
            const std::string parent = parent_for(value(c, u_school), active);
            if (move) ensure_ou(parent);
            conn().rename(h.dn, rdn, move ? parent : std::string());
            const std::string old_dn = h.dn;
            const std::string new_dn = rdn + "," + (move ? parent : old_dn.substr(old_dn.find(',') + 1));
            // What referential integrity would do: the groups that list the
            // old DN list the new one.
            repoint_members(old_dn, new_dn);
            forget(h);
            remember({new_dn, std::string(sdk::target_id_of(b, i)), key});
            ++moved_;
        } else if (c.kind == SW_CHANGE_ADOPT) {
            held adopted = h;
            adopted.key = key;
            remember(adopted);
        }
        host_api().target_id(i, std::string(sdk::target_id_of(b, i)));
    }

    static mod replace(const char* attr, const std::string& v) {
        return v.empty() ? mod{mod::replace, attr, {}} : mod{mod::replace, attr, {v}};
    }

    // The create found an entry at its DN: one made by hand (no
    // employeeNumber) is adopted; one with this key is ours already (a
    // create sent again); another's is a conflict.
    void adopt_existing(const sw_change_batch&, size_t i, const std::string& key, const std::string& dn) {
        auto e = conn().read(dn, {"employeeNumber", "entryUUID"});
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
        remember({dn, e->first("entryuuid"), key});
        host_api().target_id(i, e->first("entryuuid"));
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
        if (dns.empty()) dns.push_back(group_dn);  // groupOfNames needs a member
        return dns;
    }

    void apply_group(const sw_change_batch& b, size_t i, const sw_change& c) {
        pace();
        const std::string key(sdk::from_sw(c.key));
        if (c.kind == SW_CHANGE_CREATE) {
            const std::string dn = "cn=" + dn_value(key) + "," + groups_;
            ensure_ou(groups_);
            std::vector<mod> attrs{{mod::add, "objectClass", {"groupOfNames", "top"}},
                                   {mod::add, "cn", {key}},
                                   {mod::add, "businessCategory", {k_managed}},
                                   {mod::add, "member", member_dns(c, dn, key)}};
            if (!value(c, g_name).empty()) attrs.push_back({mod::add, "description", {value(c, g_name)}});
            conn().add(dn, attrs);
            auto made = conn().read(dn, {"entryUUID"});
            const std::string uuid = made ? made->first("entryuuid") : "";
            groups_by_uuid_[uuid] = {dn, uuid, key};
            host_api().target_id(i, uuid);
            ++created_;
            return;
        }
        const std::string uuid(sdk::target_id_of(b, i));
        auto it = groups_by_uuid_.find(uuid);
        if (it == groups_by_uuid_.end())
            throw error(SW_PERMANENT, "no_such_object", "groups '" + key + "': no group has the entryUUID " + uuid);
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
