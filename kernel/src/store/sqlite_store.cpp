#include <syncwarden/kernel/store.hpp>

#include <Poco/Data/RecordSet.h>
#include <Poco/Data/SQLite/Connector.h>
#include <Poco/Data/SQLite/Utility.h>
#include <Poco/Data/Session.h>
#include <Poco/Data/Statement.h>
#include <Poco/Exception.h>

#include <algorithm>
#include <deque>
#include <set>
#include <climits>
#include <cstdint>
#include <functional>
#include <mutex>
#include <sqlite3.h>
#include <sys/stat.h>

using namespace Poco::Data::Keywords;
using Poco::Data::RecordSet;
using Poco::Data::Session;
using Poco::Data::Statement;

namespace syncwarden::kernel {
namespace {

// Each entry moves the schema one version up. Never edit an entry that has
// shipped; append a new one.
const char* const k_migrations[] = {
    R"(CREATE TABLE runs(
        id TEXT PRIMARY KEY, job TEXT NOT NULL, job_file TEXT NOT NULL, state TEXT NOT NULL,
        phase TEXT NOT NULL, dry_run INTEGER NOT NULL, created_at TEXT NOT NULL,
        finished_at TEXT NOT NULL, source_connector TEXT NOT NULL, source_version TEXT NOT NULL,
        target_connector TEXT NOT NULL, target_version TEXT NOT NULL, exit_code INTEGER NOT NULL,
        error TEXT NOT NULL, summary TEXT NOT NULL);
      CREATE INDEX runs_by_time ON runs(created_at);
      CREATE TABLE plans(run_id TEXT PRIMARY KEY REFERENCES runs(id), path TEXT NOT NULL,
        sha256 TEXT NOT NULL, creates INTEGER NOT NULL, updates INTEGER NOT NULL,
        deletes INTEGER NOT NULL);
      CREATE TABLE findings(run_id TEXT NOT NULL REFERENCES runs(id), seq INTEGER NOT NULL,
        severity TEXT NOT NULL, code TEXT NOT NULL, entity TEXT NOT NULL, file TEXT NOT NULL,
        line INTEGER NOT NULL, col INTEGER NOT NULL, record_key TEXT NOT NULL,
        message TEXT NOT NULL, PRIMARY KEY(run_id, seq));
      CREATE TABLE change_results(run_id TEXT NOT NULL REFERENCES runs(id),
        change_id TEXT NOT NULL, entity TEXT NOT NULL, record_key TEXT NOT NULL,
        kind TEXT NOT NULL, status TEXT NOT NULL, category TEXT NOT NULL, message TEXT NOT NULL,
        PRIMARY KEY(run_id, change_id));
      CREATE TABLE checkpoints(run_id TEXT NOT NULL REFERENCES runs(id), scope TEXT NOT NULL,
        token TEXT NOT NULL, updated_at TEXT NOT NULL, PRIMARY KEY(run_id, scope));)",
    // v2: change results keyed by their position in the plan. Keyed by the
    // (random) change id, every insert landed on a random B-tree page.
    R"(CREATE TABLE change_results_v2(run_id TEXT NOT NULL REFERENCES runs(id), seq INTEGER NOT NULL,
        change_id TEXT NOT NULL, entity TEXT NOT NULL, record_key TEXT NOT NULL, kind TEXT NOT NULL,
        status TEXT NOT NULL, category TEXT NOT NULL, message TEXT NOT NULL, PRIMARY KEY(run_id, seq));
      INSERT INTO change_results_v2 SELECT run_id, rowid, change_id, entity, record_key, kind, status,
        category, message FROM change_results;
      DROP TABLE change_results;
      ALTER TABLE change_results_v2 RENAME TO change_results;)",
    // v3: the persisted plan the applier reads, and the run a `runs apply`
    // run takes its plan from.
    R"(ALTER TABLE plans ADD COLUMN plan_file TEXT NOT NULL DEFAULT '';
      ALTER TABLE plans ADD COLUMN digest TEXT NOT NULL DEFAULT '';
      ALTER TABLE runs ADD COLUMN plan_of TEXT NOT NULL DEFAULT '';)",
    // v4: the category of a run's failure (connector_crashed, timeout, ...).
    R"(ALTER TABLE runs ADD COLUMN category TEXT NOT NULL DEFAULT '';)",
    // v5: every attempt of a change that was sent more than once, and how
    // many sends each change took.
    R"(ALTER TABLE change_results ADD COLUMN attempts INTEGER NOT NULL DEFAULT 1;
      CREATE TABLE change_attempts(run_id TEXT NOT NULL REFERENCES runs(id), seq INTEGER NOT NULL,
        attempt INTEGER NOT NULL, at TEXT NOT NULL, status TEXT NOT NULL, category TEXT NOT NULL,
        message TEXT NOT NULL, retry_after_ms INTEGER NOT NULL, PRIMARY KEY(run_id, seq, attempt));)",
    // v6: the safety gates: each run's profile and gate verdicts, decisions
    // on held runs, when records were deactivated, how a run started, and a
    // digest of a plan's changes alone.
    R"(CREATE TABLE run_profiles(run_id TEXT PRIMARY KEY REFERENCES runs(id), profile TEXT NOT NULL);
      CREATE TABLE gate_verdicts(run_id TEXT NOT NULL REFERENCES runs(id), seq INTEGER NOT NULL,
        gate TEXT NOT NULL, entity TEXT NOT NULL, kind TEXT NOT NULL, verdict TEXT NOT NULL,
        count INTEGER NOT NULL, base INTEGER NOT NULL, lim TEXT NOT NULL, message TEXT NOT NULL,
        PRIMARY KEY(run_id, seq));
      CREATE TABLE approvals(run_id TEXT NOT NULL REFERENCES runs(id), seq INTEGER NOT NULL,
        action TEXT NOT NULL, by_whom TEXT NOT NULL, at TEXT NOT NULL, reason TEXT NOT NULL,
        plan_digest TEXT NOT NULL, outcome TEXT NOT NULL, PRIMARY KEY(run_id, seq));
      CREATE TABLE deactivations(job TEXT NOT NULL, entity TEXT NOT NULL, record_key TEXT NOT NULL,
        since TEXT NOT NULL, PRIMARY KEY(job, entity, record_key));
      ALTER TABLE plans ADD COLUMN content_digest TEXT NOT NULL DEFAULT '';
      ALTER TABLE runs ADD COLUMN run_trigger TEXT NOT NULL DEFAULT 'cli';
      CREATE INDEX runs_by_job ON runs(job, created_at);)",
    // v7: the audit log: canonical JSON entries (the leaves of a Merkle
    // tree) and the signed tree heads. Append-only: the triggers refuse any
    // UPDATE or DELETE, and the kernel never issues one.
    R"(CREATE TABLE audit_entries(seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, run_id TEXT NOT NULL,
        entry TEXT NOT NULL, leaf TEXT NOT NULL);
      CREATE INDEX audit_by_run ON audit_entries(run_id);
      CREATE TABLE audit_heads(size INTEGER PRIMARY KEY, root TEXT NOT NULL, at TEXT NOT NULL,
        key_id TEXT NOT NULL, signature TEXT NOT NULL, frontier TEXT NOT NULL);
      CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
      CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
      CREATE TRIGGER audit_heads_no_update BEFORE UPDATE ON audit_heads
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
      CREATE TRIGGER audit_heads_no_delete BEFORE DELETE ON audit_heads
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;)",
    // v8: each signed head names the one before it (a hash chain over the
    // heads), and the frontier that grows the tree lives in a one-row table
    // of its own: it is derived data, checked against the signed head
    // before each append, and need not be kept per head. The v7 head table
    // held nothing yet.
    R"(DROP TABLE audit_heads;
      CREATE TABLE audit_signed_heads(size INTEGER PRIMARY KEY, root TEXT NOT NULL, at TEXT NOT NULL,
        key_id TEXT NOT NULL, prev TEXT NOT NULL, signature TEXT NOT NULL);
      CREATE TRIGGER audit_signed_heads_no_update BEFORE UPDATE ON audit_signed_heads
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
      CREATE TRIGGER audit_signed_heads_no_delete BEFORE DELETE ON audit_signed_heads
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
      CREATE TABLE audit_frontier(id INTEGER PRIMARY KEY CHECK(id = 1), size INTEGER NOT NULL, nodes TEXT NOT NULL);
      CREATE TABLE config_seen(path TEXT PRIMARY KEY, digest TEXT NOT NULL, at TEXT NOT NULL);
      ALTER TABLE plans ADD COLUMN purged_at TEXT NOT NULL DEFAULT '';
      CREATE INDEX runs_by_end ON runs(finished_at);)",
    // v9: connector secrets, encrypted; a row per version.
    R"(CREATE TABLE secrets(name TEXT NOT NULL, version INTEGER NOT NULL, created_at TEXT NOT NULL,
        created_by TEXT NOT NULL, nonce TEXT NOT NULL, ciphertext TEXT NOT NULL, tag TEXT NOT NULL,
        PRIMARY KEY(name, version));)",
    // v10: the ids target systems gave records (ABI 1.4), by the keyed hash
    // of the record's key, never the key itself.
    R"(CREATE TABLE target_ids(system TEXT NOT NULL, entity TEXT NOT NULL, key_hash TEXT NOT NULL,
        id TEXT NOT NULL, run_id TEXT NOT NULL, at TEXT NOT NULL, PRIMARY KEY(system, entity, key_hash));)",
    // v11: names given under `unique` identity rules, by keyed hashes only.
    R"(CREATE TABLE assigned_names(system TEXT NOT NULL, entity TEXT NOT NULL, field TEXT NOT NULL,
        name_hash TEXT NOT NULL, key_hash TEXT NOT NULL, base_hash TEXT NOT NULL, counter INTEGER NOT NULL,
        current INTEGER NOT NULL, run_id TEXT NOT NULL, at TEXT NOT NULL,
        PRIMARY KEY(system, entity, field, name_hash));)",
    // v12: the runs not yet finished, for status: without it every status
    // read the whole runs table, and a long-lived reader (the daemon) kept
    // more of it in its page cache with every run.
    R"(CREATE INDEX runs_unfinished ON runs(state) WHERE state IN ('queued', 'running', 'applying');)",
    // v13: a clean batch's results in one row (every change of one entity,
    // at consecutive plan positions, accepted at the first send with one
    // status): its changes' ids, keys and kinds packed in `changes`. An
    // 8M-change delivery is 1,600 rows instead of 8M.
    R"(CREATE TABLE change_batches(run_id TEXT NOT NULL REFERENCES runs(id), first_seq INTEGER NOT NULL,
        count INTEGER NOT NULL, entity TEXT NOT NULL, status TEXT NOT NULL, category TEXT NOT NULL,
        message TEXT NOT NULL, changes BLOB NOT NULL, PRIMARY KEY(run_id, first_seq));)",
    // v14: a decision's operating-system user (SO_PEERCRED or the CLI's
    // uid), beside the name given with --as.
    R"(ALTER TABLE approvals ADD COLUMN os_user TEXT NOT NULL DEFAULT '';)",
};

