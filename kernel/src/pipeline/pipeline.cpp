#include <syncwarden/kernel/log.hpp>
#include <syncwarden/kernel/mapper.hpp>
#include <syncwarden/kernel/pipeline.hpp>
#include <syncwarden/kernel/record_checker.hpp>
#include <syncwarden/kernel/session.hpp>

#include "custom_diff.hpp"
#include "plan_writer.hpp"

#include <random>
#include <set>

namespace fs = std::filesystem;

namespace syncwarden::kernel {
namespace {

constexpr size_t k_max_findings_kept = 10000;

std::string_view view(sw_str s) { return s.ptr ? std::string_view(s.ptr, s.len) : std::string_view(); }

const char* severity_name(uint32_t s) {
    return s == SW_SEVERITY_ERROR ? "error" : s == SW_SEVERITY_WARNING ? "warning" : "info";
}

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

// One run in progress: its sessions, record sets and findings.
class run_driver {
public:
    run_driver(registry& reg, run_store& store, const clock& clk, const fs::path& data_dir,
               const job_config& job, const run_options& opts, run_outcome& out)
        : reg_(reg), store_(store), clock_(clk), data_dir_(data_dir), job_(job), opts_(opts), out_(out) {}

    Status run() {
        if (auto s = open_connectors(); !s) return s;
        if (auto s = phase("contract"); !s) return s;
        if (auto s = check_contracts(); !s) return s;
        // With the kernel's own diff, the target's state is read first and
        // indexed, so each source record is compared as it streams in and
        // unchanged records are never stored. A target's diff hook needs
        // every desired record, so that path keeps them all.
        streaming_ = !target_->has_diff();
        if (auto s = phase("extract"); !s) return s;
        if (streaming_) {
            if (auto s = read_state(); !s) return s;
            index_current();
        }
        if (auto s = extract(); !s) return s;
        if (auto s = phase("diff"); !s) return s;
        if (!streaming_)
            if (auto s = read_state(); !s) return s;
        if (auto s = diff(); !s) return s;
        if (auto s = phase("gates"); !s) return s;
        if (auto s = blocking_gate(); !s) return s;
        if (auto s = save_plan(); !s) return s;
        if (opts_.dry_run) return Status::ok();
        out_.run.state = "applying";
        if (auto s = phase("apply"); !s) return s;
        return apply();
    }

private:
    Status phase(const char* name) {
        out_.run.phase = name;
        log_info({out_.run.id, job_.name, "", name, "phase_start"}, name);
        return store_.update_run(out_.run);
    }

    void add_finding(finding_record f) {
        bool used = f.entity.empty() || used_entities_.count(f.entity);
        if (f.severity == "error") {
            if (used) ++out_.blocking_findings;
            else {
                f.severity = "warning";
                f.message += " (entity not used by this job, so it does not block the run)";
            }
        }
        if (out_.findings.size() < k_max_findings_kept) out_.findings.push_back(std::move(f));
        else ++out_.findings_not_kept;
    }

    Status open_one(const connector_ref& ref, const char* role, uint32_t need_cap,
                    std::unique_ptr<connector_session>& session, std::string& version) {
        auto rel = reg_.resolve(ref.connector, ref.version);
        if (!rel) return rel.status().context(std::string("resolving the ") + role + " connector");
        auto lib = reg_.open(*rel);
        if (!lib) return lib.status();
        version = rel->info.version;
        if (((*lib)->info().capabilities & need_cap) == 0)
            return Status::error(error_kind::config,
                                 job_.file.string() + ": $." + role + ".connector: '" + ref.connector +
                                     "' is not a " + role + " connector (capabilities: " +
                                     capabilities_text((*lib)->info().capabilities) + ")");
        auto s = connector_session::create(*lib, expand(ref.settings), job_.name, job_.base_dir);
        if (!s) return s.status();
        session = std::move(*s);
        return Status::ok();
    }

    // "${data_dir}" and "${job_dir}" in setting strings.
    nlohmann::json expand(const nlohmann::json& j) const {
        if (j.is_string()) {
            std::string v = j.get<std::string>();
            for (auto [var, value] : {std::pair{std::string("${data_dir}"), data_dir_.string()},
                                      std::pair{std::string("${job_dir}"), job_.base_dir.string()}})
                for (size_t p = v.find(var); p != std::string::npos; p = v.find(var, p + value.size()))
                    v.replace(p, var.size(), value);
            return v;
        }
        nlohmann::json out = j;
        if (j.is_array())
            for (size_t i = 0; i < j.size(); ++i) out[i] = expand(j[i]);
        else if (j.is_object())
            for (auto& [k, v] : j.items()) out[k] = expand(v);
        return out;
    }

