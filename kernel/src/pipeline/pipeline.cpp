#include <syncwarden/kernel/applier.hpp>
#include <syncwarden/kernel/digest.hpp>
#include <syncwarden/kernel/pii.hpp>
#include <syncwarden/kernel/findings.hpp>
#include <syncwarden/kernel/gates.hpp>
#include <syncwarden/kernel/locks.hpp>
#include <syncwarden/kernel/log.hpp>
#include <syncwarden/kernel/pipeline.hpp>
#include <syncwarden/kernel/plan_file.hpp>
#include <syncwarden/kernel/names.hpp>
#include <syncwarden/kernel/planner.hpp>
#include <syncwarden/kernel/retry.hpp>
#include <syncwarden/kernel/session.hpp>
#include <syncwarden/kernel/text.hpp>
#include <syncwarden/kernel/worker.hpp>

#include "../plan/plan_writer.hpp"
#include "run_summary.hpp"
#include "settings_vars.hpp"

#include <cctype>
#include <functional>
#include <cstdio>
#include <random>
#include <sys/resource.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace syncwarden::kernel {

std::string new_run_id(const clock& clk) {
    auto t = iso8601(clk.now());  // 2026-11-26T14:06:42.123Z
    std::string compact;
    for (char c : t.substr(0, 19))
        if (c != '-' && c != ':') compact += c;
    static std::mt19937_64 rng{std::random_device{}()};
    char suffix[8];
    std::snprintf(suffix, sizeof suffix, "%06x", static_cast<unsigned>(rng() & 0xffffff));
    return "r" + compact + "-" + suffix;
}

bool valid_run_id(const std::string& id) {
    if (id.size() < 2 || id.size() > 64 || id[0] != 'r') return false;
    for (char c : id)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
    return true;
}

namespace {

const char* severity_name(uint32_t s) {
    return s == SW_SEVERITY_ERROR ? "error" : s == SW_SEVERITY_WARNING ? "warning" : "info";
}

Result<file_lock> take_run_lock(const fs::path& data_dir, const std::string& run_id) {
    auto l = file_lock::take(run_lock_path(data_dir, run_id), "pid " + std::to_string(::getpid()) + "\n", false);
    if (!l) return l.status();
    if (!*l) return Status::error(error_kind::internal, "run " + run_id + " is already locked by another process");
    (*l)->remove_on_release();
    return std::move(**l);
}


// What one connector of a run may use besides its phase sinks: findings go
// to the run's log, checkpoints to the store under the connector's role.
class run_host final : public run_services {
public:
    run_host(finding_log& findings, run_store& store, const clock& clk, const std::string& run_id, std::string role)
        : findings_(findings), store_(store), clock_(clk), run_id_(run_id), scope_("connector/" + std::move(role)) {}
    void on_finding(const sw_finding& f) override {
        findings_.add({severity_name(f.severity), std::string(view(f.code)), std::string(view(f.entity)),
                       std::string(view(f.file)), f.line, f.column, std::string(view(f.key)),
                       std::string(view(f.message))});
    }
    sw_status checkpoint_save(std::string_view token) override {
        return store_.save_checkpoint(run_id_, scope_, std::string(token), iso8601(clock_.now())) ? SW_OK
                                                                                                  : SW_INTERNAL;
    }
    std::optional<std::string> checkpoint_load() override {
        auto r = store_.load_checkpoint(run_id_, scope_);
        return r ? *r : std::nullopt;
    }
    // The target's rate limit, once apply has set one up.
    sw_status acquire(uint32_t permits) override {
        paces = true;
        return limiter ? limiter->acquire(permits, cancel) : SW_OK;
    }
    // ABI 1.4: a connector's own resend of a request, paced by the job's
    // retry policy.
    sw_status retry_wait(uint32_t attempt, uint32_t retry_after_ms) override {
        if (!policy || !sleep) return SW_RETRYABLE;
        if (cancelled()) return SW_CANCELLED;
        if (attempt == 0 || attempt >= policy->max_attempts) return SW_RETRYABLE;
        if (!jitter) jitter = std::make_unique<backoff>(*policy, std::random_device{}());
        const auto wait = jitter->delay(attempt, retry_after_ms);
        if (!sleep->sleep_for(wait, cancel)) return SW_CANCELLED;
        ++retries;
        waited += wait;
        return SW_OK;
    }
    bool cancelled() const override { return cancel && cancel->requested.load(); }
    void on_layout(const std::string& entity, const std::string& file, std::vector<std::string> columns) override {
        layouts[entity] = {file, std::move(columns)};
    }
    source_layouts layouts;  // what the source read (ABI 1.3)
    rate_limiter* limiter = nullptr;
    const cancel_flag* cancel = nullptr;
    bool paces = false;  // the connector calls acquire itself
    const retry_policy* policy = nullptr;  // for retry_wait
    sleeper* sleep = nullptr;
    std::unique_ptr<backoff> jitter;
    size_t retries = 0;  // the connector's own resends (retry_wait)
    std::chrono::milliseconds waited{0};

private:
    finding_log& findings_;
    run_store& store_;
    const clock& clock_;
    const std::string& run_id_;
    std::string scope_;
};

nlohmann::json counts_json(const std::map<std::string, change_counts>& planned) {
    nlohmann::json counts = nlohmann::json::object();
    for (auto& [e, c] : planned)
    {
        counts[e] = {{"create", c.create}, {"update", c.update}, {"delete", c.remove}, {"deactivate", c.deactivate}};
        if (c.adopt) counts[e]["adopt"] = c.adopt;
    }
    return counts;
}

// One run in progress. Members are declared so that the sessions die first,
// before anything their connectors could still reach.
class run_driver {
public:
    run_driver(registry& reg, run_store& store, const clock& clk, sleeper& sl, const fs::path& data_dir,
               run_outcome& out)
        : sleeper_(sl), reg_(reg), store_(store), clock_(clk), data_dir_(data_dir), out_(out),
          source_host_(findings_, store, clk, out.run.id, "source"),
          target_host_(findings_, store, clk, out.run.id, "target") {
        for (run_host* h : {&source_host_, &target_host_}) {
            h->policy = &retry_;
            h->sleep = &sleeper_;
        }
    }

