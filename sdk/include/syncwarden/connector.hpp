// Header-only C++ helper over the Syncwarden C ABI (connector.h).
//
// A connector is a class deriving from syncwarden::sdk::connector plus one
// line:  SW_CONNECTOR(my_class, "name", "1.0.0", SW_CAP_SOURCE, "what it does")
// Every exception thrown by the class is caught at the boundary and turned into
// a status: syncwarden::sdk::error keeps its status, anything else becomes
// SW_INTERNAL with the exception's text.
#ifndef SYNCWARDEN_CONNECTOR_HPP
#define SYNCWARDEN_CONNECTOR_HPP

#include <syncwarden/connector.h>

#include <cstddef>
#include <cstdio>
#include <cstring>
#include <deque>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

// The build id in the manifest. syncwarden_add_connector() defines
// SW_BUILD_ID_STAMP: the id is then 16 placeholder bytes in their own section,
// which the build replaces after the link with a hash of the linked library,
// so it covers every input of the build (sources, every header included,
// static libraries, flags). Define SW_BUILD_ID yourself to set it instead;
// without either it is the compile time.
#if !defined(SW_BUILD_ID) && !defined(SW_BUILD_ID_STAMP)
#define SW_BUILD_ID __DATE__ "T" __TIME__
#endif
#if defined(SW_BUILD_ID_STAMP) && !defined(SW_BUILD_ID)
#define SW_DETAIL_BUILD_ID_DECL                                                                  \
    __attribute__((section(".sw_build_id"), used)) static const char sw_build_id_stamp_[16] = { \
        '@', '@', '@', '@', '@', '@', '@', '@', '@', '@', '@', '@', '@', '@', '@', '@'};
#define SW_DETAIL_BUILD_ID sw_str{sw_build_id_stamp_, 16}
#else
#define SW_DETAIL_BUILD_ID_DECL
#define SW_DETAIL_BUILD_ID ::syncwarden::sdk::detail::lit(SW_BUILD_ID)
#endif

namespace syncwarden::sdk {

inline sw_str to_sw(std::string_view s) { return sw_str{s.data(), s.size()}; }
// ABI 1.4: whether a value is absent (null) rather than the empty string.
// Only fields with SW_FIELD_EMPTY_IS_VALUE tell the two apart; the kernel
// hands every absent value as {NULL, 0}.
inline bool is_null(sw_str s) { return s.ptr == nullptr; }
inline std::string_view from_sw(sw_str s) {
    return s.ptr ? std::string_view(s.ptr, s.len) : std::string_view();
}

// Throw this to fail a hook with a specific status.
class error : public std::runtime_error {
public:
    error(sw_status status, std::string category, const std::string& message,
          uint32_t retry_after_ms = 0)
        : std::runtime_error(message), status_(status), category_(std::move(category)),
          retry_after_ms_(retry_after_ms) {}
    sw_status status() const { return status_; }
    const std::string& category() const { return category_; }
    uint32_t retry_after_ms() const { return retry_after_ms_; }

private:
    sw_status status_;
    std::string category_;
    uint32_t retry_after_ms_;
};

// The kernel's services, as the connector sees them.
// Thread: use from the thread running the current hook.
class host {
public:
    host(const sw_host_api* api, sw_host_ctx* ctx) : api_(api), ctx_(ctx) {}