    Status open_connectors() {
        if (auto s = open_one(job_.source, "source", SW_CAP_SOURCE, source_, out_.run.source_version); !s) return s;
        return open_one(job_.target, "target", SW_CAP_TARGET, target_, out_.run.target_version);
    }

    Status check_contracts() {
        auto sc = source_->contract();
        if (!sc) return sc.status();
        auto tc = target_->contract();
        if (!tc) return tc.status();
        source_contract_ = std::move(*sc);
        target_contract_ = std::move(*tc);
        for (auto& m : job_.entities) {
            const entity_schema* se = source_contract_.find(m.source);
            const entity_schema* te = target_contract_.find(m.target);
            auto names = [](const contract_schema& c) {
                std::string s;
                for (auto& e : c.entities) s += (s.empty() ? "" : ", ") + e.name;
                return s;
            };
            if (!se)
                return Status::error(error_kind::config, job_.file.string() + ": " + m.path + ".source: '" + m.source +
                                                             "' is not an entity of " + source_->who() +
                                                             " (entities: " + names(source_contract_) + ")");
            if (!te)
                return Status::error(error_kind::config, job_.file.string() + ": " + m.path + ".target: '" + m.target +
                                                             "' is not an entity of " + target_->who() +
                                                             " (entities: " + names(target_contract_) + ")");
            auto em = entity_mapper::compile(m, job_, *se, *te);
            if (!em) return em.status();
            mappers_.push_back(std::move(*em));
            mapper_target_.push_back(plans_.entities.size());
            used_entities_.insert(m.source);
            used_entities_.insert(m.target);
            entity_plan ep;
            ep.schema = *te;
            ep.desired = record_set(te->fields.size());
            ep.current = record_set(te->fields.size());
            plans_.entities.push_back(std::move(ep));
            target_index_[m.target] = plans_.entities.size() - 1;
        }
        return Status::ok();
    }

    Status extract() {
        std::vector<std::string> requested;
        for (auto& m : mappers_)
            if (std::find(requested.begin(), requested.end(), m.source()) == requested.end())
                requested.push_back(m.source());
        auto& ctx = source_->ctx();
        collect_findings(*source_);
        std::string key;
        std::vector<std::string> values;
        std::vector<std::string_view> views;
        std::string error;
        record_checker checker(source_contract_, source_->who(), "extract",
                               [this](finding_record f) { add_finding(std::move(f)); });
        ctx.on_emit = [&, this](const sw_batch& b) -> sw_status {
            const entity_schema* es = checker.check_batch(b);
            if (!es) return SW_OK;
            if (std::find(requested.begin(), requested.end(), es->name) == requested.end()) return SW_OK;
            auto mode = static_cast<sw_batch_mode>(b.mode == SW_MODE_DELTA ? SW_MODE_DELTA : SW_MODE_BULK);
            for (size_t mi = 0; mi < mappers_.size(); ++mi)
                if (mappers_[mi].source() == es->name) {
                    auto& ep = plans_.entities[mapper_target_[mi]];
                    ep.source_sent = true;
                    if (mode == SW_MODE_DELTA) ep.mode = SW_MODE_DELTA;
                }
            for (size_t i = 0; i < b.record_count; ++i) {
                const sw_record& rec = b.records[i];
                ++extracted_;
                if (!checker.check_record(rec, *es)) continue;
                for (size_t mi = 0; mi < mappers_.size(); ++mi) {
                    auto& m = mappers_[mi];
                    if (m.source() != es->name) continue;
                    const size_t ti = mapper_target_[mi];
                    auto& ep = plans_.entities[ti];
                    auto o = m.map(rec, key, values, error);
                    if (o == entity_mapper::outcome::filtered) continue;
                    if (o == entity_mapper::outcome::failed) {
                        add_finding({"error", "mapping", m.target(), "", 0, 0, std::string(view(rec.key)),
                                     m.target() + " from " + es->name + " '" + std::string(view(rec.key)) + "': " + error});
                        continue;
                    }
                    views.assign(values.begin(), values.end());
                    if (!check_mapped(ep.schema, rec, key, views)) continue;
                    const bool tobedeleted = rec.state == SW_RECORD_TOBEDELETED;
                    if (!streaming_) ep.desired.add(key, views.data(), static_cast<uint8_t>(tobedeleted));
                    else if (!differs_[ti]->offer(key, views.data(), tobedeleted)) duplicate_in_source(ep, key);
                }
            }
            return SW_OK;
        };
        auto s = source_->extract(requested);
        ctx.on_emit = nullptr;
        log_info({out_.run.id, job_.name, source_->who(), "extract", "extracted"},
                 std::to_string(extracted_) + " records");
        return s;
    }

