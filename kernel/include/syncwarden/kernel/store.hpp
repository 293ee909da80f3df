// Runs, plans, findings, per-change results and checkpoints. The embedded
// default is one SQLite file; the interface is what a shared store
// (PostgreSQL) will implement too.
#pragma once

#include <syncwarden/kernel/result.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace syncwarden::kernel {

struct run_record {
    std::string id, job, job_file;
    // queued running held applying succeeded partially_failed failed cancelled interrupted
    std::string state = "queued";
    std::string phase;             // contract extract diff gates apply (while running)
    bool dry_run = false;
    std::string created_at, finished_at;
    std::string source_connector, source_version, target_connector, target_version;
    int exit_code = 0;
    std::string error;
    std::string category;  // of the error: connector_crashed, timeout, cancelled, ...
    std::string summary_json = "{}";
    std::string plan_of;  // `runs apply`: the run whose stored plan this run applies
    // How the run started: "cli", or "approval of RUN by NAME".
    std::string trigger = "cli";
};

struct finding_record {
    std::string severity, code, entity, file;
    uint64_t line = 0, column = 0;
    std::string key, message;
};

struct plan_record {
    std::string run_id, path, sha256;  // the plan for people (JSON) and its SHA-256
    uint64_t creates = 0, updates = 0, deletes = 0;
    std::string plan_file, digest;     // the persisted plan the applier reads, and its SHA-256
    std::string content_digest;        // of its changes alone (plan_file.hpp)
    std::string purged_at;             // when the retention policy removed its files; "" while kept
};

// One version of an encrypted secret (secrets.hpp): AES-256-GCM, hex.
struct secret_record {
    std::string name;
    uint32_t version = 0;
    std::string created_at, created_by, nonce, ciphertext, tag;
};

// A finished run, as the retention policy sees it.
struct retention_candidate {
    std::string run_id, state, finished_at;
    std::string plan_file, plan_path, plan_purged_at;  // "" when it has no plan
    uint64_t change_results = 0;
};

// One safety gate's verdict on a run's plan (gates.hpp).
struct gate_verdict {
    std::string gate;     // threshold, shrink, findings
    std::string entity;   // the target entity (threshold) or source entity (shrink)
    std::string kind;     // create update delete deactivate; "" for other gates
    std::string verdict;  // pass, hold, allowed (over the job's limit, within --allow)
    uint64_t count = 0;   // the number the gate looked at
    uint64_t base = 0;    // what it is compared with: the target's size, the last good count
    std::string limit;    // gate_limit::text()
    std::string message;  // in an operator's words
    bool holds() const { return verdict == "hold"; }
};

// A decision on a held run.
struct approval_record {
    std::string run_id;
    std::string action;       // approve, reject
    std::string by, at, reason;
    std::string plan_digest;  // the plan the decision was about
    std::string outcome;      // what followed: "applied by run R", "planned again as run R", "closed"
    std::string os_user;      // who made it, as the operating system said: "ana (uid 1000)"
};

// One entry of the audit log: its canonical JSON and its leaf hash (hex).
struct audit_entry_record {
    uint64_t seq = 0;  // 0-based: the leaf's index in the Merkle tree
    std::string kind, run_id, entry, leaf;
};

// A signed tree head after an append (audit.hpp). `prev` is the SHA-256 of
// the head before it; `frontier` (hex hashes, comma-joined) is what lets the
// next append grow the tree without reading it back: it is kept with the
// newest head only, and checked against its signed root before use.
struct audit_head_record {
    uint64_t size = 0;
    std::string root, at, key_id, prev, signature, frontier;
};

// status: "staged" (the target accepted it; not durable yet), "applied" (the
// target's commit made it durable), or the failure: a sw_status name, or
// "failed" when the commit failed.
struct change_result_record {
    std::string change_id, entity, key, kind, status, category, message;
    uint64_t seq = 0;       // position of the change in the run's plan
    uint32_t attempts = 1;  // how many times it was sent
};

// One send of a change that did not end it: a retryable or throttled
// failure that was retried (the last send is the change's result).
// ABI 1.4: the id a target's system gave a record, per target system and
// entity, by the keyed hash of the record's key (pii::keyed). An empty id
// forgets the record.
struct target_id_record {
    std::string system, entity, key_hash, id;
};