    Status plan_and_apply(const job_config& job, const run_options& opts) {
        job_ = &job;
        findings_.set_severities(job.gates.severity);
        runtime_ = job.runtime;
        retry_ = job.retry;
        // Both workers are started before either is waited for: each loads
        // its library while the other does.
        if (!runtime_.in_process) {
            start_early(job.source, "source");
            start_early(job.target, "target");
        }
        if (auto s = open_one(job.source, "source", SW_CAP_SOURCE, source_, out_.run.source_version, source_host_); !s)
            return s;
        if (auto s = open_one(job.target, "target", SW_CAP_TARGET, target_, out_.run.target_version, target_host_); !s)
            return s;
        compare_grants(job.name);
        // One run at a time applies to a system: held from reading its state
        // to the commit. A dry run writes nothing and takes no lock.
        if (!opts.dry_run)
            if (auto s = lock_target(job.target.connector, target_settings_, opts.no_wait); !s) return s;
        written_plan written;
        std::optional<std::string> planned_token;
        bool holds = false;
        {
            planner p(job, *source_, *target_, source_host_, target_host_, findings_,
                      [this](const char* name) { return phase(name); });
            p.set_layouts(&source_host_.layouts);
            std::unique_ptr<name_registry> names;
            if (auto s = load_names(job, names); !s) return s;
            p.set_names(names.get());
            auto result = p.run();
            if (!result) return result.status();
            // The names given are kept with the plan (a dry run keeps none:
            // its plan is never applied).
            if (names && !opts.dry_run && !names->fresh().empty())
                if (auto s = store_.save_assigned_names(names->fresh(), out_.run.id, iso8601(clock_.now())); !s) return s;
            if (!opts.only_keys.empty()) keep_only(*result, opts.only_keys);
            if (auto s = phase("gates"); !s) return s;
            auto gates = run_gate_stage(result->changes, {result->sources, source_host_.layouts, result->formats}, job,
                                        store_, clock_, findings_, opts.allow);
            if (!gates) return gates.status();
            out_.verdicts = gates->verdicts;
            holds = gates->holds();
            // The in-memory plan is dropped here: from now on the persisted
            // plan is the only one.
            auto w = persist(job, opts, *result);
            if (!w) return w.status();
            written = std::move(*w);
            if (auto s = store_.save_profile(out_.run.id, gates->profile.to_json().dump()); !s) return s;
            std::vector<gate_verdict> stored = out_.verdicts;
            for (auto& v : stored) v.message = pii::redact(v.message);
            if (auto s = store_.save_verdicts(out_.run.id, stored); !s) return s;
            planned_token = result->state_token;
        }
        // Records in error that are missing from the plan: no approval could
        // make applying it safe.
        if (findings_.blocking_unsafe() > 0)
            return Status::error(error_kind::input,
                                 std::to_string(findings_.blocking()) +
                                     " error finding(s) in the input; nothing was applied. First: " +
                                     findings_.first_unsafe() + ". Fix the source data (or the mapping) and run again");
        if (opts.approval) {
            const auto& a = *opts.approval;
            if (written.content_digest == a.content_digest && planned_token == a.state_token)
                return apply_approved(a);
            out_.stale_reason =
                planned_token != a.state_token
                    ? "the target changed since run " + a.run_id + " was planned (its state was " +
                          token_text(a.state_token) + ", it is now " + token_text(planned_token) + ")"
                    : "the source data changed since run " + a.run_id + " was planned";
        }
        if (holds) return Status::error(error_kind::held, hold_reason(out_.verdicts)).with_category("held");
        if (opts.dry_run) return Status::ok();
        auto reader = plan_reader::open(written.binary, written.digest);
        if (!reader) return reader.status();
        return apply(**reader, *target_);
    }

    // `runs approve` when nothing changed: this run applies the approved
    // plan itself, byte for byte (its digest is checked as it is opened).
    Status apply_approved(const run_options::approved_plan& a) {
        const fs::path file = stored_plan(a.plan_file);
        auto reader = plan_reader::open(file, a.digest);
        if (!reader) return reader.status();
        out_.applied_approved_plan = true;
        out_.run.plan_of = a.run_id;
        out_.planned = counts_of((*reader)->header());
        out_.plan_path = fs::path(file).replace_extension(".json");
        log_info({out_.run.id, out_.run.job, "", "gates", "approved_plan"}, "applying the plan of run " + a.run_id);
        return apply(**reader, *target_);
    }

    // A plan the store names, in this data dir's plans/ folder (the store
    // keeps the path it was written at; the data dir may have moved since).
    fs::path stored_plan(const std::string& stored) const { return data_dir_ / "plans" / fs::path(stored).filename(); }

    static std::string token_text(const std::optional<std::string>& t) {
        if (!t) return "none";
        return "'" + t->substr(0, 16) + (t->size() > 16 ? "...'" : "'");
    }

    // apply_stored and resume: the target of a stored plan, opened and locked.
    Result<std::unique_ptr<plan_reader>> open_stored(const run_record& dry, const plan_record& pr) {
        auto r = plan_reader::open(stored_plan(pr.plan_file), pr.digest);
        if (!r) return r.status();
        const auto& h = (*r)->header();
        out_.run.target_version = h.target.version;
        out_.builds["target"] = h.target.build_id;
        out_.planned = counts_of(h);
        auto rel = reg_.resolve(h.target.connector, "=" + h.target.version);
        if (!rel) return rel.status().context("the plan of run " + dry.id + " is for " + h.target.connector + " " +
                                              h.target.version);
        if (rel->info.build_id != h.target.build_id)
            return Status::error(error_kind::connector,
                                 "the plan of run " + dry.id + " was made with " + h.target.connector + " " +
                                     h.target.version + " build '" + h.target.build_id +
                                     "', but the installed release has build '" + rel->info.build_id +
                                     "'; make a new plan with the installed release");
        // Isolation, limits and deadlines are how the job runs now, not part
        // of the plan: they come from the job file when it still loads.
        if (auto job = load_job(dry.job_file)) {
            runtime_ = job->runtime;
            retry_ = job->retry;
            target_env_ = job->target.env;
        }
        const std::string where = "the target settings stored in the plan of run " + dry.id;
        auto resolved = with_secrets(h.target.settings, "target", where);
        if (!resolved) return resolved.status();
        auto s = open_session(*rel, *resolved, h.job, h.target.base_dir, target_host_, where, "target", target_env_);
        if (!s) return s.status();
        target_ = std::move(*s);
        if (auto st = lock_target(h.target.connector, h.target.settings, no_wait_); !st) return st;
        return std::move(*r);
    }

