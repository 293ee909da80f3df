// Vendor roster drop folder: one CSV file per entity in a layout the job
// declares. The current state is what was last delivered, read back from the
// folder. Apply collects the changes; commit writes complete new files
// atomically (temp file, then rename) plus a changes file listing the delta.
#include <csv.hpp>
#include <syncwarden/connector.hpp>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <unistd.h>

namespace fs = std::filesystem;
using syncwarden::sdk::error;

namespace syncwarden::vendor {
namespace {

struct file_layout {
    std::string entity, file, key;
    std::vector<std::string> columns;  // as written, key included
    std::vector<std::string> fields;   // columns without the key, contract order
    size_t key_pos = 0;                // where the key is in columns
    std::vector<std::string> required;
};

struct change_row {
    std::string id, entity, kind, key, fields;
};

class vendor_csv final : public sdk::connector {
public:
    vendor_csv(const sdk::host& h, const sw_create_args& args) : connector(h, args) {
        nlohmann::json s;
        try {
            s = nlohmann::json::parse(settings_json());
        } catch (const std::exception& e) {
            throw error(SW_CONFIG, "settings", std::string("settings are not JSON: ") + e.what());
        }
        auto fail = [](const std::string& path, const std::string& what) {
            throw error(SW_CONFIG, "settings", "target settings" + path + ": " + what);
        };
        if (!s.contains("folder") || !s["folder"].is_string() || s["folder"].get<std::string>().empty())
            fail(".folder", "required: the folder the vendor picks files up from");
        fs::path folder = s["folder"].get<std::string>();
        folder_ = folder.is_absolute() ? folder : fs::path(base_dir()) / folder;
        changes_file_ = s.value("changes_file", "changes.csv");
        if (!s.contains("files") || !s["files"].is_array() || s["files"].empty())
            fail(".files", "required: an array of {entity, file, key, columns}");
        for (size_t i = 0; i < s["files"].size(); ++i) {
            const auto& f = s["files"][i];
            std::string p = ".files[" + std::to_string(i) + "]";
            if (!f.is_object()) fail(p, "expected an object");
            file_layout l;
            for (auto [name, dst] : {std::pair{"entity", &l.entity}, std::pair{"file", &l.file}, std::pair{"key", &l.key}}) {
                if (!f.contains(name) || !f[name].is_string() || f[name].get<std::string>().empty())
                    fail(p + "." + name, "required, a non-empty string");
                *dst = f[name].get<std::string>();
            }
            if (l.file.find('/') != std::string::npos || l.file == changes_file_)
                fail(p + ".file", "'" + l.file + "' must be a plain file name, and not the changes file");
            if (!f.contains("columns") || !f["columns"].is_array() || f["columns"].empty())
                fail(p + ".columns", "required, an array of column names");
            bool has_key = false;
            for (size_t c = 0; c < f["columns"].size(); ++c) {
                if (!f["columns"][c].is_string()) fail(p + ".columns[" + std::to_string(c) + "]", "expected a string");
                std::string col = f["columns"][c];
                if (col == l.key) { has_key = true; l.key_pos = c; }
                else l.fields.push_back(col);
                l.columns.push_back(col);
            }
            if (!has_key) fail(p + ".columns", "must include the key column '" + l.key + "'");
            if (f.contains("required")) {
                if (!f["required"].is_array()) fail(p + ".required", "expected an array of column names");
                for (auto& r : f["required"]) l.required.push_back(r.is_string() ? r.get<std::string>() : r.dump());
            }
            for (auto& other : layouts_)
                if (other.entity == l.entity || other.file == l.file)
                    fail(p, "entity '" + l.entity + "' or file '" + l.file + "' is declared twice");
            layouts_.push_back(std::move(l));
        }
        for (auto& l : layouts_) {
            builder_.entity(l.entity, l.key);
            for (auto& f : l.fields) {
                bool req = std::find(l.required.begin(), l.required.end(), f) != l.required.end();
                builder_.field(f, SW_TYPE_STRING, req ? SW_FIELD_REQUIRED : 0);
            }
        }
        contract_ = &builder_.build();
    }

    const sw_contract& contract() override { return *contract_; }

    void read_state(const std::vector<std::string>& entities) override {
        for (auto& l : layouts_) {
            if (std::find(entities.begin(), entities.end(), l.entity) == entities.end()) continue;
            auto& rows = state_[l.entity];
            rows.clear();
            fs::path p = folder_ / l.file;
            std::error_code ec;
            if (!fs::exists(p, ec)) continue;  // nothing delivered yet
            std::ifstream in(p, std::ios::binary);
            if (!in) throw error(SW_PERMANENT, "io", "cannot read " + p.string());
            std::stringstream ss;
            ss << in.rdbuf();
            std::string data = ss.str();
            csv::reader r(data);
            std::vector<csv::field> row;
            if (!r.next(row)) {
                if (!r.error().empty()) bad_file(p, r.error_line(), r.error_column(), r.error());
                continue;
            }
            std::vector<std::string> header;
            for (auto& f : row) header.push_back(f.text);
            if (header != l.columns)
                throw error(SW_SCHEMA, "layout",
                            p.string() + ":1:1: the header differs from the job's layout for '" + l.entity +
                                "'; the layout changed since the last delivery. Move the old file away to "
                                "deliver everything afresh");
            sdk::batch_writer out(host_api(), l.entity, SW_MODE_BULK);
            while (r.next(row)) {
                if (row.size() != l.columns.size())
                    bad_file(p, r.row_line(), 1, "row has " + std::to_string(row.size()) + " fields, expected " +
                                                     std::to_string(l.columns.size()));
                std::vector<std::string> values;
                for (size_t c = 0; c < row.size(); ++c)
                    if (c != l.key_pos) values.push_back(row[c].text);
                const std::string& key = row[l.key_pos].text;
                out.add(key, values);
                rows[key] = std::move(values);
            }
            if (!r.error().empty()) bad_file(p, r.error_line(), r.error_column(), r.error());
            out.flush();
        }
    }