// The packed changes of a change_batches row: per change, its id, key and
// kind, each a varint length and the bytes.
void pack_piece(std::string& out, std::string_view v) {
    for (uint64_t n = v.size();; n >>= 7) {
        if (n < 0x80) {
            out += static_cast<char>(n);
            break;
        }
        out += static_cast<char>((n & 0x7f) | 0x80);
    }
    out.append(v);
}
bool unpack_piece(std::string_view& in, std::string& out) {
    uint64_t n = 0;
    for (int shift = 0;; shift += 7) {
        if (in.empty() || shift > 63) return false;
        const auto b = static_cast<unsigned char>(in.front());
        in.remove_prefix(1);
        n |= static_cast<uint64_t>(b & 0x7f) << shift;
        if (!(b & 0x80)) break;
    }
    if (n > in.size()) return false;
    out.assign(in.substr(0, n));
    in.remove_prefix(n);
    return true;
}

// Whether a batch's results can be kept as one change_batches row.
bool clean_batch(const std::vector<change_result_record>& rs, const std::vector<attempt_record>& attempts) {
    if (rs.size() < 2 || !attempts.empty()) return false;
    for (size_t i = 0; i < rs.size(); ++i) {
        const auto& r = rs[i];
        if (r.seq != rs[0].seq + i || r.entity != rs[0].entity || r.status != rs[0].status || r.attempts != 1 ||
            !r.category.empty() || !r.message.empty() || r.kind == "deactivate")
            return false;
    }
    return rs[0].status == "applied" || rs[0].status == "staged";
}

// Poco runs one statement per call: a script split on ';', except inside a
// trigger's BEGIN ... END.
std::vector<std::string> statements(const std::string& script) {
    std::vector<std::string> out;
    std::string stmt;
    auto trimmed = [](const std::string& x) {
        const auto b = x.find_first_not_of(" \n\t");
        const auto e = x.find_last_not_of(" \n\t");
        return b == std::string::npos ? std::string() : x.substr(b, e - b + 1);
    };
    size_t pos = 0;
    while (pos <= script.size()) {
        const auto end = script.find(';', pos);
        stmt += script.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
        const std::string t = trimmed(stmt);
        const bool open_trigger = t.rfind("CREATE TRIGGER", 0) == 0 && (t.size() < 3 || t.compare(t.size() - 3, 3, "END") != 0);
        if (open_trigger && end != std::string::npos) {
            stmt += ';';
        } else {
            if (!t.empty()) out.push_back(t);
            stmt.clear();
        }
        if (end == std::string::npos) break;
        pos = end + 1;
    }
    return out;
}

std::string str(RecordSet& rs, size_t col);
int64_t num(RecordSet& rs, size_t col);

// A row of SELECT seq,kind,run_id,entry,leaf FROM audit_entries.
audit_entry_record audit_entry_of(RecordSet& rs) {
    return {static_cast<uint64_t>(num(rs, 0)), str(rs, 1), str(rs, 2), str(rs, 3), str(rs, 4)};
}

std::string str(RecordSet& rs, size_t col) {
    auto v = rs.value(col);
    return v.isEmpty() ? std::string() : v.convert<std::string>();
}
int64_t num(RecordSet& rs, size_t col) {
    auto v = rs.value(col);
    return v.isEmpty() ? 0 : v.convert<Poco::Int64>();
}

