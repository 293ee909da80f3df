#include "plan_writer.hpp"

#include <cstdio>

namespace syncwarden::kernel {

std::string change_line(const entity_plan& ep, const planned_change& c) {
    std::string line = std::string(kind_name(c.kind)) + " " + ep.schema.name + "/" + std::string(ep.key_of(c));
    for (uint32_t i = 0; i < c.changed_count && i < 6; ++i) {
        auto f = ep.changed_fields[c.changed_begin + i];
        line += i == 0 ? ": " : ", ";
        line += ep.schema.fields[f].name;
        if (c.kind == SW_CHANGE_UPDATE)
            line += " '" + std::string(ep.current.field(c.current, f)) + "' -> '" +
                    std::string(ep.desired.field(c.desired, f)) + "'";
        else
            line += "='" + std::string(ep.desired.field(c.desired, f)) + "'";
    }
    if (c.changed_count > 6) line += ", ...";
    return line;
}

namespace {

// JSON string escaping by hand: a large plan has millions of values, and
// building a json object per change was most of a dry run's time.
void append_json(std::string& out, std::string_view v) {
    static const char* hex = "0123456789abcdef";
    out += '"';
    for (unsigned char c : v) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (c < 0x20) {
                    out += "\\u00";
                    out += hex[c >> 4];
                    out += hex[c & 15];
                } else {
                    out += static_cast<char>(c);
                }
        }
    }
    out += '"';
}

void append_change(std::string& out, const plan& p, const entity_plan& ep, const planned_change& c) {
    auto key = ep.key_of(c);
    out += "{\"id\":\"";
    out += change_id(p.run_id, ep.schema.name, key, c.kind);
    out += "\",\"entity\":";
    append_json(out, ep.schema.name);
    out += ",\"key\":";
    append_json(out, key);
    out += ",\"kind\":\"";
    out += kind_name(c.kind);
    out += '"';
    if (c.kind != SW_CHANGE_DELETE) {
        out += ",\"fields\":{";
        for (uint32_t i = 0; i < c.changed_count; ++i) {
            auto f = ep.changed_fields[c.changed_begin + i];
            if (i) out += ',';
            append_json(out, ep.schema.fields[f].name);
            out += ":{\"new\":";
            append_json(out, ep.desired.field(c.desired, f));
            if (c.kind == SW_CHANGE_UPDATE) {
                out += ",\"old\":";
                append_json(out, ep.current.field(c.current, f));
            }
            out += '}';
        }
        out += '}';
    }
    out += '}';
}

}  // namespace

Status write_plan(const std::filesystem::path& file, const plan& p, const nlohmann::json& header,
                  const std::vector<finding_record>& findings) {
    std::error_code ec;
    std::filesystem::create_directories(file.parent_path(), ec);
    auto tmp = file;
    tmp += ".tmp";
    std::FILE* out = std::fopen(tmp.c_str(), "wb");
    if (!out) return Status::error(error_kind::store, "cannot write the plan to " + tmp.string());
    bool ok = true;
    std::string buf = header.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    buf.pop_back();  // reopen the object to stream findings and changes into it
    auto drain = [&](bool force) {
        if (!force && buf.size() < (1u << 20)) return;
        ok = std::fwrite(buf.data(), 1, buf.size(), out) == buf.size() && ok;
        buf.clear();
    };
    buf += ",\"findings\":[";
    for (size_t i = 0; i < findings.size(); ++i) {
        auto& f = findings[i];
        buf += i ? ",\n{" : "\n{";
        for (auto [k, v] : {std::pair{"severity", &f.severity}, {"code", &f.code}, {"entity", &f.entity}, {"file", &f.file}}) {
            buf += '"';
            buf += k;
            buf += "\":";
            append_json(buf, *v);
            buf += ',';
        }
        buf += "\"line\":" + std::to_string(f.line) + ",\"column\":" + std::to_string(f.column) + ",\"key\":";
        append_json(buf, f.key);
        buf += ",\"message\":";
        append_json(buf, f.message);
        buf += '}';
        drain(false);
    }
    buf += "],\"changes\":[";
    bool first = true;
    for (auto& ep : p.entities)
        for (auto& c : ep.changes) {
            buf += first ? "\n" : ",\n";
            first = false;
            append_change(buf, p, ep, c);
            drain(false);
        }
    buf += "\n]}\n";
    drain(true);
    ok = std::fclose(out) == 0 && ok;
    if (!ok) return Status::error(error_kind::store, "writing the plan to " + tmp.string() + " failed (disk full?)");
    std::filesystem::rename(tmp, file, ec);
    if (ec) return Status::error(error_kind::store, "renaming the plan to " + file.string() + ": " + ec.message());
    return Status::ok();
}

}  // namespace syncwarden::kernel
