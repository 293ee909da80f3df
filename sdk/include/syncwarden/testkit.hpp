// The connector test kit: hosts one connector in a unit test, with no kernel.
//
//   syncwarden::testkit::library lib("build/libmy-source.so");   // or &my_entry()
//   syncwarden::testkit::instance c(lib.entry(), R"({"path": "fixtures/district"})");
//   auto batches = c.extract({"users"});                          // every emitted batch, copied
//   auto users = syncwarden::testkit::by_key(batches, "users");
//   EXPECT_EQ(c.value(users.at("u-1"), "users", "givenName"), "Ann");
//
//   syncwarden::testkit::instance t(target_lib.entry(), settings);
//   auto r = t.apply("people", {syncwarden::testkit::create("u-1", {{"name", "Ann"}})});
//   EXPECT_TRUE(r.ok()) << r.describe();
//   t.commit();
//
// What it checks, as the kernel would: the manifest's ABI major; every batch
// a connector emits against its contract (the entity is in the contract and
// was asked for, one value per field, a key, required fields filled, int,
// bool and date values well formed, one batch mode per entity, no unowned
// records from extract). A broken batch makes extract/read_state throw
// testkit::violation naming the entity, key and field. A hook that returns
// anything but SW_OK throws testkit::failure with its status, category and
// message (apply reports per-change outcomes instead; see apply_result).
//
// What it does not do: validate settings against the manifest's schema,
// compute the kernel's diff, retry, pace (acquire always grants; retry_wait
// never sleeps and gives up after options::retry_attempts), or run the
// connector in a worker process. Those are the kernel's; the integration
// tests that run `syncwarden run` cover them.
//
// Header-only; link syncwarden::testkit (it brings nlohmann_json, for
// config_get, and libdl).
#ifndef SYNCWARDEN_TESTKIT_HPP
#define SYNCWARDEN_TESTKIT_HPP

#include <syncwarden/connector.h>

#include <dlfcn.h>
#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace syncwarden::testkit {

// A field's value as the kernel sees it: nullopt is absent.
using value = std::optional<std::string>;

// A hook returned something other than SW_OK.
class failure : public std::runtime_error {
public:
    failure(std::string hook, sw_status status, std::string category, std::string message)
        : std::runtime_error(hook + " returned " + status_name(status) + (category.empty() ? "" : " [" + category + "]") +
                             (message.empty() ? "" : ": " + message)),
          hook_(std::move(hook)), status_(status), category_(std::move(category)), message_(std::move(message)) {}
    const std::string& hook() const { return hook_; }
    sw_status status() const { return status_; }
    const std::string& category() const { return category_; }
    const std::string& message() const { return message_; }

    static std::string status_name(sw_status s) {
        static const char* const names[] = {"SW_OK",     "SW_RETRYABLE", "SW_THROTTLED", "SW_PERMANENT", "SW_CONFIG",
                                            "SW_AUTH",   "SW_SCHEMA",    "SW_INTERNAL",  "SW_CANCELLED"};
        return static_cast<unsigned>(s) < 9 ? names[s] : "status " + std::to_string(static_cast<unsigned>(s));
    }

private:
    std::string hook_;
    sw_status status_;
    std::string category_, message_;
};

// The connector broke its contract or the ABI: what, where.
class violation : public std::runtime_error {
public:
    explicit violation(std::vector<std::string> problems)
        : std::runtime_error(join(problems)), problems_(std::move(problems)) {}
    const std::vector<std::string>& problems() const { return problems_; }

private:
    static std::string join(const std::vector<std::string>& p) {
        std::string s = std::to_string(p.size()) + " contract violation" + (p.size() == 1 ? "" : "s") + ":";
        for (size_t i = 0; i < p.size() && i < 20; ++i) s += "\n  " + p[i];
        if (p.size() > 20) s += "\n  ...";
        return s;
    }
    std::vector<std::string> problems_;
};

struct field {
    std::string name;
    sw_field_type type = SW_TYPE_STRING;
    uint32_t flags = 0;
};

struct entity {
    std::string name, key_name;
    std::vector<field> fields;
    // The field's position in records and changes; -1 if there is none.
    int index_of(std::string_view f) const {
        for (size_t i = 0; i < fields.size(); ++i)
            if (fields[i].name == f) return static_cast<int>(i);
        return -1;
    }
};

struct record {
    std::string key;
    std::vector<value> values;  // contract order
    sw_record_state state = SW_RECORD_ACTIVE;
};

struct batch {
    std::string entity;
    sw_batch_mode mode = SW_MODE_BULK;
    std::vector<record> records;
};

struct finding {
    sw_severity severity = SW_SEVERITY_INFO;
    std::string code, entity, file;
    uint64_t line = 0, column = 0;
    std::string key, message;
};

