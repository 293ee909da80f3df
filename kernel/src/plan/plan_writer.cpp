#include "plan_writer.hpp"

#include <syncwarden/kernel/digest.hpp>
#include <syncwarden/kernel/plan_file.hpp>
#include <syncwarden/kernel/text.hpp>

#include <cstdio>
#include <fcntl.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace syncwarden::kernel {

std::string change_line(const entity_plan& ep, const planned_change& c) {
    std::string line = std::string(kind_name(c)) + " " + ep.schema.name + "/" + std::string(ep.key_of(c));
    for (uint32_t i = 0; i < c.changed_count && i < 6; ++i) {
        auto f = ep.changed_fields[c.changed_begin + i];
        line += i == 0 ? ": " : ", ";
        line += ep.schema.fields[f].name;
        // null: absent, in a field that tells it from the empty string
        auto shown = [&](std::string_view v) {
            return ep.schema.fields[f].keeps_empty && v.empty() ? std::string("null")
                                                                 : "'" + std::string(value_text(v)) + "'";
        };
        if (c.kind == SW_CHANGE_UPDATE || c.kind == SW_CHANGE_ADOPT)
            line += " " + shown(ep.held_by(c).field(c.current, f)) + " -> " + shown(ep.desired.field(c.desired, f));
        else
            line += "=" + shown(ep.desired.field(c.desired, f));
    }
    if (c.changed_count > 6) line += ", ...";
    return printable(line);
}

uint64_t plan_header::total_changes() const {
    uint64_t n = 0;
    for (auto& e : entities) n += e.changes;
    return n;
}

std::vector<plan_header::section> plan_header::apply_sections() const {
    if (!sections.empty()) return sections;
    std::vector<section> out;
    for (size_t i = 0; i < entities.size(); ++i) out.push_back({i, false, entities[i].changes});
    return out;
}

