#include <syncwarden/kernel/applier.hpp>
#include <syncwarden/kernel/pii.hpp>
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
    explicit batch_results(size_t n) : by_index(n), ids(n) {}
    void on_result(size_t i, sw_status s, std::string_view cat, std::string_view msg) override {
        if (i >= by_index.size() || s > SW_CANCELLED) {
            bad.push_back({i, s});
            return;
        }
        by_index[i] = {true, s, std::string(cat), std::string(msg)};
    }
    void on_target_id(size_t i, std::string_view id, bool too_long) override {
        if (i >= ids.size()) {
            bad.push_back({i, SW_OK});
            return;
        }
        if (too_long) {
            bad_id = i;
            return;
        }
        ids[i] = std::string(id);
    }
    std::vector<reported> by_index;
    std::vector<std::optional<std::string>> ids;  // ABI 1.4: what the target reported, by index
    std::vector<std::pair<size_t, sw_status>> bad;  // out-of-range indexes or statuses
    std::optional<size_t> bad_id;                    // a target id over k_max_target_id
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

// The outcome of one change so far, within its plan batch.
struct change_state {
    std::optional<std::string> target_id;  // ABI 1.4: reported by the target
    uint32_t sends = 0;
    std::chrono::system_clock::time_point first_sent{};
    bool done = false;
    sw_status status = SW_OK;
    std::string category, message;
};

std::string failure_list(const std::vector<std::string>& last) {
    std::string out;
    for (auto& l : last) out += (out.empty() ? "" : "; ") + l;
    return out;
}

}  // namespace