    void log(sw_log_level level, std::string_view msg) const {
        if (api_->log) api_->log(ctx_, level, to_sw(msg));
    }
    // Throws error(SW_CANCELLED) when the kernel asks to stop.
    void emit(const sw_batch& batch) const { check(api_->emit(ctx_, &batch), "emit"); }
    void emit_changes(const sw_change_batch& batch) const {
        check(api_->emit_changes(ctx_, &batch), "emit_changes");
    }
    void finding(sw_severity severity, std::string_view code, std::string_view entity,
                 std::string_view file, uint64_t line, uint64_t column, std::string_view key,
                 std::string_view message) const {
        sw_finding f{};
        f.struct_size = sizeof f;
        f.severity = severity;
        f.code = to_sw(code);
        f.entity = to_sw(entity);
        f.file = to_sw(file);
        f.line = line;
        f.column = column;
        f.key = to_sw(key);
        f.message = to_sw(message);
        api_->report_finding(ctx_, &f);
    }
    void change_result(size_t index, sw_status status, std::string_view category,
                       std::string_view message) const {
        api_->change_result(ctx_, index, status, to_sw(category), to_sw(message));
    }
    bool cancelled() const { return api_->is_cancelled && api_->is_cancelled(ctx_) != 0; }
    // The setting at a JSON pointer ("/path"), or nothing when absent.
    std::optional<std::string> config(std::string_view pointer) const {
        sw_str out{};
        if (api_->config_get(ctx_, to_sw(pointer), &out) != SW_OK) return std::nullopt;
        return std::string(from_sw(out));
    }
    void checkpoint_save(std::string_view token) const {
        check(api_->checkpoint_save(ctx_, to_sw(token)), "checkpoint_save");
    }
    std::string checkpoint_load() const {
        sw_str out{};
        if (api_->checkpoint_load(ctx_, &out) != SW_OK) return {};
        return std::string(from_sw(out));
    }
    // ABI 1.1: hands the kernel the token of the state just read. A 1.0
    // kernel does not offer the slot; then this does nothing.
    void state_token(std::string_view token) const {
        if (api_->struct_size >= offsetof(sw_host_api, state_token) + sizeof api_->state_token &&
            api_->state_token)
            api_->state_token(ctx_, to_sw(token));
    }

    // ABI 1.2: waits for `permits` from the job's rate limit for this
    // target; call it before each request to the vendor. Throws the
    // cancelled error when the run is stopping. Does nothing in an older kernel.
    void acquire(uint32_t permits = 1) const {
        if (api_->struct_size >= offsetof(sw_host_api, acquire) + sizeof api_->acquire && api_->acquire)
            check(api_->acquire(ctx_, permits), "acquire");
    }

    // ABI 1.3: tells the kernel what the source read for `entity`: where,
    // and its columns as they were there. Does nothing in an older kernel.
    void layout(std::string_view entity, std::string_view file, const std::vector<std::string_view>& columns) const {
        if (api_->struct_size < offsetof(sw_host_api, report_layout) + sizeof api_->report_layout ||
            !api_->report_layout)
            return;
        std::vector<sw_str> cols;
        cols.reserve(columns.size());
        for (auto c : columns) cols.push_back(to_sw(c));
        sw_layout l{sizeof(sw_layout), to_sw(entity), to_sw(file), cols.data(), cols.size()};
        api_->report_layout(ctx_, &l);
    }

    // ABI 1.4, from apply (SW_CAP_TARGET_IDS): change `index` of the current
    // batch is the record the target knows by `id`. Does nothing in an
    // older kernel.
    void target_id(size_t index, std::string_view id) const {
        if (api_->struct_size >= offsetof(sw_host_api, target_id) + sizeof api_->target_id && api_->target_id)
            api_->target_id(ctx_, index, to_sw(id));
    }

