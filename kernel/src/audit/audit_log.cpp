#include <syncwarden/kernel/audit.hpp>
#include <syncwarden/kernel/canonical_json.hpp>
#include <syncwarden/kernel/config.hpp>
#include <syncwarden/kernel/digest.hpp>


namespace fs = std::filesystem;

namespace syncwarden::kernel {

fs::path audit_key_file(const fs::path& data_dir) { return data_dir / "keys" / "audit-signing.pem"; }

namespace {

nlohmann::json head_fields(const audit_head_record& h) {
    return {{"size", h.size}, {"root", h.root}, {"at", h.at}, {"key_id", h.key_id}, {"prev", h.prev}};
}

std::string frontier_text(const merkle::frontier& f) {
    std::string out;
    for (auto& n : f.nodes()) {
        if (!out.empty()) out += ',';
        out += merkle::to_hex(n);
    }
    return out;
}

bool parse_frontier(const audit_head_record& h, merkle::frontier& out) {
    std::vector<merkle::hash> nodes;
    std::string_view t = h.frontier;
    while (!t.empty()) {
        const auto c = t.find(',');
        merkle::hash x{};
        if (!merkle::from_hex(t.substr(0, c), x)) return false;
        nodes.push_back(x);
        t = c == std::string_view::npos ? std::string_view() : t.substr(c + 1);
    }
    return merkle::frontier::restore(h.size, std::move(nodes), out) && merkle::to_hex(out.root()) == h.root;
}

}  // namespace

std::string head_message(const audit_head_record& h) {
    auto c = canonical_json(head_fields(h));
    return c ? *c : std::string();
}

std::string head_hash(const audit_head_record& h) {
    auto c = canonical_json(head_to_json(h));
    sha256 d;
    d.update(c ? *c : std::string());
    return d.hex();
}

nlohmann::json head_to_json(const audit_head_record& h) {
    nlohmann::json j = head_fields(h);
    j["signature"] = h.signature;
    return j;
}

Result<audit_head_record> head_from_json(const nlohmann::json& j, const std::string& where) {
    if (!j.is_object()) return Status::error(error_kind::usage, where + " is not a signed head (an object)");
    audit_head_record h;
    auto text = [&](const char* name, std::string& out) -> Status {
        auto it = j.find(name);
        if (it == j.end() || !it->is_string())
            return Status::error(error_kind::usage, where + "." + name + " is missing or not a string");
        out = it->get<std::string>();
        return Status::ok();
    };
    auto size = j.find("size");
    if (size == j.end() || !size->is_number_unsigned())
        return Status::error(error_kind::usage, where + ".size is missing or not a whole number");
    h.size = size->get<uint64_t>();
    for (auto [name, field] : {std::pair{"root", &h.root}, std::pair{"at", &h.at}, std::pair{"key_id", &h.key_id},
                               std::pair{"prev", &h.prev}, std::pair{"signature", &h.signature}})
        if (auto s = text(name, *field); !s) return s;
    return h;
}

Result<std::vector<merkle::hash>> stored_leaves(run_store& store, uint64_t size) {
    auto text = store.audit_leaves(size);
    if (!text) return text.status();
    std::vector<merkle::hash> out(text->size());
    for (size_t i = 0; i < out.size(); ++i)
        if (!merkle::from_hex((*text)[i], out[i]))
            return Status::error(error_kind::tampered, "the stored leaf of audit entry " + std::to_string(i) +
                                                           " is not a hash; run `syncwarden audit verify`");
    return out;
}

std::optional<key_handover> handover_of(uint64_t seq, std::string_view entry) {
    if (entry.find(k_key_rotated) == std::string_view::npos) return std::nullopt;
    auto j = nlohmann::json::parse(entry, nullptr, false);
    if (!j.is_object() || j.value("kind", "") != k_key_rotated || !j.contains("data") || !j["data"].is_object())
        return std::nullopt;
    const auto& d = j["data"];
    key_handover h;
    h.seq = seq;
    h.old_id = d.value("old_key_id", "");
    h.new_id = d.value("new_key_id", "");
    h.old_pem = d.value("old_public_key", "");
    h.new_pem = d.value("new_public_key", "");
    h.by = d.value("by", "");
    h.reason = d.value("reason", "");
    h.old_key_lost = d.value("old_key_lost", false);
    return h;
}

namespace {

// The key the log's next head must be signed by: the newest head's, or the
// new key of the handover that head ends with. Also that handover, if any.
// From the head's newest entry, when the caller has read it already.
std::pair<std::string, std::optional<key_handover>> expected_key(const audit_head_record& h,
                                                                 const audit_entry_record* last) {
    if (last && last->kind == k_key_rotated)
        if (auto ho = handover_of(last->seq, last->entry); ho && !ho->old_key_lost && ho->old_id == h.key_id)
            return std::make_pair(ho->new_id, ho);
    return std::make_pair(h.key_id, std::optional<key_handover>());
}

Result<std::pair<std::string, std::optional<key_handover>>> expected_key(run_store& store, const audit_head_record& h) {
    auto last = store.audit_entries(h.size - 1, 1);
    if (!last) return last.status();
    return expected_key(h, last->empty() ? nullptr : &last->front());
}

std::string handover_hint(const fs::path& file) {
    return ". Restore " + file.string() + " from a backup; or, if it is lost for good, record the handover to a new "
           "key with `syncwarden audit rotate-key --old-key-lost --reason TEXT` (the log then says so for ever)";
}

}  // namespace

Result<std::unique_ptr<audit_log>> audit_log::open(run_store& store, const fs::path& data_dir, const clock& clk) {
    const fs::path file = audit_key_file(data_dir);
    auto head = store.audit_head();
    if (!head) return head.status();
    std::error_code ec;
    if (*head && !fs::exists(file, ec)) {
        auto want = expected_key(store, **head);
        if (!want) return want.status();
        return Status::error(error_kind::config, file.string() + " is missing, but the audit log's " +
                                                     std::to_string((*head)->size) + " entries are signed by key " +
                                                     want->first + ": nothing is appended under another key" +
                                                     handover_hint(file));
    }
    auto key = *head ? signing_key::load(file) : signing_key::load_or_create(file);
    if (!key) return key.status().context("the audit log's signing key");
    if (*head) {
        auto want = expected_key(store, **head);
        if (!want) return want.status();
        if (key->key_id() != want->first)
            return Status::error(error_kind::config, file.string() + " is key " + key->key_id() +
                                                         ", but the audit log's newest head (size " +
                                                         std::to_string((*head)->size) + ") hands on to key " +
                                                         want->first + ": the signing key was replaced, and nothing "
                                                         "is appended under it" + handover_hint(file));
    }
    auto own = verify_key::from_pem(key->public_pem());
    if (!own) return own.status().context("the audit log's signing key");
    return std::unique_ptr<audit_log>(new audit_log(store, std::move(*key), std::move(*own), clk));
}

Result<key_handover> audit_log::rotate_key(run_store& store, const fs::path& data_dir, const clock& clk,
                                           const nlohmann::json& who, bool old_key_lost) {
    const fs::path file = audit_key_file(data_dir);
    const fs::path fresh = file.string() + ".new";
    std::error_code ec;
    fs::remove(fresh, ec);
    auto head = store.audit_head();
    if (!head) return head.status();
    key_handover ho;
    nlohmann::json data = who.is_object() ? who : nlohmann::json::object();
    if (!old_key_lost) {
        // The old key signs the handover, then gives way to the new one.
        auto log = open(store, data_dir, clk);
        if (!log) return log.status().context("rotating the audit signing key (if the old key is lost, give "
                                               "--old-key-lost)");
        auto next = signing_key::create(fresh);
        if (!next) return next.status();
        ho.old_id = (*log)->key().key_id();
        ho.old_pem = (*log)->key().public_pem();
        ho.new_id = next->key_id();
        ho.new_pem = next->public_pem();
        data.update({{"old_key_id", ho.old_id}, {"new_key_id", ho.new_id}, {"old_public_key", ho.old_pem},
                     {"new_public_key", ho.new_pem}, {"old_key_lost", false}});
        if (auto s = (*log)->append({{k_key_rotated, "", data}}); !s) {
            fs::remove(fresh, ec);
            return s;
        }
        fs::rename(fresh, file, ec);
        if (ec)
            return Status::error(error_kind::store, "the handover to key " + ho.new_id + " is recorded, but " +
                                                        fresh.string() + " could not replace " + file.string() + ": " +
                                                        ec.message() + "; rename it by hand before the next run");
    } else {
        if (!*head)
            return Status::error(error_kind::usage, "the audit log is empty: there is no old key to hand over from. "
                                                    "Remove " + file.string() + " and the next run makes a new one");
        auto want = expected_key(store, **head);
        if (!want) return want.status();
        if (fs::exists(file, ec)) {
            auto present = signing_key::load(file);
            if (present && present->key_id() == want->first)
                return Status::error(error_kind::usage, file.string() + " is the log's key (" + want->first +
                                                            "): it is not lost; rotate without --old-key-lost");
            // Not the log's key: kept for whoever looks into how it came.
            const std::string id = present ? present->key_id() : std::string("unreadable");
            fs::rename(file, file.string() + ".unrecorded-" + id, ec);
            if (ec) return Status::error(error_kind::store, "moving " + file.string() + " aside: " + ec.message());
        }
        auto next = signing_key::create(file);
        if (!next) return next.status();
        ho.old_id = want->first;
        ho.old_pem = want->second ? want->second->new_pem : std::string();
        ho.new_id = next->key_id();
        ho.new_pem = next->public_pem();
        ho.old_key_lost = true;
        data.update({{"old_key_id", ho.old_id}, {"new_key_id", ho.new_id}, {"old_public_key", ho.old_pem},
                     {"new_public_key", ho.new_pem}, {"old_key_lost", true}});
        auto own = verify_key::from_pem(next->public_pem());
        if (!own) return own.status();
        audit_log log(store, std::move(*next), std::move(*own), clk);
        if (auto s = log.append_as({{k_key_rotated, "", data}}, true); !s) {
            fs::remove(file, ec);
            return s;
        }
    }
    ho.by = data.value("by", "");
    ho.reason = data.value("reason", "");
    auto now = store.audit_head();
    if (now && *now) ho.seq = (*now)->size - 1;
    return ho;
}

Status audit_log::append(const std::vector<audit_event>& events) { return append_as(events, false); }

Status audit_log::append_as(const std::vector<audit_event>& events, bool handing_over_a_lost_key) {
    if (events.empty()) return Status::ok();
    return store_.in_transaction([&]() -> Status {
        auto head = store_.audit_head();
        if (!head) return head.status();
        merkle::frontier f;
        std::string prev;
        if (*head) {
            const audit_head_record& h = **head;
            const std::string damaged = "the audit log's newest signed head (size " + std::to_string(h.size) + ") ";
            const std::string what_to_do = "; nothing more is appended to it. Run `syncwarden audit verify` to find "
                                           "what was altered";
            if (h.key_id == key_.key_id() && !own_.verify(head_message(h), h.signature))
                return Status::error(error_kind::tampered, damaged + "does not carry a valid signature" + what_to_do);
            // The newest entry must be the one the head signs last, intact,
            // and nothing may follow it.
            auto last = store_.audit_entries(h.size - 1, 2);
            if (!last) return last.status();
            if (last->size() != 1 || last->front().seq != h.size - 1 ||
                merkle::to_hex(merkle::leaf_hash(last->front().entry)) != last->front().leaf)
                return Status::error(error_kind::tampered,
                                     damaged + "does not end with the newest stored entry" + what_to_do);
            // Only the key the newest head hands on to signs what follows.
            if (const auto want = expected_key(h, &last->front()).first;
                !handing_over_a_lost_key && want != key_.key_id())
                return Status::error(error_kind::config, damaged + "hands on to key " + want + ", not to this key (" +
                                                             key_.key_id() + "): nothing is appended under another key" +
                                                             handover_hint("the data dir's keys/audit-signing.pem"));
            if (!parse_frontier(h, f)) {
                // The frontier is derived data: rebuild it from the leaves,
                // and append only if the rebuilt tree is the signed one.
                auto leaves = stored_leaves(store_, h.size);
                if (!leaves) return leaves.status();
                f = merkle::frontier();
                for (auto& l : *leaves) f.append(l);
                if (f.size() != h.size || merkle::to_hex(f.root()) != h.root)
                    return Status::error(error_kind::tampered,
                                         damaged + "does not match the entries stored under it" + what_to_do);
            }
            prev = head_hash(h);
        }
        const std::string at = iso8601(clock_.now());
        std::vector<audit_entry_record> recs;
        recs.reserve(events.size());
        // The entry's members in JCS order (at, data, kind, run, seq, v),
        // written around the canonical data without copying it.
        const std::string at_text = *canonical_json(nlohmann::json(at));
        for (auto& ev : events) {
            auto data = canonical_json(ev.data);
            auto kind = canonical_json(nlohmann::json(ev.kind));
            auto run = canonical_json(nlohmann::json(ev.run_id));
            if (!data || !kind || !run)
                return (!data ? data.status() : !kind ? kind.status() : run.status())
                    .context("writing the audit entry for " + ev.kind);
            std::string text = "{\"at\":" + at_text + ",\"data\":" + *data + ",\"kind\":" + *kind + ",\"run\":" +
                               *run + ",\"seq\":" + std::to_string(f.size()) + ",\"v\":1}";
            const merkle::hash leaf = merkle::leaf_hash(text);
            recs.push_back({f.size(), ev.kind, ev.run_id, std::move(text), merkle::to_hex(leaf)});
            f.append(leaf);
        }
        audit_head_record h;
        h.size = f.size();
        h.root = merkle::to_hex(f.root());
        h.at = at;
        h.key_id = key_.key_id();
        h.prev = prev;
        auto sig = key_.sign(head_message(h));
        if (!sig) return sig.status().context("signing the audit log's head");
        h.signature = *sig;
        h.frontier = frontier_text(f);
        return store_.append_audit(recs, h);
    });
}

std::string export_head(const audit_head_record& h, const std::string& public_pem) {
    nlohmann::json j{{"format", "syncwarden-audit-head/1"}, {"head", head_to_json(h)}, {"public_key", public_pem}};
    return j.dump(2) + "\n";
}

Result<exported_head> read_exported_head(const fs::path& file) {
    auto j = parse_json_file(file);
    if (!j) return j.status();
    const std::string hint = "; it should be a file written by `syncwarden audit export-head`";
    if (!j->is_object() || j->value("format", "") != "syncwarden-audit-head/1")
        return Status::error(error_kind::usage, file.string() + ": $.format is not \"syncwarden-audit-head/1\"" + hint);
    auto h = head_from_json(j->value("head", nlohmann::json()), file.string() + ": $.head");
    if (!h) return Status::error(error_kind::usage, h.status().message() + hint);
    auto pem = j->find("public_key");
    return exported_head{*h, pem != j->end() && pem->is_string() ? pem->get<std::string>() : ""};
}

}  // namespace syncwarden::kernel
