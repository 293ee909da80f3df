// SCIM 2.0 target (RFC 7643/7644): provisions Users and Groups at a service
// provider. See plugins/scim/README.md for what it does with each change.
//
// Identity: a record's key (the source's sourcedId) is the resource's
// externalId; the id the server assigns is reported to the kernel (ABI 1.4
// target ids) and handed back for later changes, so a rename is an update
// of the same account. Accounts without an externalId are reported as
// unowned (keyed by their id) and adopted when the kernel plans it; a 409
// on create is resolved the same way, by looking the account up.
#include "http_client.hpp"

#include <syncwarden/connector.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace syncwarden::scim {
namespace {

using nlohmann::json;
using sdk::error;

constexpr const char* k_user_schema = "urn:ietf:params:scim:schemas:core:2.0:User";
constexpr const char* k_group_schema = "urn:ietf:params:scim:schemas:core:2.0:Group";
constexpr const char* k_patch_schema = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

// Field order of the contract.
enum user_field { u_user_name, u_given, u_family, u_display, u_emails, u_active, u_password, u_count };
enum group_field { g_display, g_members, g_count };

std::string str_at(const json& j, const char* a, const char* b = nullptr) {
    if (!j.is_object() || !j.contains(a)) return {};
    const json& v = b ? (j[a].is_object() && j[a].contains(b) ? j[a][b] : json()) : j[a];
    return v.is_string() ? v.get<std::string>() : std::string();
}

struct account {
    std::string id, key, version;  // key: the externalId ("" when unowned)
    std::string user_name = {};    // users only
};

std::string ascii_lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

class scim_target final : public sdk::connector {
public:
    scim_target(const sdk::host& h, const sw_create_args& a) : connector(h, a) {
        json s;
        try {
            s = json::parse(settings_json());
        } catch (const json::exception& e) {
            throw error(SW_CONFIG, "settings", std::string("settings are not JSON: ") + e.what());
        }
        http_settings hs;
        hs.base = parse_url(s.value("base_url", ""), ".base_url");
        hs.ca_file = s.value("ca_file", "");
        hs.verify_tls = s.value("verify_tls", true);
        hs.timeout = std::chrono::seconds(s.value("timeout_seconds", 30));
        const json& auth = s.at("auth");
        if (auth.contains("bearer")) {
            hs.bearer = auth["bearer"].get<std::string>();
        } else {
            const json& o = auth.at("oauth2");
            hs.token_url = o.at("token_url");
            parse_url(hs.token_url, ".auth.oauth2.token_url");
            hs.client_id = o.at("client_id");
            hs.client_secret = o.at("client_secret");
            hs.scope = o.value("scope", "");
        }
        base_url_ = s.value("base_url", "");
        page_size_ = s.value("page_size", 100);
        use_bulk_ = s.value("bulk", true);
        bulk_max_ = s.value("bulk_max_operations", 100);
        http_ = std::make_unique<http_client>(hs);
        builder_.entity("users", "sourcedId")
            .field("userName", SW_TYPE_STRING, SW_FIELD_REQUIRED).compare(SW_COMPARE_CASE_INSENSITIVE, SW_POLICY_MATCH)
            .field("givenName")
            .field("familyName")
            .field("displayName")
            .field("emails", SW_TYPE_ITEMS).compare(SW_COMPARE_CASE_INSENSITIVE, SW_POLICY_UNORDERED)
            .field("active", SW_TYPE_BOOL)
            .field("password").compare(SW_COMPARE_WRITE_ONLY);
        builder_.entity("groups", "sourcedId")
            .depends_on("users")
            .field("displayName", SW_TYPE_STRING, SW_FIELD_REQUIRED).compare(SW_COMPARE_CASE_INSENSITIVE, SW_POLICY_MATCH)
            .field("members", SW_TYPE_ITEMS).compare(SW_COMPARE_EXACT, SW_POLICY_UNORDERED);
        contract_ = &builder_.build();
    }