struct log_line {
    sw_log_level level = SW_LOG_INFO;
    std::string message;
};

struct layout {
    std::string entity, file;
    std::vector<std::string> columns;
};

// One change to apply, with its values by field name. Fields not named are
// absent. For an update, `changed` names the fields that differ (empty: all
// fields given). target_id: the id the kernel would hand back for this key
// (empty: the last one the target reported through this instance, if any).
struct change {
    sw_change_kind kind = SW_CHANGE_CREATE;
    std::string key;
    std::map<std::string, value> fields;
    std::vector<std::string> changed;
    std::string target_id;
};

inline change create(std::string key, std::map<std::string, value> fields) {
    return change{SW_CHANGE_CREATE, std::move(key), std::move(fields), {}, {}};
}
inline change update(std::string key, std::map<std::string, value> fields, std::vector<std::string> changed = {}) {
    return change{SW_CHANGE_UPDATE, std::move(key), std::move(fields), std::move(changed), {}};
}
inline change remove(std::string key, std::map<std::string, value> last_known = {}) {
    return change{SW_CHANGE_DELETE, std::move(key), std::move(last_known), {}, {}};
}
inline change adopt(std::string key, std::string target_id, std::map<std::string, value> fields,
                    std::vector<std::string> changed = {}) {
    return change{SW_CHANGE_ADOPT, std::move(key), std::move(fields), std::move(changed), std::move(target_id)};
}

struct change_outcome {
    sw_status status = SW_OK;
    bool reported = false;  // the target called change_result for it
    std::string category, message;
    std::optional<std::string> target_id;  // what the target reported with target_id()
};

struct apply_result {
    sw_status status = SW_OK;  // apply's own return
    std::string category, message;
    std::vector<change_outcome> changes;  // one per change sent, in order

    size_t failed() const {
        size_t n = 0;
        for (auto& c : changes) n += c.status != SW_OK;
        return n;
    }
    bool ok() const { return status == SW_OK && failed() == 0; }
    std::string describe() const {
        std::string s = "apply " + failure::status_name(status) + (category.empty() ? "" : " [" + category + "]") +
                        (message.empty() ? "" : ": " + message);
        for (size_t i = 0; i < changes.size(); ++i)
            if (changes[i].status != SW_OK)
                s += "\n  change " + std::to_string(i) + ": " + failure::status_name(changes[i].status) + " [" +
                     changes[i].category + "] " + changes[i].message;
        return s;
    }
};

// A plan batch from a connector's own diff hook (SW_CAP_CUSTOM_DIFF).
struct planned_change {
    sw_change_kind kind = SW_CHANGE_CREATE;
    std::string id, key;
    std::vector<value> values;
    std::vector<uint32_t> changed_fields;
};
struct planned_batch {
    std::string entity;
    std::vector<planned_change> changes;
};

struct options {
    std::string job_name = "testkit";
    std::string base_dir = ".";  // what relative paths in the settings are relative to
    unsigned retry_attempts = 3;  // retry_wait answers SW_OK until a request was sent this often
    bool check_contract = true;  // throw violation for a batch that breaks the contract
};

// A built connector, loaded with dlopen. Keep it alive longer than every
// instance made from its entry.
class library {
public:
    explicit library(const std::string& path) {
        handle_ = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (!handle_) throw std::runtime_error("cannot load " + path + ": " + ::dlerror());
        auto fn = reinterpret_cast<sw_entry_fn>(::dlsym(handle_, SW_ENTRY_SYMBOL));
        if (!fn) {
            ::dlclose(handle_);
            throw std::runtime_error(path + " does not export " SW_ENTRY_SYMBOL "; declare it with SW_CONNECTOR");
        }
        entry_ = fn();
        if (!entry_) {
            ::dlclose(handle_);
            throw std::runtime_error(path + ": " SW_ENTRY_SYMBOL " returned NULL");
        }
    }
    ~library() {
        if (handle_) ::dlclose(handle_);
    }
    library(const library&) = delete;
    library& operator=(const library&) = delete;
    const sw_connector* entry() const { return entry_; }

private:
    void* handle_ = nullptr;
    const sw_connector* entry_ = nullptr;
};

