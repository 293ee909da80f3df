// Verification of the audit log, of a kept head against today's log, and of
// inclusion proofs. Each check trusts only the entries' bytes, the signed
// heads and the public key; nothing the store says about itself (the stored
// leaf hashes, the frontier) is taken on faith.
#include <optional>
#include <syncwarden/kernel/audit.hpp>

#include <atomic>
#include <cstring>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>


namespace syncwarden::kernel {
namespace {

Status tampered(const std::string& m) { return Status::error(error_kind::tampered, m); }

// A failure that no single entry can be blamed for (a kept head that today's
// log does not extend, a forged proof).
audit_verdict failed(std::string message) {
    audit_verdict v;
    v.ok = false;
    v.message = std::move(message);
    return v;
}

audit_verdict failed(uint64_t entry, std::string message) {
    audit_verdict v;
    v.ok = false;
    v.bad_entry = entry;
    v.message = std::move(message);
    return v;
}

// The canonical entry ends with its own position: ...,"seq":N,"v":1}
bool records_position(std::string_view entry, uint64_t seq, uint64_t* said) {
    static const std::string_view tail = ",\"v\":1}";
    if (entry.size() < tail.size() || entry.compare(entry.size() - tail.size(), tail.size(), tail) != 0) return false;
    const size_t end = entry.size() - tail.size();
    size_t b = end;
    while (b > 0 && entry[b - 1] >= '0' && entry[b - 1] <= '9') --b;
    static const std::string_view key = "\"seq\":";
    if (b == end || b < key.size() || entry.compare(b - key.size(), key.size(), key) != 0) return false;
    uint64_t n = 0;
    for (size_t i = b; i < end; ++i) n = n * 10 + static_cast<uint64_t>(entry[i] - '0');
    *said = n;
    return n == seq;
}

// Whether the index columns (kind, run_id) are the entry's own: they are
// what `audit report RUN` and the proofs look entries up by. Read from the
// entry's end: its members are sorted, so it ends
// ..},"kind":"K","run":"R","seq":N,"v":1} (kinds and run ids need no
// escapes, so a backslash in either is a mismatch).
bool indexed_as(std::string_view entry, std::string_view kind, std::string_view run) {
    static const std::string_view k = ",\"kind\":\"", r = ",\"run\":\"", q = ",\"seq\":";
    const size_t seq = entry.rfind(q);
    if (seq == std::string_view::npos || seq == 0) return false;
    const size_t rpos = entry.rfind(r, seq - 1);
    if (rpos == std::string_view::npos || rpos == 0) return false;
    const size_t kpos = entry.rfind(k, rpos - 1);
    if (kpos == std::string_view::npos) return false;
    const std::string_view rv = entry.substr(rpos + r.size(), seq - 1 - (rpos + r.size()));
    const std::string_view kv = entry.substr(kpos + k.size(), rpos - 1 - (kpos + k.size()));
    return entry[seq - 1] == '"' && entry[rpos - 1] == '"' && rv == run && kv == kind &&
           rv.find_first_of("\"\\") == std::string_view::npos && kv.find_first_of("\"\\") == std::string_view::npos;
}

// Whether `hex` is h in lowercase hex, as the kernel stores leaves.
bool same_hex(const merkle::hash& h, std::string_view hex) {
    static const char* d = "0123456789abcdef";
    if (hex.size() != 64) return false;
    char buf[64];
    for (size_t i = 0; i < 32; ++i) {
        buf[2 * i] = d[h[i] >> 4];
        buf[2 * i + 1] = d[h[i] & 15];
    }
    return std::memcmp(buf, hex.data(), 64) == 0;
}


}  // namespace

static Result<audit_verdict> verify_log(run_store& store, const verify_key& key, const verify_options& o) {
    auto heads = store.audit_heads();
    if (!heads) return heads.status();
    merkle::frontier f;
    size_t next_head = 0;
    std::string prev_hash, prev_key;
    uint64_t prev_size = 0;
    // Key handovers recorded in the log, and the public keys they name.
    std::vector<key_handover> handovers;
    std::map<std::string, std::string> pems;
    std::vector<std::pair<audit_head_record, uint64_t>> deferred;
    // Whether `h` verifies with the key it names: the one given, or one a
    // handover in the log carries.
    auto signed_well = [&](const audit_head_record& h) {
        if (h.key_id == key.key_id()) return key.verify(head_message(h), h.signature);
        auto it = pems.find(h.key_id);
        if (it == pems.end()) return false;
        auto k = verify_key::from_pem(it->second);
        return k && k->key_id() == h.key_id && k->verify(head_message(h), h.signature);
    };
    // Checks the heads that sign the tree as it is now.
    auto check_heads = [&]() -> std::optional<audit_verdict> {
        while (next_head < heads->size() && (*heads)[next_head].size <= f.size()) {
            const audit_head_record& h = (*heads)[next_head];
            const bool newest = next_head + 1 == heads->size();
            const std::string which = "the head signed at size " + std::to_string(h.size) + " (" + h.at + ")";
            if (h.size != f.size() || h.size <= prev_size)
                return failed(prev_size, which + " does not fall on an entry boundary after the head before it");
            if (merkle::to_hex(f.root()) != h.root) {
                const uint64_t first = prev_size, last = h.size - 1;
                return failed(first, first == last
                                         ? "entry " + std::to_string(first) + " was altered: the tree no longer matches " +
                                               which
                                         : "one of entries " + std::to_string(first) + ".." + std::to_string(last) +
                                               " was altered (the first that may differ is " + std::to_string(first) +
                                               "): the tree no longer matches " + which);
            }
            if (h.prev != prev_hash)
                return failed(prev_size, which + " does not name the head before it: a head was altered, removed or "
                                                 "inserted");
            // Another key than the head before it: only through a recorded
            // handover, the last entry under the old key or, the old key
            // lost, the first under the new one.
            if (!prev_key.empty() && h.key_id != prev_key) {
                bool handed = false;
                for (auto& ho : handovers)
                    if (ho.old_id == prev_key && ho.new_id == h.key_id &&
                        ho.seq == (ho.old_key_lost ? prev_size : prev_size - 1))
                        handed = true;
                if (!handed)
                    return failed(prev_size, which + " is signed by key " + h.key_id + ", but the head before it by " +
                                                 "key " + prev_key + ", and no handover (`syncwarden audit rotate-key`) "
                                                 "is recorded between them: the signing key was replaced behind the "
                                                 "log's back");
            }
            if (newest) {
                // The key given must be the newest head's, or the one its
                // closing handover names.
                bool given_is_next = h.key_id == key.key_id();
                for (auto& ho : handovers)
                    if (ho.seq + 1 == h.size && !ho.old_key_lost && ho.old_id == h.key_id && ho.new_id == key.key_id())
                        given_is_next = true;
                if (!given_is_next)
                    return failed(prev_size, which + " is signed by key " + h.key_id + ", not by the key given (" +
                                                 key.key_id() + ")");
            }
            if (newest || o.all_signatures) {
                // A key the log names only later (in a handover after this
                // head) is checked once every entry is read.
                if (h.key_id != key.key_id() && !pems.count(h.key_id))
                    deferred.emplace_back(h, prev_size);
                else if (!signed_well(h))
                    return failed(prev_size, which + " does not carry a valid signature of key " + h.key_id);
            }
            prev_key = h.key_id;
            prev_hash = head_hash(h);
            prev_size = h.size;
            ++next_head;
        }
        return std::nullopt;
    };
    // One thread reads the entries, another checks them: batches of rows
    // copied into one buffer each, two in flight, so that reading and
    // hashing overlap.
    struct batch {
        std::string arena;
        struct row {
            uint64_t seq;
            size_t kind, run, entry, leaf, end;
        };
        std::vector<row> rows;
    };
    std::optional<audit_verdict> bad;
    auto check = [&](uint64_t seq, std::string_view kind, std::string_view run, std::string_view entry,
                     std::string_view leaf) {
        const uint64_t want = f.size();
        if (seq != want) {
            bad = failed(want, "entry " + std::to_string(want) + " is missing: the next stored entry is " +
                                   std::to_string(seq) + " (deleted behind the kernel's back)");
            return false;
        }
        uint64_t said = 0;
        if (!records_position(entry, want, &said)) {
            bad = failed(want, said != want && said != 0
                                   ? "entry " + std::to_string(want) + " records position " + std::to_string(said) +
                                         ": entries were moved or swapped"
                                   : "entry " + std::to_string(want) + " is not an audit entry of this log");
            return false;
        }
        const merkle::hash h = merkle::leaf_hash(entry);
        if (!same_hex(h, leaf)) {
            bad = failed(want, "entry " + std::to_string(want) + " (" + std::string(kind) + ", run " + std::string(run) +
                                   ") was altered: its content no longer hashes to its recorded leaf");
            return false;
        }
        if (!indexed_as(entry, kind, run)) {
            bad = failed(want, "entry " + std::to_string(want) + " was altered: its index (kind " + std::string(kind) +
                                   ", run " + (run.empty() ? std::string("none") : std::string(run)) +
                                   ") is not what the entry itself records");
            return false;
        }
        if (kind == k_key_rotated)
            if (auto ho = handover_of(want, entry)) {
                if (!ho->old_pem.empty()) pems.emplace(ho->old_id, ho->old_pem);
                if (!ho->new_pem.empty()) pems.emplace(ho->new_id, ho->new_pem);
                handovers.push_back(std::move(*ho));
            }
        f.append(h);
        if (auto b = check_heads()) {
            bad = std::move(b);
            return false;
        }
        return true;
    };
    std::mutex mu;
    std::condition_variable cv;
    std::deque<std::unique_ptr<batch>> full, spare;
    bool reading_done = false;
    std::atomic<bool> stop{false};
    for (int i = 0; i < 3; ++i) spare.push_back(std::make_unique<batch>());
    std::thread checker([&] {
        for (;;) {
            std::unique_ptr<batch> b;
            {
                std::unique_lock l(mu);
                cv.wait(l, [&] { return !full.empty() || reading_done; });
                if (full.empty()) return;
                b = std::move(full.front());
                full.pop_front();
            }
            if (!stop) {
                const std::string_view a = b->arena;
                for (auto& r : b->rows)
                    if (!check(r.seq, a.substr(r.kind, r.run - r.kind), a.substr(r.run, r.entry - r.run),
                               a.substr(r.entry, r.leaf - r.entry), a.substr(r.leaf, r.end - r.leaf))) {
                        stop = true;
                        break;
                    }
            }
            b->arena.clear();
            b->rows.clear();
            std::lock_guard l(mu);
            spare.push_back(std::move(b));
            cv.notify_all();
        }
    });
    std::unique_ptr<batch> cur;
    auto hand_over = [&] {
        std::unique_lock l(mu);
        if (cur && !cur->rows.empty()) full.push_back(std::move(cur));
        cv.notify_all();
        cv.wait(l, [&] { return !spare.empty(); });
        cur = std::move(spare.front());
        spare.pop_front();
    };
    hand_over();
    auto scanned = store.scan_audit(0, [&](uint64_t seq, std::string_view kind, std::string_view run,
                                           std::string_view entry, std::string_view leaf) {
        batch::row r{seq, cur->arena.size(), 0, 0, 0, 0};
        cur->arena += kind;
        r.run = cur->arena.size();
        cur->arena += run;
        r.entry = cur->arena.size();
        cur->arena += entry;
        r.leaf = cur->arena.size();
        cur->arena += leaf;
        r.end = cur->arena.size();
        cur->rows.push_back(r);
        if (cur->arena.size() >= (4u << 20)) hand_over();
        return !stop.load();
    });
    {
        std::lock_guard l(mu);
        if (cur && !cur->rows.empty()) full.push_back(std::move(cur));
        reading_done = true;
        cv.notify_all();
    }
    checker.join();
    if (!scanned) return scanned;
    if (bad) return *bad;
    if (next_head < heads->size())
        return failed(f.size(), "the log holds " + std::to_string(f.size()) + " entries but a head signs " +
                                    std::to_string((*heads)[next_head].size) + ": entry " + std::to_string(f.size()) +
                                    " onward was deleted");
    if (f.size() > prev_size)
        return failed(prev_size, "entries " + std::to_string(prev_size) + ".." + std::to_string(f.size() - 1) +
                                     " are signed by no head: they were added behind the kernel's back");
    for (auto& [h, at] : deferred)
        if (!signed_well(h))
            return failed(at, "the head signed at size " + std::to_string(h.size) + " (" + h.at + ") " +
                                  (pems.count(h.key_id) ? "does not carry a valid signature of key " + h.key_id
                                                        : "is signed by key " + h.key_id + ", whose public key neither "
                                                          "the key given nor any handover in the log holds (the old "
                                                          "key was stated lost)"));
    audit_verdict v;
    v.entries = f.size();
    v.heads = heads->size();
    v.root = merkle::to_hex(f.root());
    v.message = "the audit log verifies: " + std::to_string(v.entries) + " entries, " + std::to_string(v.heads) +
                " signed heads, root " + v.root;
    for (auto& ho : handovers)
        v.message += "\n  signing key handed over at entry " + std::to_string(ho.seq) + ": " + ho.old_id + " -> " +
                     ho.new_id + (ho.by.empty() ? "" : " by " + ho.by) +
                     (ho.old_key_lost ? " (THE OLD KEY WAS STATED LOST: what it signed is vouched for by the chain "
                                        "of heads only)"
                                      : " (signed by the old key)") +
                     (ho.reason.empty() ? "" : ": " + ho.reason);
    v.handovers = handovers.size();
    return v;
}

static Result<audit_verdict> against(run_store& store, const exported_head& old, const verify_key* key) {
    std::optional<verify_key> own;
    if (!key) {
        auto k = verify_key::from_pem(old.public_pem);
        if (!k) return k.status().context("the exported head's public key");
        own.emplace(std::move(*k));
        key = &*own;
    }
    const audit_head_record& o = old.head;
    const std::string which = "the exported head (size " + std::to_string(o.size) + ", " + o.at + ")";
    if (o.key_id != key->key_id() || !key->verify(head_message(o), o.signature))
        return failed(which + " does not carry a valid signature of key " + key->key_id() +
                             ": it is not a head this log's key signed");
    merkle::hash old_root{};
    if (!merkle::from_hex(o.root, old_root)) return failed(which + " has no valid root");
    auto cur = store.audit_head();
    if (!cur) return cur.status();
    const uint64_t size = *cur ? (*cur)->size : 0;
    if (size < o.size)
        return failed(size, "today's log has " + std::to_string(size) + " entries, but " + which + " signed " +
                                std::to_string(o.size) + ": entry " + std::to_string(size) +
                                " onward was removed (the log was truncated)");
    auto stored = stored_leaves(store, size);
    if (!stored) return stored.status();
    const std::vector<merkle::hash>& leaves = *stored;
    merkle::hash new_root{};
    merkle::from_hex((*cur)->root, new_root);
    const auto proof = merkle::consistency_proof(leaves, o.size, size);
    if (leaves.size() != size || merkle::to_hex(merkle::root(leaves, size)) != (*cur)->root ||
        !merkle::verify_consistency(o.size, size, old_root, new_root, proof)) {
        std::string m = "today's log does not extend " + which + ": its first " + std::to_string(o.size) +
                        " entries hash to root " + merkle::to_hex(merkle::root(leaves, std::min<uint64_t>(o.size, leaves.size()))) +
                        ", not " + o.root + ". Entries before position " + std::to_string(o.size) +
                        " were removed, altered or rewritten";
        if ((*cur)->key_id != o.key_id) m += ", and today's heads are signed by another key (" + (*cur)->key_id + ")";
        return failed(m);
    }
    audit_verdict v;
    v.entries = size;
    v.heads = 1;
    v.root = (*cur)->root;
    v.message = "today's log (" + std::to_string(size) + " entries, root " + v.root + ") extends " + which +
                ": the consistency proof of " + std::to_string(proof.size()) + " hashes checks";
    if ((*cur)->key_id != o.key_id) v.message += "; note that today's heads are signed by key " + (*cur)->key_id;
    return v;
}

static Result<nlohmann::json> inclusion(run_store& store, const std::string& run_id) {
    auto es = store.audit_entries_of_run(run_id);
    if (!es) return es.status();
    const audit_entry_record* summary = nullptr;
    for (auto& e : *es)
        if (e.kind == "run_summary") summary = &e;
    if (!summary)
        return Status::error(error_kind::not_found, "run " + run_id + " has no summary in the audit log (a run's summary "
                                                                     "is written when it ends)");
    auto head = store.audit_head();
    if (!head) return head.status();
    if (!*head) return Status::error(error_kind::tampered, "the audit log has entries but no signed head");
    auto stored = stored_leaves(store, (*head)->size);
    if (!stored) return stored.status();
    const std::vector<merkle::hash>& leaves = *stored;
    if (leaves.size() != (*head)->size || merkle::to_hex(merkle::root(leaves, leaves.size())) != (*head)->root ||
        merkle::to_hex(merkle::leaf_hash(summary->entry)) != summary->leaf)
        return tampered("the audit log does not match its newest signed head; run `syncwarden audit verify`");
    nlohmann::json proof = nlohmann::json::array();
    for (auto& h : merkle::inclusion_proof(leaves, summary->seq, leaves.size())) proof.push_back(merkle::to_hex(h));
    return nlohmann::json{{"format", "syncwarden-audit-proof/1"},
                          {"run", run_id},
                          {"entry", summary->entry},
                          {"index", summary->seq},
                          {"tree_size", (*head)->size},
                          {"proof", proof},
                          {"head", head_to_json(**head)}};
}

// What `body` finds, read in one transaction: no append lands between
// reading the heads and reading the entries.
template <class T, class F>
Result<T> consistent_read(run_store& store, F&& body) {
    std::optional<Result<T>> out;
    if (auto s = store.in_read_transaction([&] {
            out.emplace(body());
            return Status::ok();
        });
        !s)
        return s;
    return std::move(*out);
}

Result<audit_verdict> verify_audit_log(run_store& store, const verify_key& key, const verify_options& o) {
    return consistent_read<audit_verdict>(store, [&] { return verify_log(store, key, o); });
}

Result<audit_verdict> verify_against(run_store& store, const exported_head& old, const verify_key* key) {
    return consistent_read<audit_verdict>(store, [&] { return against(store, old, key); });
}

Result<nlohmann::json> run_inclusion_proof(run_store& store, const std::string& run_id) {
    return consistent_read<nlohmann::json>(store, [&] { return inclusion(store, run_id); });
}

audit_verdict check_inclusion_proof(const nlohmann::json& p, const verify_key& key) {
    auto bad = [](const std::string& m) { return failed(m); };
    if (!p.is_object() || p.value("format", "") != "syncwarden-audit-proof/1")
        return bad("$.format is not \"syncwarden-audit-proof/1\": not a proof written by `syncwarden audit proof`");
    auto head = head_from_json(p.value("head", nlohmann::json()), "$.head");
    if (!head) return bad("the proof is incomplete: " + head.status().message());
    const audit_head_record& h = *head;
    std::string entry;
    uint64_t index = 0, size = 0;
    std::vector<merkle::hash> path;
    try {
        entry = p.at("entry").get<std::string>();
        index = p.at("index").get<uint64_t>();
        size = p.at("tree_size").get<uint64_t>();
        const auto& pr = p.at("proof");
        if (!pr.is_array()) return bad("$.proof is not an array of hashes");
        for (size_t i = 0; i < pr.size(); ++i) {
            merkle::hash x{};
            if (!pr[i].is_string() || !merkle::from_hex(pr[i].get<std::string>(), x))
                return bad("$.proof[" + std::to_string(i) + "] is not a 64-digit hex hash");
            path.push_back(x);
        }
    } catch (const nlohmann::json::exception& e) {
        return bad(std::string("the proof is incomplete: ") + e.what());
    }
    if (h.key_id != key.key_id())
        return bad("$.head is signed by key " + h.key_id + ", not by the key given (" + key.key_id() + ")");
    if (!key.verify(head_message(h), h.signature))
        return bad("$.head.signature does not verify with key " + key.key_id() + ": the head was altered or forged");
    if (size != h.size)
        return bad("$.tree_size is " + std::to_string(size) + " but the signed head is of size " + std::to_string(h.size));
    if (index >= size) return bad("$.index " + std::to_string(index) + " is outside the tree of " + std::to_string(size));
    uint64_t said = 0;
    if (!records_position(entry, index, &said))
        return bad("$.entry does not record position " + std::to_string(index) + ": the entry or the index was altered");
    const auto entry_json = nlohmann::json::parse(entry, nullptr, false);
    if (entry_json.is_discarded() || !entry_json.is_object()) return bad("$.entry is not a JSON audit entry");
    if (p.contains("run") && entry_json.value("run", "") != p.value("run", ""))
        return bad("$.entry is about run " + entry_json.value("run", "") + ", not " + p.value("run", ""));
    merkle::hash root{};
    if (!merkle::from_hex(h.root, root)) return bad("$.head.root is not a 64-digit hex hash");
    if (!merkle::verify_inclusion(merkle::leaf_hash(entry), index, size, path, root))
        return bad("the inclusion proof does not lead from $.entry to the signed root: the entry, its index or the "
                   "proof was altered");
    audit_verdict v;
    v.entries = size;
    v.heads = 1;
    v.root = h.root;
    v.message = "the proof checks: entry " + std::to_string(index) + " (" + entry_json.value("kind", "") + " of run " +
                entry_json.value("run", "") + ") is in the audit log of " + std::to_string(size) +
                " entries whose head key " + key.key_id() + " signed at " + h.at;
    return v;
}

Result<std::vector<nlohmann::json>> run_audit_entries(run_store& store, const std::string& run_id) {
    auto es = store.audit_entries_of_run(run_id);
    if (!es) return es.status();
    std::vector<nlohmann::json> out;
    for (auto& e : *es) {
        auto j = nlohmann::json::parse(e.entry, nullptr, false);
        if (j.is_discarded()) return tampered("audit entry " + std::to_string(e.seq) + " is not JSON");
        out.push_back(std::move(j));
    }
    return out;
}

}  // namespace syncwarden::kernel