    // ABI 1.4: after a transient answer to a request the connector sends
    // again itself (a page of a read): true once the kernel waited its
    // backoff, false when its retry policy gives up (or the kernel is
    // older). Throws the cancelled error when the run is stopping.
    bool retry_wait(uint32_t attempt, uint32_t retry_after_ms = 0) const {
        if (api_->struct_size < offsetof(sw_host_api, retry_wait) + sizeof api_->retry_wait || !api_->retry_wait)
            return false;
        const sw_status s = api_->retry_wait(ctx_, attempt, retry_after_ms);
        if (s == SW_CANCELLED) throw error(SW_CANCELLED, "cancelled", "run cancelled");
        return s == SW_OK;
    }

private:
    static void check(sw_status s, const char* what) {
        if (s == SW_CANCELLED) throw error(SW_CANCELLED, "cancelled", "run cancelled");
        if (s != SW_OK)
            throw error(s, "host", std::string("the kernel refused ") + what);
    }
    const sw_host_api* api_;
    sw_host_ctx* ctx_;
};

// Builds a contract and owns its storage for the life of the connector.
class contract_builder {
public:
    contract_builder& entity(std::string name, std::string key_name) {
        entities_.push_back({std::move(name), std::move(key_name), {}});
        return *this;
    }
    contract_builder& field(std::string name, sw_field_type type = SW_TYPE_STRING,
                            uint32_t flags = 0) {
        entities_.back().fields.push_back({std::move(name), type, flags});
        return *this;
    }
    // ABI 1.3: the values the last field may hold (exact, case included),
    // and a prefix that marks allowed extension values ("ext:").
    contract_builder& one_of(std::vector<std::string> values, std::string extension_prefix = {}) {
        auto& e = entities_.back();
        enums_.push_back({e.name, e.fields.back().name, std::move(values), std::move(extension_prefix)});
        return *this;
    }
    // ABI 1.4: how the kernel's diff compares the last field
    // (SW_COMPARE_*), and SW_POLICY_UNORDERED for a list compared as a set.
    contract_builder& compare(sw_compare how, uint32_t flags = 0) {
        auto& e = entities_.back();
        policies_.push_back({e.name, e.fields.back().name, how, flags});
        return *this;
    }
    // ABI 1.4: the last entity refers to records of `entity`, which the
    // kernel then applies first and deletes last.
    contract_builder& depends_on(std::string entity) {
        dependencies_.push_back({entities_.back().name, std::move(entity)});
        return *this;
    }
    const sw_contract& build() {
        field_defs_.clear();
        entity_defs_.clear();
        field_defs_.resize(entities_.size());
        for (size_t e = 0; e < entities_.size(); ++e) {
            for (auto& f : entities_[e].fields)
                field_defs_[e].push_back({sizeof(sw_field_def), to_sw(f.name), f.type, f.flags});
            entity_defs_.push_back({sizeof(sw_entity_def), to_sw(entities_[e].name),
                                    to_sw(entities_[e].key_name), field_defs_[e].data(),
                                    field_defs_[e].size()});
        }
        value_strs_.clear();
        enum_defs_.clear();
        for (auto& en : enums_) {
            value_strs_.emplace_back();
            for (auto& v : en.values) value_strs_.back().push_back(to_sw(v));
        }
        for (size_t i = 0; i < enums_.size(); ++i)
            enum_defs_.push_back({sizeof(sw_enum_def), to_sw(enums_[i].entity), to_sw(enums_[i].field),
                                  value_strs_[i].data(), value_strs_[i].size(), to_sw(enums_[i].prefix)});
        policy_defs_.clear();
        for (auto& p : policies_)
            policy_defs_.push_back({sizeof(sw_field_policy), to_sw(p.entity), to_sw(p.field),
                                    static_cast<uint32_t>(p.how), p.flags});
        dependency_defs_.clear();
        for (auto& d : dependencies_)
            dependency_defs_.push_back({sizeof(sw_dependency), to_sw(d.first), to_sw(d.second)});
        contract_ = {sizeof(sw_contract),
                     entity_defs_.data(),
                     entity_defs_.size(),
                     enum_defs_.empty() ? nullptr : enum_defs_.data(),
                     enum_defs_.size(),
                     policy_defs_.empty() ? nullptr : policy_defs_.data(),
                     policy_defs_.size(),
                     dependency_defs_.empty() ? nullptr : dependency_defs_.data(),
                     dependency_defs_.size()};
        return contract_;
    }

private:
    struct field_spec { std::string name; sw_field_type type; uint32_t flags; };
    struct entity_spec { std::string name, key_name; std::vector<field_spec> fields; };
    std::deque<entity_spec> entities_;
    std::vector<std::vector<sw_field_def>> field_defs_;
    std::vector<sw_entity_def> entity_defs_;
    struct enum_spec { std::string entity, field; std::vector<std::string> values; std::string prefix; };
    std::deque<enum_spec> enums_;
    std::deque<std::vector<sw_str>> value_strs_;
    std::vector<sw_enum_def> enum_defs_;
    struct policy_spec { std::string entity, field; sw_compare how; uint32_t flags; };
    std::deque<policy_spec> policies_;
    std::vector<sw_field_policy> policy_defs_;
    std::deque<std::pair<std::string, std::string>> dependencies_;
    std::vector<sw_dependency> dependency_defs_;
    sw_contract contract_{};
};

// ABI 1.4 lists (SW_TYPE_ITEMS): the items of a value, and a value made of
// items. An item is never empty; join_items skips empty ones.
inline std::vector<std::string_view> split_items(std::string_view v) {
    std::vector<std::string_view> out;
    size_t pos = 0;
    while (pos < v.size()) {
        size_t end = v.find(SW_ITEM_SEP, pos);
        if (end == std::string_view::npos) end = v.size();
        if (end > pos) out.push_back(v.substr(pos, end - pos));
        pos = end + 1;
    }
    return out;
}
// The items are views into `v`: a temporary string would leave them
// dangling, so that call does not compile. Keep the value in a variable.
std::vector<std::string_view> split_items(std::string&& v) = delete;
template <class Items>
std::string join_items(const Items& items) {
    std::string out;
    for (const auto& item : items) {
        std::string_view i(item);
        if (i.empty()) continue;
        if (!out.empty()) out += SW_ITEM_SEP;
        out += i;
    }
    return out;
}

// Collects records and emits them in batches of `batch_size`.
class batch_writer {
public:
    batch_writer(const host& h, std::string entity, sw_batch_mode mode, size_t batch_size = 4096)
        : host_(h), entity_(std::move(entity)), mode_(mode), batch_size_(batch_size) {}
    ~batch_writer() = default;