namespace {

constexpr char k_magic[8] = {'S', 'W', 'P', 'L', 'A', 'N', '0', '2'};

// A file written through a 1 MiB buffer to a temp name, synced, then renamed
// into place. Every write is checked: a full disk fails the plan, it never
// leaves a short file under the real name.
class atomic_file {
public:
    // `durable`: fsync before the rename (the applier's plan). The human plan
    // is a report, renamed into place without waiting for the disk.
    atomic_file(fs::path file, bool durable) : file_(std::move(file)), tmp_(file_), durable_(durable) {
        tmp_ += ".tmp";
        out_ = std::fopen(tmp_.c_str(), "wb");
        ok_ = out_ != nullptr;
    }
    ~atomic_file() {
        if (out_) std::fclose(out_);
        if (!done_) {
            std::error_code ec;
            fs::remove(tmp_, ec);
        }
    }
    bool opened() const { return out_ != nullptr; }
    std::string buf;
    sha256* hash = nullptr;  // when set, every byte written is hashed
    void drain(bool force) {
        if (!force && buf.size() < (1u << 20)) return;
        if (hash) hash->update(buf);
        if (ok_ && std::fwrite(buf.data(), 1, buf.size(), out_) != buf.size()) ok_ = false;
        written_ += buf.size();
        buf.clear();
        // Start the disk writing behind us, so the fsync at the end has
        // little left to wait for.
        if (durable_ && ok_ && written_ - started_ >= (64u << 20) && std::fflush(out_) == 0) {
            ::sync_file_range(::fileno(out_), static_cast<off_t>(started_), static_cast<off_t>(written_ - started_),
                              SYNC_FILE_RANGE_WRITE);
            started_ = written_;
        }
    }
    Status finish() {
        drain(true);
        if (ok_) ok_ = std::fflush(out_) == 0 && (!durable_ || ::fsync(::fileno(out_)) == 0);
        if (std::fclose(out_) != 0) ok_ = false;
        out_ = nullptr;
        if (!ok_)
            return Status::error(error_kind::store, "writing " + tmp_.string() +
                                                        " failed (is the disk full?); nothing was applied");
        std::error_code ec;
        fs::rename(tmp_, file_, ec);
        if (ec) return Status::error(error_kind::store, "renaming " + tmp_.string() + ": " + ec.message());
        done_ = true;
        int dir = durable_ ? ::open(file_.parent_path().c_str(), O_RDONLY | O_DIRECTORY) : -1;
        if (dir >= 0) {
            ::fsync(dir);
            ::close(dir);
        }
        return Status::ok();
    }

private:
    fs::path file_, tmp_;
    bool durable_;
    std::FILE* out_ = nullptr;
    bool ok_ = false, done_ = false;
    size_t written_ = 0, started_ = 0;
};

template <class T>
void put(std::string& out, T v) {
    out.append(reinterpret_cast<const char*>(&v), sizeof v);
}
// Lengths and counts as LEB128 varints: a field of a roster is short, and a
// length costs one byte instead of four.
void put_varint(std::string& out, uint64_t v) {
    while (v >= 0x80) {
        out += static_cast<char>((v & 0x7f) | 0x80);
        v >>= 7;
    }
    out += static_cast<char>(v);
}
void put_bytes(std::string& out, std::string_view s) {
    put_varint(out, s.size());
    out.append(s);
}
// The 24-hex-digit content id as its 12 bytes.
void put_id(std::string& out, const std::string& id) {
    auto nib = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
    for (size_t i = 0; i + 1 < id.size(); i += 2) out += static_cast<char>(nib(id[i]) << 4 | nib(id[i + 1]));
}

// A field that tells the empty string from absent (ABI 1.4) shows absent as
// null; other fields show both as "".
void append_json_value(std::string& out, std::string_view v, bool keeps_empty) {
    if (keeps_empty && v.empty()) out += "null";
    else append_json_string(out, value_text(v));
}

void append_json_change(std::string& out, const std::string& id, const entity_plan& ep, const planned_change& c) {
    out += "{\"id\":\"";
    out += id;
    out += "\",\"entity\":";
    append_json_string(out, ep.schema.name);
    out += ",\"key\":";
    append_json_string(out, ep.key_of(c));
    out += ",\"kind\":\"";
    out += kind_name(c);
    out += '"';
    if (c.kind == SW_CHANGE_ADOPT) {
        out += ",\"adopts\":";
        append_json_string(out, ep.unowned.key(c.current));
    }
    if (c.kind != SW_CHANGE_DELETE) {
        out += ",\"fields\":{";
        for (uint32_t i = 0; i < c.changed_count; ++i) {
            auto f = ep.changed_fields[c.changed_begin + i];
            if (i) out += ',';
            append_json_string(out, ep.schema.fields[f].name);
            out += ":{\"new\":";
            const bool keeps_empty = ep.schema.fields[f].keeps_empty;
            append_json_value(out, ep.desired.field(c.desired, f), keeps_empty);
            if (c.kind == SW_CHANGE_UPDATE || c.kind == SW_CHANGE_ADOPT) {
                out += ",\"old\":";
                append_json_value(out, ep.held_by(c).field(c.current, f), keeps_empty);
            }
            out += '}';
        }
        out += '}';
    }
    out += '}';
}

// kind (1 byte; k_deactivate_bit marks a deactivating update), id (12 bytes), key, one value per field, then for an
// update its changed field indexes (a create changes every field, a delete
// none). Strings are a varint length and the bytes.
void append_binary_change(std::string& out, const std::string& id, const entity_plan& ep, const planned_change& c) {
    put(out, static_cast<uint8_t>(c.kind | (c.deactivate ? k_deactivate_bit : 0)));
    put_id(out, id);
    put_bytes(out, ep.key_of(c));
    const bool del = c.kind == SW_CHANGE_DELETE;
    const record_set& rs = del ? ep.current : ep.desired;
    const size_t idx = del ? c.current : c.desired;
    for (size_t f = 0; f < rs.field_count(); ++f) put_bytes(out, rs.field(idx, f));
    if (c.kind != SW_CHANGE_UPDATE && c.kind != SW_CHANGE_ADOPT) return;
    put_varint(out, c.changed_count);
    for (uint32_t i = 0; i < c.changed_count; ++i) put_varint(out, ep.changed_fields[c.changed_begin + i]);
    // An adoption names the record it takes over by the target's id.
    if (c.kind == SW_CHANGE_ADOPT) put_bytes(out, ep.unowned.key(c.current));
}

nlohmann::json header_json(const plan_header& h) {
    nlohmann::json ents = nlohmann::json::array();
    for (auto& e : h.entities)
        ents.push_back({{"name", e.name}, {"key_name", e.key_name}, {"fields", e.fields}, {"changes", e.changes},
                        {"creates", e.creates}, {"updates", e.updates}, {"deletes", e.deletes},
                        {"deactivates", e.deactivates}, {"adopts", e.adopts}});
    nlohmann::json j{{"job", h.job},
                     {"run_id", h.run_id},
                     {"created_at", h.created_at},
                     {"target", {{"connector", h.target.connector},
                                 {"version", h.target.version},
                                 {"build_id", h.target.build_id},
                                 {"settings", h.target.settings},
                                 {"base_dir", h.target.base_dir}}},
                     {"batch_size", h.batch_size},
                     {"entities", ents}};
    if (h.state_token) j["state_token"] = *h.state_token;
    if (!h.sections.empty()) {
        auto& secs = j["sections"] = nlohmann::json::array();
        for (auto& sec : h.sections)
            secs.push_back({{"entity", h.entities[sec.entity].name},
                            {"part", sec.deletes ? "deletes" : "creates_updates"},
                            {"changes", sec.changes}});
    }
    return j;
}

}  // namespace

