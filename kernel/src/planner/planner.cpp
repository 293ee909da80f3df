#include <syncwarden/kernel/log.hpp>
#include <syncwarden/kernel/mapper.hpp>
#include <syncwarden/kernel/names.hpp>
#include <syncwarden/kernel/planner.hpp>
#include <syncwarden/kernel/record_checker.hpp>
#include <syncwarden/kernel/text.hpp>

#include "custom_diff.hpp"

#include <algorithm>
#include <map>
#include <set>
#include <unordered_map>

namespace syncwarden::kernel {

struct planner::impl {
    const job_config& job;
    connector_session& source;
    connector_session& target;
    run_services& source_rs;
    run_services& target_rs;
    finding_log& findings;
    phase_fn phase;

    contract_schema source_contract, target_contract;
    std::vector<entity_mapper> mappers;
    std::vector<size_t> mapper_target;  // per mapper: its index in out.changes.entities
    std::map<std::string, size_t> target_index;
    std::vector<std::unique_ptr<streaming_diff>> differs;  // per target entity, when streaming
    bool streaming = true;
    planned out;
    const source_layouts* layouts = nullptr;
    format_sampler formats;
    name_registry* names = nullptr;

    // Collect rules and distinct mappings (config/README.md, "Groups with
    // members"): per rule, the items collected under each source key; per
    // mapper, the records held until the source has sent everything.
    struct collector {
        std::string from;
        int by = -1, value = -1;  // field indexes in `from`; -1: its key
        char by_split = 0;        // `by` is a list: each item names a record
        std::vector<std::pair<int, std::vector<std::string>>> where;
        std::unordered_map<std::string, std::vector<std::string>> items;
    };
    struct held_record {
        std::string source_key, key;
        std::vector<std::string> values;
        bool tobedeleted;
    };
    struct deferral {
        std::vector<std::pair<size_t, size_t>> fills;  // (target field, collector)
        std::vector<held_record> held;
        std::set<std::string> distinct;
    };
    std::vector<collector> collectors;
    std::vector<deferral> deferrals;  // per mapper

    static std::string entity_names(const contract_schema& c) {
        std::string s;
        for (auto& e : c.entities) s += (s.empty() ? "" : ", ") + e.name;
        return s;
    }

    Status add_collectors(const entity_mapper& em, deferral& d) {
        for (auto& c : em.collects()) {
            const collect_rule& rule = c.rule->collect;
            const std::string path = c.rule->path + ".collect";
            auto fail = [&](const std::string& where, const std::string& what) {
                return Status::error(error_kind::config, job.file.string() + ": " + path + where + ": " + what);
            };
            const entity_schema* from = source_contract.find(rule.from);
            if (!from)
                return fail(".from", "'" + rule.from + "' is not an entity of " + source.who() + " (entities: " +
                                         entity_names(source_contract) + ")");
            auto field = [&](const std::string& name, const std::string& where, int& idx) -> Status {
                if (name == from->key_name) {
                    idx = -1;
                    return Status::ok();
                }
                if (auto i = from->index_of(name)) {
                    idx = static_cast<int>(*i);
                    return Status::ok();
                }
                std::string known = from->key_name;
                for (auto& f : from->fields) known += ", " + f.name;
                return fail(where, "'" + name + "' is not a field of source entity '" + from->name + "' (fields: " +
                                       known + ")");
            };
            collector col;
            col.from = rule.from;
            if (auto s = field(rule.by, ".by", col.by); !s) return s;
            if (col.by >= 0 && from->fields[static_cast<size_t>(col.by)].is_list())
                col.by_split = from->fields[static_cast<size_t>(col.by)].separator();
            if (!rule.value.empty())
                if (auto s = field(rule.value, ".value", col.value); !s) return s;
            for (auto& [name, allowed] : rule.where) {
                int idx;
                if (auto s = field(name, ".where." + name, idx); !s) return s;
                col.where.emplace_back(idx, allowed);
            }
            d.fills.emplace_back(c.field, collectors.size());
            collectors.push_back(std::move(col));
        }
        return Status::ok();
    }