// Executes a prepared SELECT and calls `row` for each result row.
template <class F>
void for_each_row(Statement& st, F&& row) {
    st.execute();
    RecordSet rs(st);
    for (bool more = rs.moveFirst(); more; more = rs.moveNext()) row(rs);
}

class sqlite_store final : public run_store {
public:
    sqlite_store(const std::filesystem::path& file, int cache_kib)
        : file_(file), s_("SQLite", file.string()), cache_kib_(cache_kib) {
        ::stat(file.c_str(), &identity_);
    }

    Status migrate() {
        return guard("migrating the schema", [&] {
            s_ << "PRAGMA journal_mode=WAL", now;
            // In WAL mode NORMAL survives a crash of the process; only a power
            // loss can lose the last transactions. FULL fsyncs every batch.
            s_ << "PRAGMA synchronous=NORMAL", now;
            s_ << "PRAGMA cache_size=-" + std::to_string(cache_kib_), now;  // KiB of pages
            s_ << "PRAGMA busy_timeout=5000", now;
            s_ << "CREATE TABLE IF NOT EXISTS schema_version(version INTEGER NOT NULL)", now;
            int v = read_version();
            const int latest = static_cast<int>(std::size(k_migrations));
            if (v > latest)
                throw Poco::Exception("the store has schema version " + std::to_string(v) +
                                      ", this kernel knows up to " + std::to_string(latest) +
                                      "; use a newer syncwarden");
            for (int i = v; i < latest; ++i) {
                tx_begin();
                for (auto& stmt : statements(k_migrations[i])) s_ << stmt, now;
                s_ << "DELETE FROM schema_version", now;
                int next = i + 1;
                s_ << "INSERT INTO schema_version(version) VALUES(?)", use(next), now;
                tx_commit();
            }
        });
    }

    int schema_version() override {
        std::lock_guard l(mu_);
        try { return read_version(); } catch (...) { return -1; }
    }

    Status create_run(const run_record& r) override {
        return guard("saving run " + r.id, [&] {
            run_record c = r;
            int dry = c.dry_run;
            s_ << "INSERT INTO runs(id,job,job_file,state,phase,dry_run,created_at,finished_at,"
                  "source_connector,source_version,target_connector,target_version,exit_code,error,summary,plan_of,"
                  "category,run_trigger) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                use(c.id), use(c.job), use(c.job_file), use(c.state), use(c.phase), use(dry),
                use(c.created_at), use(c.finished_at), use(c.source_connector), use(c.source_version),
                use(c.target_connector), use(c.target_version), use(c.exit_code), use(c.error),
                use(c.summary_json), use(c.plan_of), use(c.category), use(c.trigger), now;
        });
    }

    Status update_run(const run_record& r) override {
        return guard("updating run " + r.id, [&] { write_run(r); });
    }

    Status finish_apply(const run_record& r, bool committed, const std::string& category,
                        const std::string& message) override {
        return guard("recording the end of run " + r.id, [&] {
            std::string id = r.id, status = committed ? "applied" : "failed", cat = committed ? "" : category,
                        msg = committed ? "" : message;
            std::string job = r.job, at = r.finished_at;
            tx_begin();
            // The grace period of a deactivated record starts when the
            // target's commit made its deactivation durable.
            if (committed)
                s_ << "INSERT OR REPLACE INTO deactivations(job,entity,record_key,since) SELECT ?, entity, record_key, ? "
                      "FROM change_results WHERE run_id=? AND kind='deactivate' AND status='staged'",
                    use(job), use(at), use(id), now;
            s_ << "UPDATE change_results SET status=?, category=?, message=? WHERE run_id=? AND status='staged'",
                use(status), use(cat), use(msg), use(id), now;
            s_ << "UPDATE change_batches SET status=?, category=?, message=? WHERE run_id=? AND status='staged'",
                use(status), use(cat), use(msg), use(id), now;
            write_run(r);
            tx_commit();
        });
    }

    Status check_still_there() override {
        struct stat now_st {};
        if (::stat(file_.c_str(), &now_st) != 0 || now_st.st_ino != identity_.st_ino || now_st.st_dev != identity_.st_dev)
            return Status::error(error_kind::store,
                                 "the run store " + file_.string() +
                                     " was deleted or replaced while this run was using it; what the run did "
                                     "would be recorded nowhere, so it stops here");
        return Status::ok();
    }

    Result<run_record> get_run(const std::string& id) override {
        auto runs = query_runs("WHERE id = ?", id, 1);
        if (!runs) return runs.status();
        if (runs->empty())
            return Status::error(error_kind::not_found,
                                 "no run with id '" + id + "'; `syncwarden runs list` shows the ids");
        return runs->front();
    }

    Result<std::vector<run_record>> list_runs(size_t limit) override {
        return query_runs("", "", limit);
    }

    Result<std::vector<run_record>> unfinished_runs() override {
        return query_runs("WHERE state IN ('queued', 'running', 'applying')", "", 100000);
    }

    Status add_findings(const std::string& run_id, const std::vector<finding_record>& fs) override {
        return guard("saving findings of run " + run_id, [&] {
            std::string id = run_id;
            int seq = 0;
            {
                Statement st(s_);
                st << "SELECT COUNT(*) FROM findings WHERE run_id=?", use(id), into(seq), now;
            }
            tx_begin();
            for (auto f : fs) {
                ++seq;
                Poco::Int64 line = static_cast<Poco::Int64>(f.line), col = static_cast<Poco::Int64>(f.column);
                s_ << "INSERT INTO findings VALUES(?,?,?,?,?,?,?,?,?,?)", use(id), use(seq),
                    use(f.severity), use(f.code), use(f.entity), use(f.file), use(line), use(col),
                    use(f.key), use(f.message), now;
            }
            tx_commit();
        });
    }

    Result<std::vector<finding_record>> findings(const std::string& run_id) override {
        return rows_of_run<finding_record>(
            "reading findings", "SELECT severity,code,entity,file,line,col,record_key,message FROM findings "
                                "WHERE run_id=? ORDER BY seq",
            run_id, [](RecordSet& rs) {
                return finding_record{str(rs, 0), str(rs, 1), str(rs, 2), str(rs, 3),
                                      static_cast<uint64_t>(num(rs, 4)), static_cast<uint64_t>(num(rs, 5)),
                                      str(rs, 6), str(rs, 7)};
            });
    }

    Status save_plan(const plan_record& p) override {
        return guard("saving the plan of run " + p.run_id, [&] {
            plan_record c = p;
            Poco::Int64 cr = static_cast<Poco::Int64>(c.creates), up = static_cast<Poco::Int64>(c.updates),
                        de = static_cast<Poco::Int64>(c.deletes);
            s_ << "INSERT OR REPLACE INTO plans(run_id,path,sha256,creates,updates,deletes,plan_file,digest,"
                  "content_digest) VALUES(?,?,?,?,?,?,?,?,?)", use(c.run_id), use(c.path),
                use(c.sha256), use(cr), use(up), use(de), use(c.plan_file), use(c.digest), use(c.content_digest), now;
        });
    }

