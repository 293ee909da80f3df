// One connector instance for one run: the host context the connector sees,
// and hook calls that never let an exception or a bad status escape as
// anything but a Status with context.
#pragma once

#include <syncwarden/connector.h>
#include <syncwarden/kernel/loader.hpp>
#include <syncwarden/kernel/result.hpp>
#include <syncwarden/kernel/schema.hpp>

#include <nlohmann/json.hpp>

#include <atomic>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

// The kernel's side of the opaque sw_host_ctx.
struct sw_host_ctx {
    std::string who;  // "oneroster-csv 1.0.0", for messages
    nlohmann::json settings;
    std::map<std::string, std::string> config_values;  // owns what config_get returned
    std::function<sw_status(const sw_batch&)> on_emit;
    std::function<void(const sw_finding&)> on_finding;
    std::function<void(size_t, sw_status, std::string_view, std::string_view)> on_result;
    std::function<sw_status(const sw_change_batch&)> on_changes;
    std::function<sw_status(const std::string&)> on_checkpoint_save;
    std::function<std::string()> on_checkpoint_load;
    std::string checkpoint_buf;
    std::atomic<bool> cancelled{false};
};

namespace syncwarden::kernel {

const sw_host_api& host_api_table();
const char* status_name(sw_status s);

class connector_session {
public:
    // Creates an instance of `lib` with the given settings.
    static Result<std::unique_ptr<connector_session>> create(
        std::shared_ptr<const loaded_connector> lib, const nlohmann::json& settings,
        const std::string& job_name, const std::filesystem::path& base_dir);
    ~connector_session();
    connector_session(const connector_session&) = delete;
    connector_session& operator=(const connector_session&) = delete;

    sw_host_ctx& ctx() { return *ctx_; }
    const connector_info& info() const { return lib_->info(); }
    const std::string& who() const { return ctx_->who; }

    Result<contract_schema> contract();
    Status extract(const std::vector<std::string>& entities);
    Status read_state(const std::vector<std::string>& entities);
    bool has_diff() const { return lib_->hooks().diff != nullptr; }
    Status diff(const sw_batch* desired);
    // The status the hook returned (SW_OK or not) plus its error text.
    sw_status apply(const sw_change_batch& batch, std::string& category, std::string& message);
    Status commit();

private:
    connector_session(std::shared_ptr<const loaded_connector> lib, std::unique_ptr<sw_host_ctx> ctx)
        : lib_(std::move(lib)), ctx_(std::move(ctx)) {}
    // Calls a hook, catching anything it throws.
    template <class F>
    sw_status call(const char* hook, sw_error& err, F&& f);
    Status to_status(const char* hook, sw_status s, const sw_error& err, error_kind schema_kind) const;
    using entities_fn = sw_status (*)(void*, const sw_str*, size_t, sw_error*);
    Status entities_hook(const char* hook, entities_fn fn, const std::vector<std::string>& entities,
                         error_kind schema_kind);

    std::shared_ptr<const loaded_connector> lib_;
    std::unique_ptr<sw_host_ctx> ctx_;
    void* instance_ = nullptr;
    const sw_contract* raw_contract_ = nullptr;
};

}  // namespace syncwarden::kernel