namespace detail {

inline std::string str(sw_str s) { return s.ptr ? std::string(s.ptr, s.len) : std::string(); }
inline sw_str to_sw(const std::string& s) { return sw_str{s.data(), s.size()}; }
inline std::string fixed(const char* buf, size_t n) { return std::string(buf, strnlen(buf, n)); }

inline bool digits(std::string_view v, size_t from, size_t n) {
    if (v.size() < from + n) return false;
    for (size_t i = from; i < from + n; ++i)
        if (v[i] < '0' || v[i] > '9') return false;
    return true;
}
inline bool is_date(std::string_view v) {
    return v.size() >= 10 && digits(v, 0, 4) && v[4] == '-' && digits(v, 5, 2) && v[7] == '-' && digits(v, 8, 2);
}
inline bool is_int(std::string_view v) {
    size_t i = (!v.empty() && (v[0] == '-' || v[0] == '+')) ? 1 : 0;
    return v.size() > i && digits(v, i, v.size() - i);
}
// A connector's number as one of the ABI's enums: a value out of range
// (reported as a violation where it matters) becomes `fallback`, since an
// enum may not hold it.
template <class E>
inline E as_enum(uint32_t v, uint32_t last, E fallback) {
    return v <= last ? static_cast<E>(v) : fallback;
}

inline std::string hex64(uint64_t h) {
    char b[17];
    std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(h));
    return b;
}

// Everything the host slots write into, per instance.
struct state {
    const sw_connector* conn = nullptr;
    nlohmann::json settings;
    options opt;
    std::map<std::string, std::string> config_values;
    std::string checkpoint_buf;
    std::optional<std::string> checkpoint;
    bool cancelled = false;
    std::vector<log_line> logs;
    std::vector<finding> findings;
    std::vector<layout> layouts;
    std::optional<std::string> token;
    unsigned permits = 0, retry_waits = 0;
    const std::vector<entity>* contract = nullptr;
    std::map<std::string, std::map<std::string, std::string>> target_ids;  // entity -> key -> id

    // Set while a hook runs.
    enum class sink { none, records, changes, results } current = sink::none;
    bool from_read_state = false;
    std::set<std::string> asked;
    std::vector<batch>* records = nullptr;
    std::vector<planned_batch>* plans = nullptr;
    apply_result* result = nullptr;
    std::map<std::string, sw_batch_mode> modes;
    std::vector<std::string> problems;

    const entity* find(const std::string& name) const {
        if (contract)
            for (auto& e : *contract)
                if (e.name == name) return &e;
        return nullptr;
    }

    sw_status on_batch(const sw_batch& b) {
        if (b.struct_size < sizeof(sw_batch)) {
            problems.push_back("a batch with struct_size " + std::to_string(b.struct_size) + " (less than sw_batch)");
            return SW_SCHEMA;
        }
        batch out;
        out.entity = str(b.entity);
        out.mode = as_enum(b.mode, SW_MODE_DELTA, SW_MODE_BULK);
        const entity* e = find(out.entity);
        const std::string where = "entity \"" + out.entity + "\"";
        if (!e) problems.push_back(where + ": not in the connector's contract");
        else if (!asked.count(out.entity)) problems.push_back(where + ": emitted but not asked for");
        if (b.mode > SW_MODE_DELTA) problems.push_back(where + ": batch mode " + std::to_string(b.mode) + " is not one");
        auto m = modes.emplace(out.entity, out.mode);
        if (!m.second && m.first->second != out.mode)
            problems.push_back(where + ": batches in both bulk and delta mode in one call");
        if (b.record_count && !b.records) {
            problems.push_back(where + ": record_count " + std::to_string(b.record_count) + " with records NULL");
            return SW_SCHEMA;
        }
        out.records.reserve(b.record_count);
        for (size_t i = 0; i < b.record_count; ++i) {
            const sw_record& r = b.records[i];
            record rec;
            rec.key = str(r.key);
            rec.state = as_enum(r.state, SW_RECORD_UNOWNED, SW_RECORD_ACTIVE);
            const std::string at = where + " key \"" + rec.key + "\"";
            if (rec.key.empty()) problems.push_back(where + " record " + std::to_string(i) + ": empty key");
            if (r.state > SW_RECORD_UNOWNED) problems.push_back(at + ": state " + std::to_string(r.state) + " is not one");
            if (r.state == SW_RECORD_UNOWNED && !from_read_state)
                problems.push_back(at + ": SW_RECORD_UNOWNED comes from read_state only");
            if (r.value_count && !r.values) {
                problems.push_back(at + ": value_count with values NULL");
                continue;
            }
            if (e && r.value_count != e->fields.size())
                problems.push_back(at + ": " + std::to_string(r.value_count) + " values for " +
                                   std::to_string(e->fields.size()) + " fields");
            for (size_t k = 0; k < r.value_count; ++k) {
                const sw_str v = r.values[k];
                const field* f = e && k < e->fields.size() ? &e->fields[k] : nullptr;
                const bool absent = !v.ptr || (v.len == 0 && !(f && (f->flags & SW_FIELD_EMPTY_IS_VALUE)));
                rec.values.push_back(absent ? value() : value(str(v)));
                if (!f) continue;
                const std::string fat = at + " field \"" + f->name + "\"";
                if (absent) {
                    if ((f->flags & SW_FIELD_REQUIRED) && rec.state == SW_RECORD_ACTIVE)
                        problems.push_back(fat + ": required, but empty");
                    continue;
                }
                const std::string_view s(v.ptr, v.len);
                if (s.find('\0') != std::string_view::npos) problems.push_back(fat + ": holds a NUL byte");
                if (f->type == SW_TYPE_INT && !is_int(s)) problems.push_back(fat + ": \"" + std::string(s) + "\" is not an integer");
                if (f->type == SW_TYPE_BOOL && s != "true" && s != "false")
                    problems.push_back(fat + ": \"" + std::string(s) + "\" is not true or false");
                if ((f->type == SW_TYPE_DATE && (s.size() != 10 || !is_date(s))) || (f->type == SW_TYPE_DATETIME && !is_date(s)))
                    problems.push_back(fat + ": \"" + std::string(s) + "\" is not an ISO 8601 date");
            }
            out.records.push_back(std::move(rec));
        }
        if (records) records->push_back(std::move(out));
        return cancelled ? SW_CANCELLED : SW_OK;
    }