    Status apply_stored(const run_record& dry, const plan_record& pr) {
        auto r = open_stored(dry, pr);
        if (!r) return r.status();
        return apply(**r, *target_);
    }

    // Continues this run's apply: what the target acknowledged is not sent
    // again. A transactional target made nothing durable before its commit,
    // so for it only committed changes count as acknowledged.
    Status resume(const plan_record& pr) {
        auto r = open_stored(out_.run, pr);
        if (!r) return r.status();
        // One bit per plan position, the results read a page at a time.
        const bool transactional = target_->transactional();
        auto done = std::make_shared<std::vector<bool>>();
        size_t acknowledged = 0;
        auto read = store_.each_change_result(out_.run.id, [&](const change_result_record& x) {
            const bool ack = x.status == "applied" || (x.status == "staged" && !transactional);
            if (!ack) return;
            if (done->size() <= x.seq) done->resize(x.seq + 1, false);
            (*done)[x.seq] = true;
            ++acknowledged;
        });
        if (!read) return read;
        auto cp = store_.load_checkpoint(out_.run.id, "apply");
        if (!cp) return cp.status();
        resume_.acknowledged = [done](uint64_t seq) { return seq < done->size() && (*done)[seq]; };
        if (*cp && !(*cp)->empty()) resume_.inflight_seq = std::stoull(**cp);
        // The target's state moved by this run's own acknowledged changes:
        // its state token no longer names the planned state.
        resume_.check_state = acknowledged == 0;
        log_info({out_.run.id, out_.run.job, target_->who(), "apply", "resumed"},
                 std::to_string(acknowledged) + " changes acknowledged before");
        return apply(**r, *target_);
    }

    void finish_findings() {
        out_.findings = findings_.kept();
        out_.findings_not_kept = findings_.not_kept();
        out_.blocking_findings = findings_.blocking();
    }

    const apply_outcome& applied() const { return applied_; }
    // Requests the connectors sent again themselves (ABI 1.4 retry_wait).
    size_t connector_retries() const { return source_host_.retries + target_host_.retries; }
    std::chrono::milliseconds connector_retry_wait() const { return source_host_.waited + target_host_.waited; }

    void set_cancel(const cancel_flag* c) {
        cancel_ = c;
        source_host_.cancel = c;
        target_host_.cancel = c;
    }
    void set_no_wait(bool v) { no_wait_ = v; }

private:
    sleeper& sleeper_;
    std::vector<std::string> target_env_;  // a stored plan's target: what its job passes on

    // The system the target writes: what the connector names (system_id),
    // else its name and settings.
    Result<std::string> target_system(const std::string& connector, const nlohmann::json& settings) {
        auto sid = target_->system_id(target_host_);
        if (!sid) return sid.status();
        return sid->empty() ? "connector " + connector + " " + settings.dump() : *sid;
    }

    // The names `unique` rules gave in the target system before.
    Status load_names(const job_config& job, std::unique_ptr<name_registry>& out) {
        for (auto& m : job.entities)
            for (auto& [field, rule] : m.fields) {
                if (!rule.unique) continue;
                if (!out) {
                    auto system = target_system(job.target.connector, target_settings_);
                    if (!system) return system.status();
                    out = std::make_unique<name_registry>(*system);
                }
                if (auto s = out->load(store_, m.target, field); !s) return s;
            }
        return Status::ok();
    }

    // Takes the lock of the system the target writes.
    Status lock_target(const std::string& connector, const nlohmann::json& settings, bool no_wait) {
        auto sys = target_system(connector, settings);
        if (!sys) return sys.status();
        const std::string system = *sys;
        target_system_ = system;
        const fs::path path = target_lock_path(data_dir_, system);
        const std::string note = "run " + out_.run.id + " pid " + std::to_string(::getpid()) + "\n";
        bool said = false;
        for (;;) {
            auto l = file_lock::take(path, note, false);
            if (!l) return l.status();
            if (*l) {
                target_lock_ = std::move(**l);
                return Status::ok();
            }
            std::string holder = file_lock::note(path);
            while (!holder.empty() && holder.back() == '\n') holder.pop_back();
            if (no_wait)
                return Status::error(error_kind::busy, "busy: another run (" + holder + ") is applying to the system " +
                                                           out_.run.target_connector + " writes (" + system +
                                                           "); not waiting (--no-wait)")
                    .with_category("busy");
            if (!said) {
                log_info({out_.run.id, out_.run.job, "", "diff", "waiting_for_target"}, holder);
                said = true;
            }
            if (!real_sleeper().sleep_for(std::chrono::milliseconds(200), cancel_))
                return cancelled_status(*cancel_, "while waiting for another run to finish with the target");
        }
    }
    Status phase(const char* name) {
        if (cancel_ && cancel_->requested.load()) return cancelled_status(*cancel_, std::string("before ") + name);
        out_.run.phase = name;
        out_.phases.emplace_back(name, clock_.now());
        using std::chrono::milliseconds;
        const std::string n = name;
        milliseconds limit = n == "contract" ? runtime_.contract
                             : n == "extract" ? runtime_.extract
                             : n == "diff"    ? runtime_.diff
                             : n == "apply"   ? runtime_.apply
                                              : milliseconds(0);
        deadline d;
        if (limit.count() > 0) d = std::chrono::steady_clock::now() + limit;
        for (auto* s : {source_.get(), target_.get()})
            if (s) s->set_deadline(d);
        log_info({out_.run.id, out_.run.job, "", name, "phase_start"}, name);
        return store_.update_run(out_.run);
    }

    // A session for an installed release: in a worker process, confined to
    // what its settings grant, or in this process when the job opted in.
    Result<std::unique_ptr<connector_session>> open_session(const installed_release& rel, const nlohmann::json& settings,
                                                            const std::string& job_name, const fs::path& base_dir,
                                                            run_services& rs, const std::string& where,
                                                            const std::string& role, const std::vector<std::string>& env) {
        if (runtime_.in_process) {
            out_.unconfined = {"in-process"};
            auto lib = reg_.open(rel);
            if (!lib) return lib.status();
            return open_in_process(*lib, settings, job_name, base_dir, rs, where);
        }
        // A worker started early for this library checks it itself before
        // it loads it; any other library is checked now.
        std::shared_ptr<started_worker> started;
        if (auto it = started_.find(role); it != started_.end()) {
            if (it->second.first == rel.path) started = it->second.second;
            started_.erase(it);
        }
        worker_options o = worker_opts(job_name);
        if (!started) {
            if (auto s = reg_.verify(rel); !s) return s;
            auto policy = sandbox_for(rel, settings, base_dir, job_name, role, where);
            if (!policy) return policy.status();
            o.sandbox = std::move(*policy);
            o.env = env;
        }
        return open_in_worker(rel.path, rel.info, settings, job_name, base_dir, rs, where, o, std::move(started));
    }