    // The file and 1-based column a source field was read from.
    std::pair<std::string, uint64_t> locate(const std::string& entity, const std::string& field) const {
        if (!layouts) return {};
        auto it = layouts->find(entity);
        if (it == layouts->end()) return {};
        for (size_t i = 0; i < it->second.columns.size(); ++i)
            if (it->second.columns[i] == field) return {it->second.file, i + 1};
        return {it->second.file, 0};
    }

    void add(finding_record f) { findings.add(std::move(f)); }
    // A finding about a source record that the streaming diff keeps as the
    // target holds it (extract_sink::keep).
    void add_kept(finding_record f) {
        const bool kept = streaming && (f.code == "bad_value" || f.code == "missing_required" ||
                                        f.code == "bad_encoding" || f.code == "mapping" || f.code == "enum_value");
        findings.add(std::move(f), kept);
    }

    Status check_contracts() {
        auto sc = source.contract(source_rs);
        if (!sc) return sc.status();
        auto tc = target.contract(target_rs);
        if (!tc) return tc.status();
        source_contract = std::move(*sc);
        target_contract = std::move(*tc);
        for (auto& m : job.entities) {
            const entity_schema* se = source_contract.find(m.source);
            const entity_schema* te = target_contract.find(m.target);
            if (!se)
                return Status::error(error_kind::config, job.file.string() + ": " + m.path + ".source: '" + m.source +
                                                             "' is not an entity of " + source.who() +
                                                             " (entities: " + entity_names(source_contract) + ")");
            if (!te)
                return Status::error(error_kind::config, job.file.string() + ": " + m.path + ".target: '" + m.target +
                                                             "' is not an entity of " + target.who() +
                                                             " (entities: " + entity_names(target_contract) + ")");
            auto em = entity_mapper::compile(m, job, *se, *te);
            if (!em) return em.status();
            deferral d;
            if (auto s = add_collectors(*em, d); !s) return s;
            deferrals.push_back(std::move(d));
            mappers.push_back(std::move(*em));
            findings.use_entity(m.source);
            findings.use_entity(m.target);
            auto [it, fresh] = target_index.emplace(m.target, out.changes.entities.size());
            mapper_target.push_back(it->second);
            if (!fresh) continue;
            entity_plan ep;
            ep.schema = *te;
            ep.desired = record_set(te->fields.size());
            ep.current = record_set(te->fields.size());
            ep.unowned = record_set(te->fields.size());
            out.changes.entities.push_back(std::move(ep));
        }
        return Status::ok();
    }

    // Target state, checked for shape and stored as each entity's current set.
    class state_sink final : public record_sink {
    public:
        explicit state_sink(impl& p)
            : p_(p), checker_(p.target_contract, p.target.who(), "read_state",
                              [&p](finding_record f) { p.add(std::move(f)); }) {}
        sw_status on_records(const sw_batch& b) override {
            const entity_schema* es = checker_.check_batch(b);
            if (!es || !p_.target_index.count(es->name)) return SW_OK;
            auto& ep = p_.out.changes.entities[p_.target_index[es->name]];
            for (size_t i = 0; i < b.record_count; ++i) {
                const sw_record& rec = b.records[i];
                if (!checker_.check_shape(rec, *es)) continue;
                views_.resize(rec.value_count);
                for (size_t f = 0; f < rec.value_count; ++f)
                    views_[f] = value_in(rec.values[f], es->fields[f].keeps_empty);
                if (rec.state == SW_RECORD_UNOWNED) ep.unowned.add(view(rec.key), views_.data(), 0);
                else ep.current.add(view(rec.key), views_.data(), 0);
            }
            // Indexed batch by batch, while the target reads on, so the
            // diff can start the moment the last batch is in.
            if (p_.streaming) ep.current.index_more();
            return SW_OK;
        }

    private:
        impl& p_;
        record_checker checker_;
        std::vector<std::string_view> views_;
    };

    Status read_state() {
        std::vector<std::string> requested;
        for (auto& ep : out.changes.entities) requested.push_back(ep.schema.name);
        state_sink sink(*this);
        auto token = target.read_state(requested, sink, target_rs);
        if (!token) return token.status();
        out.state_token = std::move(*token);
        size_t held = 0;
        for (auto& ep : out.changes.entities) held += ep.current.size() + ep.unowned.size();
        log_info({"", job.name, target.who(), "extract", "state_read"}, std::to_string(held) + " records");
        return Status::ok();
    }