    bool check_mapped(const entity_schema& es, const sw_record& rec, const std::string& key,
                      const std::vector<std::string_view>& values) {
        std::string what;
        if (key.empty()) what = es.key_name + " maps to an empty value";
        else if (auto p = find_value_problem(es, values.data(), rec.state == SW_RECORD_ACTIVE); p.code) what = p.what;
        if (what.empty()) return true;
        add_finding({"error", "mapping", es.name, "", 0, 0, std::string(view(rec.key)),
                     es.name + " '" + key + "' (source key '" + std::string(view(rec.key)) + "'), after mapping: " + what});
        return false;
    }

    // Findings from a connector, whichever hook it reports them in.
    void collect_findings(connector_session& s) {
        s.ctx().on_finding = [this](const sw_finding& f) {
            add_finding({severity_name(f.severity), std::string(view(f.code)), std::string(view(f.entity)),
                         std::string(view(f.file)), f.line, f.column, std::string(view(f.key)),
                         std::string(view(f.message))});
        };
    }

    Status read_state() {
        std::vector<std::string> requested;
        for (auto& ep : plans_.entities) requested.push_back(ep.schema.name);
        auto& ctx = target_->ctx();
        collect_findings(*target_);
        std::vector<std::string_view> views;
        record_checker checker(target_contract_, target_->who(), "read_state",
                               [this](finding_record f) { add_finding(std::move(f)); });
        ctx.on_emit = [&, this](const sw_batch& b) -> sw_status {
            const entity_schema* es = checker.check_batch(b);
            if (!es || !target_index_.count(es->name)) return SW_OK;
            auto& ep = plans_.entities[target_index_[es->name]];
            for (size_t i = 0; i < b.record_count; ++i) {
                const sw_record& rec = b.records[i];
                if (!checker.check_shape(rec, *es)) continue;
                views.resize(rec.value_count);
                for (size_t f = 0; f < rec.value_count; ++f) views[f] = view(rec.values[f]);
                ep.current.add(view(rec.key), views.data(), 0);
            }
            return SW_OK;
        };
        auto s = target_->read_state(requested);
        ctx.on_emit = nullptr;
        return s;
    }

    void duplicate_in_target(const entity_plan& ep, std::string_view dup) {
        add_finding({"warning", "duplicate_key", ep.schema.name, "", 0, 0, std::string(dup),
                     target_->who() + " holds " + ep.schema.name + " '" + std::string(dup) + "' more than once"});
    }
    void duplicate_in_source(const entity_plan& ep, std::string_view dup) {
        add_finding({"error", "duplicate_key", ep.schema.name, "", 0, 0, std::string(dup),
                     ep.schema.name + " '" + std::string(dup) + "' occurs more than once after mapping; keys must be unique"});
    }

    void index_current() {
        for (auto& ep : plans_.entities) {
            differs_.push_back(std::make_unique<streaming_diff>(ep));
            for (auto dup : differs_.back()->target_duplicates()) duplicate_in_target(ep, dup);
        }
    }

    Status diff() {
        plans_.run_id = out_.run.id;
        if (!streaming_) {
            for (auto& ep : plans_.entities) {
                for (auto dup : ep.desired.sort_by_key()) duplicate_in_source(ep, dup);
                for (auto dup : ep.current.sort_by_key()) duplicate_in_target(ep, dup);
            }
            return run_custom_diff(*target_, plans_, target_index_,
                                   [this](finding_record f) { add_finding(std::move(f)); });
        }
        for (size_t i = 0; i < plans_.entities.size(); ++i)
            for (auto dup : differs_[i]->finish()) duplicate_in_source(plans_.entities[i], dup);
        return Status::ok();
    }

    Status blocking_gate() {
        if (out_.blocking_findings == 0) return Status::ok();
        std::string first;
        for (auto& f : out_.findings)
            if (f.severity == "error") {
                first = f.file.empty() ? f.message
                                       : f.file + ":" + std::to_string(f.line) + ":" + std::to_string(f.column) + ": " + f.message;
                break;
            }
        return Status::error(error_kind::input,
                             std::to_string(out_.blocking_findings) +
                                 " error finding(s) in the input; nothing was applied. First: " + first +
                                 ". Fix the source data (or the mapping) and run again");
    }