    // The grants of a connector's settings (as its schema marks them, with
    // variables and secrets resolved), checked against the layers this
    // machine has, and made ready for its worker.
    Result<sandbox_policy> sandbox_for(const installed_release& rel, const nlohmann::json& settings,
                                       const fs::path& base_dir, const std::string& job_name, const std::string& role,
                                       const std::string& where) {
        std::string schema = rel.info.settings_schema;
        if (!rel.schema_recorded) {
            // Installed before release.json kept it: asked of the library,
            // in a worker confined with no grants.
            auto probed = probe_in_worker(rel.path, worker_limits{}, data_dir_);
            if (!probed) return probed.status();
            schema = probed->settings_schema;
        }
        auto grants = derive_grants(schema, settings, base_dir, where);
        if (!grants) return grants.status().context(rel.info.name + " " + rel.info.version);
        auto policy = make_sandbox(data_dir_, {job_name, role, *grants, rel.path, {}});
        if (!policy) return policy.status();
        out_.grants[role] = std::move(*grants);
        out_.unconfined = policy->off;
        return policy;
    }

    // A connector that may reach more (or other) than at the job's last good
    // run is worth a look: a finding (a warning, unless gates.severity
    // raises "grants_changed").
    void compare_grants(const std::string& job_name) {
        auto last = store_.last_good_profile(job_name);
        if (!last || !*last) return;
        auto prev = store_.get_run((*last)->first);
        if (!prev) return;
        auto before = nlohmann::json::parse(prev->summary_json, nullptr, false);
        if (!before.is_object() || !before.contains("grants")) return;
        for (const char* role : {"source", "target"}) {
            const auto was = before["grants"].value(role, nlohmann::json::array());
            auto it = out_.grants.find(role);
            const auto now = it == out_.grants.end() ? nlohmann::json::array() : grants_json(it->second);
            if (was == now) continue;
            std::string then;
            for (auto& g : was) then += (then.empty() ? "" : "; ") + g.value("kind", "") + " " + g.value("value", "");
            findings_.add({"warning", "grants_changed", "", "", 0, 0, "",
                           std::string("the ") + role + " connector's grants changed since the last good run " +
                               prev->id + ": it may now reach " +
                               grants_text(it == out_.grants.end() ? std::vector<grant>{} : it->second) +
                               " (it could reach " + (then.empty() ? "nothing" : then) + ")"});
        }
    }

    worker_options worker_opts(const std::string& job_name) const {
        worker_options o;
        o.limits = {runtime_.memory_mb, runtime_.cpu_seconds, runtime_.open_files, runtime_.read_ahead_mb,
                    runtime_.processes};
        o.stall = runtime_.stall;
        o.grace = runtime_.grace;
        o.cancel = cancel_;
        o.run_id = out_.run.id;
        o.job = job_name;
        // What the run's connectors say goes to its own log, capped.
        set_current_run(out_.run.id, runtime_.output_mb << 20);
        return o;
    }

    // Starts the worker of a job's source or target for open_one to take
    // over; the worker checks the library's SHA-256 before it loads it.
    // Anything that goes wrong here is left for open_one to find and report;
    // settings that name a secret wait for open_one, which resolves them.
    void start_early(const connector_ref& ref, const std::string& role) {
        auto rel = reg_.resolve_for(job_->name, ref.connector, ref.version);
        if (!rel || names_a_secret(ref.settings)) return;
        const std::string where = job_->file.string() + ": $." + role + ".settings";
        auto settings = expand_settings(ref.settings, data_dir_, job_->base_dir, where);
        if (!settings) return;
        auto policy = sandbox_for(*rel, *settings, job_->base_dir, job_->name, role, where);
        if (!policy) return;
        worker_options o = worker_opts(job_->name);
        o.sandbox = std::move(*policy);
        o.env = ref.env;
        auto w = start_worker(rel->path, rel->info, rel->sha256, o);
        if (w) started_[role] = {rel->path, std::move(*w)};
    }

    // Settings with each {"$secret": NAME} replaced by its current value;
    // the secret store (and its master key) is opened only when one is named.
    Result<nlohmann::json> with_secrets(const nlohmann::json& settings, const std::string& role, const std::string& where) {
        if (!names_a_secret(settings)) return settings;
        if (!secrets_) {
            auto key = master_key::load(data_dir_);
            if (!key) return key.status().context(where + " names a secret");
            secrets_ = std::make_unique<secret_store>(store_, std::move(*key), clock_);
        }
        std::vector<secret_use> used;
        auto out = resolve_secrets(settings, secrets_.get(), where, used);
        for (auto& u : used) {
            out_.secrets_used.emplace_back(role, u);
            if (u.short_value)
                findings_.add({"warning", "short_secret", "", "", 0, 0, "",
                               "secret " + u.name + " (version " + std::to_string(u.version) + ", used by the " + role +
                                   " connector) is shorter than " + std::to_string(pii::k_short_secret) +
                                   " bytes: it cannot be told from ordinary text, so the logs may show it where the "
                                   "connector prints it; rotate it to a longer value (`syncwarden secrets rotate " +
                                   u.name + "`)"});
        }
        return out;
    }

    Status open_one(const connector_ref& ref, const char* role, uint32_t need_cap,
                    std::unique_ptr<connector_session>& session, std::string& version, run_services& rs) {
        auto rel = reg_.resolve_for(job_->name, ref.connector, ref.version);
        if (!rel) return rel.status().context(std::string("resolving the ") + role + " connector");
        version = rel->info.version;
        if ((rel->info.capabilities & need_cap) == 0)
            return Status::error(error_kind::config,
                                 job_->file.string() + ": $." + role + ".connector: '" + ref.connector +
                                     "' is not a " + role + " connector (capabilities: " +
                                     capabilities_text(rel->info.capabilities) + ")");
        const std::string where = job_->file.string() + ": $." + role + ".settings";
        auto settings = expand_settings(ref.settings, data_dir_, job_->base_dir, where);
        if (!settings) return settings.status();
        out_.builds[role] = rel->info.build_id;
        if (std::string(role) == "target") {
            target_settings_ = *settings;
            target_build_ = rel->info.build_id;
        }
        // The plan and the target's lock see the settings with their
        // {"$secret": NAME} references; only the session gets the values.
        auto resolved = with_secrets(*settings, role, where);
        if (!resolved) return resolved.status();
        auto s = open_session(*rel, *resolved, job_->name, job_->base_dir, rs, where, role, ref.env);
        if (!s) return s.status();
        session = std::move(*s);
        return Status::ok();
    }