    // Source records: checked against the source contract, mapped, and diffed
    // as they arrive (or kept whole for a target's diff hook).
    class extract_sink final : public record_sink {
    public:
        extract_sink(impl& p, const std::vector<std::string>& requested)
            : p_(p), requested_(requested),
              checker_(p.source_contract, p.source.who(), "extract", [&p](finding_record f) { p.add_kept(std::move(f)); }) {
            checker_.set_locator([&p](const std::string& e, const std::string& f) { return p.locate(e, f); });
        }

        sw_status on_records(const sw_batch& b) override {
            const entity_schema* es = checker_.check_batch(b);
            if (!es) return SW_OK;
            if (std::find(requested_.begin(), requested_.end(), es->name) == requested_.end()) return SW_OK;
            if (!check_mode(*es, b)) return SW_OK;
            const auto mode = static_cast<sw_batch_mode>(b.mode);
            source_count& counted = p_.out.sources[es->name];
            counted.sent = true;
            counted.delta = mode == SW_MODE_DELTA;
            mapping_.clear();  // the mappers of this entity, found once a batch
            for (size_t mi = 0; mi < p_.mappers.size(); ++mi)
                if (p_.mappers[mi].source() == es->name) {
                    mapping_.push_back(mi);
                    auto& ep = p_.out.changes.entities[p_.mapper_target[mi]];
                    ep.source_sent = true;
                    ep.mode = mode;
                }
            collecting_.clear();
            for (size_t ci = 0; ci < p_.collectors.size(); ++ci)
                if (p_.collectors[ci].from == es->name) collecting_.push_back(ci);
            for (size_t i = 0; i < b.record_count; ++i) {
                const sw_record& rec = b.records[i];
                ++p_.out.extracted;
                ++(rec.state == SW_RECORD_TOBEDELETED ? counted.tobedeleted : counted.active);
                p_.formats.offer(*es, rec);
                if (!checker_.check_record(rec, *es)) {
                    keep_in_error(*es, rec);
                    continue;
                }
                if (rec.state == SW_RECORD_ACTIVE)
                    for (size_t ci : collecting_) collect(p_.collectors[ci], rec);
                left_.clear();
                mapped_.assign(p_.out.changes.entities.size(), 0);
                for (size_t mi : mapping_) map_one(mi, *es, rec, mode);
                // Left an entity that no other mapping of this record feeds.
                for (auto& [ti, key] : left_)
                    if (!mapped_[ti]) {
                        key_ = key;
                        offer(p_.out.changes.entities[ti], ti, nullptr, true);
                    }
            }
            return SW_OK;
        }

        // After the source's last record: the records of deferred mappers,
        // their collected lists filled in, go to the diff.
        void finish() {
            for (size_t mi = 0; mi < p_.mappers.size(); ++mi) {
                const auto& m = p_.mappers[mi];
                if (!m.deferred()) continue;
                auto& d = p_.deferrals[mi];
                const size_t ti = p_.mapper_target[mi];
                auto& ep = p_.out.changes.entities[ti];
                std::string partial;
                for (auto& [f, ci] : d.fills)
                    if (p_.out.sources[p_.collectors[ci].from].delta) partial = p_.collectors[ci].from;
                if (m.distinct() >= 0 && p_.out.sources[m.source()].delta) partial = m.source();
                if (!partial.empty()) {
                    p_.add({"error", "mapping", m.target(), "", 0, 0, "",
                            m.target() + " from " + m.source() + ": the mapping collects every record of '" + partial +
                                "', but the source sent a delta of it; run it with a full export"});
                    continue;
                }
                if (m.distinct() >= 0) {
                    const entity_schema* se = p_.source_contract.find(m.source());
                    std::vector<sw_str> vals(se->fields.size(), sw_str{nullptr, 0});
                    for (auto& v : d.distinct) {
                        vals[static_cast<size_t>(m.distinct())] = {v.data(), v.size()};
                        const sw_record r{{v.data(), v.size()}, vals.data(), vals.size(), SW_RECORD_ACTIVE};
                        if (m.map(r, key_, values_, error_, false) == entity_mapper::outcome::failed) {
                            p_.add_kept({"error", "mapping", m.target(), "", 0, 0, v,
                                         m.target() + " from the " + se->fields[static_cast<size_t>(m.distinct())].name +
                                             " value '" + v + "': " + error_});
                            continue;
                        }
                        d.held.push_back({v, key_, values_, false});
                    }
                }
                for (auto& h : d.held) {
                    key_ = h.key;
                    const sw_record r{{h.source_key.data(), h.source_key.size()}, nullptr, 0,
                                      h.tobedeleted ? SW_RECORD_TOBEDELETED : SW_RECORD_ACTIVE};
                    bool ok = true;
                    for (auto& [f, ci] : d.fills) {
                        auto it = p_.collectors[ci].items.find(h.source_key);
                        if (it == p_.collectors[ci].items.end()) {
                            h.values[f].clear();
                            continue;
                        }
                        if (!join_collected(it->second, ep.schema.fields[f], h.values[f])) {
                            p_.add_kept({"error", "mapping", m.target(), "", 0, 0, h.source_key,
                                         m.target() + " '" + h.key + "': " + ep.schema.fields[f].name + ": " +
                                             h.values[f]});
                            ok = false;
                        }
                    }
                    views_.assign(h.values.begin(), h.values.end());
                    if (!ok || !check_mapped(ep.schema, r)) {
                        keep(ti);
                        continue;
                    }
                    offer(ep, ti, views_.data(), h.tobedeleted);
                }
                d.held.clear();
                d.distinct.clear();
            }
            for (auto& c : p_.collectors) c.items.clear();
        }