    Result<std::optional<plan_record>> get_plan(const std::string& run_id) override {
        std::optional<plan_record> out;
        auto s = guard("reading the plan of run " + run_id, [&] {
            std::string id = run_id;
            Statement st(s_);
            st << "SELECT run_id,path,sha256,creates,updates,deletes,plan_file,digest,content_digest,purged_at FROM plans "
                  "WHERE run_id=?", use(id);
            for_each_row(st, [&](RecordSet& rs) {
                out = plan_record{str(rs, 0), str(rs, 1), str(rs, 2), static_cast<uint64_t>(num(rs, 3)),
                                  static_cast<uint64_t>(num(rs, 4)), static_cast<uint64_t>(num(rs, 5)),
                                  str(rs, 6), str(rs, 7), str(rs, 8), str(rs, 9)};
            });
        });
        if (!s) return s;
        return out;
    }

    // Change results as one row each (inside a transaction the caller holds):
    // one prepared statement bound to columns, not one prepare per change.
    void save_rows(const std::string& run_id, const std::vector<change_result_record>& rs) {
        std::vector<std::string> id(rs.size(), run_id), cid, ent, key, kind, st, cat, msg;
        std::vector<Poco::Int64> seq, sends;
        for (auto& r : rs) {
            seq.push_back(static_cast<Poco::Int64>(r.seq));
            sends.push_back(static_cast<Poco::Int64>(r.attempts));
            cid.push_back(r.change_id);
            ent.push_back(r.entity);
            key.push_back(r.key);
            kind.push_back(r.kind);
            st.push_back(r.status);
            cat.push_back(r.category);
            msg.push_back(r.message);
        }
        Statement ins(s_);
        ins << "INSERT OR REPLACE INTO change_results VALUES(?,?,?,?,?,?,?,?,?,?)", use(id), use(seq), use(cid),
            use(ent), use(key), use(kind), use(st), use(cat), use(msg), use(sends);
        ins.execute();
    }

    Status save_apply_batch(const std::string& run_id, const std::vector<change_result_record>& rs,
                            const std::vector<attempt_record>& attempts, const std::string& scope,
                            const std::string& token, const std::string& at,
                            const std::vector<target_id_record>& ids) override {
        return guard("saving change results of run " + run_id, [&] {
            tx_begin();
            if (!rs.empty()) {
                Poco::Int64 first = static_cast<Poco::Int64>(rs.front().seq), last = first;
                for (auto& r : rs)
                    first = std::min(first, static_cast<Poco::Int64>(r.seq)),
                    last = std::max(last, static_cast<Poco::Int64>(r.seq));
                std::string rid = run_id;
                // Results saved before for these positions (a resent batch,
                // retried changes) give way to these. A packed batch they fall
                // in is unpacked into rows first: its other results stay.
                std::vector<change_result_record> kept;
                {
                    std::vector<std::pair<uint64_t, uint64_t>> batches;  // [first, end) of each overlapping one
                    Statement q(s_);
                    q << "SELECT first_seq, count FROM change_batches WHERE run_id=? AND first_seq<=? AND "
                         "first_seq+count>?",
                        use(rid), use(last), use(first);
                    for_each_row(q, [&](RecordSet& r) {
                        const auto b = static_cast<uint64_t>(num(r, 0));
                        batches.emplace_back(b, b + static_cast<uint64_t>(num(r, 1)));
                    });
                    std::set<uint64_t> replaced;
                    for (auto& r : rs) replaced.insert(r.seq);
                    auto in_overlap = [&](uint64_t q) {
                        for (auto& [b, e] : batches)
                            if (q >= b && q < e) return !replaced.count(q);
                        return false;
                    };
                    if (!batches.empty()) {
                        auto st = each_change_result(run_id, [&](const change_result_record& r) {
                            if (in_overlap(r.seq)) kept.push_back(r);
                        });
                        if (!st) throw std::runtime_error(st.message());
                        for (auto& [b, e] : batches) {
                            Poco::Int64 at = static_cast<Poco::Int64>(b);
                            s_ << "DELETE FROM change_batches WHERE run_id=? AND first_seq=?", use(rid), use(at), now;
                        }
                    }
                }
                if (!kept.empty()) save_rows(run_id, kept);
                if (clean_batch(rs, attempts)) {
                    Statement del(s_);
                    del << "DELETE FROM change_results WHERE run_id=? AND seq BETWEEN ? AND ?", use(rid), use(first),
                        use(last);
                    del.execute();
                    std::string packed;
                    for (auto& r : rs) {
                        pack_piece(packed, r.change_id);
                        pack_piece(packed, r.key);
                        pack_piece(packed, r.kind);
                    }
                    Poco::Data::BLOB blob(reinterpret_cast<const unsigned char*>(packed.data()), packed.size());
                    Poco::Int64 count = static_cast<Poco::Int64>(rs.size());
                    std::string e = rs[0].entity, status = rs[0].status, none;
                    Statement ins(s_);
                    ins << "INSERT OR REPLACE INTO change_batches VALUES(?,?,?,?,?,?,?,?)", use(rid), use(first),
                        use(count), use(e), use(status), use(none), use(none), use(blob);
                    ins.execute();
                } else {
                    save_rows(run_id, rs);
                }
            }
            for (auto& t : ids) {
                std::string sys = t.system, ent = t.entity, kh = t.key_hash, tid = t.id, rid = run_id, when = at;
                Statement st(s_);
                if (tid.empty())
                    st << "DELETE FROM target_ids WHERE system=? AND entity=? AND key_hash=?", use(sys), use(ent),
                        use(kh);
                else
                    st << "INSERT OR REPLACE INTO target_ids VALUES(?,?,?,?,?,?)", use(sys), use(ent), use(kh),
                        use(tid), use(rid), use(when);
                st.execute();
            }
            if (!attempts.empty()) {
                std::vector<std::string> aid(attempts.size(), run_id), ats, ast, acat, amsg;
                std::vector<Poco::Int64> aseq, anum, aafter;
                for (auto& a : attempts) {
                    aseq.push_back(static_cast<Poco::Int64>(a.seq));
                    anum.push_back(a.attempt);
                    ats.push_back(a.at);
                    ast.push_back(a.status);
                    acat.push_back(a.category);
                    amsg.push_back(a.message);
                    aafter.push_back(a.retry_after_ms);
                }
                Statement ins(s_);
                ins << "INSERT OR REPLACE INTO change_attempts VALUES(?,?,?,?,?,?,?,?)", use(aid), use(aseq), use(anum),
                    use(ats), use(ast), use(acat), use(amsg), use(aafter);
                ins.execute();
            }
            std::string rid = run_id, sc = scope, tk = token, ts = at;
            s_ << "INSERT OR REPLACE INTO checkpoints VALUES(?,?,?,?)", use(rid), use(sc), use(tk), use(ts), now;
            tx_commit();
        });
    }

    Result<std::vector<change_result_record>> change_results(const std::string& run_id) override {
        std::vector<change_result_record> out;
        auto s = each_change_result(run_id, [&](const change_result_record& r) { out.push_back(r); });
        if (!s) return s;
        return out;
    }