    static void keep_only(planned& p, const std::map<std::string, std::set<std::string>>& only) {
        for (auto& ep : p.changes.entities) {
            auto it = only.find(ep.schema.name);
            std::erase_if(ep.changes, [&](const planned_change& c) {
                return it == only.end() || !it->second.count(std::string(ep.key_of(c)));
            });
        }
    }

    static std::map<std::string, change_counts> counts_of(const plan_header& h) {
        std::map<std::string, change_counts> out;
        for (auto& e : h.entities) out[e.name] = {e.creates, e.updates, e.deletes, e.deactivates, e.adopts};
        return out;
    }

    Result<written_plan> persist(const job_config& job, const run_options& opts, const planned& p) {
        out_.planned = p.changes.counts();
        for (auto& ep : p.changes.entities)
            for (auto& c : ep.changes) {
                if (out_.preview.size() >= opts.preview) break;
                out_.preview.push_back(change_line(ep, c));
            }
        change_counts total;
        for (auto& [e, c] : out_.planned) {
            total.create += c.create;
            total.update += c.update;
            total.remove += c.remove;
            total.deactivate += c.deactivate;
            total.adopt += c.adopt;
        }
        nlohmann::json human{{"run_id", out_.run.id},
                             {"job", job.name},
                             {"created_at", out_.run.created_at},
                             {"dry_run", opts.dry_run},
                             {"source", {{"connector", job.source.connector}, {"version", out_.run.source_version}}},
                             {"target", {{"connector", job.target.connector}, {"version", out_.run.target_version}}},
                             {"summary", counts_json(out_.planned)}};
        if (!opts.retry_of.empty()) human["retry_of"] = opts.retry_of;
        if (!opts.allow.as_given.empty()) human["allowed"] = opts.allow.as_given;
        human["gates"] = verdicts_json(out_.verdicts);
        nlohmann::json prot = nlohmann::json::array();
        for (auto& ep : p.changes.entities)
            for (auto& pr : ep.protected_records) {
                prot.push_back({{"entity", ep.schema.name}, {"key", pr.key}, {"would", pr.would}, {"rule", pr.rule}});
                ++out_.protected_records;
            }
        human["protected"] = prot;
        plan_header h;
        h.job = job.name;
        h.run_id = out_.run.id;
        h.created_at = out_.run.created_at;
        h.target = {job.target.connector, out_.run.target_version, target_build_, target_settings_,
                    job.base_dir.string()};
        h.batch_size = job.batch_size;
        h.state_token = p.state_token;
        finish_findings();
        auto w = write_plan_files(data_dir_ / "plans", h, p.changes, human, out_.findings);
        if (!w) return w.status();
        out_.plan_path = w->json;
        if (!opts.plan_out.empty())
            if (auto s = place_plan_report(w->json, opts.plan_out); !s) return s;
        plan_record pr{out_.run.id, w->json.string(), w->json_digest, total.create, total.update + total.deactivate + total.adopt,
                       total.remove, w->binary.string(), w->digest, w->content_digest, ""};
        if (auto s = store_.save_plan(pr); !s) return s;
        return std::move(*w);
    }

    Status apply(const plan_reader& reader, connector_session& target) {
        out_.run.state = "applying";
        if (auto s = phase("apply"); !s) return s;
        apply_context ctx{clock_, sleeper_, retry_};
        ctx.cancel = cancel_;
        ctx.acknowledged = resume_.acknowledged;
        ctx.inflight_seq = resume_.inflight_seq;
        ctx.check_state = resume_.check_state;
        if (runtime_.apply.count() > 0) ctx.deadline = clock_.now() + runtime_.apply;
        rate_limiter limiter(ctx.policy, clock_, sleeper_);
        if (limiter.limited()) ctx.limiter = &limiter;
        target_host_.limiter = ctx.limiter;
        ctx.connector_paces = &target_host_.paces;
        ctx.seed = std::random_device{}();
        if (target.info().capabilities & SW_CAP_TARGET_IDS) ctx.target_system = target_system_;
        auto s = apply_plan(reader, target, target_host_, store_, out_.run.id, applied_, ctx);
        target_host_.limiter = nullptr;
        return s;
    }

    registry& reg_;
    run_store& store_;
    const clock& clock_;
    const fs::path& data_dir_;
    run_outcome& out_;
    const job_config* job_ = nullptr;
    finding_log findings_;
    run_host source_host_, target_host_;
    nlohmann::json target_settings_;
    std::string target_system_;  // what the target lock is named by
    std::unique_ptr<secret_store> secrets_;
    std::string target_build_;
    job_runtime runtime_;
    retry_policy retry_;
    const cancel_flag* cancel_ = nullptr;
    bool no_wait_ = false;
    file_lock target_lock_;
    struct {
        std::function<bool(uint64_t)> acknowledged;
        std::optional<uint64_t> inflight_seq;
        bool check_state = true;
    } resume_;
    apply_outcome applied_;
    std::unique_ptr<connector_session> source_, target_;
    // Workers started before their sessions (start_early), by role, with
    // the library each was started for.
    std::map<std::string, std::pair<fs::path, std::shared_ptr<started_worker>>> started_;
};

}  // namespace

int exit_code_for(const Status& s) {
    if (s) return 0;
    switch (s.kind()) {
        case error_kind::usage: return 2;
        case error_kind::config: return 3;
        case error_kind::connector: return 4;
        case error_kind::input: return 5;
        case error_kind::target: return 6;
        case error_kind::not_found: return 7;
        case error_kind::store:
        case error_kind::internal: return 1;
        case error_kind::cancelled: return 8;
        case error_kind::busy: return 9;
        case error_kind::held: return 10;
        case error_kind::tampered: return 11;
    }
    return 1;
}

pipeline::pipeline(registry& reg, run_store& store, const clock& clk, fs::path data_dir)
    : registry_(reg), store_(store), clock_(clk), data_dir_(std::move(data_dir)) {}