    private:
        void collect(impl::collector& c, const sw_record& rec) {
            auto field = [&](int idx) { return idx < 0 ? view(rec.key) : view(rec.values[idx]); };
            for (auto& [idx, allowed] : c.where)
                if (std::find(allowed.begin(), allowed.end(), field(idx)) == allowed.end()) return;
            const std::string_view item = field(c.value);
            if (item.empty()) return;
            const std::string_view by = field(c.by);
            if (c.by_split) {
                for (auto k : list_items(by, c.by_split)) c.items[std::string(k)].emplace_back(item);
            } else if (!by.empty()) {
                c.items[std::string(by)].emplace_back(item);
            }
        }
        // The items sorted, each once, joined as the field holds a list; on
        // false, `out` says what is wrong.
        static bool join_collected(std::vector<std::string>& items, const field_schema& f, std::string& out) {
            std::sort(items.begin(), items.end());
            items.erase(std::unique(items.begin(), items.end()), items.end());
            out.clear();
            const char sep = f.separator();
            for (auto& i : items) {
                if (sep == ',' && i.find(',') != std::string::npos) {
                    out = "the item '" + i + "' holds a comma, which a comma-separated list cannot hold; make the "
                                             "target field an items list (ABI 1.4)";
                    return false;
                }
                if (!out.empty()) out += sep;
                out += i;
            }
            return true;
        }

        // All batches of one entity in a run agree on their mode.
        bool check_mode(const entity_schema& es, const sw_batch& b) {
            auto [it, fresh] = modes_.emplace(es.name, b.mode);
            if (fresh || it->second == b.mode) return true;
            if (reported_.insert(es.name).second)
                p_.add({"error", "connector_defect", es.name, "", 0, 0, "",
                        p_.source.who() + " extract: emitted a " + (b.mode == SW_MODE_DELTA ? "delta" : "bulk") +
                            " batch of '" + es.name + "' after " + (it->second == SW_MODE_DELTA ? "delta" : "bulk") +
                            " batches; all batches of an entity in a run must have one mode. This is a defect "
                            "of the connector: report it to its authors"});
            return false;
        }