    sw_status on_changes(const sw_change_batch& b) {
        if (!plans || b.struct_size < offsetof(sw_change_batch, attempt)) return SW_INTERNAL;
        planned_batch out{str(b.entity), {}};
        for (size_t i = 0; i < b.change_count; ++i) {
            const sw_change& c = b.changes[i];
            planned_change pc{as_enum(c.kind, SW_CHANGE_ADOPT, SW_CHANGE_UPDATE), str(c.id), str(c.key), {}, {}};
            for (size_t k = 0; k < c.value_count; ++k) pc.values.push_back(c.values[k].ptr ? value(str(c.values[k])) : value());
            pc.changed_fields.assign(c.changed_fields, c.changed_fields + c.changed_count);
            out.changes.push_back(std::move(pc));
        }
        plans->push_back(std::move(out));
        return SW_OK;
    }
};

inline state* of(sw_host_ctx* ctx) { return reinterpret_cast<state*>(ctx); }

inline void h_log(sw_host_ctx* ctx, uint32_t level, sw_str m) noexcept {
    try {
        of(ctx)->logs.push_back({as_enum(level, SW_LOG_ERROR, SW_LOG_ERROR), str(m)});
    } catch (...) {}
}
inline sw_status h_emit(sw_host_ctx* ctx, const sw_batch* b) noexcept {
    try {
        state* s = of(ctx);
        if (s->current != state::sink::records) {
            s->problems.push_back("emit called outside extract and read_state");
            return SW_INTERNAL;
        }
        return b ? s->on_batch(*b) : SW_SCHEMA;
    } catch (...) {
        return SW_INTERNAL;
    }
}
inline void h_finding(sw_host_ctx* ctx, const sw_finding* f) noexcept {
    try {
        if (!f || f->struct_size < sizeof(sw_finding)) return;
        of(ctx)->findings.push_back({as_enum(f->severity, SW_SEVERITY_ERROR, SW_SEVERITY_ERROR), str(f->code), str(f->entity), str(f->file),
                                     f->line, f->column, str(f->key), str(f->message)});
    } catch (...) {}
}
inline void h_change_result(sw_host_ctx* ctx, size_t index, sw_status st, sw_str cat, sw_str msg) noexcept {
    try {
        state* s = of(ctx);
        if (s->current != state::sink::results || !s->result) return;
        if (index >= s->result->changes.size()) {
            s->problems.push_back("change_result for change " + std::to_string(index) + " of a batch of " +
                                  std::to_string(s->result->changes.size()));
            return;
        }
        auto& o = s->result->changes[index];
        o.status = st;
        o.reported = true;
        o.category = str(cat);
        o.message = str(msg);
    } catch (...) {}
}
inline sw_status h_checkpoint_save(sw_host_ctx* ctx, sw_str token) noexcept {
    try {
        of(ctx)->checkpoint = str(token);
        return SW_OK;
    } catch (...) {
        return SW_INTERNAL;
    }
}
inline sw_status h_checkpoint_load(sw_host_ctx* ctx, sw_str* out) noexcept {
    try {
        state* s = of(ctx);
        s->checkpoint_buf = s->checkpoint.value_or("");
        *out = to_sw(s->checkpoint_buf);
        return SW_OK;
    } catch (...) {
        return SW_INTERNAL;
    }
}
inline int h_is_cancelled(sw_host_ctx* ctx) noexcept { return of(ctx)->cancelled ? 1 : 0; }
inline sw_status h_config_get(sw_host_ctx* ctx, sw_str pointer, sw_str* out) noexcept {
    try {
        state* s = of(ctx);
        const std::string p = str(pointer);
        const nlohmann::json::json_pointer jp(p);
        if (!s->settings.contains(jp)) return SW_CONFIG;
        const nlohmann::json& v = s->settings.at(jp);
        std::string& kept = s->config_values[p];
        kept = v.is_string() ? v.get<std::string>() : v.dump();
        *out = to_sw(kept);
        return SW_OK;
    } catch (...) {
        return SW_CONFIG;  // not a JSON pointer
    }
}
inline sw_status h_emit_changes(sw_host_ctx* ctx, const sw_change_batch* b) noexcept {
    try {
        state* s = of(ctx);
        if (s->current != state::sink::changes) return SW_INTERNAL;
        return b ? s->on_changes(*b) : SW_SCHEMA;
    } catch (...) {
        return SW_INTERNAL;
    }
}
inline void h_state_token(sw_host_ctx* ctx, sw_str token) noexcept {
    try {
        of(ctx)->token = str(token);
    } catch (...) {}
}
inline sw_status h_acquire(sw_host_ctx* ctx, uint32_t permits) noexcept {
    state* s = of(ctx);
    if (s->cancelled) return SW_CANCELLED;
    s->permits += permits;
    return SW_OK;
}
inline void h_layout(sw_host_ctx* ctx, const sw_layout* l) noexcept {
    try {
        if (!l || l->struct_size < sizeof(sw_layout)) return;
        layout out{str(l->entity), str(l->file), {}};
        for (size_t i = 0; i < l->column_count; ++i) out.columns.push_back(str(l->columns[i]));
        of(ctx)->layouts.push_back(std::move(out));
    } catch (...) {}
}
inline void h_target_id(sw_host_ctx* ctx, size_t index, sw_str id) noexcept {
    try {
        state* s = of(ctx);
        if (s->current != state::sink::results || !s->result || index >= s->result->changes.size()) return;
        s->result->changes[index].target_id = str(id);
    } catch (...) {}
}
inline sw_status h_retry_wait(sw_host_ctx* ctx, uint32_t attempt, uint32_t) noexcept {
    state* s = of(ctx);
    if (s->cancelled) return SW_CANCELLED;
    if (attempt >= s->opt.retry_attempts) return SW_RETRYABLE;
    ++s->retry_waits;
    return SW_OK;
}

