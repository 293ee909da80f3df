#include <syncwarden/kernel/log.hpp>
#include <syncwarden/kernel/session.hpp>
#include <syncwarden/kernel/text.hpp>

#include "hook_call.hpp"
#include "settings_schema.hpp"

#include <cstring>
#include <map>

// The kernel's side of the opaque sw_host_ctx. The sink pointers are set only
// while a hook runs (see scoped_sinks); between hooks, and during destroy,
// they are null and every host call is a harmless no-op.
struct sw_host_ctx {
    std::string who;
    nlohmann::json settings;
    std::map<std::string, std::string> config_values;  // owns what config_get returned
    std::string checkpoint_buf;                        // owns what checkpoint_load returned
    syncwarden::kernel::run_services* services = nullptr;
    syncwarden::kernel::record_sink* records = nullptr;
    syncwarden::kernel::change_sink* changes = nullptr;
    syncwarden::kernel::result_sink* results = nullptr;
    std::optional<std::string>* token = nullptr;  // where state_token writes, when offered
};

namespace syncwarden::kernel {
namespace {


// Host slots: each catches everything, so nothing the kernel does can throw
// into connector code.
void host_log(sw_host_ctx* ctx, uint32_t level, sw_str msg) noexcept {
    try {
        log_connector(ctx ? ctx->who : "", level, view(msg));
    } catch (...) {}
}
sw_status host_emit(sw_host_ctx* ctx, const sw_batch* b) noexcept {
    try {
        if (!ctx || !ctx->records) return SW_INTERNAL;
        if (!b) return SW_SCHEMA;
        return ctx->records->on_records(*b);
    } catch (...) {
        return SW_INTERNAL;
    }
}
void host_finding(sw_host_ctx* ctx, const sw_finding* f) noexcept {
    try {
        if (ctx && f && f->struct_size >= sizeof(sw_finding) && ctx->services) ctx->services->on_finding(*f);
    } catch (...) {}
}
void host_change_result(sw_host_ctx* ctx, size_t index, sw_status s, sw_str cat, sw_str msg) noexcept {
    try {
        if (ctx && ctx->results) ctx->results->on_result(index, s, view(cat), view(msg));
    } catch (...) {}
}
sw_status host_checkpoint_save(sw_host_ctx* ctx, sw_str token) noexcept {
    try {
        if (!ctx || !ctx->services) return SW_INTERNAL;
        return ctx->services->checkpoint_save(view(token));
    } catch (...) {
        return SW_INTERNAL;
    }
}
sw_status host_checkpoint_load(sw_host_ctx* ctx, sw_str* out) noexcept {
    try {
        if (!ctx || !out || !ctx->services) return SW_INTERNAL;
        ctx->checkpoint_buf = ctx->services->checkpoint_load().value_or("");
        *out = sw_str{ctx->checkpoint_buf.data(), ctx->checkpoint_buf.size()};
        return SW_OK;
    } catch (...) {
        return SW_INTERNAL;
    }
}
int host_is_cancelled(sw_host_ctx* ctx) noexcept {
    try {
        return ctx && ctx->services && ctx->services->cancelled() ? 1 : 0;
    } catch (...) {
        return 0;
    }
}
sw_status host_config_get(sw_host_ctx* ctx, sw_str pointer, sw_str* out) noexcept {
    if (!ctx) return SW_INTERNAL;
    return settings_value(ctx->settings, ctx->config_values, pointer, out);
}
sw_status host_emit_changes(sw_host_ctx* ctx, const sw_change_batch* b) noexcept {
    try {
        if (!ctx || !ctx->changes) return SW_INTERNAL;
        if (!b) return SW_SCHEMA;
        return ctx->changes->on_changes(*b);
    } catch (...) {
        return SW_INTERNAL;
    }
}
void host_state_token(sw_host_ctx* ctx, sw_str token) noexcept {
    try {
        if (ctx && ctx->token) *ctx->token = std::string(view(token));
    } catch (...) {}
}
sw_status host_acquire(sw_host_ctx* ctx, uint32_t permits) noexcept {
    try {
        if (!ctx || !ctx->services) return SW_INTERNAL;
        return ctx->services->acquire(permits);
    } catch (...) {
        return SW_INTERNAL;
    }
}

void host_layout(sw_host_ctx* ctx, const sw_layout* l) noexcept {
    try {
        if (!ctx || !ctx->services || !l || l->struct_size < sizeof(sw_layout)) return;
        if (l->column_count > 100000 || (l->column_count && !l->columns)) return;
        std::vector<std::string> cols;
        for (size_t i = 0; i < l->column_count; ++i) cols.emplace_back(view(l->columns[i]));
        ctx->services->on_layout(std::string(view(l->entity)), std::string(view(l->file)), std::move(cols));
    } catch (...) {}
}

void host_target_id(sw_host_ctx* ctx, size_t index, sw_str id) noexcept {
    try {
        if (!ctx || !ctx->results || (id.len && !id.ptr)) return;
        const bool too_long = id.len > k_max_target_id;
        ctx->results->on_target_id(index, std::string_view(id.ptr ? id.ptr : "", too_long ? k_max_target_id : id.len),
                                   too_long);
    } catch (...) {}
}

sw_status host_retry_wait(sw_host_ctx* ctx, uint32_t attempt, uint32_t retry_after_ms) noexcept {
    try {
        if (!ctx || !ctx->services) return SW_RETRYABLE;
        return ctx->services->retry_wait(attempt, retry_after_ms);
    } catch (...) {
        return SW_INTERNAL;
    }
}

const sw_host_api k_host = {sizeof(sw_host_api), SW_ABI_MAJOR, SW_ABI_MINOR, host_log, host_emit,
                            host_finding, host_change_result, host_checkpoint_save,
                            host_checkpoint_load, host_is_cancelled, host_config_get,
                            host_emit_changes, host_state_token, host_acquire, host_layout,
                            host_target_id, host_retry_wait};

class null_services final : public run_services {
public:
    void on_finding(const sw_finding&) override {}
    sw_status checkpoint_save(std::string_view) override { return SW_OK; }
    std::optional<std::string> checkpoint_load() override { return std::nullopt; }
};

// Points the context at this call's sinks, and at nothing once it returns.
class scoped_sinks {
public:
    scoped_sinks(sw_host_ctx& ctx, run_services& rs) : ctx_(ctx) { ctx_.services = &rs; }
    ~scoped_sinks() {
        ctx_.services = nullptr;
        ctx_.records = nullptr;
        ctx_.changes = nullptr;
        ctx_.results = nullptr;
        ctx_.token = nullptr;
    }
    scoped_sinks(const scoped_sinks&) = delete;
    scoped_sinks& operator=(const scoped_sinks&) = delete;

private:
    sw_host_ctx& ctx_;
};

std::string fixed_text(const char* buf, size_t n) { return std::string(buf, strnlen(buf, n)); }

class in_process_session final : public connector_session {
public:
    in_process_session(std::shared_ptr<const loaded_connector> lib, std::unique_ptr<sw_host_ctx> ctx)
        : lib_(std::move(lib)), ctx_(std::move(ctx)) {}
    ~in_process_session() override {
        if (instance_) {
            try { lib_->hooks().destroy(instance_); } catch (...) {}
        }
    }