    static const char* settings_schema() {
        return R"schema({
  "$schema": "http://json-schema.org/draft-07/schema#",
  "title": "scim settings",
  "type": "object",
  "required": ["base_url", "auth"],
  "additionalProperties": false,
  "properties": {
    "base_url": {"type": "string", "pattern": "^https?://", "x-syncwarden-grant": "endpoint", "description": "the SCIM service provider's base URL, such as https://vendor.example/scim/v2 (http:// only to this machine)"},
    "auth": {"type": "object", "minProperties": 1, "maxProperties": 1, "additionalProperties": false,
      "description": "a bearer token, or OAuth 2.0 client credentials; put secrets in the secret store: {\"$secret\": NAME}",
      "properties": {
        "bearer": {"type": "string", "minLength": 1, "description": "the bearer token"},
        "oauth2": {"type": "object", "required": ["token_url", "client_id", "client_secret"], "additionalProperties": false,
          "properties": {
            "token_url": {"type": "string", "pattern": "^https?://", "x-syncwarden-grant": "endpoint"},
            "client_id": {"type": "string", "minLength": 1},
            "client_secret": {"type": "string", "minLength": 1},
            "scope": {"type": "string"}}}}},
    "ca_file": {"type": "string", "x-syncwarden-grant": "read-path", "description": "a PEM file of certificates to trust besides the system's"},
    "verify_tls": {"type": "boolean", "default": true, "description": "false turns certificate checks off; never do that outside a test"},
    "timeout_seconds": {"type": "integer", "minimum": 1, "maximum": 600, "default": 30},
    "page_size": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 100,
                  "description": "resources per list request (capped by the server's filter.maxResults)"},
    "bulk": {"type": "boolean", "default": true,
             "description": "send a batch's changes as SCIM Bulk requests (RFC 7644 3.7) where the server's ServiceProviderConfig supports bulk; false sends one request per change"},
    "bulk_max_operations": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 100,
                            "description": "operations per Bulk request (also capped by the server's bulk.maxOperations and the job's apply.batch_size)"}
  }
})schema";
    }

    const sw_contract& contract() override { return *contract_; }

    std::string system_id() override { return "scim " + base_url_; }

    // Lists every User (and Group) page by page: owned ones are records
    // keyed by externalId, the others unowned records keyed by their id.
    void read_state(const std::vector<std::string>& entities) override {
        load_config();
        const bool groups = std::find(entities.begin(), entities.end(), "groups") != entities.end();
        const bool users = std::find(entities.begin(), entities.end(), "users") != entities.end();
        list_users(users);
        if (groups) list_groups(true);
    }

    void apply(const sw_change_batch& b) override {
        load_config();
        if (!users_listed_) list_users(false);
        const std::string entity(sdk::from_sw(b.entity));
        const bool is_users = entity == "users";
        if (!is_users && entity != "groups")
            throw error(SW_PERMANENT, "unknown_entity", "scim holds users and groups, not '" + entity + "'");
        if (!is_users && !groups_listed_) list_groups(false);
        std::vector<size_t> one_by_one;
        if (bulk_ && b.change_count > 1) {
            one_by_one = apply_bulk(b, is_users);
        } else {
            for (size_t i = 0; i < b.change_count; ++i) one_by_one.push_back(i);
        }
        for (size_t i : one_by_one) apply_one(b, i, is_users);
    }

    // What this run did beyond plain requests, for the run's log.
    void commit() override {
        if (created_ || adopted_ || reread_ || bulk_requests_)
            host_api().log(SW_LOG_INFO, "scim: " + std::to_string(created_) + " users created, " +
                                            std::to_string(adopted_) + " adopted after a 409, " +
                                            std::to_string(reread_) + " resources read again after a 412, " +
                                            std::to_string(bulk_requests_) + " Bulk requests");
    }