    // Both tables paged by plan position and merged: at most a page of rows
    // and a few batches are held at once.
    Status each_change_result(const std::string& run_id,
                              const std::function<void(const change_result_record&)>& fn) override {
        return guard("reading change results of run " + run_id, [&] {
            Poco::Int64 k_rows = 4096, k_batches = 4;  // page sizes (Poco binds them by reference)
            std::string rid = run_id;
            std::deque<change_result_record> rows, batched;
            Poco::Int64 after_row = -1, after_batch = -1;
            bool rows_done = false, batches_done = false;
            auto more_rows = [&] {
                Statement st(s_);
                st << "SELECT change_id,entity,record_key,kind,status,category,message,seq,attempts FROM "
                      "change_results WHERE run_id=? AND seq>? ORDER BY seq LIMIT ?",
                    use(rid), use(after_row), use(k_rows);
                size_t n = 0;
                for_each_row(st, [&](RecordSet& rs) {
                    change_result_record r{str(rs, 0), str(rs, 1), str(rs, 2), str(rs, 3), str(rs, 4), str(rs, 5),
                                           str(rs, 6), static_cast<uint64_t>(num(rs, 7))};
                    r.attempts = static_cast<uint32_t>(num(rs, 8));
                    after_row = static_cast<Poco::Int64>(r.seq);
                    rows.push_back(std::move(r));
                    ++n;
                });
                rows_done = n < static_cast<size_t>(k_rows);
            };
            auto more_batches = [&] {
                Statement st(s_);
                st << "SELECT first_seq,count,entity,status,category,message,changes FROM change_batches "
                      "WHERE run_id=? AND first_seq>? ORDER BY first_seq LIMIT ?",
                    use(rid), use(after_batch), use(k_batches);
                size_t n = 0;
                for_each_row(st, [&](RecordSet& rs) {
                    ++n;
                    const auto first = static_cast<uint64_t>(num(rs, 0));
                    const auto count = static_cast<uint64_t>(num(rs, 1));
                    after_batch = static_cast<Poco::Int64>(first);
                    const std::string entity = str(rs, 2), status = str(rs, 3), cat = str(rs, 4), msg = str(rs, 5);
                    const Poco::Dynamic::Var v = rs.value(6);
                    const auto& blob = v.extract<Poco::Data::BLOB>();
                    std::string_view in(reinterpret_cast<const char*>(blob.rawContent()), blob.size());
                    for (uint64_t i = 0; i < count; ++i) {
                        change_result_record r{"", entity, "", "", status, cat, msg, first + i};
                        if (!unpack_piece(in, r.change_id) || !unpack_piece(in, r.key) || !unpack_piece(in, r.kind))
                            throw std::runtime_error("the change results at plan position " + std::to_string(first) +
                                                     " are damaged");
                        batched.push_back(std::move(r));
                    }
                });
                batches_done = n < static_cast<size_t>(k_batches);
            };
            for (;;) {
                if (rows.empty() && !rows_done) more_rows();
                if (batched.empty() && !batches_done) more_batches();
                if (rows.empty() && batched.empty()) break;
                auto& from = batched.empty() || (!rows.empty() && rows.front().seq < batched.front().seq) ? rows
                                                                                                         : batched;
                fn(from.front());
                from.pop_front();
            }
        });
    }

    Result<std::vector<attempt_record>> attempts(const std::string& run_id) override {
        return rows_of_run<attempt_record>(
            "reading the attempts", "SELECT seq,attempt,at,status,category,message,retry_after_ms FROM change_attempts "
                                    "WHERE run_id=? ORDER BY seq, attempt",
            run_id, [](RecordSet& rs) {
                return attempt_record{static_cast<uint64_t>(num(rs, 0)), static_cast<uint32_t>(num(rs, 1)), str(rs, 2),
                                      str(rs, 3), str(rs, 4), str(rs, 5), static_cast<uint32_t>(num(rs, 6))};
            });
    }

    Status save_checkpoint(const std::string& run_id, const std::string& scope,
                           const std::string& token, const std::string& at) override {
        return guard("saving a checkpoint of run " + run_id, [&] {
            std::string id = run_id, sc = scope, tk = token, ts = at;
            s_ << "INSERT OR REPLACE INTO checkpoints VALUES(?,?,?,?)", use(id), use(sc), use(tk), use(ts), now;
        });
    }

    Result<std::optional<std::string>> load_checkpoint(const std::string& run_id,
                                                       const std::string& scope) override {
        std::optional<std::string> out;
        auto s = guard("reading a checkpoint of run " + run_id, [&] {
            std::string id = run_id, sc = scope;
            Statement st(s_);
            st << "SELECT token FROM checkpoints WHERE run_id=? AND scope=?", use(id), use(sc);
            for_each_row(st, [&](RecordSet& rs) { out = str(rs, 0); });
        });
        if (!s) return s;
        return out;
    }

    Status save_profile(const std::string& run_id, const std::string& profile) override {
        return guard("saving the profile of run " + run_id, [&] {
            std::string id = run_id, p = profile;
            s_ << "INSERT OR REPLACE INTO run_profiles VALUES(?,?)", use(id), use(p), now;
        });
    }

    Result<std::optional<std::pair<std::string, std::string>>> last_good_profile(const std::string& job) override {
        std::optional<std::pair<std::string, std::string>> out;
        auto s = guard("reading the last good run of job " + job, [&] {
            std::string j = job;
            Statement st(s_);
            st << "SELECT p.run_id, p.profile FROM runs r JOIN run_profiles p "
                  "ON p.run_id = CASE WHEN r.plan_of = '' THEN r.id ELSE r.plan_of END "
                  "WHERE r.job = ? AND r.dry_run = 0 AND r.state IN ('succeeded', 'partially_failed') "
                  "ORDER BY r.created_at DESC, r.id DESC LIMIT 1",
                use(j);
            for_each_row(st, [&](RecordSet& rs) { out = std::pair{str(rs, 0), str(rs, 1)}; });
        });
        if (!s) return s;
        return out;
    }

    Status save_verdicts(const std::string& run_id, const std::vector<gate_verdict>& vs) override {
        return guard("saving the gate verdicts of run " + run_id, [&] {
            std::string id = run_id;
            tx_begin();
            s_ << "DELETE FROM gate_verdicts WHERE run_id=?", use(id), now;
            int seq = 0;
            for (auto v : vs) {
                ++seq;
                Poco::Int64 n = static_cast<Poco::Int64>(v.count), b = static_cast<Poco::Int64>(v.base);
                s_ << "INSERT INTO gate_verdicts VALUES(?,?,?,?,?,?,?,?,?,?)", use(id), use(seq), use(v.gate),
                    use(v.entity), use(v.kind), use(v.verdict), use(n), use(b), use(v.limit), use(v.message), now;
            }
            tx_commit();
        });
    }

    Result<std::vector<gate_verdict>> verdicts(const std::string& run_id) override {
        return rows_of_run<gate_verdict>(
            "reading the gate verdicts",
            "SELECT gate,entity,kind,verdict,count,base,lim,message FROM gate_verdicts WHERE run_id=? ORDER BY seq",
            run_id, [](RecordSet& rs) {
                return gate_verdict{str(rs, 0), str(rs, 1), str(rs, 2), str(rs, 3), static_cast<uint64_t>(num(rs, 4)),
                                    static_cast<uint64_t>(num(rs, 5)), str(rs, 6), str(rs, 7)};
            });
    }