    void add(std::string_view key, const std::vector<std::string>& values,
             sw_record_state state = SW_RECORD_ACTIVE) {
        pending_.push_back({std::string(key), values, state, {}});
        if (pending_.size() >= batch_size_) flush();
    }
    // ABI 1.4: for fields with SW_FIELD_EMPTY_IS_VALUE, std::nullopt is
    // absent and "" the empty string (other fields read both as absent).
    // (A name of its own: an overload of add() would make add(key, {"a", "b"})
    // ambiguous in connectors written before it.)
    void add_nullable(std::string_view key, const std::vector<std::optional<std::string>>& values,
                      sw_record_state state = SW_RECORD_ACTIVE) {
        pending p{std::string(key), {}, state, std::vector<bool>(values.size())};
        for (size_t i = 0; i < values.size(); ++i) {
            p.values.push_back(values[i].value_or(std::string()));
            p.nulls[i] = !values[i];
        }
        pending_.push_back(std::move(p));
        if (pending_.size() >= batch_size_) flush();
    }
    // Emits what is pending. The first flush emits even an empty batch: it
    // tells the kernel the entity is present (and, in bulk mode, empty). An
    // entity with no batch at all is one the source says nothing about.
    void flush() {
        if (pending_.empty() && emitted_) return;
        emitted_ = true;
        std::vector<std::vector<sw_str>> vals(pending_.size());
        std::vector<sw_record> recs(pending_.size());
        for (size_t i = 0; i < pending_.size(); ++i) {
            const auto& p = pending_[i];
            for (size_t k = 0; k < p.values.size(); ++k)
                vals[i].push_back(k < p.nulls.size() && p.nulls[k] ? sw_str{nullptr, 0} : to_sw(p.values[k]));
            recs[i] = {to_sw(pending_[i].key), vals[i].data(), vals[i].size(),
                       static_cast<uint32_t>(pending_[i].state)};
        }
        sw_batch b{sizeof(sw_batch), to_sw(entity_), static_cast<uint32_t>(mode_), recs.data(),
                   recs.size()};
        std::vector<pending> sent;
        sent.swap(pending_);  // the batch points into `sent`; keep it alive through emit
        host_.emit(b);
    }

private:
    struct pending {
        std::string key;
        std::vector<std::string> values;
        sw_record_state state;
        std::vector<bool> nulls;  // per value: absent (only from the optional overload)
    };
    const host& host_;
    std::string entity_;
    sw_batch_mode mode_;
    size_t batch_size_;
    bool emitted_ = false;
    std::vector<pending> pending_;
};

namespace detail {
template <class T>
struct thunks;
}

// How many times the changes of this batch were sent (1 = first time); 1
// from a kernel older than ABI 1.2.
inline uint32_t attempt_of(const sw_change_batch& b) {
    return b.struct_size >= offsetof(sw_change_batch, attempt) + sizeof b.attempt && b.attempt ? b.attempt : 1;
}

// ABI 1.4 (SW_CAP_TARGET_IDS): the id the kernel holds for change k's key,
// or empty when it holds none (or the kernel is older).
inline std::string_view target_id_of(const sw_change_batch& b, size_t k) {
    if (b.struct_size < offsetof(sw_change_batch, target_ids) + sizeof b.target_ids || !b.target_ids ||
        k >= b.change_count)
        return {};
    return from_sw(b.target_ids[k]);
}

// Base class of a C++ connector. Override what the capabilities declare.
class connector {
public:
    connector(const host& h, const sw_create_args& args)
        : host_(h), settings_json_(from_sw(args.settings_json)), job_name_(from_sw(args.job_name)),
          base_dir_(from_sw(args.base_dir)) {}
    virtual ~connector() = default;

