#include <syncwarden/kernel/audit.hpp>
#include <syncwarden/kernel/canonical_json.hpp>
#include <syncwarden/kernel/digest.hpp>

#include <fstream>
#include <sstream>

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
    nlohmann::json j = head_fields(h);
    j["signature"] = h.signature;
    auto c = canonical_json(j);
    sha256 d;
    d.update(c ? *c : std::string());
    return d.hex();
}

Result<std::unique_ptr<audit_log>> audit_log::open(run_store& store, const fs::path& data_dir, const clock& clk) {
    auto key = signing_key::load_or_create(audit_key_file(data_dir));
    if (!key) return key.status().context("the audit log's signing key");
    return std::unique_ptr<audit_log>(new audit_log(store, std::move(*key), clk));
}

Status audit_log::append(const std::vector<audit_event>& events) {
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
            if (h.key_id == key_.key_id()) {
                auto vk = verify_key::from_pem(key_.public_pem());
                if (!vk || !vk->verify(head_message(h), h.signature))
                    return Status::error(error_kind::tampered, damaged + "does not carry a valid signature" + what_to_do);
            }
            // The newest entry must be the one the head signs last, intact,
            // and nothing may follow it.
            auto last = store_.audit_entries(h.size - 1, 2);
            if (!last) return last.status();
            if (last->size() != 1 || last->front().seq != h.size - 1 ||
                merkle::to_hex(merkle::leaf_hash(last->front().entry)) != last->front().leaf)
                return Status::error(error_kind::tampered,
                                     damaged + "does not end with the newest stored entry" + what_to_do);
            if (!parse_frontier(h, f)) {
                // The frontier is derived data: rebuild it from the leaves,
                // and append only if the rebuilt tree is the signed one.
                auto leaves = store_.audit_leaves(h.size);
                if (!leaves) return leaves.status();
                f = merkle::frontier();
                for (auto& l : *leaves) {
                    merkle::hash x{};
                    if (!merkle::from_hex(l, x)) break;
                    f.append(x);
                }
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
        auto quoted = [](const std::string& x) { return *canonical_json(nlohmann::json(x)); };
        const std::string at_text = quoted(at);
        for (auto& ev : events) {
            auto data = canonical_json(ev.data);
            if (!data) return data.status().context("writing the audit entry for " + ev.kind);
            if (!nlohmann::json(ev.kind).is_string() || !canonical_json(nlohmann::json(ev.kind)) ||
                !canonical_json(nlohmann::json(ev.run_id)))
                return Status::error(error_kind::internal, "an audit event's kind or run id is not valid UTF-8");
            Result<std::string> text = "{\"at\":" + at_text + ",\"data\":" + *data + ",\"kind\":" + quoted(ev.kind) +
                                       ",\"run\":" + quoted(ev.run_id) + ",\"seq\":" + std::to_string(f.size()) +
                                       ",\"v\":1}";
            const merkle::hash leaf = merkle::leaf_hash(*text);
            recs.push_back({f.size(), ev.kind, ev.run_id, std::move(*text), merkle::to_hex(leaf)});
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
    nlohmann::json j{{"format", "syncwarden-audit-head/1"}, {"head", head_fields(h)}, {"public_key", public_pem}};
    j["head"]["signature"] = h.signature;
    return j.dump(2) + "\n";
}

Result<exported_head> read_exported_head(const fs::path& file) {
    std::ifstream in(file);
    if (!in) return Status::error(error_kind::not_found, file.string() + ": cannot read the exported head");
    std::stringstream ss;
    ss << in.rdbuf();
    const auto j = nlohmann::json::parse(ss.str(), nullptr, false);
    auto bad = [&](const std::string& why) {
        return Status::error(error_kind::usage, file.string() + ": " + why +
                                                    "; it should be a file written by `syncwarden audit export-head`");
    };
    if (j.is_discarded() || !j.is_object()) return bad("is not JSON");
    if (j.value("format", "") != "syncwarden-audit-head/1") return bad("$.format is not \"syncwarden-audit-head/1\"");
    const auto h = j.find("head");
    if (h == j.end() || !h->is_object()) return bad("$.head is missing");
    exported_head out;
    try {
        out.head.size = h->at("size").get<uint64_t>();
        out.head.root = h->at("root").get<std::string>();
        out.head.at = h->at("at").get<std::string>();
        out.head.key_id = h->at("key_id").get<std::string>();
        out.head.prev = h->at("prev").get<std::string>();
        out.head.signature = h->at("signature").get<std::string>();
        out.public_pem = j.value("public_key", "");
    } catch (const nlohmann::json::exception& e) {
        return bad(std::string("$.head is incomplete (") + e.what() + ")");
    }
    return out;
}

}  // namespace syncwarden::kernel