    Status add_approval(const approval_record& a) override {
        return guard("recording a decision on run " + a.run_id, [&] {
            approval_record c = a;
            int seq = 0;
            {
                Statement st(s_);
                st << "SELECT COUNT(*) FROM approvals WHERE run_id=?", use(c.run_id), into(seq), now;
            }
            ++seq;
            s_ << "INSERT INTO approvals VALUES(?,?,?,?,?,?,?,?,?)", use(c.run_id), use(seq), use(c.action), use(c.by),
                use(c.at), use(c.reason), use(c.plan_digest), use(c.outcome), use(c.os_user), now;
        });
    }

    Result<std::vector<approval_record>> approvals(const std::string& run_id) override {
        return rows_of_run<approval_record>(
            "reading the decisions",
            "SELECT run_id,action,by_whom,at,reason,plan_digest,outcome,os_user FROM approvals WHERE run_id=? "
            "ORDER BY seq",
            run_id, [](RecordSet& rs) {
                return approval_record{str(rs, 0), str(rs, 1), str(rs, 2), str(rs, 3),
                                       str(rs, 4), str(rs, 5), str(rs, 6), str(rs, 7)};
            });
    }

    Result<std::map<std::string, std::string>> deactivations(const std::string& job,
                                                             const std::string& entity) override {
        std::map<std::string, std::string> out;
        auto s = guard("reading the deactivated records of " + entity, [&] {
            std::string j = job, e = entity;
            Statement st(s_);
            st << "SELECT record_key, since FROM deactivations WHERE job=? AND entity=?", use(j), use(e);
            for_each_row(st, [&](RecordSet& rs) { out[str(rs, 0)] = str(rs, 1); });
        });
        if (!s) return s;
        return out;
    }

    Status update_deactivations(const std::string& job, const std::string& entity,
                                const std::vector<std::string>& first_seen, const std::string& at,
                                const std::vector<std::string>& forget) override {
        if (first_seen.empty() && forget.empty()) return Status::ok();
        return guard("recording the deactivated records of " + entity, [&] {
            tx_begin();
            if (!first_seen.empty()) {
                std::vector<std::string> j(first_seen.size(), job), e(first_seen.size(), entity),
                    t(first_seen.size(), at), k = first_seen;
                Statement ins(s_);
                ins << "INSERT OR IGNORE INTO deactivations VALUES(?,?,?,?)", use(j), use(e), use(k), use(t);
                ins.execute();
            }
            if (!forget.empty()) {
                std::vector<std::string> j(forget.size(), job), e(forget.size(), entity), k = forget;
                Statement del(s_);
                del << "DELETE FROM deactivations WHERE job=? AND entity=? AND record_key=?", use(j), use(e), use(k);
                del.execute();
            }
            tx_commit();
        });
    }

    Status in_read_transaction(const std::function<Status()>& body) override { return transaction(body, false); }

    Status in_transaction(const std::function<Status()>& body) override { return transaction(body, true); }

    Status transaction(const std::function<Status()>& body, bool write) {
        std::lock_guard l(mu_);
        if (depth_ > 0) return body();  // part of the transaction already open
        if (auto s = guard("starting a transaction", [&] { tx_begin(write); }); !s) return s;
        tx_failed_ = false;
        Status s;
        try {
            s = body();
        } catch (const std::exception& e) {
            s = Status::error(error_kind::internal, std::string("the kernel failed inside a store transaction: ") + e.what());
        }
        if (s && tx_failed_)
            s = Status::error(error_kind::store, file_.string() + ": a write inside the transaction failed; nothing of it "
                                                 "was recorded");
        if (!s) {
            tx_abort();
            return s;
        }
        return guard("committing a transaction", [&] { tx_commit(); });
    }

    Status append_audit(const std::vector<audit_entry_record>& entries, const audit_head_record& h) override {
        return guard("appending to the audit log", [&] {
            tx_begin();
            std::vector<Poco::Int64> seq;
            std::vector<std::string> kind, run, entry, leaf;
            for (auto& e : entries) {
                seq.push_back(static_cast<Poco::Int64>(e.seq));
                kind.push_back(e.kind);
                run.push_back(e.run_id);
                entry.push_back(e.entry);
                leaf.push_back(e.leaf);
            }
            if (!entries.empty()) {
                Statement ins(s_);
                ins << "INSERT INTO audit_entries VALUES(?,?,?,?,?)", use(seq), use(kind), use(run), use(entry), use(leaf);
                ins.execute();
            }
            audit_head_record d = h;
            Poco::Int64 size = static_cast<Poco::Int64>(d.size);
            s_ << "INSERT INTO audit_signed_heads VALUES(?,?,?,?,?,?)", use(size), use(d.root), use(d.at),
                use(d.key_id), use(d.prev), use(d.signature), now;
            s_ << "INSERT OR REPLACE INTO audit_frontier VALUES(1,?,?)", use(size), use(d.frontier), now;
            tx_commit();
        });
    }

    Result<std::vector<audit_entry_record>> audit_entries(uint64_t from, uint64_t limit) override {
        std::vector<audit_entry_record> out;
        auto s = guard("reading the audit log", [&] {
            Poco::Int64 f = static_cast<Poco::Int64>(from), l = static_cast<Poco::Int64>(std::min<uint64_t>(limit, INT64_MAX));
            Statement st(s_);
            st << "SELECT seq,kind,run_id,entry,leaf FROM audit_entries WHERE seq >= ? ORDER BY seq LIMIT ?", use(f),
                use(l);
            for_each_row(st, [&](RecordSet& rs) { out.push_back(audit_entry_of(rs)); });
        });
        if (!s) return s;
        return out;
    }

    Result<std::vector<audit_entry_record>> audit_entries_of_run(const std::string& run_id) override {
        return rows_of_run<audit_entry_record>(
            "reading the audit entries",
            "SELECT seq,kind,run_id,entry,leaf FROM audit_entries WHERE run_id=? ORDER BY seq", run_id, audit_entry_of);
    }