    virtual const sw_contract& contract() = 0;
    virtual void extract(const std::vector<std::string>& /*entities*/) { not_offered("extract"); }
    virtual void read_state(const std::vector<std::string>& /*entities*/) { not_offered("read_state"); }
    virtual void diff(const sw_batch* /*desired*/) { not_offered("diff"); }
    virtual void apply(const sw_change_batch& /*batch*/) { not_offered("apply"); }
    virtual void commit() {}
    // SW_CAP_STATE_TOKEN: report the current state token with
    // host_api().state_token(), without emitting records.
    virtual void state_token(const std::vector<std::string>& /*entities*/) { not_offered("state_token"); }
    // ABI 1.2: the run ends without commit; drop what apply accepted.
    virtual void abort() {}
    // ABI 1.2, targets: the system this instance writes (a folder's real
    // path, a base URL), so two jobs writing it never apply at once. Empty:
    // the kernel uses the connector's name and settings.
    virtual std::string system_id() { return {}; }

protected:
    const host& host_api() const { return host_; }
    const std::string& settings_json() const { return settings_json_; }
    const std::string& job_name() const { return job_name_; }
    const std::string& base_dir() const { return base_dir_; }

private:
    [[noreturn]] static void not_offered(const char* hook) {
        throw error(SW_INTERNAL, "not_offered", std::string(hook) + " is not implemented");
    }
    template <class T>
    friend struct detail::thunks;
    host host_;
    std::string settings_json_, job_name_, base_dir_;
    std::string system_id_;  // what the system_id hook handed out: valid until destroy
};

namespace detail {

inline void fill_error(sw_error* err, sw_status, const std::string& category,
                       const std::string& message, uint32_t retry_after_ms) {
    if (!err || err->struct_size < sizeof(sw_error)) return;
    std::snprintf(err->category, sizeof err->category, "%s", category.c_str());
    std::snprintf(err->message, sizeof err->message, "%s", message.c_str());
    err->retry_after_ms = retry_after_ms;
}

// Runs f, turning every exception into a status.
template <class F>
sw_status guard(sw_error* err, F&& f) noexcept {
    try {
        f();
        return SW_OK;
    } catch (const error& e) {
        fill_error(err, e.status(), e.category(), e.what(), e.retry_after_ms());
        return e.status();
    } catch (const std::exception& e) {
        fill_error(err, SW_INTERNAL, "exception", e.what(), 0);
        return SW_INTERNAL;
    } catch (...) {
        fill_error(err, SW_INTERNAL, "exception", "unknown exception", 0);
        return SW_INTERNAL;
    }
}

inline std::vector<std::string> to_strings(const sw_str* items, size_t count) {
    std::vector<std::string> out;
    for (size_t i = 0; i < count; ++i) out.emplace_back(from_sw(items[i]));
    return out;
}

template <class T>
struct thunks {
    static sw_status create(const sw_host_api* api, sw_host_ctx* ctx, const sw_create_args* args,
                            void** out, sw_error* err) {
        return guard(err, [&] { *out = new T(host(api, ctx), *args); });
    }
    static void destroy(void* inst) noexcept {
        try { delete static_cast<T*>(inst); } catch (...) {}
    }
    static sw_status contract(void* inst, const sw_contract** out, sw_error* err) {
        return guard(err, [&] { *out = &static_cast<T*>(inst)->contract(); });
    }
    static sw_status extract(void* inst, const sw_str* entities, size_t n, sw_error* err) {
        return guard(err, [&] { static_cast<T*>(inst)->extract(to_strings(entities, n)); });
    }
    static sw_status read_state(void* inst, const sw_str* entities, size_t n, sw_error* err) {
        return guard(err, [&] { static_cast<T*>(inst)->read_state(to_strings(entities, n)); });
    }
    static sw_status diff(void* inst, const sw_batch* desired, sw_error* err) {
        return guard(err, [&] { static_cast<T*>(inst)->diff(desired); });
    }
    static sw_status apply(void* inst, const sw_change_batch* batch, sw_error* err) {
        return guard(err, [&] { static_cast<T*>(inst)->apply(*batch); });
    }
    static sw_status commit(void* inst, sw_error* err) {
        return guard(err, [&] { static_cast<T*>(inst)->commit(); });
    }
    static sw_status state_token(void* inst, const sw_str* entities, size_t n, sw_error* err) {
        return guard(err, [&] { static_cast<T*>(inst)->state_token(to_strings(entities, n)); });
    }
    static void abort(void* inst) noexcept {
        try { static_cast<T*>(inst)->abort(); } catch (...) {}
    }
    static sw_status system_id(void* inst, sw_str* out, sw_error* err) {
        return guard(err, [&] {
            T* t = static_cast<T*>(inst);
            t->system_id_ = t->system_id();
            *out = sw_str{t->system_id_.data(), t->system_id_.size()};
        });
    }
};

// A connector class may declare `static const char* settings_schema()`
// returning its settings' JSON Schema; the manifest carries it.
template <class T, class = void>
struct has_settings_schema : std::false_type {};
template <class T>
struct has_settings_schema<T, std::void_t<decltype(T::settings_schema())>> : std::true_type {};

template <class T>
inline sw_str settings_schema_of() {
    if constexpr (has_settings_schema<T>::value) {
        const char* s = T::settings_schema();
        return sw_str{s, std::char_traits<char>::length(s)};
    } else {
        return sw_str{nullptr, 0};
    }
}

template <class T>
constexpr sw_hooks make_hooks(uint32_t caps) {
    return sw_hooks{sizeof(sw_hooks),
                    &thunks<T>::create,
                    &thunks<T>::destroy,
                    &thunks<T>::contract,
                    (caps & SW_CAP_SOURCE) ? &thunks<T>::extract : nullptr,
                    (caps & SW_CAP_TARGET) ? &thunks<T>::read_state : nullptr,
                    (caps & SW_CAP_CUSTOM_DIFF) ? &thunks<T>::diff : nullptr,
                    (caps & SW_CAP_TARGET) ? &thunks<T>::apply : nullptr,
                    &thunks<T>::commit,
                    (caps & SW_CAP_STATE_TOKEN) ? &thunks<T>::state_token : nullptr,
                    (caps & SW_CAP_TARGET) ? &thunks<T>::abort : nullptr,
                    (caps & SW_CAP_TARGET) ? &thunks<T>::system_id : nullptr};
}

constexpr sw_str lit(const char* s) { return sw_str{s, std::char_traits<char>::length(s)}; }

}  // namespace detail
}  // namespace syncwarden::sdk