        void map_one(size_t mi, const entity_schema& es, const sw_record& rec, sw_batch_mode mode) {
            auto& m = p_.mappers[mi];
            const size_t ti = p_.mapper_target[mi];
            auto& ep = p_.out.changes.entities[ti];
            const bool tobedeleted = rec.state == SW_RECORD_TOBEDELETED;
            // Values go to the diff as views of the record where the
            // mapping copies them as they are; names given out (`unique`)
            // and records held until the end need values of their own.
            const bool direct = m.unique_fields().empty() && !m.deferred();
            auto o = direct ? m.map(rec, key_, values_, views_, error_) : m.map(rec, key_, values_, error_);
            if (m.distinct() >= 0) {
                // Only the distinct values count; the records are made from
                // them once the source has sent everything.
                if (o == entity_mapper::outcome::filtered || tobedeleted) return;
                mapped_[ti] = 1;
                const std::string_view v = view(rec.values[m.distinct()]);
                auto& seen = p_.deferrals[mi].distinct;
                if (m.distinct_split()) {
                    for (auto item : list_items(v, m.distinct_split())) seen.emplace(item);
                } else if (!v.empty()) {
                    seen.emplace(v);
                }
                return;
            }
            if (o == entity_mapper::outcome::filtered) {
                // A record that no longer matches `where` has left this
                // entity: in a delta feed nothing else would delete it, and a
                // tobedeleted record is deleted whatever it matches.
                if (!key_.empty() && (mode == SW_MODE_DELTA || tobedeleted)) left_.emplace_back(ti, key_);
                return;
            }
            mapped_[ti] = 1;
            if (o == entity_mapper::outcome::failed) {
                p_.add_kept({"error", "mapping", m.target(), "", 0, 0, std::string(view(rec.key)),
                             m.target() + " from " + es.name + " '" + std::string(view(rec.key)) + "': " + error_});
                keep(ti);
                return;
            }
            for (size_t f : m.unique_fields())
                values_[f] = p_.names ? p_.names->assign(ep.schema.name, ep.schema.fields[f].name, key_, values_[f])
                                      : values_[f];
            if (m.deferred()) {  // its collected lists are filled in finish()
                p_.deferrals[mi].held.push_back({std::string(view(rec.key)), key_, values_, tobedeleted});
                return;
            }
            if (!direct) views_.assign(values_.begin(), values_.end());
            if (!check_mapped(ep.schema, rec)) {
                keep(ti);
                return;
            }
            offer(ep, ti, views_.data(), tobedeleted);
        }

        // A record in error is left as the target holds it: neither updated
        // nor, because the source did send it, deleted. (A target's own diff
        // hook sees only the records without error.)
        void keep(size_t ti) {
            if (p_.streaming && !key_.empty()) p_.differs[ti]->keep(key_);
        }
        void keep_in_error(const entity_schema& es, const sw_record& rec) {
            if (!p_.streaming || rec.value_count != es.fields.size() || (rec.value_count && !rec.values)) return;
            for (size_t mi = 0; mi < p_.mappers.size(); ++mi)
                if (p_.mappers[mi].source() == es.name) {
                    if (p_.mappers[mi].map(rec, key_, values_, error_) != entity_mapper::outcome::filtered)
                        keep(p_.mapper_target[mi]);
                }
        }

        void offer(entity_plan& ep, size_t ti, const std::string_view* values, bool tobedeleted) {
            if (!values) {
                blank_.assign(ep.schema.fields.size(), std::string_view());
                values = blank_.data();
            }
            if (!p_.streaming) ep.desired.add(key_, values, static_cast<uint8_t>(tobedeleted));
            else if (!p_.differs[ti]->offer(key_, values, tobedeleted)) p_.duplicate_in_source(ep, key_);
        }

        bool check_mapped(const entity_schema& es, const sw_record& rec) {
            std::string what;
            if (key_.empty()) what = es.key_name + " maps to an empty value";
            else if (auto p = find_value_problem(es, views_.data(), rec.state == SW_RECORD_ACTIVE); p.code) what = p.what;
            if (what.empty()) return true;
            finding_record f{"error", "mapping", es.name, "", 0, 0, std::string(view(rec.key)),
                             es.name + " '" + key_ + "' (source key '" + std::string(view(rec.key)) +
                                 "'), after mapping: " + what};
            // Without a key the target's record cannot be kept as it is.
            if (key_.empty()) p_.add(std::move(f));
            else p_.add_kept(std::move(f));
            return false;
        }

        impl& p_;
        const std::vector<std::string>& requested_;
        record_checker checker_;
        std::map<std::string, uint32_t> modes_;
        std::set<std::string> reported_;
        std::string key_, error_;
        std::vector<std::pair<size_t, std::string>> left_;  // per record: (target entity, key) it left
        std::vector<uint8_t> mapped_;                       // per record: target entities a mapping fed
        std::vector<std::string> values_;
        std::vector<std::string_view> views_, blank_;
        std::vector<size_t> collecting_;  // the collectors of the batch's entity
        std::vector<size_t> mapping_;     // the mappers of the batch's entity
    };

