#include <syncwarden/kernel/log.hpp>
#include <syncwarden/kernel/session.hpp>

#include <cstring>

namespace syncwarden::kernel {
namespace {

std::string_view view(sw_str s) { return s.ptr ? std::string_view(s.ptr, s.len) : std::string_view(); }

// Host slots: each catches everything, so nothing the kernel does can throw
// into connector code.
void host_log(sw_host_ctx* ctx, uint32_t level, sw_str msg) noexcept {
    try {
        log_connector(ctx ? ctx->who : "", level, view(msg));
    } catch (...) {}
}
sw_status host_emit(sw_host_ctx* ctx, const sw_batch* b) noexcept {
    try {
        if (!ctx || !ctx->on_emit) return SW_INTERNAL;
        if (ctx->cancelled) return SW_CANCELLED;
        if (!b) return SW_SCHEMA;
        return ctx->on_emit(*b);
    } catch (...) {
        return SW_INTERNAL;
    }
}
void host_finding(sw_host_ctx* ctx, const sw_finding* f) noexcept {
    try {
        if (ctx && f && f->struct_size >= sizeof(sw_finding) && ctx->on_finding) ctx->on_finding(*f);
    } catch (...) {}
}
void host_change_result(sw_host_ctx* ctx, size_t index, sw_status s, sw_str cat, sw_str msg) noexcept {
    try {
        if (ctx && ctx->on_result) ctx->on_result(index, s, view(cat), view(msg));
    } catch (...) {}
}
sw_status host_checkpoint_save(sw_host_ctx* ctx, sw_str token) noexcept {
    try {
        if (!ctx || !ctx->on_checkpoint_save) return SW_INTERNAL;
        return ctx->on_checkpoint_save(std::string(view(token)));
    } catch (...) {
        return SW_INTERNAL;
    }
}
sw_status host_checkpoint_load(sw_host_ctx* ctx, sw_str* out) noexcept {
    try {
        if (!ctx || !out) return SW_INTERNAL;
        ctx->checkpoint_buf = ctx->on_checkpoint_load ? ctx->on_checkpoint_load() : std::string();
        *out = sw_str{ctx->checkpoint_buf.data(), ctx->checkpoint_buf.size()};
        return SW_OK;
    } catch (...) {
        return SW_INTERNAL;
    }
}
int host_is_cancelled(sw_host_ctx* ctx) noexcept { return ctx && ctx->cancelled ? 1 : 0; }
sw_status host_config_get(sw_host_ctx* ctx, sw_str pointer, sw_str* out) noexcept {
    try {
        if (!ctx || !out) return SW_INTERNAL;
        std::string p(view(pointer));
        auto it = ctx->config_values.find(p);
        if (it == ctx->config_values.end()) {
            nlohmann::json::json_pointer jp(p);
            if (!ctx->settings.contains(jp)) return SW_CONFIG;
            const auto& v = ctx->settings.at(jp);
            it = ctx->config_values.emplace(p, v.is_string() ? v.get<std::string>() : v.dump()).first;
        }
        *out = sw_str{it->second.data(), it->second.size()};
        return SW_OK;
    } catch (...) {
        return SW_CONFIG;  // not a valid JSON pointer
    }
}
sw_status host_emit_changes(sw_host_ctx* ctx, const sw_change_batch* b) noexcept {
    try {
        if (!ctx || !ctx->on_changes) return SW_INTERNAL;
        if (!b) return SW_SCHEMA;
        return ctx->on_changes(*b);
    } catch (...) {
        return SW_INTERNAL;
    }
}

const sw_host_api k_host = {sizeof(sw_host_api), SW_ABI_MAJOR, SW_ABI_MINOR, host_log, host_emit,
                            host_finding, host_change_result, host_checkpoint_save,
                            host_checkpoint_load, host_is_cancelled, host_config_get,
                            host_emit_changes};

std::string err_text(const sw_error& e, size_t n) {
    return std::string(e.message, strnlen(e.message, n));
}

}  // namespace

const sw_host_api& host_api_table() { return k_host; }

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

template <class F>
sw_status connector_session::call(const char* hook, sw_error& err, F&& f) {
    std::memset(&err, 0, sizeof err);
    err.struct_size = sizeof err;
    try {
        auto s = static_cast<sw_status>(f());
        if (s > SW_CANCELLED) {
            std::snprintf(err.message, sizeof err.message, "%s returned status %u, which is not a sw_status",
                          hook, static_cast<unsigned>(s));
            return SW_INTERNAL;
        }
        return s;
    } catch (const std::exception& e) {
        std::snprintf(err.category, sizeof err.category, "exception");
        std::snprintf(err.message, sizeof err.message, "%s threw across the ABI: %s", hook, e.what());
    } catch (...) {
        std::snprintf(err.category, sizeof err.category, "exception");
        std::snprintf(err.message, sizeof err.message, "%s threw across the ABI", hook);
    }
    return SW_INTERNAL;
}

Status connector_session::to_status(const char* hook, sw_status s, const sw_error& err,
                                    error_kind schema_kind) const {
    if (s == SW_OK) return Status::ok();
    error_kind k = error_kind::connector;
    if (s == SW_CONFIG) k = error_kind::config;
    else if (s == SW_SCHEMA) k = schema_kind;
    std::string msg = err_text(err, sizeof err.message);
    if (msg.empty()) msg = "no message";
    std::string cat(err.category, strnlen(err.category, sizeof err.category));
    return Status::error(k, who() + ": " + hook + " failed (" + status_name(s) +
                                (cat.empty() ? "" : ", " + cat) + "): " + msg);
}

Result<std::unique_ptr<connector_session>> connector_session::create(
    std::shared_ptr<const loaded_connector> lib, const nlohmann::json& settings,
    const std::string& job_name, const std::filesystem::path& base_dir) {
    auto ctx = std::make_unique<sw_host_ctx>();
    ctx->who = lib->info().name + " " + lib->info().version;
    ctx->settings = settings;
    std::unique_ptr<connector_session> s(new connector_session(lib, std::move(ctx)));
    std::string json_text = settings.dump(), base = base_dir.string();
    sw_create_args args{sizeof(sw_create_args), {json_text.data(), json_text.size()},
                        {job_name.data(), job_name.size()}, {base.data(), base.size()}};
    sw_error err;
    void* inst = nullptr;
    auto st = s->call("create", err, [&] {
        return lib->hooks().create(&k_host, s->ctx_.get(), &args, &inst, &err);
    });
    if (st != SW_OK) return s->to_status("create", st, err, error_kind::config);
    if (!inst)
        return Status::error(error_kind::connector,
                             s->who() + ": create returned ok but no instance; fix the connector");
    s->instance_ = inst;
    return s;
}

connector_session::~connector_session() {
    if (instance_) {
        try { lib_->hooks().destroy(instance_); } catch (...) {}
    }
}

Result<contract_schema> connector_session::contract() {
    sw_error err;
    const sw_contract* c = nullptr;
    auto st = call("contract", err, [&] { return lib_->hooks().contract(instance_, &c, &err); });
    if (st != SW_OK) return to_status("contract", st, err, error_kind::connector);
    return copy_contract(c, who());
}

Status connector_session::entities_hook(const char* hook, entities_fn fn, const std::vector<std::string>& entities,
                                        error_kind schema_kind) {
    std::vector<sw_str> names;
    for (auto& e : entities) names.push_back({e.data(), e.size()});
    sw_error err;
    auto st = call(hook, err, [&] { return fn(instance_, names.data(), names.size(), &err); });
    return to_status(hook, st, err, schema_kind);
}

Status connector_session::extract(const std::vector<std::string>& entities) {
    return entities_hook("extract", lib_->hooks().extract, entities, error_kind::input);
}

Status connector_session::read_state(const std::vector<std::string>& entities) {
    return entities_hook("read_state", lib_->hooks().read_state, entities, error_kind::target);
}

Status connector_session::diff(const sw_batch* desired) {
    sw_error err;
    auto st = call("diff", err, [&] { return lib_->hooks().diff(instance_, desired, &err); });
    return to_status("diff", st, err, error_kind::target);
}

sw_status connector_session::apply(const sw_change_batch& batch, std::string& category,
                                   std::string& message) {
    sw_error err;
    auto st = call("apply", err, [&] { return lib_->hooks().apply(instance_, &batch, &err); });
    category.assign(err.category, strnlen(err.category, sizeof err.category));
    message = err_text(err, sizeof err.message);
    return st;
}

Status connector_session::commit() {
    if (!lib_->hooks().commit) return Status::ok();
    sw_error err;
    auto st = call("commit", err, [&] { return lib_->hooks().commit(instance_, &err); });
    return to_status("commit", st, err, error_kind::target);
}

}  // namespace syncwarden::kernel