// Declares the connector's manifest and hook table and exports the entry
// symbol. Use once per shared library, at namespace scope.
#define SW_CONNECTOR(CLASS, NAME, VERSION, CAPS, DESCRIPTION)                                  \
    extern "C" SW_EXPORT const sw_connector* sw_connector_entry(void) {                        \
        SW_DETAIL_BUILD_ID_DECL                                                               \
        static const sw_manifest manifest = {                                                 \
            sizeof(sw_manifest),                                                              \
            ::syncwarden::sdk::detail::lit(NAME),                                             \
            ::syncwarden::sdk::detail::lit(VERSION),                                          \
            SW_DETAIL_BUILD_ID,                                                               \
            ::syncwarden::sdk::detail::lit(DESCRIPTION),                                      \
            (CAPS),                                                                           \
            SW_THREAD_INSTANCE,                                                               \
            ::syncwarden::sdk::detail::settings_schema_of<CLASS>()};                          \
        static const sw_hooks hooks = ::syncwarden::sdk::detail::make_hooks<CLASS>(CAPS);     \
        static const sw_connector connector = {sizeof(sw_connector), SW_ABI_MAJOR,            \
                                               SW_ABI_MINOR, &manifest, &hooks};              \
        return &connector;                                                                    \
    }

#endif  // SYNCWARDEN_CONNECTOR_HPP
