#include <syncwarden/kernel/applier.hpp>
#include <syncwarden/kernel/text.hpp>
#include <syncwarden/kernel/worker.hpp>

namespace syncwarden::kernel {
namespace {

class discard_records final : public record_sink {
public:
    sw_status on_records(const sw_batch&) override { return SW_OK; }
};

// The results one apply call reports, by index into its batch.
class batch_results final : public result_sink {
public:
    struct reported {
        bool set = false;
        sw_status status = SW_OK;
        std::string category, message;
    };
    explicit batch_results(size_t n) : by_index(n) {}
    void on_result(size_t i, sw_status s, std::string_view cat, std::string_view msg) override {
        if (i >= by_index.size() || s > SW_CANCELLED) {
            bad.push_back({i, s});
            return;
        }
        by_index[i] = {true, s, std::string(cat), std::string(msg)};
    }
    std::vector<reported> by_index;
    std::vector<std::pair<size_t, sw_status>> bad;  // out-of-range indexes or statuses
};

std::string short_token(const std::optional<std::string>& t) {
    if (!t) return "none";
    return "'" + t->substr(0, 16) + (t->size() > 16 ? "...'" : "'");
}

// A plan is applied only to the state it was made against.
Status check_state(const plan_reader& plan, connector_session& target, run_services& rs) {
    const auto& h = plan.header();
    if (!h.state_token) return Status::ok();
    std::vector<std::string> entities;
    for (auto& e : h.entities) entities.push_back(e.name);
    Result<std::optional<std::string>> now = std::optional<std::string>();
    if (target.has_state_token()) {
        now = target.state_token(entities, rs);
    } else {
        discard_records sink;
        now = target.read_state(entities, sink, rs);
    }
    if (!now) return now.status().context("asking the target for its current state");
    if (*now == h.state_token) return Status::ok();
    return Status::error(error_kind::target,
                         "the target changed since the plan of run " + h.run_id + " was made (planned against state " +
                             short_token(h.state_token) + ", it is now " + short_token(*now) +
                             "); nothing was applied, because a plan is only ever applied to the state it was made "
                             "against. Make a new plan: `syncwarden run JOB.json --dry-run`");
}

}  // namespace

Status apply_plan(const plan_reader& plan, connector_session& target, run_services& rs, run_store& store,
                  const clock& clk, const std::string& run_id, apply_outcome& out, const cancel_flag* cancel) {
    if (auto s = check_state(plan, target, rs); !s) return s;
    std::vector<change_result_record> results;
    auto st = plan.for_each_batch(plan.header().batch_size, [&](const plan_header::entity& e,
                                                               const sw_change_batch& b, uint64_t first_seq) {
        // Between batches: everything before is recorded with its checkpoint.
        if (cancel && cancel->requested.load())
            return cancelled_status(*cancel, "during apply, before change " + std::to_string(first_seq + 1));
        batch_results rep(b.change_count);
        hook_error err = target.apply(b, rep, rs);
        // The connector's process is gone: this batch's outcome is unknown,
        // so nothing of it is recorded and the checkpoint stays before it.
        if (err.fatal) return Status::error(error_kind::connector, err.message).with_category(err.category);
        if (err.status == SW_CANCELLED && cancel && cancel->requested.load())
            return cancelled_status(*cancel, "during apply");
        if (!rep.bad.empty())
            return Status::error(error_kind::connector,
                                 target.who() + " apply: reported a result for change index " +
                                     std::to_string(rep.bad.front().first) + " with status " +
                                     std::to_string(rep.bad.front().second) + ", but the batch has " +
                                     std::to_string(b.change_count) + " changes (indexes 0 to " +
                                     std::to_string(b.change_count ? b.change_count - 1 : 0) +
                                     ") and statuses are 0 to 8. This is a defect of the connector; nothing was "
                                     "committed. Report it to the connector's authors");
        for (size_t k = 0; k < b.change_count; ++k) {
            const sw_change& c = b.changes[k];
            batch_results::reported r = rep.by_index[k].set ? rep.by_index[k]
                                                            : batch_results::reported{true, err.status, err.category,
                                                                                      err.message};
            const bool ok = r.status == SW_OK;
            std::string key(view(c.key));
            if (ok) ++out.staged;
            else {
                ++out.failed;
                out.last_error = e.name + "/" + key + ": " + (r.message.empty() ? status_name(r.status) : r.message);
            }
            results.push_back({std::string(view(c.id)), e.name, std::move(key), kind_name(static_cast<sw_change_kind>(c.kind)),
                               ok ? "staged" : status_name(r.status), r.category, r.message, first_seq + k});
        }
        auto s = store.save_apply_batch(run_id, results, "apply", std::to_string(first_seq + b.change_count),
                                        iso8601(clk.now()));
        results.clear();
        return s;
    });
    if (!st) return st;
    // Nothing accepted, nothing to make durable: commit is not called.
    if (out.staged == 0 && out.failed > 0)
        return Status::error(error_kind::target, "all " + std::to_string(out.failed) +
                                                     " changes failed, so nothing was committed; last: " +
                                                     out.last_error + ". `syncwarden runs show " + run_id +
                                                     "` lists them");
    // Whatever commit makes durable must be recorded somewhere.
    if (auto s = store.check_still_there(); !s) return s;
    out.commit_attempted = true;
    hook_error c = target.commit(rs);
    if (c.fatal) {
        out.commit_category = c.category;
        out.commit_message = c.message;
        return Status::error(error_kind::connector,
                             c.message + " Whether the target made this run's changes durable is not known, so "
                                         "none of them counts as applied; the next run's plan shows what still "
                                         "differs")
            .with_category(c.category);
    }
    if (c.status != SW_OK) {
        out.commit_category = c.category.empty() ? status_name(c.status) : c.category;
        out.commit_message = c.message;
        std::string why = c.category == "state_changed"
                              ? "; the target changed while this run applied its plan. Make a new plan"
                              : "";
        return Status::error(error_kind::target,
                             target.who() + ": commit failed (" + status_name(c.status) +
                                 (c.category.empty() ? "" : ", " + c.category) + "): " +
                                 (c.message.empty() ? "no message" : c.message) +
                                 "; the target did not make the changes durable, so none of them counts as applied" +
                                 why);
    }
    out.committed = true;
    if (out.failed)
        return Status::error(error_kind::target, std::to_string(out.failed) + " of " +
                                                     std::to_string(out.failed + out.staged) +
                                                     " changes failed; last: " + out.last_error +
                                                     ". `syncwarden runs show " + run_id + "` lists them");
    return Status::ok();
}

}  // namespace syncwarden::kernel