pipeline::~pipeline() = default;

Result<audit_log*> pipeline::audit() {
    if (!audit_) {
        if (auto k = pii::use_data_dir_key(data_dir_); !k) return k;
        auto a = audit_log::open(store_, data_dir_, clock_);
        if (!a) return a.status();
        audit_ = std::move(*a);
    }
    return audit_.get();
}

// A config file the kernel reads whose content is not what it last saw:
// a `config_changed` event (its path and digests, never its content).
Status pipeline::config_events(const std::string& run_id, const fs::path& job_file, const std::string& job_digest,
                               std::vector<audit_event>& events) {
    std::vector<std::tuple<std::string, fs::path, std::string>> files{{"job", job_file, job_digest}};
    if (!kernel_config_.empty()) {
        std::string err;
        files.emplace_back("kernel", kernel_config_, sha256_file_hex(kernel_config_, &err));
    }
    for (auto& [kind, file, digest] : files) {
        const std::string path = fs::absolute(file).lexically_normal().string();
        auto seen = store_.config_digest(path);
        if (!seen) return seen.status();
        if (*seen && **seen == digest) continue;
        nlohmann::json d{{"config", kind}, {"path", path}, {"digest", digest}, {"seen_by_run", run_id}};
        d["previous_digest"] = *seen ? nlohmann::json(**seen) : nlohmann::json(nullptr);
        events.push_back({"config_changed", "", std::move(d)});
        if (auto s = store_.save_config_digest(path, digest, iso8601(clock_.now())); !s) return s;
    }
    return Status::ok();
}