    Status save_plan() {
        out_.planned = plans_.counts();
        for (auto& ep : plans_.entities)
            for (auto& c : ep.changes) {
                if (out_.preview.size() >= opts_.preview) break;
                out_.preview.push_back(change_line(ep, c));
            }
        nlohmann::json counts = nlohmann::json::object();
        change_counts total;
        for (auto& [e, c] : out_.planned) {
            counts[e] = {{"create", c.create}, {"update", c.update}, {"delete", c.remove}};
            total.create += c.create;
            total.update += c.update;
            total.remove += c.remove;
        }
        nlohmann::json header{{"run_id", out_.run.id},
                              {"job", job_.name},
                              {"created_at", out_.run.created_at},
                              {"dry_run", opts_.dry_run},
                              {"source", {{"connector", job_.source.connector}, {"version", out_.run.source_version}}},
                              {"target", {{"connector", job_.target.connector}, {"version", out_.run.target_version}}},
                              {"summary", counts}};
        out_.plan_path = data_dir_ / "plans" / (out_.run.id + ".json");
        if (auto s = write_plan(out_.plan_path, plans_, header, out_.findings); !s) return s;
        if (!opts_.plan_out.empty()) {
            std::error_code ec;
            fs::copy_file(out_.plan_path, opts_.plan_out, fs::copy_options::overwrite_existing, ec);
            if (ec) return Status::error(error_kind::usage, "writing the plan to " + opts_.plan_out.string() + ": " + ec.message());
        }
        std::string err;
        plan_record pr{out_.run.id, out_.plan_path.string(), sha256_file_hex(out_.plan_path, &err),
                       total.create, total.update, total.remove};
        return store_.save_plan(pr);
    }

    Status apply() {
        const size_t batch_size = job_.batch_size;
        std::vector<change_result_record> results;
        std::string last_error;
        for (auto& ep : plans_.entities) {
            for (size_t start = 0; start < ep.changes.size(); start += batch_size) {
                size_t end = std::min(ep.changes.size(), start + batch_size);
                if (auto s = apply_batch(ep, start, end, results, last_error); !s) return s;
                if (auto s = store_.add_change_results(out_.run.id, results); !s) return s;
                results.clear();
                if (auto s = store_.save_checkpoint(out_.run.id, "apply/" + ep.schema.name,
                                                    std::to_string(end), iso8601(clock_.now())); !s)
                    return s;
            }
        }
        if (auto s = target_->commit(); !s) {
            out_.failed += out_.applied;
            out_.applied = 0;
            return s.context("the target did not make the applied changes durable");
        }
        if (out_.failed)
            return Status::error(error_kind::target, std::to_string(out_.failed) + " of " +
                                                         std::to_string(out_.failed + out_.applied) +
                                                         " changes failed; last: " + last_error +
                                                         ". `syncwarden runs show " + out_.run.id + "` lists them");
        return Status::ok();
    }

    Status apply_batch(entity_plan& ep, size_t start, size_t end, std::vector<change_result_record>& results,
                       std::string& last_error) {
        const size_t n = end - start;
        std::vector<std::string> ids(n);
        std::vector<std::vector<sw_str>> values(n);
        std::vector<std::vector<uint32_t>> changed(n);
        std::vector<sw_change> changes(n);
        for (size_t k = 0; k < n; ++k) {
            auto& c = ep.changes[start + k];
            auto key = ep.key_of(c);
            ids[k] = change_id(out_.run.id, ep.schema.name, key, c.kind);
            const record_set& rs = c.kind == SW_CHANGE_DELETE ? ep.current : ep.desired;
            size_t idx = c.kind == SW_CHANGE_DELETE ? c.current : c.desired;
            for (size_t f = 0; f < rs.field_count(); ++f) {
                auto v = rs.field(idx, f);
                values[k].push_back({v.data(), v.size()});
            }
            for (uint32_t i = 0; i < c.changed_count; ++i) changed[k].push_back(ep.changed_fields[c.changed_begin + i]);
            changes[k] = {{ids[k].data(), ids[k].size()}, static_cast<uint32_t>(c.kind), {key.data(), key.size()},
                          values[k].data(), values[k].size(), changed[k].data(), changed[k].size()};
        }
        struct reported { bool set = false; sw_status s = SW_OK; std::string cat, msg; };
        std::vector<reported> rep(n);
        target_->ctx().on_result = [&](size_t i, sw_status s, std::string_view cat, std::string_view msg) {
            if (i < n) rep[i] = {true, s, std::string(cat), std::string(msg)};
        };
        sw_change_batch b{sizeof(sw_change_batch), {ep.schema.name.data(), ep.schema.name.size()}, changes.data(), n};
        std::string cat, msg;
        sw_status st = target_->apply(b, cat, msg);
        target_->ctx().on_result = nullptr;
        if (st == SW_CANCELLED) return Status::error(error_kind::target, "the run was cancelled during apply");
        for (size_t k = 0; k < n; ++k) {
            auto& c = ep.changes[start + k];
            reported r = rep[k].set ? rep[k] : reported{true, st, cat, msg};
            bool ok = r.s == SW_OK;
            ok ? ++out_.applied : ++out_.failed;
            if (!ok) last_error = ep.schema.name + "/" + std::string(ep.key_of(c)) + ": " + r.msg;
            results.push_back({ids[k], ep.schema.name, std::string(ep.key_of(c)), kind_name(c.kind),
                               ok ? "applied" : status_name(r.s), r.cat, r.msg, plan_seq_++});
        }
        return Status::ok();
    }