    void apply(const sw_change_batch& batch) override {
        std::string entity(sdk::from_sw(batch.entity));
        auto* layout = find_layout(entity);
        if (!layout) throw error(SW_SCHEMA, "entity", "no file layout for entity '" + entity + "'");
        auto& rows = state_[entity];
        for (size_t i = 0; i < batch.change_count; ++i) {
            const sw_change& c = batch.changes[i];
            std::string key(sdk::from_sw(c.key));
            if (c.value_count != layout->fields.size()) {
                host_api().change_result(i, SW_SCHEMA, "layout", "wrong number of values");
                continue;
            }
            std::vector<std::string> values;
            for (size_t f = 0; f < c.value_count; ++f) values.emplace_back(sdk::from_sw(c.values[f]));
            const char* kind = "";
            switch (c.kind) {
                case SW_CHANGE_CREATE:
                    if (rows.count(key)) {
                        host_api().change_result(i, SW_PERMANENT, "exists", "'" + key + "' is already in " + layout->file);
                        continue;
                    }
                    rows[key] = std::move(values);
                    kind = "create";
                    break;
                case SW_CHANGE_UPDATE:
                    if (!rows.count(key)) {
                        host_api().change_result(i, SW_PERMANENT, "missing", "'" + key + "' is not in " + layout->file);
                        continue;
                    }
                    rows[key] = std::move(values);
                    kind = "update";
                    break;
                case SW_CHANGE_DELETE:
                    rows.erase(key);
                    kind = "delete";
                    break;
                default:
                    host_api().change_result(i, SW_SCHEMA, "kind", "unknown change kind");
                    continue;
            }
            std::string fields;
            for (size_t k = 0; k < c.changed_count; ++k)
                if (c.changed_fields[k] < layout->fields.size())
                    fields += (fields.empty() ? "" : " ") + layout->fields[c.changed_fields[k]];
            changes_.push_back({std::string(sdk::from_sw(c.id)), entity, kind, key, fields});
            touched_.insert(entity);
            host_api().change_result(i, SW_OK, "", "");
        }
    }

    void commit() override {
        if (changes_.empty()) return;
        std::error_code ec;
        fs::create_directories(folder_, ec);
        if (ec) throw error(SW_PERMANENT, "io", "cannot create " + folder_.string() + ": " + ec.message());
        // Write every file to a temp name first; rename only when all are written.
        std::vector<std::pair<fs::path, fs::path>> renames;
        for (auto& l : layouts_) {
            if (!touched_.count(l.entity)) continue;
            std::string text = csv::join_row(l.columns);
            for (auto& [key, values] : state_[l.entity]) {
                std::vector<std::string> cols;
                for (size_t c = 0, f = 0; c < l.columns.size(); ++c) cols.push_back(c == l.key_pos ? key : values[f++]);
                text += csv::join_row(cols);
            }
            renames.emplace_back(write_temp(l.file, text), folder_ / l.file);
        }
        std::string delta = csv::join_row({"change_id", "entity", "kind", "key", "changed_fields"});
        for (auto& c : changes_) delta += csv::join_row({c.id, c.entity, c.kind, c.key, c.fields});
        renames.emplace_back(write_temp(changes_file_, delta), folder_ / changes_file_);
        for (auto& [tmp, dst] : renames) {
            fs::rename(tmp, dst, ec);
            if (ec) throw error(SW_PERMANENT, "io", "cannot rename " + tmp.string() + " to " + dst.string() + ": " + ec.message());
        }
        changes_.clear();
        touched_.clear();
    }

private:
    [[noreturn]] static void bad_file(const fs::path& p, uint64_t line, uint64_t col, const std::string& msg) {
        throw error(SW_SCHEMA, "csv", p.string() + ":" + std::to_string(line) + ":" + std::to_string(col) + ": " + msg +
                                          "; the delivered file is damaged, move it away to deliver afresh");
    }

    fs::path write_temp(const std::string& name, const std::string& text) {
        fs::path tmp = folder_ / ("." + name + ".tmp-" + std::to_string(::getpid()));
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        out << text;
        out.close();
        if (!out) throw error(SW_RETRYABLE, "io", "cannot write " + tmp.string());
        return tmp;
    }

    const file_layout* find_layout(const std::string& entity) const {
        for (auto& l : layouts_)
            if (l.entity == entity) return &l;
        return nullptr;
    }

    fs::path folder_;
    std::string changes_file_;
    std::vector<file_layout> layouts_;
    sdk::contract_builder builder_;
    const sw_contract* contract_ = nullptr;
    std::map<std::string, std::map<std::string, std::vector<std::string>>> state_;
    std::vector<change_row> changes_;
    std::set<std::string> touched_;
};

}  // namespace
}  // namespace syncwarden::vendor

SW_CONNECTOR(syncwarden::vendor::vendor_csv, "vendor-csv", "1.0.0", SW_CAP_TARGET,
             "a vendor's roster drop folder: one CSV file per entity, written atomically")