    Status scan_audit(uint64_t from, const audit_row_fn& row) override {
        return guard("reading the audit log", [&] {
            // The SQLite C API on the session's own connection: rows are
            // read in place, not copied through Poco's variants.
            sqlite3* db = Poco::Data::SQLite::Utility::dbHandle(s_);
            sqlite3_stmt* st = nullptr;
            if (sqlite3_prepare_v2(db, "SELECT seq,kind,run_id,entry,leaf FROM audit_entries WHERE seq >= ? ORDER BY seq",
                                   -1, &st, nullptr) != SQLITE_OK)
                throw Poco::Exception(sqlite3_errmsg(db));
            struct finalize {
                sqlite3_stmt* s;
                ~finalize() { sqlite3_finalize(s); }
            } done{st};
            sqlite3_bind_int64(st, 1, static_cast<sqlite3_int64>(from));
            // Pages mapped, not copied through read(), for the scan only.
            sqlite3_exec(db, "PRAGMA mmap_size=4294967296", nullptr, nullptr, nullptr);
            struct unmap {
                sqlite3* db;
                ~unmap() { sqlite3_exec(db, "PRAGMA mmap_size=0", nullptr, nullptr, nullptr); }
            } unmapped{db};
            auto text = [&](int c) {
                const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(st, c));
                return std::string_view(p ? p : "", static_cast<size_t>(sqlite3_column_bytes(st, c)));
            };
            for (;;) {
                const int rc = sqlite3_step(st);
                if (rc == SQLITE_DONE) break;
                if (rc != SQLITE_ROW) throw Poco::Exception(sqlite3_errmsg(db));
                if (!row(static_cast<uint64_t>(sqlite3_column_int64(st, 0)), text(1), text(2), text(3), text(4))) break;
            }
        });
    }

    Result<std::vector<std::string>> audit_leaves(uint64_t size) override {
        std::vector<std::string> out;
        auto s = guard("reading the audit log's leaves", [&] {
            Poco::Int64 n = static_cast<Poco::Int64>(size);
            Statement st(s_);
            st << "SELECT leaf FROM audit_entries WHERE seq < ? ORDER BY seq", use(n), into(out), now;
        });
        if (!s) return s;
        return out;
    }

    Result<std::vector<audit_head_record>> audit_heads() override { return read_heads("ORDER BY size"); }

    Result<std::vector<retention_candidate>> finished_before(const std::string& cutoff) override {
        std::vector<retention_candidate> out;
        auto s = guard("reading the runs that ended before " + cutoff, [&] {
            std::string c = cutoff;
            Statement st(s_);
            st << "SELECT r.id, r.state, r.finished_at, COALESCE(p.plan_file,''), COALESCE(p.path,''), "
                  "COALESCE(p.purged_at,''), (SELECT COUNT(*) FROM change_results x WHERE x.run_id=r.id) + "
                  "COALESCE((SELECT SUM(count) FROM change_batches b WHERE b.run_id=r.id), 0) "
                  "FROM runs r LEFT JOIN plans p ON p.run_id=r.id WHERE r.finished_at <> '' AND r.finished_at < ? "
                  "ORDER BY r.finished_at",
                use(c);
            for_each_row(st, [&](RecordSet& rs) {
                out.push_back({str(rs, 0), str(rs, 1), str(rs, 2), str(rs, 3), str(rs, 4), str(rs, 5),
                               static_cast<uint64_t>(num(rs, 6))});
            });
        });
        if (!s) return s;
        return out;
    }

    Status purge(const std::vector<std::string>& plans_of, const std::vector<std::string>& results_of,
                 const std::string& at) override {
        return guard("purging what the retention policy no longer keeps", [&] {
            tx_begin();
            if (!plans_of.empty()) {
                std::vector<std::string> ids = plans_of, when(plans_of.size(), at);
                Statement st(s_);
                st << "UPDATE plans SET purged_at=? WHERE run_id=? AND purged_at=''", use(when), use(ids);
                st.execute();
            }
            if (!results_of.empty()) {
                std::vector<std::string> ids = results_of;
                for (const char* table : {"change_results", "change_batches", "change_attempts"}) {
                    Statement del(s_);
                    del << "DELETE FROM " + std::string(table) + " WHERE run_id=?", use(ids);
                    del.execute();
                }
            }
            tx_commit();
        });
    }

    Status add_secret(const secret_record& r) override {
        return guard("storing secret " + r.name, [&] {
            secret_record c = r;
            Poco::Int64 v = c.version;
            s_ << "INSERT INTO secrets VALUES(?,?,?,?,?,?,?)", use(c.name), use(v), use(c.created_at),
                use(c.created_by), use(c.nonce), use(c.ciphertext), use(c.tag), now;
        });
    }

    void compact_free_pages() override {
        (void)guard("checkpointing the journal", [&] { s_ << "PRAGMA wal_checkpoint(TRUNCATE)", now; });
    }

    Status update_secret(const secret_record& r) override {
        return guard("updating secret " + r.name, [&] {
            secret_record c = r;
            Poco::Int64 v = c.version;
            // The old ciphertext's bytes are zeroed in the file, not only
            // unlinked from the table.
            s_ << "PRAGMA secure_delete=ON", now;
            s_ << "UPDATE secrets SET nonce=?, ciphertext=?, tag=? WHERE name=? AND version=?", use(c.nonce),
                use(c.ciphertext), use(c.tag), use(c.name), use(v), now;
        });
    }

    Result<std::vector<secret_record>> secret_versions(const std::string& name) override {
        std::vector<secret_record> out;
        auto s = guard("reading secrets", [&] {
            std::string n = name;
            Statement st(s_);
            st << "SELECT name,version,created_at,created_by,nonce,ciphertext,tag FROM secrets WHERE ?='' OR name=? "
                  "ORDER BY name, version",
                use(n), use(n);
            for_each_row(st, [&](RecordSet& rs) {
                out.push_back({str(rs, 0), static_cast<uint32_t>(num(rs, 1)), str(rs, 2), str(rs, 3), str(rs, 4),
                               str(rs, 5), str(rs, 6)});
            });
        });
        if (!s) return s;
        return out;
    }

    Result<std::vector<std::string>> target_ids(const std::string& system, const std::string& entity,
                                                const std::vector<std::string>& key_hashes) override {
        std::vector<std::string> out(key_hashes.size());
        auto s = guard("reading target ids of " + entity, [&] {
            std::string sys = system, ent = entity, kh;
            for (size_t i = 0; i < key_hashes.size(); ++i) {
                kh = key_hashes[i];
                std::string id;
                Statement one(s_);
                one << "SELECT id FROM target_ids WHERE system=? AND entity=? AND key_hash=?", use(sys), use(ent),
                    use(kh), into(id), limit(1);
                one.execute();
                out[i] = id;
            }
        });
        if (!s) return s;
        return out;
    }

    Result<std::vector<assigned_name_record>> assigned_names(const std::string& system, const std::string& entity,
                                                             const std::string& field) override {
        std::vector<assigned_name_record> out;
        auto s = guard("reading the names given in " + entity + "." + field, [&] {
            std::string sys = system, ent = entity, fld = field;
            std::vector<std::string> name, key, base;
            std::vector<Poco::Int64> counter, current;
            Statement st(s_);
            st << "SELECT name_hash, key_hash, base_hash, counter, current FROM assigned_names "
                  "WHERE system=? AND entity=? AND field=?",
                use(sys), use(ent), use(fld), into(name), into(key), into(base), into(counter), into(current);
            st.execute();
            for (size_t i = 0; i < name.size(); ++i)
                out.push_back({system, entity, field, name[i], key[i], base[i], static_cast<uint32_t>(counter[i]),
                               current[i] != 0});
        });
        if (!s) return s;
        return out;
    }

    Status save_assigned_names(const std::vector<assigned_name_record>& names, const std::string& run_id,
                               const std::string& at) override {
        return guard("keeping the names given", [&] {
            tx_begin();
            for (auto& n : names) {
                std::string sys = n.system, ent = n.entity, fld = n.field, nh = n.name_hash, kh = n.key_hash,
                            bh = n.base_hash, rid = run_id, when = at;
                Poco::Int64 counter = n.counter, current = n.current ? 1 : 0;
                Statement st(s_);
                st << "INSERT OR REPLACE INTO assigned_names VALUES(?,?,?,?,?,?,?,?,?,?)", use(sys), use(ent),
                    use(fld), use(nh), use(kh), use(bh), use(counter), use(current), use(rid), use(when);
                st.execute();
            }
            tx_commit();
        });
    }

    Result<std::optional<std::string>> config_digest(const std::string& path) override {
        std::optional<std::string> out;
        auto s = guard("reading the digest of " + path, [&] {
            std::string p = path;
            Statement st(s_);
            st << "SELECT digest FROM config_seen WHERE path=?", use(p);
            for_each_row(st, [&](RecordSet& rs) { out = str(rs, 0); });
        });
        if (!s) return s;
        return out;
    }

    Status save_config_digest(const std::string& path, const std::string& digest, const std::string& at) override {
        return guard("recording the digest of " + path, [&] {
            std::string p = path, d = digest, a = at;
            s_ << "INSERT OR REPLACE INTO config_seen VALUES(?,?,?)", use(p), use(d), use(a), now;
        });
    }

    Result<std::optional<audit_head_record>> audit_head() override {
        auto h = read_heads("ORDER BY size DESC LIMIT 1");
        if (!h) return h.status();
        std::optional<audit_head_record> out;
        if (!h->empty()) {
            out = h->front();
            auto f = guard("reading the audit log's frontier", [&] {
                Statement st(s_);
                st << "SELECT size,nodes FROM audit_frontier";
                for_each_row(st, [&](RecordSet& rs) {
                    if (static_cast<uint64_t>(num(rs, 0)) == out->size) out->frontier = str(rs, 1);
                });
            });
            if (!f) return f;
        }
        return out;
    }