// A name the kernel gave a record's field under a `unique` rule (identity
// rules, config/README.md): per target system, entity and field, the keyed
// hashes of the name, of the record's key and of the name before its
// counter, and the counter (1: none). A name once given stays with that key:
// `current` is false for names the key held before a rename.
struct assigned_name_record {
    std::string system, entity, field, name_hash, key_hash, base_hash;
    uint32_t counter = 1;
    bool current = true;
};

struct attempt_record {
    uint64_t seq = 0;
    uint32_t attempt = 0;
    std::string at, status, category, message;
    uint32_t retry_after_ms = 0;
};

class run_store {
public:
    virtual ~run_store() = default;
    virtual Status create_run(const run_record& r) = 0;
    virtual Status update_run(const run_record& r) = 0;
    virtual Result<run_record> get_run(const std::string& id) = 0;
    virtual Result<std::vector<run_record>> list_runs(size_t limit) = 0;
    // Runs in state queued, running or applying.
    virtual Result<std::vector<run_record>> unfinished_runs() = 0;
    virtual Status add_findings(const std::string& run_id, const std::vector<finding_record>& f) = 0;
    virtual Result<std::vector<finding_record>> findings(const std::string& run_id) = 0;
    virtual Status save_plan(const plan_record& p) = 0;
    virtual Result<std::optional<plan_record>> get_plan(const std::string& run_id) = 0;
    // One applied batch: its results and the apply checkpoint, in one
    // transaction.
    virtual Status save_apply_batch(const std::string& run_id, const std::vector<change_result_record>& r,
                                    const std::vector<attempt_record>& attempts,
                                    const std::string& checkpoint_scope, const std::string& checkpoint,
                                    const std::string& at, const std::vector<target_id_record>& ids = {}) = 0;
    // ABI 1.4: the ids held for these key hashes of one target system and
    // entity, in the same order ("" where none).
    virtual Result<std::vector<std::string>> target_ids(const std::string& system, const std::string& entity,
                                                        const std::vector<std::string>& key_hashes) = 0;
    // Every name given in one target system, entity and field; and new or
    // changed ones, kept (a name is keyed by its hash).
    virtual Result<std::vector<assigned_name_record>> assigned_names(const std::string& system,
                                                                     const std::string& entity,
                                                                     const std::string& field) = 0;
    virtual Status save_assigned_names(const std::vector<assigned_name_record>& names, const std::string& run_id,
                                       const std::string& at) = 0;
    virtual Result<std::vector<attempt_record>> attempts(const std::string& run_id) = 0;
    // The end of an apply, in one transaction: the run's staged changes become
    // "applied" when the target committed, else "failed" with the commit's
    // category and message; and the run row is updated.
    virtual Status finish_apply(const run_record& r, bool committed, const std::string& category,
                                const std::string& message) = 0;
    // Fails when the store's file was deleted or replaced since it was
    // opened: what is written now would be recorded nowhere.
    virtual Status check_still_there() = 0;
    virtual Result<std::vector<change_result_record>> change_results(const std::string& run_id) = 0;
    // The same results one at a time, in plan order, read a page at a time:
    // resuming an 8M-change run does not hold them all.
    virtual Status each_change_result(const std::string& run_id,
                                      const std::function<void(const change_result_record&)>& fn) = 0;
    virtual Status save_checkpoint(const std::string& run_id, const std::string& scope,
                                   const std::string& token, const std::string& at) = 0;
    virtual Result<std::optional<std::string>> load_checkpoint(const std::string& run_id,
                                                               const std::string& scope) = 0;
    // The gates: a run's profile (source counts, target sizes; JSON), and the
    // profile of the job's last good run: the newest run that applied and
    // succeeded (or partially failed) - for a run that applied another
    // run's plan, the profile of the run that made the plan.
    virtual Status save_profile(const std::string& run_id, const std::string& profile_json) = 0;
    virtual Result<std::optional<std::pair<std::string, std::string>>> last_good_profile(const std::string& job) = 0;
    virtual Status save_verdicts(const std::string& run_id, const std::vector<gate_verdict>& v) = 0;
    virtual Result<std::vector<gate_verdict>> verdicts(const std::string& run_id) = 0;
    virtual Status add_approval(const approval_record& a) = 0;
    virtual Result<std::vector<approval_record>> approvals(const std::string& run_id) = 0;
    // When each deactivated record of a job's target entity was first known
    // to be deactivated (ISO 8601), by key.
    virtual Result<std::map<std::string, std::string>> deactivations(const std::string& job,
                                                                     const std::string& entity) = 0;
    virtual Status update_deactivations(const std::string& job, const std::string& entity,
                                        const std::vector<std::string>& first_seen, const std::string& at,
                                        const std::vector<std::string>& forget) = 0;
    // Runs `body` in one transaction: every store call it makes commits
    // together, or none does (when body fails or any call in it fails).
    // Nested calls join the outer transaction.
    virtual Status in_transaction(const std::function<Status()>& body) = 0;
    // The same for reads: one consistent snapshot, without taking the write
    // lock (runs go on writing meanwhile).
    virtual Status in_read_transaction(const std::function<Status()>& body) = 0;
    // The audit log (append-only: the store refuses UPDATE and DELETE).
    // Entries and the head that signs the tree with them, in one transaction.
    virtual Status append_audit(const std::vector<audit_entry_record>& entries, const audit_head_record& head) = 0;
    virtual Result<std::vector<audit_entry_record>> audit_entries(uint64_t from, uint64_t limit) = 0;
    virtual Result<std::vector<audit_entry_record>> audit_entries_of_run(const std::string& run_id) = 0;
    // Streams the entries from `from` on, in order, to `row` until it
    // returns false; the views are valid during the call. For verify: a
    // million entries in seconds.
    using audit_row_fn = std::function<bool(uint64_t seq, std::string_view kind, std::string_view run_id,
                                            std::string_view entry, std::string_view leaf)>;
    virtual Status scan_audit(uint64_t from, const audit_row_fn& row) = 0;
    // The leaf hashes (hex) of the first `size` entries.
    virtual Result<std::vector<std::string>> audit_leaves(uint64_t size) = 0;
    virtual Result<std::vector<audit_head_record>> audit_heads() = 0;
    // The newest signed head, with the frontier when it is the frontier's.
    virtual Result<std::optional<audit_head_record>> audit_head() = 0;
    // Runs that ended before `cutoff` (ISO 8601), oldest first.
    virtual Result<std::vector<retention_candidate>> finished_before(const std::string& cutoff) = 0;
    // In one transaction: the plans of `plans_of` are marked purged at `at`
    // (their digests stay), and the change results and attempts of
    // `results_of` are deleted. Runs, summaries and the audit log stay.
    virtual Status purge(const std::vector<std::string>& plans_of, const std::vector<std::string>& results_of,
                         const std::string& at) = 0;
    // Secrets: a new version (refused when it exists), and the versions of
    // one secret ("" for all), oldest first.
    virtual Status add_secret(const secret_record& r) = 0;
    // Replaces a version's nonce, ciphertext and tag (a rekey; empty for a
    // retired version), overwriting the old bytes in the file.
    virtual Status update_secret(const secret_record& r) = 0;
    // Moves what was committed into the main file and empties the journal,
    // so that bytes overwritten there (a retired secret) are gone from it.
    virtual void compact_free_pages() {}
    virtual Result<std::vector<secret_record>> secret_versions(const std::string& name) = 0;
    // The digest of a config file (by absolute path) when the kernel last
    // read it, for `config_changed` audit events.
    virtual Result<std::optional<std::string>> config_digest(const std::string& path) = 0;
    virtual Status save_config_digest(const std::string& path, const std::string& digest, const std::string& at) = 0;
    virtual int schema_version() = 0;
};

// Opens (creating if needed) and migrates the SQLite store at `file`.
// cache_kib caps SQLite's page cache for this connection: a run reads and
// writes large plans and wants the 64 MiB default; a long-lived process
// that only reads run rows (the daemon) keeps it small, so its memory does
// not grow with the database.
Result<std::unique_ptr<run_store>> open_sqlite_store(const std::filesystem::path& file, int cache_kib = 65536);

}  // namespace syncwarden::kernel