inline const sw_host_api& host_api() {
    static const sw_host_api api = {sizeof(sw_host_api), SW_ABI_MAJOR,   SW_ABI_MINOR,     h_log,         h_emit,
                                    h_finding,           h_change_result, h_checkpoint_save, h_checkpoint_load,
                                    h_is_cancelled,      h_config_get,    h_emit_changes,    h_state_token, h_acquire,
                                    h_layout,            h_target_id,     h_retry_wait};
    return api;
}

}  // namespace detail

// One connector instance: create on construction, destroy on destruction.
class instance {
public:
    instance(const sw_connector* conn, const std::string& settings_json = "{}", options opt = {})
        : s_(std::make_unique<detail::state>()) {
        if (!conn) throw std::invalid_argument("testkit::instance: no connector (the entry returned NULL)");
        if (conn->abi_major != SW_ABI_MAJOR)
            throw std::runtime_error("the connector is built for ABI " + std::to_string(conn->abi_major) + "." +
                                     std::to_string(conn->abi_minor) + ", this kit hosts ABI " +
                                     std::to_string(SW_ABI_MAJOR) + ".x");
        if (!conn->manifest || !conn->hooks || !conn->hooks->create || !conn->hooks->destroy || !conn->hooks->contract)
            throw std::runtime_error("the connector has no manifest, or no create, destroy or contract hook");
        s_->conn = conn;
        s_->opt = std::move(opt);
        s_->settings = nlohmann::json::parse(settings_json, nullptr, false);
        if (s_->settings.is_discarded()) throw std::invalid_argument("testkit::instance: the settings are not JSON");
        sw_create_args args{sizeof(sw_create_args), detail::to_sw(settings_json), detail::to_sw(s_->opt.job_name),
                            detail::to_sw(s_->opt.base_dir)};
        sw_error err = fresh_error();
        void* inst = nullptr;
        const sw_status st = hooks().create(&detail::host_api(), ctx(), &args, &inst, &err);
        if (st != SW_OK) throw failure("create", st, detail::fixed(err.category, 64), detail::fixed(err.message, 1024));
        if (!inst) throw failure("create", SW_INTERNAL, "", "returned SW_OK but no instance");
        inst_ = inst;
    }
    ~instance() {
        if (inst_) hooks().destroy(inst_);
    }
    instance(const instance&) = delete;
    instance& operator=(const instance&) = delete;

    const sw_manifest& manifest() const { return *s_->conn->manifest; }
    std::string name() const { return detail::str(manifest().name); }
    std::string version() const { return detail::str(manifest().version); }
    uint32_t capabilities() const { return manifest().capabilities; }