namespace {

// Records how a run ended. An apply ends in one store transaction that also
// turns its staged changes into applied (committed) or failed.
void finish_run(run_store& store, audit_log* audit, const clock& clk, run_outcome& out, const apply_outcome& a, Status s) {
    run_record& r = out.run;
    // Accepted changes of a run that stopped before its commit stay staged:
    // not applied, not failed; a resumed run takes them up.
    out.applied = a.committed ? a.staged + a.skipped : 0;
    out.failed = a.failed + (a.commit_attempted && !a.committed ? a.staged : 0);
    // A connector that quoted its own credential in an error: the value
    // goes nowhere, the terminal included.
    if (!s && !out.secrets_used.empty())
        s = Status::error(s.kind(), pii::without_secrets(s.message())).with_category(s.category());
    out.status = s;
    r.finished_at = iso8601(clk.now());
    r.exit_code = exit_code_for(s);
    r.error = s ? "" : s.message();
    r.category = s ? "" : s.category();
    if (s) r.state = "succeeded";
    else if (s.kind() == error_kind::cancelled) r.state = s.category() == "interrupted" ? "interrupted" : "cancelled";
    else if (s.kind() == error_kind::held) r.state = "held";
    else if (s.kind() == error_kind::target && out.applied > 0) r.state = "partially_failed";
    else r.state = "failed";
    nlohmann::json summary{{"extracted_findings", out.findings.size() + out.findings_not_kept},
                           {"blocking_findings", out.blocking_findings},
                           {"applied", out.applied},
                           {"failed", out.failed},
                           {"planned", counts_json(out.planned)}};
    if (!out.retry_of.empty()) summary["retry_of"] = out.retry_of;
    if (!out.allowed.empty()) summary["allowed"] = out.allowed;
    if (!out.grants.empty()) {
        summary["grants"] = nlohmann::json::object();
        for (auto& [role, g] : out.grants) summary["grants"][role] = grants_json(g);
    }
    if (!out.unconfined.empty()) summary["unconfined"] = out.unconfined;
    if (auto o = connector_output_of(r.id); o.lines || o.dropped_lines) {
        summary["connector_output"] = {{"file", o.file},           {"lines", o.lines},
                                       {"bytes", o.bytes},         {"dropped_lines", o.dropped_lines},
                                       {"dropped_bytes", o.dropped_bytes}, {"cap_bytes", o.cap}};
        if (o.dropped_lines)
            log_warn({r.id, r.job, "", "", "connector_output_capped"},
                     "the connectors' output passed the run's cap of " + std::to_string(o.cap) + " bytes: " +
                         std::to_string(o.dropped_lines) + " lines (" + std::to_string(o.dropped_bytes) +
                         " bytes) were counted, not kept; the rest is in " + o.file);
    }
    if (out.protected_records) summary["protected"] = out.protected_records;
    size_t holding = 0;
    for (auto& v : out.verdicts) holding += v.holds();
    if (holding) summary["gates_holding"] = holding;
    if (out.connector_retries) {
        summary["connector_retries"] = out.connector_retries;
        summary["connector_retry_wait_ms"] = out.connector_retry_wait.count();
    }
    if (a.staged || a.failed || a.skipped) {
        summary["staged_not_committed"] = a.commit_attempted ? 0 : a.staged;
        summary["resent"] = a.resent;
        summary["retry_wait_ms"] = a.waited.count();
        summary["failed_by_category"] = a.failed_by_category;
        if (a.skipped) summary["acknowledged_before"] = a.skipped;
    }
    r.summary_json = summary.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    // The store refers to values by position and keyed hash; the plan has
    // them in clear.
    std::vector<finding_record> stored = out.findings;
    for (auto& f : stored) {
        if (!f.key.empty()) f.key = pii::keyed(f.key);
        f.message = pii::redact(f.message);
    }
    r.error = pii::redact(r.error);
    if (auto fs_ = store.add_findings(r.id, stored); !fs_ && s) out.status = fs_;
    auto write_state = [&] {
        return a.commit_attempted ? store.finish_apply(r, a.committed, a.commit_category, a.commit_message)
                                  : store.update_run(r);
    };
    // The run's summary goes into the audit log in the transaction that
    // records how it ended.
    std::string plan_digest;
    if (auto pr = store.get_plan(r.plan_of.empty() ? r.id : r.plan_of); pr && *pr) plan_digest = (**pr).digest;
    const audit_event summary_event = run_summary_event(out, a, plan_digest, clk.now());
    Status recorded = store.in_transaction([&] {
        if (auto w = write_state(); !w) return w;
        return audit ? audit->append({summary_event}) : Status::ok();
    });
    if (!recorded && recorded.kind() == error_kind::tampered) {
        // The log refuses appends: the run's outcome is still recorded, and
        // the run fails loudly so that the log is looked at.
        const Status unaudited = recorded.context("run " + r.id + " ended " + r.state +
                                                  ", but its summary could not be added to the audit log");
        r.exit_code = exit_code_for(unaudited);
        if (auto w = write_state(); !w) out.status = w;
        else out.status = unaudited;
    } else if (!recorded) {
        if (a.committed)
            out.status = recorded.context("the target made " + std::to_string(a.staged) +
                                          " changes durable, but the run store could not record it, so it still "
                                          "shows them as staged. The target holds the changes; nothing needs to be "
                                          "applied again. Recording failed");
        else if (out.status)
            out.status = recorded;
        r.exit_code = exit_code_for(out.status);
    }
    if (out.status) log_info({r.id, r.job, "", r.phase, "run_finished"}, r.state);
    // Only the class of error: its message may quote record keys, which are
    // people's identifiers and never go into logs.
    else log_warn({r.id, r.job, "", r.phase, "run_finished"}, r.state + ": " + to_string(out.status.kind()));
    // The kernel process's own peak so far (its workers log theirs as
    // worker_finished): what a host for runs of this size needs.
    rusage ru{};
    if (::getrusage(RUSAGE_SELF, &ru) == 0) {
        char msg[96];
        std::snprintf(msg, sizeof msg, "kernel process: peak RSS %ld MiB, CPU %.2f s", ru.ru_maxrss / 1024,
                      static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                          static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
        log_info({r.id, r.job, "", r.phase, "resources"}, msg);
    }
}

}  // namespace

namespace {

// Runs `body` on a driver for `out.run`, turning anything thrown into an
// internal error, and records how the run ended.
template <class F>
void drive(registry& reg, run_store& store, audit_log* audit, const clock& clk, sleeper& sl, const fs::path& data_dir,
           const cancel_flag* cancel, bool no_wait, run_outcome& out, F&& body) {
    Status s;
    apply_outcome applied;
    // The job file as it is now, for runs that start from a stored plan
    // (run() read it already, before the run was created).
    if (out.job_digest.empty()) {
        std::string unreadable;
        out.job_digest = sha256_file_hex(out.run.job_file, &unreadable);
    }
    try {
        run_driver d(reg, store, clk, sl, data_dir, out);
        d.set_cancel(cancel);
        d.set_no_wait(no_wait);
        s = body(d);
        // A hook that stopped because it was asked to (an in-process
        // connector returning SW_CANCELLED) ends the run as cancelled.
        // So does a worker stopped by the cancel (its hook reports the
        // cancel's own status, as a connector failure).
        if (!s && cancel && cancel->requested.load() && s.kind() != error_kind::cancelled &&
            (s.message().find("(cancelled") != std::string::npos || s.category() == "cancelled" ||
             s.category() == "interrupted"))
            s = cancelled_status(*cancel, "during " + out.run.phase);
        d.finish_findings();
        applied = d.applied();
        out.connector_retries = d.connector_retries();
        out.connector_retry_wait = d.connector_retry_wait();
    } catch (const std::exception& e) {
        s = Status::error(error_kind::internal, std::string("the kernel failed: ") + e.what());
    }
    finish_run(store, audit, clk, out, applied, s);
}

}  // namespace

run_outcome pipeline::run(const job_config& job, const run_options& opts) {
    run_outcome out;
    run_record& r = out.run;
    r.id = opts.run_id.empty() ? new_run_id(clock_) : opts.run_id;
    r.job = job.name;
    r.job_file = job.file.string();
    r.dry_run = opts.dry_run;
    r.created_at = iso8601(clock_.now());
    r.state = "running";
    r.phase = "contract";
    r.source_connector = job.source.connector;
    r.target_connector = job.target.connector;
    r.trigger = opts.trigger.empty() ? actor_ : opts.trigger;
    out.allowed = opts.allow.as_given;
    auto log = audit();
    if (!log) {
        out.status = log.status();
        return out;
    }
    std::string unreadable;
    out.job_digest = sha256_file_hex(job.file, &unreadable);
    if (!opts.run_id.empty())
        if (auto existing = store_.get_run(opts.run_id); existing) {
            out.status = Status::error(error_kind::usage, "--run-id " + opts.run_id + ": a run with that id exists "
                                                          "already (" + existing->state + ", job " + existing->job +
                                                          "); give a new id, or none for one to be made");
            r.id.clear();  // nothing of this run was recorded
            return out;
        }
    // Held until the run's outcome is recorded: without a holder, a run
    // still shown as running was interrupted.
    auto lock = take_run_lock(data_dir_, r.id);
    if (!lock) {
        out.status = lock.status();
        return out;
    }
    if (auto s = store_.in_transaction([&] {
            if (auto x = store_.create_run(r); !x) return x;
            std::vector<audit_event> events;
            if (auto x = config_events(r.id, job.file, out.job_digest, events); !x) return x;
            if (!opts.retry_of.empty())
                events.push_back({"retry_failed", opts.retry_of, {{"by", r.trigger}, {"retry_run", r.id}}});
            return (*log)->append(events);
        });
        !s) {
        out.status = s;
        return out;
    }
    out.retry_of = opts.retry_of;
    drive(registry_, store_, *log, clock_, *sleeper_, data_dir_, cancel_, opts.no_wait, out,
          [&](run_driver& d) { return d.plan_and_apply(job, opts); });
    return out;
}

run_outcome pipeline::retry_failed(const std::string& run_id, run_options opts) {
    run_outcome out;
    auto run = store_.get_run(run_id);
    if (!run) {
        out.status = run.status();
        return out;
    }
    if (run->dry_run || run->state == "running" || run->state == "applying" || run->state == "queued") {
        out.status = Status::error(error_kind::usage, "run " + run_id + " is " + (run->dry_run ? "a dry run" : run->state) +
                                                          "; only a finished run that applied has failed changes to retry");
        return out;
    }
    // The store names failed changes by their plan position; their keys
    // are in the plan.
    std::set<uint64_t> failed;
    if (auto read = store_.each_change_result(run_id, [&](const change_result_record& x) {
            if (x.status != "applied" && x.status != "staged") failed.insert(x.seq);
        });
        !read) {
        out.status = read;
        return out;
    }
    if (failed.empty()) {
        out.status = Status::error(error_kind::usage, "run " + run_id + " has no failed changes to retry");
        return out;
    }
    const std::string plan_run = run->plan_of.empty() ? run_id : run->plan_of;
    auto pr = store_.get_plan(plan_run);
    if (!pr) {
        out.status = pr.status();
        return out;
    }
    std::error_code ec;
    if (!*pr || (*pr)->plan_file.empty() || !(*pr)->purged_at.empty() || !fs::exists((*pr)->plan_file, ec)) {
        out.status = Status::error(error_kind::not_found,
                                   "the plan of run " + plan_run + ", which names the records whose changes failed, is "
                                   "gone (the retention policy purges old plans); run the job again instead");
        return out;
    }
    auto reader = plan_reader::open((*pr)->plan_file, (*pr)->digest);
    if (!reader) {
        out.status = reader.status();
        return out;
    }
    if (auto s = (*reader)->for_each_batch(4096, [&](const plan_header::entity& e, const sw_change_batch& b, uint64_t first) {
            for (size_t k = 0; k < b.change_count; ++k)
                if (failed.count(first + k))
                    opts.only_keys[e.name].insert(std::string(b.changes[k].key.ptr, b.changes[k].key.len));
            return Status::ok();
        });
        !s) {
        out.status = s;
        return out;
    }
    reader->reset();
    auto job = load_job(run->job_file);
    if (!job) {
        out.status = job.status().context("run " + run_id + "'s job");
        return out;
    }
    opts.retry_of = run_id;
    return this->run(*job, opts);
}

run_outcome pipeline::resume(const std::string& run_id, bool no_wait) {
    run_outcome out;
    auto run = store_.get_run(run_id);
    if (!run) {
        out.status = run.status();
        return out;
    }
    auto refuse = [&](error_kind k, const std::string& why) {
        out.status = Status::error(k, "run " + run_id + " " + why);
        return out;
    };
    const bool resumable = run->state == "cancelled" || run->state == "interrupted" ||
                           (run->state == "failed" && (run->category == "target_unavailable" ||
                                                       run->category == "timeout" ||
                                                       run->category == "connector_crashed" ||
                                                       run->category == "connector_oom"));
    if (run->dry_run) return refuse(error_kind::usage, "was a dry run: it has nothing to resume; `syncwarden runs apply " +
                                                           run_id + "` applies its plan");
    if (!resumable)
        return refuse(error_kind::usage, "ended " + run->state + (run->category.empty() ? "" : " (" + run->category + ")") +
                                             "; only a cancelled or interrupted run, or one stopped by an unavailable "
                                             "target, a timeout or a connector's crash, can be resumed");
    if (run->phase != "apply")
        return refuse(error_kind::usage, "stopped during " + (run->phase.empty() ? std::string("its start") : run->phase) +
                                             ", before anything was applied: run the job again");
    auto pr = store_.get_plan(run->plan_of.empty() ? run_id : run->plan_of);
    if (!pr) {
        out.status = pr.status();
        return out;
    }
    if (!*pr || (*pr)->plan_file.empty()) return refuse(error_kind::not_found, "has no stored plan to resume from");
    if (!(*pr)->purged_at.empty())
        return refuse(error_kind::not_found, "cannot be resumed: its plan was removed by the retention policy on " +
                                                 (*pr)->purged_at + "; run the job again");
    auto lock = take_run_lock(data_dir_, run_id);
    if (!lock) {
        out.status = lock.status().context("run " + run_id + " is being resumed by another process");
        return out;
    }
    run_record& r = out.run;
    r = *run;
    r.state = "applying";
    r.finished_at.clear();
    r.error.clear();
    r.category.clear();
    r.exit_code = 0;
    auto log = audit();
    if (!log) {
        out.status = log.status();
        return out;
    }
    if (auto s = store_.in_transaction([&] {
            if (auto x = store_.update_run(r); !x) return x;
            return (*log)->append({{"resume", run_id, {{"by", actor_}, {"from_phase", r.phase}}}});
        });
        !s) {
        out.status = s;
        return out;
    }
    out.plan_path = (*pr)->path;
    drive(registry_, store_, *log, clock_, *sleeper_, data_dir_, cancel_, no_wait, out,
          [&](run_driver& d) { return d.resume(**pr); });
    return out;
}

run_outcome pipeline::apply_stored(const std::string& run_id, bool no_wait) {
    run_outcome out;
    auto dry = store_.get_run(run_id);
    if (!dry) {
        out.status = dry.status();
        return out;
    }
    auto refuse = [&](error_kind k, const std::string& why) {
        out.status = Status::error(k, "run " + run_id + " " + why);
        return out;
    };
    if (!dry->dry_run) return refuse(error_kind::usage, "was not a dry run: it applied its own plan when it ran");
    if (dry->state == "held")
        return refuse(error_kind::usage, "was held by a safety gate (" + dry->error +
                                             "); `syncwarden runs approve " + run_id +
                                             " --as NAME` applies its plan after an operator's decision");
    if (dry->state != "succeeded")
        return refuse(error_kind::usage, "ended " + dry->state + "; only a dry run that succeeded has a plan to apply");
    auto pr = store_.get_plan(run_id);
    if (!pr) {
        out.status = pr.status();
        return out;
    }
    if (!*pr || (*pr)->plan_file.empty())
        return refuse(error_kind::not_found, "has no stored plan for the applier (it was made by an older kernel); "
                                             "make a new plan with `syncwarden run JOB.json --dry-run`");
    if (!(*pr)->purged_at.empty())
        return refuse(error_kind::not_found, "has no plan any more: the retention policy removed it on " +
                                                 (*pr)->purged_at + "; make a new plan with `syncwarden run JOB.json --dry-run`");
    run_record& r = out.run;
    r.id = new_run_id(clock_);
    r.job = dry->job;
    r.job_file = dry->job_file;
    r.dry_run = false;
    r.plan_of = run_id;
    r.created_at = iso8601(clock_.now());
    r.state = "running";
    r.phase = "apply";
    r.source_connector = dry->source_connector;
    r.source_version = dry->source_version;
    r.target_connector = dry->target_connector;
    r.trigger = actor_;
    auto log = audit();
    if (!log) {
        out.status = log.status();
        return out;
    }
    auto lock = take_run_lock(data_dir_, r.id);
    if (!lock) {
        out.status = lock.status();
        return out;
    }
    if (auto s = store_.create_run(r); !s) {
        out.status = s;
        return out;
    }
    out.plan_path = (*pr)->path;
    drive(registry_, store_, *log, clock_, *sleeper_, data_dir_, cancel_, no_wait, out,
          [&](run_driver& d) { return d.apply_stored(*dry, **pr); });
    return out;
}

}  // namespace syncwarden::kernel