private:
    template <class F>
    Status guard(const std::string& what, F&& f) {
        std::lock_guard l(mu_);
        const int depth = depth_;
        auto failed = [&](const std::string& msg) {
            // Inside a caller's transaction: that transaction fails as a
            // whole. Else this call's own transaction is rolled back.
            if (depth > 0) {
                depth_ = depth;
                tx_failed_ = true;
            } else {
                tx_abort();
            }
            return Status::error(error_kind::store, file_.string() + ": " + what + ": " + msg);
        };
        try {
            f();
            return Status::ok();
        } catch (const Poco::Exception& e) {
            return failed(e.displayText());
        } catch (const std::exception& e) {
            return failed(e.what());
        }
    }

    // Transactions nest: only the outermost begins and commits. IMMEDIATE
    // takes the write lock at the start, so that what a transaction reads
    // (the audit log's head) is still the head when it writes.
    void tx_begin(bool write = true) {
        if (depth_++ == 0) s_ << (write ? "BEGIN IMMEDIATE" : "BEGIN"), now;
    }
    void tx_commit() {
        if (--depth_ == 0) s_ << "COMMIT", now;
    }
    void tx_abort() {
        if (depth_ > 0) {
            depth_ = 0;
            try { s_ << "ROLLBACK", now; } catch (...) {}
        }
    }

    Result<std::vector<audit_head_record>> read_heads(const std::string& order) {
        std::vector<audit_head_record> out;
        auto s = guard("reading the audit log's signed heads", [&] {
            Statement st(s_);
            st << "SELECT size,root,at,key_id,prev,signature FROM audit_signed_heads " + order;
            for_each_row(st, [&](RecordSet& rs) {
                audit_head_record h;
                h.size = static_cast<uint64_t>(num(rs, 0));
                h.root = str(rs, 1);
                h.at = str(rs, 2);
                h.key_id = str(rs, 3);
                h.prev = str(rs, 4);
                h.signature = str(rs, 5);
                out.push_back(std::move(h));
            });
        });
        if (!s) return s;
        return out;
    }

    // The rows of one run that `sql` (with one ? for the run id) selects,
    // each turned into a T by `make`.
    template <class T, class F>
    Result<std::vector<T>> rows_of_run(const std::string& what, const std::string& sql, const std::string& run_id,
                                       F&& make) {
        std::vector<T> out;
        auto s = guard(what + " of run " + run_id, [&] {
            std::string id = run_id;
            Statement st(s_);
            st << sql, use(id);
            for_each_row(st, [&](RecordSet& rs) { out.push_back(make(rs)); });
        });
        if (!s) return s;
        return out;
    }

    void write_run(const run_record& r) {
        run_record c = r;
        s_ << "UPDATE runs SET state=?,phase=?,finished_at=?,source_version=?,target_version=?,"
              "exit_code=?,error=?,summary=?,category=?,plan_of=? WHERE id=?",
            use(c.state), use(c.phase), use(c.finished_at), use(c.source_version),
            use(c.target_version), use(c.exit_code), use(c.error), use(c.summary_json), use(c.category),
            use(c.plan_of), use(c.id), now;
    }

    int read_version() {
        Statement st(s_);
        st << "SELECT version FROM schema_version";
        st.execute();
        RecordSet rs(st);
        return rs.moveFirst() ? static_cast<int>(num(rs, 0)) : 0;
    }

    Result<std::vector<run_record>> query_runs(const std::string& where, const std::string& arg, size_t limit) {
        std::vector<run_record> out;
        auto s = guard("reading runs", [&] {
            std::string a = arg;
            int lim = static_cast<int>(limit);
            Statement st(s_);
            st << "SELECT id,job,job_file,state,phase,dry_run,created_at,finished_at,source_connector,"
                  "source_version,target_connector,target_version,exit_code,error,summary,plan_of,category,run_trigger "
                  "FROM runs " +
                      where + " ORDER BY created_at DESC, id DESC LIMIT ?";
            if (where.find('?') != std::string::npos) st, use(a);
            st, use(lim);
            for_each_row(st, [&](RecordSet& rs) {
                run_record r;
                r.id = str(rs, 0); r.job = str(rs, 1); r.job_file = str(rs, 2); r.state = str(rs, 3);
                r.phase = str(rs, 4); r.dry_run = num(rs, 5) != 0; r.created_at = str(rs, 6);
                r.finished_at = str(rs, 7); r.source_connector = str(rs, 8); r.source_version = str(rs, 9);
                r.target_connector = str(rs, 10); r.target_version = str(rs, 11);
                r.exit_code = static_cast<int>(num(rs, 12)); r.error = str(rs, 13); r.summary_json = str(rs, 14);
                r.plan_of = str(rs, 15);
                r.category = str(rs, 16);
                r.trigger = str(rs, 17);
                out.push_back(std::move(r));
            });
        });
        if (!s) return s;
        return out;
    }

    std::filesystem::path file_;
    struct stat identity_ {};  // the file as opened, to notice it being deleted or replaced
    Session s_;
    int cache_kib_;
    std::recursive_mutex mu_;
    int depth_ = 0;           // open transactions (nested ones only count)
    bool tx_failed_ = false;  // a write inside in_transaction failed
};

}  // namespace

Result<std::unique_ptr<run_store>> open_sqlite_store(const std::filesystem::path& file, int cache_kib) {
    static std::once_flag once;
    std::call_once(once, [] { Poco::Data::SQLite::Connector::registerConnector(); });
    std::error_code ec;
    std::filesystem::create_directories(file.parent_path(), ec);
    try {
        auto store = std::make_unique<sqlite_store>(file, cache_kib > 0 ? cache_kib : 65536);
        if (auto s = store->migrate(); !s) return s;
        return std::unique_ptr<run_store>(std::move(store));
    } catch (const Poco::Exception& e) {
        return Status::error(error_kind::store, file.string() + ": cannot open the run store: " + e.displayText());
    }
}

}  // namespace syncwarden::kernel