private:
    // One change in its own request(s).
    void apply_one(const sw_change_batch& b, size_t i, bool is_users) {
        const sw_change& c = b.changes[i];
        try {
            if (is_users) apply_user(b, i, c);
            else apply_group(b, i, c);
            host_api().change_result(i, SW_OK, "", "");
        } catch (const error& e) {
            // A throttled or unreachable server: this change and the rest
            // of the batch wait for the kernel's retry; the others are
            // reported one by one.
            host_api().change_result(i, e.status(), e.category(), e.what());
            if (e.status() == SW_THROTTLED || e.status() == SW_AUTH || e.category() == "connection" ||
                e.status() == SW_CANCELLED)
                throw;
        }
    }

    // ---- bulk (RFC 7644 3.7) -------------------------------------------------------

    struct bulk_op {
        size_t index;     // in the batch
        std::string key;  // the change's key
        std::string method, path, id;  // id: the resource's (not for a POST)
        bool adopt = false;            // the PATCH sets externalId
        json op;
        size_t bytes = 0;
    };

    // The Bulk operation for a change, or nothing when it goes alone: a
    // create whose key the server already holds (an adoption by the create
    // path), a change with no id to send it to (reported by the single
    // path), an update on a server without PATCH (read, then PUT).
    std::optional<bulk_op> bulk_op_for(const sw_change_batch& b, size_t i, bool is_users) {
        const sw_change& c = b.changes[i];
        const std::string key(sdk::from_sw(c.key));
        const std::string type = is_users ? "Users" : "Groups";
        auto& known = is_users ? users_ : groups_;
        std::string id = is_users ? user_id(b, i, key) : group_id(b, i, key);
        bulk_op o{i, key, "", "", id, c.kind == SW_CHANGE_ADOPT, json(), 0};
        auto version_of_known = [&]() {
            auto it = known.find(id);
            return etag_ && it != known.end() ? it->second.version : std::string();
        };
        if (c.kind == SW_CHANGE_DELETE) {
            if (id.empty()) return std::nullopt;
            o.method = "DELETE";
            o.path = "/" + type + "/" + id;
            o.op = {{"method", "DELETE"}, {"path", o.path}};
        } else if (c.kind == SW_CHANGE_CREATE && (is_users ? !user_by_key_.count(key) : id.empty())) {
            o.method = "POST";
            o.path = "/" + type;
            json data = is_users ? new_user(key, c) : new_group(key, c, (is_users ? "users '" : "groups '") + key + "'");
            o.op = {{"method", "POST"}, {"path", o.path}, {"bulkId", "c" + std::to_string(i)}, {"data", std::move(data)}};
        } else if (c.kind == SW_CHANGE_UPDATE || c.kind == SW_CHANGE_ADOPT) {
            if (id.empty() || !patch_) return std::nullopt;
            auto ops = is_users ? user_ops(c) : group_ops(c, "groups '" + key + "'");
            if (c.kind == SW_CHANGE_ADOPT) ops.insert(ops.begin(), {"externalId", key});
            if (ops.empty()) return std::nullopt;
            o.method = "PATCH";
            o.path = "/" + type + "/" + id;
            o.op = {{"method", "PATCH"}, {"path", o.path}, {"data", patch_body(ops)}};
        } else {
            return std::nullopt;
        }
        if (o.method != "POST") {
            const std::string v = version_of_known();
            if (!v.empty()) o.op["version"] = v;
        }
        o.bytes = o.op.dump().size();
        return o;
    }

    // Sends the batch's changes in Bulk requests of at most the server's
    // maxOperations and maxPayloadSize; returns the changes that go one by
    // one (see bulk_op_for; and a create the server refused with 409, an
    // update it refused with 412, all handled by the single path).
    std::vector<size_t> apply_bulk(const sw_change_batch& b, bool is_users) {
        std::vector<size_t> single;
        std::vector<bulk_op> chunk;
        size_t bytes = 0;
        const size_t max_ops = static_cast<size_t>(std::min<int64_t>(bulk_max_, bulk_server_max_ops_));
        auto flush = [&]() {
            if (!chunk.empty()) send_bulk(chunk, is_users, single);
            chunk.clear();
            bytes = 0;
        };
        for (size_t i = 0; i < b.change_count; ++i) {
            std::optional<bulk_op> o;
            try {
                o = bulk_op_for(b, i, is_users);
            } catch (const error& e) {
                host_api().change_result(i, e.status(), e.category(), e.what());
                continue;
            }
            if (!o) {
                single.push_back(i);
                continue;
            }
            // The envelope and the commas between operations stay well
            // inside this margin.
            if (!chunk.empty() && (chunk.size() >= max_ops || bytes + o->bytes + 256 > bulk_max_bytes_)) flush();
            bytes += o->bytes + 1;
            chunk.push_back(std::move(*o));
        }
        flush();
        std::sort(single.begin(), single.end());
        return single;
    }

    void send_bulk(std::vector<bulk_op>& ops, bool is_users, std::vector<size_t>& single) {
        if (!bulk_) {  // switched off by an earlier answer of this run
            for (auto& o : ops) single.push_back(o.index);
            return;
        }
        json body{{"schemas", {"urn:ietf:params:scim:api:messages:2.0:BulkRequest"}}, {"Operations", json::array()}};
        for (auto& o : ops) body["Operations"].push_back(o.op);
        const std::string what = "POST " + http_->url("/Bulk");
        response r = call("POST", "/Bulk", body);
        if (r.status == 413 && ops.size() > 1) {
            // Larger than the server takes, whatever it advertised: halves.
            std::vector<bulk_op> second(std::make_move_iterator(ops.begin() + static_cast<std::ptrdiff_t>(ops.size() / 2)),
                                        std::make_move_iterator(ops.end()));
            ops.resize(ops.size() / 2);
            send_bulk(ops, is_users, single);
            send_bulk(second, is_users, single);
            return;
        }
        if (r.status == 404 || r.status == 405 || r.status == 501 || (r.status == 413 && ops.size() == 1)) {
            // It advertises bulk but does not take it: one request per
            // change for the rest of the run.
            host_api().log(SW_LOG_WARN, "scim: " + what + " answered HTTP " + std::to_string(r.status) +
                                            " although the ServiceProviderConfig says bulk is supported; "
                                            "sending one request per change instead");
            bulk_ = false;
            for (auto& o : ops) single.push_back(o.index);
            return;
        }
        json res = expect(r, what, {200});
        if (!res.is_object() || !res.contains("Operations") || !res["Operations"].is_array())
            throw error(SW_PERMANENT, "bad_response", what + ": the answer is not a BulkResponse (no Operations array)");
        ++bulk_requests_;
        // Results by bulkId (creates) or by method and resource path.
        std::map<std::string, size_t> by_ref;
        for (size_t k = 0; k < ops.size(); ++k)
            by_ref[ops[k].method == "POST" ? "#" + ops[k].op["bulkId"].get<std::string>() : ops[k].method + " " + ops[k].path] = k;
        std::vector<const json*> result(ops.size(), nullptr);
        for (const json& o : res["Operations"]) {
            if (!o.is_object()) continue;
            const std::string bulk_id = str_at(o, "bulkId");
            std::string ref;
            if (!bulk_id.empty()) {
                ref = "#" + bulk_id;
            } else {
                // location is the resource's URI: its last two segments
                // are the path the operation named.
                const std::string loc = str_at(o, "location");
                const auto last = loc.rfind('/');
                const auto type = last == std::string::npos || last == 0 ? std::string::npos : loc.rfind('/', last - 1);
                if (type == std::string::npos) continue;
                std::string method = str_at(o, "method");
                std::transform(method.begin(), method.end(), method.begin(), [](unsigned char ch) { return std::toupper(ch); });
                ref = method + " " + loc.substr(type);
            }
            if (auto it = by_ref.find(ref); it != by_ref.end() && !result[it->second]) result[it->second] = &o;
        }
        for (size_t k = 0; k < ops.size(); ++k) {
            bulk_op& o = ops[k];
            const std::string op_what = what + " operation " + o.method + " " + o.path + " (" +
                                        (is_users ? "users '" : "groups '") + o.key + "')";
            if (!result[k]) {
                host_api().change_result(o.index, SW_PERMANENT, "bad_response",
                                         op_what + ": the BulkResponse has no result for this operation, so whether "
                                                   "it was applied is unknown; the next run reads the server again");
                continue;
            }
            try {
                bulk_result(o, *result[k], is_users, op_what, single);
            } catch (const error& e) {
                host_api().change_result(o.index, e.status(), e.category(), e.what());
            }
        }
    }

    void bulk_result(bulk_op& o, const json& result, bool is_users, const std::string& what, std::vector<size_t>& single) {
        int status = 0;
        if (result.contains("status")) {
            const json& st = result["status"];
            if (st.is_number_integer()) status = st.get<int>();
            else if (st.is_string()) status = std::atoi(st.get<std::string>().c_str());
        }
        if (status < 100 || status > 599) throw error(SW_PERMANENT, "bad_response", what + ": the result has no HTTP status");
        auto& known = is_users ? users_ : groups_;
        auto& by_key = is_users ? user_by_key_ : group_by_key_;
        const bool ok = status >= 200 && status < 300;
        if (o.method == "POST" && ok) {
            std::string id;
            const json* resp = result.contains("response") ? &result["response"] : nullptr;
            if (resp) id = str_at(*resp, "id");
            if (id.empty()) {
                const std::string loc = str_at(result, "location");
                if (auto slash = loc.rfind('/'); slash != std::string::npos) id = loc.substr(slash + 1);
            }
            if (id.empty()) throw error(SW_PERMANENT, "bad_response", what + ": the created resource has neither an id nor a location");
            known[id] = {id, o.key, resp ? version_of(*resp) : str_at(result, "version")};
            by_key[o.key] = id;
            host_api().target_id(o.index, id);
            if (is_users) ++created_;
        } else if (o.method == "PATCH" && ok) {
            if (auto it = known.find(o.id); it != known.end()) {
                it->second.version = str_at(result, "version");
                it->second.key = o.key;
            }
            by_key[o.key] = o.id;
            if (o.adopt) host_api().target_id(o.index, o.id);
        } else if (o.method == "DELETE" && (ok || status == 404)) {
            known.erase(o.id);
            by_key.erase(o.key);
        } else if ((o.method == "POST" && status == 409 && is_users) || (o.method != "POST" && status == 412)) {
            // Taken over by the single path: a 409 looks the account up
            // and adopts it; a 412 reads the resource again first.
            if (status == 412) {
                const std::string path = o.path;
                response g = call("GET", path);
                json cur = expect(g, "GET " + http_->url(path), {200});
                if (auto it = known.find(o.id); it != known.end()) it->second.version = version_of(cur, &g);
                ++reread_;
            }
            single.push_back(o.index);
            return;
        } else {
            response r;
            r.status = status;
            r.body = result.contains("response") ? result["response"].dump() : std::string();
            throw classify(r, what);
        }
        host_api().change_result(o.index, SW_OK, "", "");
    }

    // ---- requests ----------------------------------------------------------------

    response call(const std::string& method, const std::string& path, const json& body = nullptr,
                  const std::string& if_match = {}) {
        host_api().acquire(1);
        if (host_api().cancelled()) throw error(SW_CANCELLED, "cancelled", "run cancelled");
        return http_->send(method, path, body.is_null() ? std::string() : body.dump(), if_match);
    }
    // A read, sent again while the server is throttling or unavailable, as
    // long as the kernel's retry policy allows (host retry_wait). Writes
    // are not resent here: the kernel resends the changes themselves.
    response read(const std::string& path) {
        for (uint32_t attempt = 1;; ++attempt) {
            response r;
            try {
                r = call("GET", path);
            } catch (const error& e) {
                if (e.category() == "connection" && host_api().retry_wait(attempt)) continue;
                throw;
            }
            const bool transient = r.status == 429 || r.status >= 500;
            if (!transient || !host_api().retry_wait(attempt, r.retry_after_ms.value_or(0))) return r;
        }
    }
    json expect(const response& r, const std::string& what, std::initializer_list<int> ok) {
        if (std::find(ok.begin(), ok.end(), r.status) == ok.end()) throw classify(r, what);
        if (r.status == 204 || r.body.empty()) return json();
        return r.json();
    }

    void load_config() {
        if (config_loaded_) return;
        const std::string what = "GET " + http_->url("/ServiceProviderConfig");
        json spc = expect(read("/ServiceProviderConfig"), what, {200});
        if (!spc.is_object())
            throw error(SW_PERMANENT, "bad_response", what + ": the answer is not a ServiceProviderConfig object");
        auto supported = [&](const char* k) {
            return spc.contains(k) && spc[k].is_object() && spc[k].value("supported", false);
        };
        patch_ = supported("patch");
        etag_ = supported("etag");
        filter_ = supported("filter");
        bulk_ = use_bulk_ && supported("bulk");
        if (bulk_) {
            const json& bk = spc["bulk"];
            if (bk.contains("maxOperations") && bk["maxOperations"].is_number_integer() && bk["maxOperations"].get<int64_t>() > 0)
                bulk_server_max_ops_ = bk["maxOperations"].get<int64_t>();
            if (bk.contains("maxPayloadSize") && bk["maxPayloadSize"].is_number_integer() && bk["maxPayloadSize"].get<int64_t>() > 1024)
                bulk_max_bytes_ = static_cast<size_t>(bk["maxPayloadSize"].get<int64_t>());
        }
        if (filter_ && spc["filter"].contains("maxResults") && spc["filter"]["maxResults"].is_number_integer())
            max_results_ = std::max<int64_t>(1, spc["filter"]["maxResults"].get<int64_t>());
        config_loaded_ = true;
    }

    // Every resource of a type, page by page (RFC 7644 3.4.2.4).
    template <class Fn>
    void list(const std::string& type, Fn&& each) {
        const int64_t count = std::min<int64_t>(page_size_, max_results_);
        std::set<std::string> seen;
        for (int64_t start = 1;;) {
            const std::string path = "/" + type + "?startIndex=" + std::to_string(start) + "&count=" + std::to_string(count);
            const std::string what = "GET " + http_->url(path);
            json page = expect(read(path), what, {200});
            if (!page.is_object() || !page.contains("totalResults") || !page["totalResults"].is_number_integer())
                throw error(SW_PERMANENT, "bad_response", what + ": the answer is not a SCIM ListResponse (no totalResults)");
            const json resources = page.value("Resources", json::array());
            if (!resources.is_array())
                throw error(SW_PERMANENT, "bad_response", what + ": Resources is not an array");
            for (auto& r : resources) {
                if (!r.is_object() || str_at(r, "id").empty())
                    throw error(SW_PERMANENT, "bad_response", what + ": a resource without an id");
                // A server that ignores startIndex sends the first page again.
                if (!seen.insert(str_at(r, "id")).second)
                    throw error(SW_PERMANENT, "bad_response",
                                what + ": resource " + str_at(r, "id") + " came back on a later page; the server does "
                                "not page by startIndex (RFC 7644 3.4.2.4), so its state cannot be read completely");
                each(r);
            }
            const int64_t total = page["totalResults"].get<int64_t>();
            start += static_cast<int64_t>(resources.size());
            if (resources.empty() || start > total) break;
            if (host_api().cancelled()) throw error(SW_CANCELLED, "cancelled", "run cancelled");
        }
    }

    static std::string version_of(const json& r, const response* res = nullptr) {
        if (res && !res->etag.empty()) return res->etag;
        return str_at(r, "meta", "version");
    }

    void remember_user(const json& r, const std::string& version) {
        account a{str_at(r, "id"), str_at(r, "externalId"), version, str_at(r, "userName")};
        users_[a.id] = a;
        if (!a.key.empty()) user_by_key_[a.key] = a.id;
    }

    void list_users(bool emit) {
        users_.clear();
        user_by_key_.clear();
        std::unique_ptr<sdk::batch_writer> out;
        if (emit) out = std::make_unique<sdk::batch_writer>(host_api(), "users", SW_MODE_BULK, 1000);
        list("Users", [&](const json& r) {
            remember_user(r, version_of(r));
            if (!out) return;
            std::vector<std::string> v(u_count);
            v[u_user_name] = str_at(r, "userName");
            v[u_given] = str_at(r, "name", "givenName");
            v[u_family] = str_at(r, "name", "familyName");
            v[u_display] = str_at(r, "displayName");
            std::vector<std::string> emails;
            if (r.contains("emails") && r["emails"].is_array())
                for (auto& e : r["emails"]) {
                    const std::string value = str_at(e, "value");
                    if (!value.empty()) emails.push_back(value);
                }
            v[u_emails] = sdk::join_items(emails);
            if (r.contains("active") && r["active"].is_boolean()) v[u_active] = r["active"].get<bool>() ? "true" : "false";
            const std::string key = str_at(r, "externalId");
            if (key.empty()) out->add(str_at(r, "id"), v, SW_RECORD_UNOWNED);
            else out->add(key, v);
        });
        if (out) out->flush();
        users_listed_ = true;
    }

    void list_groups(bool emit) {
        groups_.clear();
        group_by_key_.clear();
        std::unique_ptr<sdk::batch_writer> out;
        if (emit) out = std::make_unique<sdk::batch_writer>(host_api(), "groups", SW_MODE_BULK, 1000);
        list("Groups", [&](const json& r) {
            account a{str_at(r, "id"), str_at(r, "externalId"), version_of(r)};
            groups_[a.id] = a;
            if (!a.key.empty()) group_by_key_[a.key] = a.id;
            if (!out) return;
            std::vector<std::string> members;
            if (r.contains("members") && r["members"].is_array())
                for (auto& m : r["members"]) {
                    auto u = users_.find(str_at(m, "value"));
                    // Members that are no source record's are not Syncwarden's to keep.
                    if (u != users_.end() && !u->second.key.empty()) members.push_back(u->second.key);
                }
            std::vector<std::string> v(g_count);
            v[g_display] = str_at(r, "displayName");
            v[g_members] = sdk::join_items(members);
            if (a.key.empty()) out->add(a.id, v, SW_RECORD_UNOWNED);
            else out->add(a.key, v);
        });
        if (out) out->flush();
        groups_listed_ = true;
    }

    static std::string value(const sw_change& c, size_t f) {
        return f < c.value_count ? std::string(sdk::from_sw(c.values[f])) : std::string();
    }

    // ---- users -------------------------------------------------------------------

    json user_value(const sw_change& c, size_t f) {
        const std::string v = value(c, f);
        switch (f) {
            case u_emails: {
                json arr = json::array();
                bool first = true;
                for (auto e : sdk::split_items(v)) {
                    arr.push_back({{"value", std::string(e)}, {"type", "work"}, {"primary", first}});
                    first = false;
                }
                return arr;
            }
            case u_active: return v == "true";
            default: return v;
        }
    }
    static const char* user_path(size_t f) {
        switch (f) {
            case u_user_name: return "userName";
            case u_given: return "name.givenName";
            case u_family: return "name.familyName";
            case u_display: return "displayName";
            case u_emails: return "emails";
            case u_active: return "active";
            default: return "password";
        }
    }

    json new_user(const std::string& key, const sw_change& c) {
        json u{{"schemas", {k_user_schema}}, {"externalId", key}, {"userName", value(c, u_user_name)}};
        json name = json::object();
        if (!value(c, u_given).empty()) name["givenName"] = value(c, u_given);
        if (!value(c, u_family).empty()) name["familyName"] = value(c, u_family);
        if (!name.empty()) u["name"] = name;
        for (size_t f : {size_t(u_display), size_t(u_password)})
            if (!value(c, f).empty()) u[user_path(f)] = value(c, f);
        if (!value(c, u_emails).empty()) u["emails"] = user_value(c, u_emails);
        if (!value(c, u_active).empty()) u["active"] = value(c, u_active) == "true";
        return u;
    }

    // A PatchOp: `replace` per field, `remove` for one emptied.
    static json patch_body(const std::vector<std::pair<std::string, json>>& ops) {
        json body{{"schemas", {k_patch_schema}}, {"Operations", json::array()}};
        for (auto& [path, v] : ops) {
            const bool empty = v.is_null() || (v.is_string() && v.get<std::string>().empty()) || (v.is_array() && v.empty());
            if (empty) body["Operations"].push_back({{"op", "remove"}, {"path", path}});
            else body["Operations"].push_back({{"op", "replace"}, {"path", path}, {"value", v}});
        }
        return body;
    }

    // Sets `fields` (and, for an adoption, externalId) on the resource.
    void update_resource(const std::string& type, const std::string& id, const std::string& key,
                         const std::vector<std::pair<std::string, json>>& ops_in, bool set_key,
                         std::map<std::string, account>& known, const std::string& what) {
        std::vector<std::pair<std::string, json>> ops = ops_in;
        if (set_key) ops.insert(ops.begin(), {"externalId", key});
        if (ops.empty()) return;
        auto it = known.find(id);
        std::string version = it != known.end() ? it->second.version : std::string();
        for (int round = 0;; ++round) {
            response r;
            if (patch_) {
                r = call("PATCH", "/" + type + "/" + id, patch_body(ops), etag_ ? version : std::string());
            } else {
                // No PATCH: read, change, put back the whole resource.
                response g = call("GET", "/" + type + "/" + id);
                json cur = expect(g, "GET " + http_->url("/" + type + "/" + id), {200});
                version = version_of(cur, &g);
                for (auto& [path, v] : ops) {
                    const auto dot = path.find('.');
                    if (dot == std::string::npos) cur[path] = v;
                    else cur[path.substr(0, dot)][path.substr(dot + 1)] = v;
                }
                cur.erase("meta");
                r = call("PUT", "/" + type + "/" + id, cur, etag_ ? version : std::string());
            }
            if (r.status == 412 && round == 0) {
                // Someone changed it since it was read: read it again and
                // send the change against what it is now.
                response g = call("GET", "/" + type + "/" + id);
                json cur = expect(g, "GET " + http_->url("/" + type + "/" + id), {200});
                version = version_of(cur, &g);
                ++reread_;
                continue;
            }
            json res = expect(r, what, {200, 204});
            if (it != known.end()) it->second.version = res.is_object() ? version_of(res, &r) : std::string();
            return;
        }
    }

    // An update's changed fields (a password is only ever set on create).
    std::vector<std::pair<std::string, json>> user_ops(const sw_change& c) {
        std::vector<std::pair<std::string, json>> ops;
        for (size_t k = 0; k < c.changed_count; ++k) {
            const uint32_t f = c.changed_fields[k];
            if (f == u_password && c.kind != SW_CHANGE_CREATE) continue;
            ops.emplace_back(user_path(f), user_value(c, f));
        }
        return ops;
    }

    std::string user_id(const sw_change_batch& b, size_t i, const std::string& key) {
        std::string id(sdk::target_id_of(b, i));
        if (id.empty())
            if (auto k = user_by_key_.find(key); k != user_by_key_.end()) id = k->second;
        return id;
    }

    void apply_user(const sw_change_batch& b, size_t i, const sw_change& c) {
        const std::string key(sdk::from_sw(c.key));
        const std::string what = "users '" + key + "'";
        if (c.kind == SW_CHANGE_DELETE) {
            const std::string id = user_id(b, i, key);
            if (id.empty()) return;  // not on the server: nothing to delete
            response r = call("DELETE", "/Users/" + id, nullptr,
                              etag_ && users_.count(id) ? users_[id].version : std::string());
            if (r.status != 404) expect(r, "DELETE " + http_->url("/Users/" + id) + " (" + what + ")", {200, 204});
            users_.erase(id);
            user_by_key_.erase(key);
            return;
        }
        const auto ops = user_ops(c);
        if (c.kind == SW_CHANGE_UPDATE || c.kind == SW_CHANGE_ADOPT) {
            const std::string id = user_id(b, i, key);
            if (id.empty())
                throw error(SW_PERMANENT, "not_found", what + " is not on the server (no id for it); a new plan creates it");
            update_resource("Users", id, key, ops, c.kind == SW_CHANGE_ADOPT, users_,
                            "PATCH " + http_->url("/Users/" + id) + " (" + what + ")");
            if (c.kind == SW_CHANGE_ADOPT) {
                users_[id].key = key;
                user_by_key_[key] = id;
                host_api().target_id(i, id);
            }
            return;
        }
        // A create. An account of this key or user name already there (a
        // retry after a lost answer, one made by hand since the plan) is
        // taken over, not duplicated.
        std::string existing;
        if (auto k = user_by_key_.find(key); k != user_by_key_.end()) existing = k->second;
        response r;
        if (existing.empty()) {
            r = call("POST", "/Users", new_user(key, c));
            if (r.status == 201 || r.status == 200) {
                json res = r.json();
                const std::string id = str_at(res, "id");
                if (id.empty()) throw error(SW_PERMANENT, "bad_response", "POST " + http_->url("/Users") + " (" + what + "): the created User has no id");
                remember_user(res, version_of(res, &r));
                host_api().target_id(i, id);
                ++created_;
                return;
            }
            if (r.status != 409) throw classify(r, "POST " + http_->url("/Users") + " (" + what + ")");
            existing = lookup_user(key, value(c, u_user_name));
            if (existing.empty()) throw classify(r, "POST " + http_->url("/Users") + " (" + what + ")");
        }
        const account& a = users_[existing];
        if (!a.key.empty() && a.key != key)
            throw error(SW_PERMANENT, "uniqueness",
                        what + ": the user name '" + value(c, u_user_name) + "' belongs to the account of '" + a.key +
                            "' on the server; two people cannot share it. Change one of their user names");
        std::vector<std::pair<std::string, json>> all;
        for (size_t f = 0; f < u_password; ++f) all.emplace_back(user_path(f), user_value(c, f));
        update_resource("Users", existing, key, all, a.key.empty(), users_,
                        "PATCH " + http_->url("/Users/" + existing) + " (" + what + ", adopted)");
        users_[existing].key = key;
        user_by_key_[key] = existing;
        host_api().target_id(i, existing);
        ++adopted_;
    }

    // After a 409: the account by externalId, then by userName; with a
    // filter where the server supports filtering, else by reading every
    // User again.
    std::string lookup_user(const std::string& key, const std::string& user_name) {
        if (!filter_) {
            list_users(false);
            if (auto k = user_by_key_.find(key); k != user_by_key_.end()) return k->second;
            for (auto& [id, a] : users_)
                if (ascii_lower(a.user_name) == ascii_lower(user_name)) return id;
            return {};
        }
        for (auto [attr, v] : {std::pair<const char*, std::string>{"externalId", key}, {"userName", user_name}}) {
            std::string quoted = json(v).dump();
            std::string path = "/Users?filter=" + url_encode(std::string(attr) + " eq " + quoted);
            json page = expect(read(path), "GET " + http_->url(path), {200});
            if (page.is_object() && page.contains("Resources") && page["Resources"].is_array() &&
                !page["Resources"].empty()) {
                const json& r = page["Resources"][0];
                remember_user(r, version_of(r));
                return str_at(r, "id");
            }
        }
        return {};
    }

    // ---- groups ------------------------------------------------------------------

    json members_of(const sw_change& c, const std::string& what) {
        json arr = json::array();
        // (The value is kept in a variable: the items are views into it.)
        const std::string members = value(c, g_members);
        for (auto m : sdk::split_items(members)) {
            auto it = user_by_key_.find(std::string(m));
            if (it == user_by_key_.end())
                throw error(SW_PERMANENT, "no_such_member",
                            what + ": member '" + std::string(m) + "' is not a user on the server");
            arr.push_back({{"value", it->second}});
        }
        return arr;
    }

    std::string group_id(const sw_change_batch& b, size_t i, const std::string& key) {
        std::string id(sdk::target_id_of(b, i));
        if (id.empty())
            if (auto k = group_by_key_.find(key); k != group_by_key_.end()) id = k->second;
        return id;
    }
    json new_group(const std::string& key, const sw_change& c, const std::string& what) {
        return {{"schemas", {k_group_schema}}, {"externalId", key}, {"displayName", value(c, g_display)},
                {"members", members_of(c, what)}};
    }
    std::vector<std::pair<std::string, json>> group_ops(const sw_change& c, const std::string& what) {
        std::vector<std::pair<std::string, json>> ops;
        for (size_t k = 0; k < c.changed_count; ++k) {
            const uint32_t f = c.changed_fields[k];
            if (f == g_display) ops.emplace_back("displayName", value(c, g_display));
            if (f == g_members) ops.emplace_back("members", members_of(c, what));
        }
        return ops;
    }

    void apply_group(const sw_change_batch& b, size_t i, const sw_change& c) {
        const std::string key(sdk::from_sw(c.key));
        const std::string what = "groups '" + key + "'";
        std::string id = group_id(b, i, key);
        if (c.kind == SW_CHANGE_DELETE) {
            if (id.empty()) return;
            response r = call("DELETE", "/Groups/" + id);
            if (r.status != 404) expect(r, "DELETE " + http_->url("/Groups/" + id) + " (" + what + ")", {200, 204});
            groups_.erase(id);
            group_by_key_.erase(key);
            return;
        }
        if (c.kind == SW_CHANGE_CREATE && id.empty()) {
            response r = call("POST", "/Groups", new_group(key, c, what));
            json res = expect(r, "POST " + http_->url("/Groups") + " (" + what + ")", {200, 201});
            id = str_at(res, "id");
            if (id.empty()) throw error(SW_PERMANENT, "bad_response", "POST " + http_->url("/Groups") + ": no id");
            groups_[id] = {id, key, version_of(res, &r)};
            group_by_key_[key] = id;
            host_api().target_id(i, id);
            return;
        }
        if (id.empty()) throw error(SW_PERMANENT, "not_found", what + " is not on the server; a new plan creates it");
        update_resource("Groups", id, key, group_ops(c, what), c.kind == SW_CHANGE_ADOPT, groups_,
                        "PATCH " + http_->url("/Groups/" + id) + " (" + what + ")");
        if (c.kind == SW_CHANGE_ADOPT) {
            group_by_key_[key] = id;
            host_api().target_id(i, id);
        }
    }

    std::unique_ptr<http_client> http_;
    std::string base_url_;
    int64_t page_size_ = 100, max_results_ = 100000;
    bool config_loaded_ = false, patch_ = false, etag_ = false, filter_ = false;
    bool use_bulk_ = true, bulk_ = false;  // the setting; and whether this run sends Bulk requests
    int64_t bulk_max_ = 100, bulk_server_max_ops_ = 1000;
    size_t bulk_max_bytes_ = 1048576, bulk_requests_ = 0;
    bool users_listed_ = false, groups_listed_ = false;
    std::map<std::string, account> users_, groups_;             // by id
    std::map<std::string, std::string> user_by_key_, group_by_key_;
    size_t created_ = 0, adopted_ = 0, reread_ = 0;
    sdk::contract_builder builder_;
    const sw_contract* contract_ = nullptr;
};

}  // namespace
}  // namespace syncwarden::scim

SW_CONNECTOR(syncwarden::scim::scim_target, "scim", "1.0.0", SW_CAP_TARGET | SW_CAP_TARGET_IDS,
             "SCIM 2.0 service provider: Users and Groups")
