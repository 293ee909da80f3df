// The kernel-owned audit log: typed events (run summaries, decisions,
// installs, notes) become entries of canonical JSON (RFC 8785), the leaves of
// an RFC 6962 Merkle tree; after each append the kernel signs the tree head
// with Ed25519. The store keeps entries and heads append-only.
//
// An entry:  {"at":ISO8601,"data":{...},"kind":K,"run":RUN_ID,"seq":N,"v":1}
// A head:    {"at":..,"key_id":..,"prev":..,"root":..,"size":N} is what is
//            signed; `prev` is head_hash() of the head before it ("" for the
//            first), so the heads form a chain that the newest signature
//            vouches for.
#pragma once

#include <syncwarden/kernel/clock.hpp>
#include <syncwarden/kernel/merkle.hpp>
#include <syncwarden/kernel/result.hpp>
#include <syncwarden/kernel/signer.hpp>
#include <syncwarden/kernel/store.hpp>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace syncwarden::kernel {

// One typed event. Kinds: run_summary, approval, rejection, cancel, resume,
// retry_failed, connector_installed, connector_retired, secret_changed,
// config_changed, note. `data` never holds people's data: counts, names of
// connectors and gates, digests, keyed hashes.
struct audit_event {
    std::string kind;
    std::string run_id;  // "" for an event about no run
    nlohmann::json data = nlohmann::json::object();
};

// Where the audit signing key lives in a data dir.
std::filesystem::path audit_key_file(const std::filesystem::path& data_dir);

// The canonical JSON a head's signature covers, and the head's own hash
// (SHA-256 hex over the canonical head with its signature), which the next
// head carries as `prev`.
std::string head_message(const audit_head_record& h);
std::string head_hash(const audit_head_record& h);
// A signed head as JSON (its fields and signature), and back; `where` names
// it in errors ("proof.json: $.head").
nlohmann::json head_to_json(const audit_head_record& h);
Result<audit_head_record> head_from_json(const nlohmann::json& j, const std::string& where);
// The leaf hashes of the first `size` entries, as the store holds them.
Result<std::vector<merkle::hash>> stored_leaves(run_store& store, uint64_t size);

// A handover of the signing key, as `audit rotate-key` records it: an entry
// of kind "audit_key_rotated" whose data names the old and the new key.
// Normally it is the last entry signed by the old key; when the old key was
// lost it is the first entry signed by the new one, and says so.
inline constexpr const char* k_key_rotated = "audit_key_rotated";
struct key_handover {
    uint64_t seq = 0;
    std::string old_id, new_id, old_pem, new_pem, by, reason;
    bool old_key_lost = false;
};
// The handover an entry records, if it is one.
std::optional<key_handover> handover_of(uint64_t seq, std::string_view entry);

// The event sink. Every entry of the log is written through append().
class audit_log {
public:
    // Loads the signing key of `data_dir`, or creates it while the log is
    // empty. Refuses a key other than the one the log's newest head hands
    // on to (its own, or the new key of a handover it ends with): a key
    // deleted or replaced is never used silently.
    static Result<std::unique_ptr<audit_log>> open(run_store& store, const std::filesystem::path& data_dir,
                                                   const clock& clk);
    // `audit rotate-key`: a new signing key, and its handover recorded in
    // the log. With the old key, the handover is signed by it, then the new
    // key replaces it. With `old_key_lost` (the key file is gone or is not
    // the log's), a new key is made and signs an entry that says the old
    // one was lost; a file that was not the log's key is kept beside it as
    // audit-signing.pem.unrecorded-<id>. `who` joins the entry's data (by,
    // os_user, reason).
    static Result<key_handover> rotate_key(run_store& store, const std::filesystem::path& data_dir, const clock& clk,
                                           const nlohmann::json& who, bool old_key_lost);
    // Appends the events as entries and signs the new head, in one store
    // transaction: called inside run_store::in_transaction, it commits (or
    // fails) with the state the events describe. Refuses to append to a log
    // whose newest head does not verify: it says to run `audit verify`.
    Status append(const std::vector<audit_event>& events);
    const signing_key& key() const { return key_; }

private:
    Status append_as(const std::vector<audit_event>& events, bool handing_over_a_lost_key);
    audit_log(run_store& s, signing_key k, verify_key own, const clock& c)
        : store_(s), key_(std::move(k)), own_(std::move(own)), clock_(c) {}
    run_store& store_;
    signing_key key_;
    verify_key own_;  // its public half, to check the newest head before an append
    const clock& clock_;
};

// ---- verification: trusts nothing but the entries, the heads and the key.

struct audit_verdict {
    bool ok = true;
    uint64_t entries = 0, heads = 0;
    uint64_t handovers = 0;  // of the signing key, recorded by `audit rotate-key`
    std::string root;  // of the whole log, hex
    // The first entry that fails (its seq), when one can be named.
    std::optional<uint64_t> bad_entry;
    std::string message;  // what failed, in an auditor's words; or a summary
};

struct verify_options {
    // Check every head's signature, not only the newest one's (each older
    // head is vouched for by the chain of `prev` hashes either way).
    bool all_signatures = false;
};

// Recomputes every leaf and the tree, checks every head's root and chain
// link and the newest head's signature against `key`.
Result<audit_verdict> verify_audit_log(run_store& store, const verify_key& key, const verify_options& o = {});

// A signed head as a file an auditor keeps: the head and the public key
// that signed it.
std::string export_head(const audit_head_record& h, const std::string& public_pem);
struct exported_head {
    audit_head_record head;
    std::string public_pem;
};
Result<exported_head> read_exported_head(const std::filesystem::path& file);

// Whether today's log extends the exported head: the head's signature is
// checked with `key` (the key the auditor kept; the file's own when null),
// then the RFC 6962 consistency proof from its size to today's.
Result<audit_verdict> verify_against(run_store& store, const exported_head& old, const verify_key* key);

// An inclusion proof of a run's summary, as a JSON document that checks
// offline with the public key alone.
Result<nlohmann::json> run_inclusion_proof(run_store& store, const std::string& run_id);
// Checks a proof document; `message` says what failed.
audit_verdict check_inclusion_proof(const nlohmann::json& proof, const verify_key& key);

// The events of a run in the log (its summary, decisions, notes), parsed.
Result<std::vector<nlohmann::json>> run_audit_entries(run_store& store, const std::string& run_id);

}  // namespace syncwarden::kernel