    // The contract, read once from the contract hook.
    const std::vector<entity>& contract() {
        if (contract_) return *contract_;
        sw_error err = fresh_error();
        const sw_contract* c = nullptr;
        const sw_status st = hooks().contract(inst_, &c, &err);
        if (st != SW_OK) throw failure("contract", st, detail::fixed(err.category, 64), detail::fixed(err.message, 1024));
        if (!c || c->struct_size < offsetof(sw_contract, enums) || (c->entity_count && !c->entities))
            throw violation({"contract returned SW_OK without a well-formed sw_contract"});
        std::vector<entity> out;
        std::vector<std::string> problems;
        for (size_t i = 0; i < c->entity_count; ++i) {
            const sw_entity_def& d = c->entities[i];
            entity e{detail::str(d.name), detail::str(d.key_name), {}};
            if (e.name.empty()) problems.push_back("contract entity " + std::to_string(i) + " has no name");
            for (size_t k = 0; k < d.field_count; ++k) {
                const sw_field_def& f = d.fields[k];
                field fd{detail::str(f.name), detail::as_enum(f.type, SW_TYPE_ITEMS, SW_TYPE_STRING), f.flags};
                if (fd.name.empty() || e.index_of(fd.name) >= 0)
                    problems.push_back("contract entity \"" + e.name + "\" field " + std::to_string(k) +
                                       ": empty or repeated name \"" + fd.name + "\"");
                if (f.type > SW_TYPE_ITEMS)
                    problems.push_back("contract entity \"" + e.name + "\" field \"" + fd.name + "\": type " +
                                       std::to_string(f.type) + " is not one");
                e.fields.push_back(std::move(fd));
            }
            for (auto& seen : out)
                if (seen.name == e.name) problems.push_back("contract entity \"" + e.name + "\" is declared twice");
            out.push_back(std::move(e));
        }
        if (!problems.empty()) throw violation(problems);
        contract_ = std::make_unique<std::vector<entity>>(std::move(out));
        s_->contract = contract_.get();
        return *contract_;
    }
    const entity& entity_def(const std::string& name) {
        for (auto& e : contract())
            if (e.name == name) return e;
        throw std::invalid_argument("the contract of " + this->name() + " has no entity \"" + name + "\"");
    }
    // A record's value of field `f` of `entity`.
    value value_of(const record& r, const std::string& entity_name, const std::string& f) {
        const int i = entity_def(entity_name).index_of(f);
        if (i < 0) throw std::invalid_argument("entity \"" + entity_name + "\" has no field \"" + f + "\"");
        return static_cast<size_t>(i) < r.values.size() ? r.values[i] : value();
    }

    // Source: every batch extract emitted, in order. No entities: all of the contract's.
    std::vector<batch> extract(const std::vector<std::string>& entities = {}) {
        if (!hooks().extract) throw std::logic_error(name() + " is not a source (no extract hook)");
        return read("extract", hooks().extract, entities, false);
    }
    // Target: every batch read_state emitted.
    std::vector<batch> read_state(const std::vector<std::string>& entities = {}) {
        if (!hooks().read_state) throw std::logic_error(name() + " is not a target (no read_state hook)");
        return read("read_state", hooks().read_state, entities, true);
    }