Status apply_plan(const plan_reader& plan, connector_session& target, run_services& rs, run_store& store,
                  const std::string& run_id, apply_outcome& out, const apply_context& ctx) {
    const retry_policy& pol = ctx.policy;
    backoff jitter(pol, ctx.seed);
    circuit_breaker breaker(pol);
    std::vector<std::string> last_errors;  // for target_unavailable: the newest few
    std::vector<change_result_record> results;
    std::vector<attempt_record> attempts;
    std::vector<target_id_record> ids;
    bool stopped_mid_batch = false;
    const bool keeps_ids = !ctx.target_system.empty();
    std::vector<std::string> key_hashes, held_ids;
    std::vector<sw_str> sub_ids;

    auto run_batches = [&]() -> Status {
        if (ctx.check_state)
            if (auto s = check_state(plan, target, rs); !s) return s;
        return plan.for_each_batch(plan.header().batch_size, [&](const plan_header::entity& e,
                                                                   const sw_change_batch& b, uint64_t first_seq) {
            // Between batches: everything before is recorded with its checkpoint.
            if (ctx.cancel && ctx.cancel->requested.load())
                return cancelled_status(*ctx.cancel, "during apply, before change " + std::to_string(first_seq + 1));
            std::vector<change_state> st(b.change_count);
            std::vector<size_t> pending;
            // A batch is of one entity: its counts are looked up once.
            auto& counts = out.by_entity[e.name];
            auto kind_of = [&](size_t k) {
                return plan.deactivates(k) ? "deactivate" : kind_name(static_cast<sw_change_kind>(b.changes[k].kind));
            };
            for (size_t k = 0; k < b.change_count; ++k) {
                if (ctx.acknowledged && ctx.acknowledged(first_seq + k)) {
                    ++out.skipped;
                    ++counts[kind_of(k)][2];
                    continue;
                }
                pending.push_back(k);
            }
            // The changes of this batch whose outcome is settled, as results.
            auto record_done = [&] {
                for (size_t k = 0; k < b.change_count; ++k) {
                    const change_state& c = st[k];
                    if (!c.done) continue;  // acknowledged before (resume)
                    const sw_change& ch = b.changes[k];
                    const bool ok = c.status == SW_OK;
                    std::string key(view(ch.key));
                    std::string status = ok ? "staged" : c.category == "failed_retryable" ? "failed_retryable"
                                                                                          : status_name(c.status);
                    if (ok) ++out.staged;
                    else {
                        ++out.failed;
                        ++out.failed_by_category[c.category.empty() ? status : c.category];
                        out.last_error = e.name + "/'" + key + "': " + (c.message.empty() ? status : c.message);
                    }
                    const char* kind = kind_of(k);
                    ++counts[kind][ok ? 0 : 1];
                    // The store names a change by its position in the plan,
                    // where its key is; a failed or deactivated record also
                    // by its key's keyed hash, never the key itself.
                    const bool named = !ok || std::string_view(kind) == "deactivate";
                    change_result_record r{std::string(view(ch.id)), e.name, named ? pii::keyed(key) : std::string(),
                                           kind, std::move(status), c.category,
                                           pii::redact(c.message), first_seq + k};
                    r.attempts = c.sends;
                    results.push_back(std::move(r));
                    // The key -> id map: what the target reported, and a
                    // record it deleted is forgotten.
                    if (keeps_ids) {
                        const std::string_view adopted = plan.adopts(k);
                        if (c.target_id) ids.push_back({ctx.target_system, e.name, key_hashes[k], *c.target_id});
                        else if (ok && !adopted.empty())
                            ids.push_back({ctx.target_system, e.name, key_hashes[k], std::string(adopted)});
                        else if (ok && ch.kind == SW_CHANGE_DELETE)
                            ids.push_back({ctx.target_system, e.name, key_hashes[k], ""});
                    }
                }
            };
            // ABI 1.4: the ids the target gave these keys on earlier runs; an
            // adoption names the record it takes over.
            bool adopting = false;
            for (size_t k = 0; k < b.change_count && !adopting; ++k) adopting = !plan.adopts(k).empty();
            if (keeps_ids || adopting) {
                key_hashes.clear();
                for (size_t k = 0; k < b.change_count; ++k) key_hashes.push_back(pii::keyed(view(b.changes[k].key)));
                auto held = store.target_ids(ctx.target_system, e.name, key_hashes);
                if (!held) return held.status();
                held_ids = std::move(*held);
                for (size_t k = 0; k < b.change_count; ++k)
                    if (auto a = plan.adopts(k); !a.empty()) held_ids[k] = std::string(a);
            }
            const uint32_t first_attempt = ctx.inflight_seq && *ctx.inflight_seq == first_seq ? 2 : 1;
            std::vector<sw_change> sub;
            std::vector<size_t> next;
            for (uint32_t round = 0; !pending.empty(); ++round) {
                sub.clear();
                for (size_t k : pending) sub.push_back(b.changes[k]);
                sw_change_batch send = b;
                send.struct_size = sizeof send;
                send.changes = sub.data();
                send.change_count = sub.size();
                send.attempt = first_attempt + round;
                if (keeps_ids || adopting) {
                    sub_ids.clear();
                    for (size_t k : pending) {
                        const std::string& id = st[k].target_id ? *st[k].target_id : held_ids[k];
                        sub_ids.push_back({id.data(), id.size()});
                    }
                    send.target_ids = sub_ids.data();
                }
                if (ctx.limiter && !(ctx.connector_paces && *ctx.connector_paces))
                    if (ctx.limiter->acquire(1, ctx.cancel) == SW_CANCELLED) {
                        record_done();
                        stopped_mid_batch = true;
                        return cancelled_status(*ctx.cancel, "during apply");
                    }
                batch_results rep(sub.size());
                const auto sent_at = ctx.clk.now();
                hook_error err = target.apply(send, rep, rs);
                // The connector's process is gone: this send's outcome is
                // unknown, so nothing of it is recorded and the checkpoint
                // stays before this batch.
                if (err.fatal) {
                    record_done();
                    stopped_mid_batch = true;
                    return Status::error(error_kind::connector, err.message).with_category(err.category);
                }
                if (err.status == SW_CANCELLED && ctx.cancel && ctx.cancel->requested.load()) {
                    record_done();
                    stopped_mid_batch = true;
                    return cancelled_status(*ctx.cancel, "during apply");
                }
                if (rep.bad_id)
                    return Status::error(error_kind::connector,
                                         target.who() + " apply: reported a target id of more than " +
                                             std::to_string(k_max_target_id) + " bytes for change index " +
                                             std::to_string(*rep.bad_id) + ". This is a defect of the connector; "
                                             "nothing was committed. Report it to the connector's authors");
                if (!rep.bad.empty())
                    return Status::error(error_kind::connector,
                                         target.who() + " apply: reported a result for change index " +
                                             std::to_string(rep.bad.front().first) + " with status " +
                                             std::to_string(rep.bad.front().second) + ", but the batch has " +
                                             std::to_string(send.change_count) + " changes (indexes 0 to " +
                                             std::to_string(send.change_count ? send.change_count - 1 : 0) +
                                             ") and statuses are 0 to 8. This is a defect of the connector; nothing "
                                             "was committed. Report it to the connector's authors");
                const auto now = ctx.clk.now();
                milliseconds wait{0};
                next.clear();
                size_t vendor_failures = 0, accepted = 0;
                for (size_t i = 0; i < sub.size(); ++i) {
                    const size_t k = pending[i];
                    change_state& c = st[k];
                    if (c.sends++ == 0) c.first_sent = sent_at;
                    if (rep.ids[i]) c.target_id = rep.ids[i];
                    batch_results::reported r = rep.by_index[i].set
                                                    ? rep.by_index[i]
                                                    : batch_results::reported{true, err.status, err.category, err.message};
                    vendor_failures += r.status == SW_RETRYABLE || r.status == SW_THROTTLED;
                    accepted += r.status == SW_OK;
                    if (r.status != SW_OK) {
                        last_errors.push_back(e.name + "/'" + std::string(view(sub[i].key)) + "': " + status_name(r.status) +
                                              (r.category.empty() ? "" : " " + r.category) +
                                              (r.message.empty() ? "" : " (" + r.message + ")"));
                        if (last_errors.size() > 3) last_errors.erase(last_errors.begin());
                    }
                    const bool again = r.status != SW_OK && retryable(r.status, r.category, pol) &&
                                       c.sends < pol.max_attempts && now - c.first_sent < pol.max_elapsed;
                    if (again) {
                        attempts.push_back({first_seq + k, first_attempt + round, iso8601(sent_at),
                                            status_name(r.status), r.category, pii::redact(r.message),
                                            r.status == SW_THROTTLED ? err.retry_after_ms : 0});
                        wait = std::max(wait, jitter.delay(c.sends, r.status == SW_THROTTLED ? err.retry_after_ms : 0));
                        next.push_back(k);
                        continue;
                    }
                    c.done = true;
                    c.status = r.status;
                    c.category = r.category;
                    c.message = r.message;
                    if (r.status != SW_OK && retryable(r.status, r.category, pol))
                        c.message += (c.message.empty() ? "" : "; ") + std::string("gave up after ") +
                                     std::to_string(c.sends) + " attempts";
                }
                // The breaker counts calls: one the vendor refused as a whole
                // (a 429 for the batch) counts once, not once per change.
                breaker.record(err.status == SW_RETRYABLE || err.status == SW_THROTTLED ||
                               (vendor_failures > 0 && accepted == 0));
                // Credentials the vendor refused for a whole call stop the run:
                // every later change would be refused the same way.
                if (err.status == SW_AUTH) {
                    record_done();
                    stopped_mid_batch = true;
                    return Status::error(error_kind::target,
                                         "auth: " + target.who() + " refused the credentials: " +
                                             (err.message.empty() ? std::string("no message") : err.message) +
                                             "; the run stopped. Fix the credentials (`syncwarden secrets rotate "
                                             "NAME`), then `syncwarden runs resume " + run_id + "`")
                        .with_category("auth");
                }
                if (breaker.open()) {
                    record_done();
                    stopped_mid_batch = true;
                    return Status::error(error_kind::target,
                                         "target_unavailable: " + target.who() + " looks unavailable: " +
                                             breaker.why() + "; the run stopped instead of retrying against it. "
                                             "Last errors: " + failure_list(last_errors) +
                                             ". `syncwarden runs resume " + run_id + "` continues once it is back")
                        .with_category("target_unavailable");
                }
                if (!next.empty()) {
                    if (ctx.deadline && ctx.clk.now() + wait > *ctx.deadline) {
                        for (size_t k : next) {
                            change_state& c = st[k];
                            c.done = true;
                            c.status = SW_RETRYABLE;
                            c.category = "failed_retryable";
                            c.message = "a retry would wait " + std::to_string(wait.count()) +
                                        " ms, past the apply phase's deadline (deadlines.apply in the job)";
                        }
                        next.clear();
                    } else {
                        out.resent += next.size();
                        out.waited += wait;
                        if (!ctx.sleep.sleep_for(wait, ctx.cancel)) {
                            record_done();
                            stopped_mid_batch = true;
                            return cancelled_status(*ctx.cancel, "during apply, waiting to retry");
                        }
                    }
                }
                pending.swap(next);
            }
            record_done();
            auto s = store.save_apply_batch(run_id, results, attempts, "apply",
                                            std::to_string(first_seq + b.change_count), iso8601(ctx.clk.now()), ids);
            results.clear();
            attempts.clear();
            ids.clear();
            return s;
        });
    };

    Status st = run_batches();
    // A stop inside a batch: what was decided so far is kept, and the
    // checkpoint stays at the batch's start.
    if (!st && stopped_mid_batch && (!results.empty() || !attempts.empty())) {
        (void)store.save_apply_batch(run_id, results, attempts, "apply-partial", "", iso8601(ctx.clk.now()), ids);
    }
    auto abort_target = [&] {
        // A dead worker has nothing left to drop.
        if (st.category() == "connector_crashed" || st.category() == "connector_exited" ||
            st.category() == "connector_oom" || st.category() == "timeout")
            return;
        target.abort(rs);
        out.aborted = true;
    };
    if (!st) {
        abort_target();
        return st;
    }
    // Nothing accepted, nothing to make durable: commit is not called.
    if (out.staged == 0 && out.failed > 0) {
        st = Status::error(error_kind::target, "all " + std::to_string(out.failed) +
                                                   " changes failed, so nothing was committed; last: " +
                                                   out.last_error + ". `syncwarden runs show " + run_id +
                                                   "` lists them");
        abort_target();
        return st;
    }
    // Whatever commit makes durable must be recorded somewhere.
    if (auto s = store.check_still_there(); !s) {
        st = s;
        abort_target();
        return s;
    }
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
