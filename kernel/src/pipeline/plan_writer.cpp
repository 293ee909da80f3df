#include "plan_writer.hpp"

#include <fstream>

namespace syncwarden::kernel {

nlohmann::json change_json(const plan& p, const entity_plan& ep, const planned_change& c) {
    auto key = ep.key_of(c);
    nlohmann::json j{{"id", change_id(p.run_id, ep.schema.name, key, c.kind)},
                     {"entity", ep.schema.name},
                     {"key", key},
                     {"kind", kind_name(c.kind)}};
    nlohmann::json fields = nlohmann::json::object();
    for (uint32_t i = 0; i < c.changed_count; ++i) {
        auto f = ep.changed_fields[c.changed_begin + i];
        nlohmann::json fj{{"new", ep.desired.field(c.desired, f)}};
        if (c.kind == SW_CHANGE_UPDATE) fj["old"] = ep.current.field(c.current, f);
        fields[ep.schema.fields[f].name] = std::move(fj);
    }
    if (c.kind != SW_CHANGE_DELETE) j["fields"] = std::move(fields);
    return j;
}

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

Status write_plan(const std::filesystem::path& file, const plan& p, const nlohmann::json& header,
                  const std::vector<finding_record>& findings) {
    std::error_code ec;
    std::filesystem::create_directories(file.parent_path(), ec);
    auto tmp = file;
    tmp += ".tmp";
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        if (!out) return Status::error(error_kind::store, "cannot write the plan to " + tmp.string());
        auto dump = [](const nlohmann::json& j) {
            return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        };
        std::string head = dump(header);
        head.pop_back();  // reopen the object to stream the changes into it
        out << head << ",\"findings\":[";
        for (size_t i = 0; i < findings.size(); ++i) {
            auto& f = findings[i];
            out << (i ? ",\n" : "\n")
                << dump({{"severity", f.severity}, {"code", f.code}, {"entity", f.entity}, {"file", f.file},
                         {"line", f.line}, {"column", f.column}, {"key", f.key}, {"message", f.message}});
        }
        out << "],\"changes\":[";
        bool first = true;
        for (auto& ep : p.entities)
            for (auto& c : ep.changes) {
                out << (first ? "\n" : ",\n") << dump(change_json(p, ep, c));
                first = false;
            }
        out << "\n]}\n";
        if (!out) return Status::error(error_kind::store, "writing the plan to " + tmp.string() + " failed");
    }
    std::filesystem::rename(tmp, file, ec);
    if (ec) return Status::error(error_kind::store, "renaming the plan to " + file.string() + ": " + ec.message());
    return Status::ok();
}

}  // namespace syncwarden::kernel