    // Target: one apply call with these changes of one entity. The outcome
    // of each change: what the target reported, or apply's own status for
    // a change it said nothing about (as the kernel counts it).
    apply_result apply(const std::string& entity_name, const std::vector<change>& changes, uint32_t attempt = 1) {
        if (!hooks().apply) throw std::logic_error(name() + " is not a target (no apply hook)");
        const entity& e = entity_def(entity_name);
        struct owned {
            std::string id, key;
            std::vector<std::string> text;
            std::vector<sw_str> values;
            std::vector<uint32_t> changed;
        };
        std::vector<owned> own(changes.size());
        std::vector<sw_change> wire(changes.size());
        std::vector<std::string> ids(changes.size());
        std::vector<sw_str> id_views(changes.size());
        auto& known = s_->target_ids[entity_name];
        for (size_t i = 0; i < changes.size(); ++i) {
            const change& c = changes[i];
            owned& o = own[i];
            o.key = c.key;
            o.text.resize(e.fields.size());
            o.values.assign(e.fields.size(), sw_str{nullptr, 0});
            for (auto& [fname, v] : c.fields) {
                const int k = e.index_of(fname);
                if (k < 0) throw std::invalid_argument("change \"" + c.key + "\": entity \"" + entity_name + "\" has no field \"" + fname + "\"");
                if (v) {
                    o.text[k] = *v;
                    o.values[k] = detail::to_sw(o.text[k]);
                }
            }
            if (c.kind == SW_CHANGE_CREATE) {
                for (uint32_t k = 0; k < e.fields.size(); ++k) o.changed.push_back(k);
            } else if (c.kind == SW_CHANGE_UPDATE || c.kind == SW_CHANGE_ADOPT) {
                for (auto& fname : c.changed.empty() ? names_of(c.fields) : c.changed) {
                    const int k = e.index_of(fname);
                    if (k < 0) throw std::invalid_argument("change \"" + c.key + "\": no field \"" + fname + "\" to mark changed");
                    o.changed.push_back(static_cast<uint32_t>(k));
                }
            }
            o.id = content_id(entity_name, c, o.text);
            wire[i] = sw_change{detail::to_sw(o.id), static_cast<uint32_t>(c.kind), detail::to_sw(o.key),
                                o.values.data(), o.values.size(), o.changed.data(), o.changed.size()};
            ids[i] = !c.target_id.empty() ? c.target_id : (known.count(c.key) ? known[c.key] : std::string());
            id_views[i] = detail::to_sw(ids[i]);
        }
        const bool with_ids = (capabilities() & SW_CAP_TARGET_IDS) != 0;
        sw_change_batch b{sizeof(sw_change_batch), detail::to_sw(entity_name), wire.data(), wire.size(), attempt,
                          with_ids ? id_views.data() : nullptr};
        apply_result result;
        result.changes.resize(changes.size());
        sw_error err = fresh_error();
        s_->problems.clear();
        s_->result = &result;
        s_->current = detail::state::sink::results;
        const sw_status st = hooks().apply(inst_, &b, &err);
        s_->current = detail::state::sink::none;
        s_->result = nullptr;
        result.status = st;
        if (st != SW_OK) {
            result.category = detail::fixed(err.category, 64);
            result.message = detail::fixed(err.message, 1024);
        }
        for (size_t i = 0; i < changes.size(); ++i) {
            auto& o = result.changes[i];
            if (!o.reported && st != SW_OK) {
                o.status = st;
                o.category = result.category;
                o.message = result.message;
            }
            if (o.status == SW_OK && o.target_id) {
                if (o.target_id->empty()) known.erase(changes[i].key);
                else known[changes[i].key] = *o.target_id;
            }
            if (o.status == SW_OK && changes[i].kind == SW_CHANGE_DELETE) known.erase(changes[i].key);
        }
        if (!s_->problems.empty() && s_->opt.check_contract) throw violation(s_->problems);
        return result;
    }

    // commit/abort/state_token/system_id, as the kernel calls them.
    void commit() {
        if (!hooks().commit) return;
        sw_error err = fresh_error();
        const sw_status st = hooks().commit(inst_, &err);
        if (st != SW_OK) throw failure("commit", st, detail::fixed(err.category, 64), detail::fixed(err.message, 1024));
    }
    void abort() {
        if (hooks().abort) hooks().abort(inst_);
    }
    // The token the state_token hook reports now (or, without the hook, the
    // one read_state reported last; nullopt if none).
    std::optional<std::string> state_token(const std::vector<std::string>& entities = {}) {
        if (!hooks().state_token) return s_->token;
        s_->token.reset();
        std::vector<std::string> names = entities.empty() ? all_entities() : entities;
        std::vector<sw_str> views;
        for (auto& n : names) views.push_back(detail::to_sw(n));
        sw_error err = fresh_error();
        const sw_status st = hooks().state_token(inst_, views.data(), views.size(), &err);
        if (st != SW_OK) throw failure("state_token", st, detail::fixed(err.category, 64), detail::fixed(err.message, 1024));
        return s_->token;
    }
    std::optional<std::string> system_id() {
        if (!hooks().system_id) return std::nullopt;
        sw_error err = fresh_error();
        sw_str out{nullptr, 0};
        const sw_status st = hooks().system_id(inst_, &out, &err);
        if (st != SW_OK) throw failure("system_id", st, detail::fixed(err.category, 64), detail::fixed(err.message, 1024));
        return detail::str(out);
    }
    // A connector's own diff (SW_CAP_CUSTOM_DIFF): each desired batch, then the end.
    std::vector<planned_batch> diff(const std::vector<batch>& desired) {
        if (!hooks().diff) throw std::logic_error(name() + " has no diff hook");
        std::vector<planned_batch> plans;
        s_->plans = &plans;
        s_->current = detail::state::sink::changes;
        auto done = [&] {
            s_->current = detail::state::sink::none;
            s_->plans = nullptr;
        };
        try {
            for (auto& d : desired) {
                std::vector<std::vector<sw_str>> vals;
                std::vector<sw_record> recs;
                vals.reserve(d.records.size());
                for (auto& r : d.records) {
                    vals.emplace_back();
                    for (auto& v : r.values) vals.back().push_back(v ? detail::to_sw(*v) : sw_str{nullptr, 0});
                    recs.push_back(sw_record{detail::to_sw(r.key), vals.back().data(), vals.back().size(),
                                             static_cast<uint32_t>(r.state)});
                }
                sw_batch b{sizeof(sw_batch), detail::to_sw(d.entity), static_cast<uint32_t>(d.mode), recs.data(), recs.size()};
                call("diff", [&](sw_error* err) { return hooks().diff(inst_, &b, err); });
            }
            call("diff", [&](sw_error* err) { return hooks().diff(inst_, nullptr, err); });
        } catch (...) {
            done();
            throw;
        }
        done();
        return plans;
    }