    registry& reg_;
    run_store& store_;
    const clock& clock_;
    const fs::path& data_dir_;
    const job_config& job_;
    const run_options& opts_;
    run_outcome& out_;
    std::unique_ptr<connector_session> source_, target_;
    contract_schema source_contract_, target_contract_;
    std::vector<entity_mapper> mappers_;
    std::vector<size_t> mapper_target_;  // per mapper: its index in plans_.entities
    std::set<std::string> used_entities_;
    plan plans_;
    std::map<std::string, size_t> target_index_;
    size_t extracted_ = 0;
    bool streaming_ = true;
    uint64_t plan_seq_ = 0;  // position of the next applied change in the plan
    std::vector<std::unique_ptr<streaming_diff>> differs_;  // per target entity, when streaming_
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
    }
    return 1;
}

pipeline::pipeline(registry& reg, run_store& store, const clock& clk, fs::path data_dir)
    : registry_(reg), store_(store), clock_(clk), data_dir_(std::move(data_dir)) {}

run_outcome pipeline::run(const job_config& job, const run_options& opts) {
    run_outcome out;
    run_record& r = out.run;
    r.id = new_run_id(clock_);
    r.job = job.name;
    r.job_file = job.file.string();
    r.dry_run = opts.dry_run;
    r.created_at = iso8601(clock_.now());
    r.state = "running";
    r.phase = "contract";
    r.source_connector = job.source.connector;
    r.target_connector = job.target.connector;
    if (auto s = store_.create_run(r); !s) {
        out.status = s;
        return out;
    }
    Status s;
    try {
        run_driver d(registry_, store_, clock_, data_dir_, job, opts, out);
        s = d.run();
    } catch (const std::exception& e) {
        s = Status::error(error_kind::internal, std::string("the kernel failed: ") + e.what());
    }
    out.status = s;
    r.finished_at = iso8601(clock_.now());
    r.exit_code = exit_code_for(s);
    r.error = s ? "" : s.message();
    if (s) r.state = "succeeded";
    else if (s.kind() == error_kind::target && out.applied > 0) r.state = "partially_failed";
    else r.state = "failed";
    nlohmann::json summary{{"extracted_findings", out.findings.size() + out.findings_not_kept},
                           {"blocking_findings", out.blocking_findings},
                           {"applied", out.applied},
                           {"failed", out.failed}};
    nlohmann::json planned = nlohmann::json::object();
    for (auto& [e, c] : out.planned) planned[e] = {{"create", c.create}, {"update", c.update}, {"delete", c.remove}};
    summary["planned"] = planned;
    r.summary_json = summary.dump();
    if (auto fs_ = store_.add_findings(r.id, out.findings); !fs_ && s) out.status = fs_;
    if (auto us = store_.update_run(r); !us && s) out.status = us;
    if (out.status) log_info({r.id, job.name, "", r.phase, "run_finished"}, r.state);
    // Only the class of error: its message may quote record keys, which are
    // people's identifiers and never go into logs.
    else log_warn({r.id, job.name, "", r.phase, "run_finished"}, r.state + ": " + to_string(out.status.kind()));
    return out;
}

}  // namespace syncwarden::kernel