    std::vector<std::string> source_entities() const {
        std::vector<std::string> requested;
        for (auto& m : mappers)
            if (std::find(requested.begin(), requested.end(), m.source()) == requested.end())
                requested.push_back(m.source());
        for (auto& c : collectors)
            if (std::find(requested.begin(), requested.end(), c.from) == requested.end()) requested.push_back(c.from);
        return requested;
    }

    Status extract() {
        const std::vector<std::string> requested = source_entities();
        extract_sink sink(*this, requested);
        auto s = source.extract(requested, sink, source_rs);
        if (s) sink.finish();
        log_info({"", job.name, source.who(), "extract", "extracted"}, std::to_string(out.extracted) + " records");
        return s;
    }

    void duplicate_in_target(const entity_plan& ep, const record_set::duplicate& d) {
        const std::string key(ep.current.key(d.first));
        add({"error", "duplicate_key", ep.schema.name, "", 0, 0, key,
             target.who() + " holds " + ep.schema.name + " '" + printable(key) + "' more than once (records " +
                 std::to_string(d.first + 1) + " and " + std::to_string(d.second + 1) + " of what it read). " +
                 "Nothing is planned for this entity until the target holds each key once: remove the extra copy " +
                 "from the target (for a file drop, delete the duplicate row) and run again"});
    }
    void duplicate_in_source(const entity_plan& ep, std::string_view dup) {
        add({"error", "duplicate_key", ep.schema.name, "", 0, 0, std::string(dup),
             ep.schema.name + " '" + printable(dup) + "' occurs more than once after mapping; keys must be unique"});
    }

    void index_current() {
        for (auto& ep : out.changes.entities) {
            differs.push_back(std::make_unique<streaming_diff>(ep));
            for (auto& d : differs.back()->target_duplicates()) duplicate_in_target(ep, d);
        }
    }

    Status diff() {
        if (!streaming) {
            for (auto& ep : out.changes.entities) {
                for (auto& d : ep.desired.sort_by_key()) duplicate_in_source(ep, ep.desired.key(d.second));
                for (auto& d : ep.current.sort_by_key()) duplicate_in_target(ep, d);
            }
            return run_custom_diff(target, out.changes, target_index, target_rs,
                                   [this](finding_record f) { add(std::move(f)); });
        }
        for (size_t i = 0; i < out.changes.entities.size(); ++i)
            for (auto dup : differs[i]->finish()) duplicate_in_source(out.changes.entities[i], dup);
        return Status::ok();
    }

    Result<planned> run() {
        if (auto s = phase("contract"); !s) return s;
        if (auto s = check_contracts(); !s) return s;
        // With the kernel's own diff, the target's state is read first and
        // indexed, so each source record is compared as it streams in and
        // unchanged records are never stored. A target's diff hook needs
        // every desired record, so that path keeps them all.
        streaming = !target.has_diff();
        if (auto s = phase("extract"); !s) return s;
        if (streaming) {
            // A source in a worker process starts now and reads its input
            // while the target's state is read and indexed here; its records
            // wait in shared memory (a bounded amount) until extract().
            source.start_extract(source_entities());
            if (auto s = read_state(); !s) return s;
            index_current();
        }
        if (auto s = extract(); !s) return s;
        if (auto s = phase("diff"); !s) return s;
        if (!streaming)
            if (auto s = read_state(); !s) return s;
        if (auto s = diff(); !s) return s;
        differs.clear();
        out.formats = formats.profile();
        return std::move(out);
    }
};

planner::planner(const job_config& job, connector_session& source, connector_session& target,
                 run_services& source_rs, run_services& target_rs, finding_log& findings, phase_fn phase)
    : impl_(new impl{job, source, target, source_rs, target_rs, findings, std::move(phase), {}, {}, {}, {}, {}, {},
                     true, {}, nullptr, {}, nullptr, {}, {}}) {}

planner::~planner() = default;

Result<planned> planner::run() { return impl_->run(); }

void planner::set_layouts(const source_layouts* l) { impl_->layouts = l; }
void planner::set_names(name_registry* n) { impl_->names = n; }

}  // namespace syncwarden::kernel