    // What the connector reported through the host.
    const std::vector<finding>& findings() const { return s_->findings; }
    const std::vector<log_line>& logs() const { return s_->logs; }
    const std::vector<layout>& layouts() const { return s_->layouts; }
    const std::optional<std::string>& checkpoint() const { return s_->checkpoint; }  // last checkpoint_save
    unsigned permits_acquired() const { return s_->permits; }
    unsigned retry_waits() const { return s_->retry_waits; }
    // The ids the target reported for keys of an entity (as the kernel keeps them).
    const std::map<std::string, std::string>& target_ids(const std::string& entity_name) {
        return s_->target_ids[entity_name];
    }

    // What the host answers: a checkpoint to resume from, a cancelled run.
    void set_checkpoint(std::optional<std::string> token) { s_->checkpoint = std::move(token); }
    void cancel(bool on = true) { s_->cancelled = on; }

private:
    static sw_error fresh_error() {
        sw_error e;
        std::memset(&e, 0, sizeof e);
        e.struct_size = sizeof e;
        return e;
    }
    static std::vector<std::string> names_of(const std::map<std::string, value>& m) {
        std::vector<std::string> out;
        for (auto& kv : m) out.push_back(kv.first);
        return out;
    }
    // Same change, same id (FNV-1a over entity, key, kind, values).
    static std::string content_id(const std::string& entity_name, const change& c, const std::vector<std::string>& text) {
        uint64_t h = 1469598103934665603ull;
        auto mix = [&](std::string_view s) {
            for (unsigned char ch : s) h = (h ^ ch) * 1099511628211ull;
            h = (h ^ 0xff) * 1099511628211ull;
        };
        mix(entity_name);
        mix(c.key);
        mix(std::to_string(c.kind));
        for (auto& t : text) mix(t);
        return detail::hex64(h);
    }
    const sw_hooks& hooks() const { return *s_->conn->hooks; }
    sw_host_ctx* ctx() const { return reinterpret_cast<sw_host_ctx*>(s_.get()); }
    std::vector<std::string> all_entities() {
        std::vector<std::string> out;
        for (auto& e : contract()) out.push_back(e.name);
        return out;
    }
    template <class F>
    void call(const char* hook, F&& f) {
        sw_error err = fresh_error();
        const sw_status st = f(&err);
        if (st != SW_OK) throw failure(hook, st, detail::fixed(err.category, 64), detail::fixed(err.message, 1024));
    }
    std::vector<batch> read(const char* hook, sw_status (*fn)(void*, const sw_str*, size_t, sw_error*),
                            const std::vector<std::string>& entities, bool from_read_state) {
        contract();
        std::vector<std::string> names = entities.empty() ? all_entities() : entities;
        std::vector<sw_str> views;
        for (auto& n : names) views.push_back(detail::to_sw(n));
        std::vector<batch> out;
        s_->records = &out;
        s_->asked = std::set<std::string>(names.begin(), names.end());
        s_->modes.clear();
        s_->problems.clear();
        s_->from_read_state = from_read_state;
        s_->current = detail::state::sink::records;
        sw_error err = fresh_error();
        const sw_status st = fn(inst_, views.data(), views.size(), &err);
        s_->current = detail::state::sink::none;
        s_->records = nullptr;
        if (!s_->problems.empty() && s_->opt.check_contract) throw violation(s_->problems);
        if (st != SW_OK) throw failure(hook, st, detail::fixed(err.category, 64), detail::fixed(err.message, 1024));
        return out;
    }

    std::unique_ptr<detail::state> s_;  // its address is the host ctx: stable
    std::unique_ptr<std::vector<entity>> contract_;
    void* inst_ = nullptr;
};

// The records of one entity across batches, by key. A key emitted twice
// keeps its last record (the kernel reports it as a duplicate).
inline std::map<std::string, record> by_key(const std::vector<batch>& batches, const std::string& entity_name) {
    std::map<std::string, record> out;
    for (auto& b : batches)
        if (b.entity == entity_name)
            for (auto& r : b.records) out[r.key] = r;
    return out;
}

}  // namespace syncwarden::testkit

#endif  // SYNCWARDEN_TESTKIT_HPP