    Status create(const std::string& job_name, const std::filesystem::path& base_dir, run_services& rs) {
        std::string json_text = ctx_->settings.dump(), base = base_dir.string();
        sw_create_args args{sizeof(sw_create_args), {json_text.data(), json_text.size()},
                            {job_name.data(), job_name.size()}, {base.data(), base.size()}};
        sw_error err;
        void* inst = nullptr;
        scoped_sinks bind(*ctx_, rs);
        auto st = call("create", err, [&] { return lib_->hooks().create(&k_host, ctx_.get(), &args, &inst, &err); });
        if (st != SW_OK) return to_status("create", st, err, error_kind::config);
        if (!inst)
            return Status::error(error_kind::connector, who() + ": create returned ok but no instance; fix the connector");
        instance_ = inst;
        return Status::ok();
    }

    const connector_info& info() const override { return lib_->info(); }
    const std::string& who() const override { return ctx_->who; }
    bool has_diff() const override { return lib_->hooks().diff != nullptr; }
    bool has_state_token() const override { return lib_->hooks().state_token != nullptr; }

    Result<contract_schema> contract(run_services& rs) override {
        sw_error err;
        const sw_contract* c = nullptr;
        scoped_sinks bind(*ctx_, rs);
        auto st = call("contract", err, [&] { return lib_->hooks().contract(instance_, &c, &err); });
        if (st != SW_OK) return to_status("contract", st, err, error_kind::connector);
        return copy_contract(c, who());
    }

    Status extract(const std::vector<std::string>& entities, record_sink& out, run_services& rs) override {
        scoped_sinks bind(*ctx_, rs);
        ctx_->records = &out;
        return entities_hook("extract", lib_->hooks().extract, entities, error_kind::input);
    }

    Result<std::optional<std::string>> read_state(const std::vector<std::string>& entities, record_sink& out,
                                                  run_services& rs) override {
        std::optional<std::string> token;
        scoped_sinks bind(*ctx_, rs);
        ctx_->records = &out;
        ctx_->token = &token;
        if (auto s = entities_hook("read_state", lib_->hooks().read_state, entities, error_kind::target); !s) return s;
        return token;
    }

    Result<std::optional<std::string>> state_token(const std::vector<std::string>& entities,
                                                   run_services& rs) override {
        std::optional<std::string> token;
        if (!has_state_token()) return token;
        scoped_sinks bind(*ctx_, rs);
        ctx_->token = &token;
        if (auto s = entities_hook("state_token", lib_->hooks().state_token, entities, error_kind::target); !s)
            return s;
        return token;
    }