Result<written_plan> write_plan_files(const fs::path& dir, plan_header header, const plan& p,
                                      const nlohmann::json& json_header,
                                      const std::vector<finding_record>& findings) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    header.entities.clear();
    for (auto& ep : p.entities) {
        plan_header::entity e{ep.schema.name, ep.schema.key_name, {}, ep.changes.size()};
        for (auto& f : ep.schema.fields) e.fields.push_back(f.name);
        for (auto& c : ep.changes)
            ++(c.kind == SW_CHANGE_CREATE   ? e.creates
               : c.kind == SW_CHANGE_ADOPT  ? e.adopts
               : c.deactivate               ? e.deactivates
               : c.kind == SW_CHANGE_UPDATE ? e.updates
                                            : e.deletes);
        header.entities.push_back(std::move(e));
    }
    // Dependencies between the target's entities (ABI 1.4) order the apply:
    // parents' creates and updates first, children's deletes first.
    header.sections.clear();
    bool ordered = false;
    std::vector<const entity_schema*> schemas;
    for (auto& ep : p.entities) {
        schemas.push_back(&ep.schema);
        ordered = ordered || !ep.schema.depends_on.empty();
    }
    if (ordered) {
        auto order = apply_order(schemas);
        auto index = [&](const std::string& name) {
            for (size_t i = 0; i < p.entities.size(); ++i)
                if (p.entities[i].schema.name == name) return i;
            return size_t{0};
        };
        for (auto& name : order) {
            const size_t i = index(name);
            const auto& e = header.entities[i];
            if (uint64_t n = e.changes - e.deletes) header.sections.push_back({i, false, n});
        }
        for (auto it = order.rbegin(); it != order.rend(); ++it) {
            const size_t i = index(*it);
            if (uint64_t n = header.entities[i].deletes) header.sections.push_back({i, true, n});
        }
    }
    written_plan out;
    out.json = dir / (header.run_id + ".json");
    out.binary = dir / (header.run_id + ".plan");
    atomic_file js(out.json, false), bin(out.binary, true);
    if (!js.opened() || !bin.opened())
        return Status::error(error_kind::store, "cannot create plan files in " + dir.string() +
                                                    "; check that the data directory is writable");
    sha256 digest, json_digest, content;
    std::string content_buf;
    bin.hash = &digest;
    js.hash = &json_digest;

    // The human file: header, findings, changes; invalid UTF-8 becomes U+FFFD.
    js.buf = json_header.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    js.buf.pop_back();  // reopen the object to stream findings and changes into it
    js.buf += ",\"findings\":[";
    for (size_t i = 0; i < findings.size(); ++i) {
        auto& f = findings[i];
        js.buf += i ? ",\n{" : "\n{";
        for (auto [k, v] : {std::pair{"severity", &f.severity}, {"code", &f.code}, {"entity", &f.entity}, {"file", &f.file}}) {
            js.buf += '"';
            js.buf += k;
            js.buf += "\":";
            append_json_string(js.buf, *v);
            js.buf += ',';
        }
        js.buf += "\"line\":" + std::to_string(f.line) + ",\"column\":" + std::to_string(f.column) + ",\"key\":";
        append_json_string(js.buf, f.key);
        js.buf += ",\"message\":";
        append_json_string(js.buf, f.message);
        js.buf += '}';
        js.drain(false);
    }
    js.buf += "],\"changes\":[";

    bin.buf.append(k_magic, sizeof k_magic);
    std::string hj = header_json(header).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    put_bytes(bin.buf, hj);

    bool first = true;
    for (auto& sec : header.apply_sections()) {
        const entity_plan& ep = p.entities[sec.entity];
        for (auto& c : ep.changes) {
            if (!header.sections.empty() && (c.kind == SW_CHANGE_DELETE) != sec.deletes) continue;
            const std::string id = change_id(header.job, ep.schema.name, ep.key_of(c), c.kind, &ep.desired, c.desired);
            js.buf += first ? "\n" : ",\n";
            first = false;
            append_json_change(js.buf, id, ep, c);
            append_binary_change(bin.buf, id, ep, c);
            content_buf += ep.schema.name;
            content_buf += '\0';
            content_buf += id;
            if (content_buf.size() >= (1u << 20)) {
                content.update(content_buf);
                content_buf.clear();
            }
            js.drain(false);
            bin.drain(false);
        }
    }
    js.buf += "\n]}\n";
    if (auto s = js.finish(); !s) return s;
    // A report, written once: read-only, so that a name given to it by
    // place_plan_report cannot be edited in place by mistake.
    std::error_code perm_ec;
    fs::permissions(out.json, fs::perms::owner_read, fs::perm_options::replace, perm_ec);
    if (auto s = bin.finish(); !s) return s;
    out.digest = digest.hex();
    out.json_digest = json_digest.hex();
    content.update(content_buf);
    out.content_digest = content.hex();
    return out;
}

Status place_plan_report(const fs::path& report, const fs::path& out) {
    std::error_code ec;
    if (fs::equivalent(report, out, ec)) return Status::ok();
    auto fail = [&](const std::string& what) {
        return Status::error(error_kind::usage, "writing the plan to " + out.string() + ": " + what +
                                                    "; choose a file in a writable folder");
    };
    if (fs::is_directory(out, ec)) return fail("it is a folder");
    // Replaced, not truncated: writing into an existing name would rewrite
    // whatever file it names, an earlier run's stored report included.
    fs::remove(out, ec);
    if (ec) return fail(ec.message());
    // The stored report is never written again, so a second name for it is
    // as good as a copy, and costs nothing at any size (a first plan of 8M
    // changes is 2 GB of JSON).
    fs::create_hard_link(report, out, ec);
    if (!ec) return Status::ok();
    ec.clear();
    fs::copy_file(report, out, ec);
    if (ec) return fail(ec.message());
    return Status::ok();
}

}  // namespace syncwarden::kernel