    Status diff(const sw_batch* desired, change_sink& out, run_services& rs) override {
        sw_error err;
        scoped_sinks bind(*ctx_, rs);
        ctx_->changes = &out;
        auto st = call("diff", err, [&] { return lib_->hooks().diff(instance_, desired, &err); });
        return to_status("diff", st, err, error_kind::target);
    }

    hook_error apply(const sw_change_batch& batch, result_sink& out, run_services& rs) override {
        sw_error err;
        scoped_sinks bind(*ctx_, rs);
        ctx_->results = &out;
        auto st = call("apply", err, [&] { return lib_->hooks().apply(instance_, &batch, &err); });
        return {st, fixed_text(err.category, sizeof err.category), fixed_text(err.message, sizeof err.message), false,
                st == SW_THROTTLED ? err.retry_after_ms : 0};
    }

    hook_error commit(run_services& rs) override {
        if (!lib_->hooks().commit) return {};
        sw_error err;
        scoped_sinks bind(*ctx_, rs);
        auto st = call("commit", err, [&] { return lib_->hooks().commit(instance_, &err); });
        return {st, fixed_text(err.category, sizeof err.category), fixed_text(err.message, sizeof err.message)};
    }

    void abort(run_services& rs) override {
        if (!lib_->hooks().abort) return;
        scoped_sinks bind(*ctx_, rs);
        try { lib_->hooks().abort(instance_); } catch (...) {}
    }

    Result<std::string> system_id(run_services& rs) override {
        if (!lib_->hooks().system_id) return std::string();
        sw_error err;
        sw_str out{nullptr, 0};
        scoped_sinks bind(*ctx_, rs);
        auto st = call("system_id", err, [&] { return lib_->hooks().system_id(instance_, &out, &err); });
        if (st != SW_OK) return to_status("system_id", st, err, error_kind::target);
        return std::string(view(out));
    }

private:
    template <class F>
    sw_status call(const char* hook, sw_error& err, F&& f) {
        return call_hook(hook, err, std::forward<F>(f));
    }

    Status to_status(const char* hook, sw_status s, const sw_error& err, error_kind schema_kind) const {
        if (s == SW_OK) return Status::ok();
        error_kind k = error_kind::connector;
        if (s == SW_CONFIG) k = error_kind::config;
        else if (s == SW_SCHEMA) k = schema_kind;
        std::string msg = fixed_text(err.message, sizeof err.message);
        if (msg.empty()) msg = "no message";
        std::string cat = fixed_text(err.category, sizeof err.category);
        return Status::error(k, who() + ": " + hook + " failed (" + status_name(s) + (cat.empty() ? "" : ", " + cat) +
                                    "): " + msg);
    }

    using entities_fn = sw_status (*)(void*, const sw_str*, size_t, sw_error*);
    Status entities_hook(const char* hook, entities_fn fn, const std::vector<std::string>& entities,
                         error_kind schema_kind) {
        std::vector<sw_str> names;
        for (auto& e : entities) names.push_back({e.data(), e.size()});
        sw_error err;
        auto st = call(hook, err, [&] { return fn(instance_, names.data(), names.size(), &err); });
        return to_status(hook, st, err, schema_kind);
    }

    std::shared_ptr<const loaded_connector> lib_;
    std::unique_ptr<sw_host_ctx> ctx_;
    void* instance_ = nullptr;
};

}  // namespace

run_services& no_services() {
    static null_services s;
    return s;
}

const char* status_name(sw_status s) {
    switch (s) {
        case SW_OK: return "ok";
        case SW_RETRYABLE: return "retryable";
        case SW_THROTTLED: return "throttled";
        case SW_PERMANENT: return "permanent";
        case SW_CONFIG: return "config";
        case SW_AUTH: return "auth";
        case SW_SCHEMA: return "schema";
        case SW_INTERNAL: return "internal";
        case SW_CANCELLED: return "cancelled";
    }
    return "unknown";
}

Result<std::unique_ptr<connector_session>> open_in_process(std::shared_ptr<const loaded_connector> lib,
                                                           const nlohmann::json& settings,
                                                           const std::string& job_name,
                                                           const std::filesystem::path& base_dir,
                                                           run_services& rs, const std::string& settings_path) {
    auto ctx = std::make_unique<sw_host_ctx>();
    ctx->who = lib->info().name + " " + lib->info().version;
    if (!lib->info().settings_schema.empty())
        if (auto st = validate_settings(lib->info().settings_schema, settings, settings_path, ctx->who); !st)
            return st;
    ctx->settings = settings;
    auto s = std::make_unique<in_process_session>(std::move(lib), std::move(ctx));
    if (auto st = s->create(job_name, base_dir, rs); !st) return st;
    return std::unique_ptr<connector_session>(std::move(s));
}

}  // namespace syncwarden::kernel
