// A complete Syncwarden target in one file: each entity the job maps into
// it is one JSON Lines file, <folder>/<entity>.jsonl, one object per record
// ({"id": KEY, "<field>": "<value>", ...}). README.md walks through what a
// target must do; the comments here say why each hook does what it does.
#include <syncwarden/connector.hpp>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using nlohmann::json;
using syncwarden::sdk::error;

class jsonl_target final : public syncwarden::sdk::connector {
public:
    // Settings: {"folder": "...", "entities": {"people": ["name", "email"], ...}}.
    // The contract comes from them: every entity is keyed by "id".
    jsonl_target(const syncwarden::sdk::host& h, const sw_create_args& args) : connector(h, args) {
        json s = json::parse(settings_json(), nullptr, false);
        if (!s.is_object() || !s.contains("folder") || !s["folder"].is_string() || !s.contains("entities") ||
            !s["entities"].is_object())
            throw error(SW_CONFIG, "settings", "settings need \"folder\" (a path) and \"entities\" (an object of field lists)");
        folder_ = fs::path(s["folder"].get<std::string>());
        if (folder_.is_relative()) folder_ = fs::path(base_dir()) / folder_;
        for (auto& [entity, fields] : s["entities"].items()) {
            auto& e = builder_.entity(entity, "id");
            for (auto& f : fields) {
                e.field(f.get<std::string>());
                fields_[entity].push_back(f.get<std::string>());
            }
        }
        contract_ = &builder_.build();
    }

    // The settings' JSON Schema. "x-syncwarden-grant" marks what the
    // kernel lets this connector's worker reach: here, the folder it writes.
    static const char* settings_schema() {
        return R"({"type": "object", "required": ["folder", "entities"],
  "properties": {
    "folder": {"type": "string", "minLength": 1, "x-syncwarden-grant": "write-path",
               "description": "where the .jsonl files go; relative to the job file"},
    "entities": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}}}})";
    }

    const sw_contract& contract() override { return *contract_; }

    // The system this target writes, so the kernel lets one run at a time
    // apply to it.
    std::string system_id() override { return "jsonl " + fs::weakly_canonical(folder_).string(); }

    // What the target holds now, for the kernel's diff. Bulk mode: the
    // whole entity, in batches. An entity without a file is present and
    // empty: the first flush() says so even with no records, which is how a
    // first sync into an empty target is told from a target that did not
    // answer.
    void read_state(const std::vector<std::string>& entities) override {
        for (const std::string& entity : entities) {
            if (!fields_.count(entity)) continue;  // not ours; the kernel ignores it anyway
            syncwarden::sdk::batch_writer out(host_api(), entity, SW_MODE_BULK);
            for (auto& [key, values] : load(entity)) out.add(key, values);
            out.flush();
        }
    }

    // Changes arrive entity by entity, in the order of the contract's
    // dependencies (none here), in batches of the job's batch size. This
    // target is transactional (SW_CAP_TRANSACTIONAL): nothing is written
    // until commit, so a run that fails half way leaves the files as they
    // were, and a resumed run sends every change again.
    void apply(const sw_change_batch& b) override {
        const std::string entity(syncwarden::sdk::from_sw(b.entity));
        auto staged = staged_.find(entity);
        if (staged == staged_.end()) staged = staged_.emplace(entity, load(entity)).first;
        for (size_t i = 0; i < b.change_count; ++i) {
            const sw_change& c = b.changes[i];
            const std::string key(syncwarden::sdk::from_sw(c.key));
            if (c.kind == SW_CHANGE_DELETE) {
                staged->second.erase(key);
            } else {
                // Creates and updates carry every field's desired value.
                std::vector<std::string> values;
                for (size_t f = 0; f < c.value_count; ++f) values.emplace_back(syncwarden::sdk::from_sw(c.values[f]));
                staged->second[key] = values;
            }
            host_api().change_result(i, SW_OK, "", "");
        }
    }

    // Each staged entity is written to a temporary file and renamed over
    // the old one: a reader sees the old file or the new, never half.
    void commit() override {
        fs::create_directories(folder_);
        for (auto& [entity, records] : staged_) {
            const fs::path file = folder_ / (entity + ".jsonl"), tmp = folder_ / (entity + ".jsonl.tmp");
            {
                std::ofstream out(tmp, std::ios::trunc);
                for (auto& [key, values] : records) {
                    json line{{"id", key}};
                    for (size_t f = 0; f < values.size() && f < fields_[entity].size(); ++f)
                        line[fields_[entity][f]] = values[f];
                    out << line.dump() << '\n';
                }
                if (!out.flush())
                    throw error(SW_RETRYABLE, "write_failed", "writing " + tmp.string() + " failed (disk full?)");
            }
            fs::rename(tmp, file);
        }
        staged_.clear();
    }

    // The run ended without commit (failed, cancelled): drop what was staged.
    void abort() override { staged_.clear(); }

private:
    // An entity's file as key -> values in contract order.
    std::map<std::string, std::vector<std::string>> load(const std::string& entity) {
        std::map<std::string, std::vector<std::string>> out;
        const fs::path file = folder_ / (entity + ".jsonl");
        std::ifstream in(file);
        std::string line;
        for (size_t n = 1; std::getline(in, line); ++n) {
            json j = json::parse(line, nullptr, false);
            if (!j.is_object() || !j.contains("id") || !j["id"].is_string())
                throw error(SW_PERMANENT, "bad_state",
                            file.string() + ":" + std::to_string(n) + ": not a JSON object with a string \"id\"; "
                            "fix or remove the line");
            std::vector<std::string> values;
            for (auto& f : fields_[entity]) values.push_back(j.value(f, std::string()));
            out[j["id"].get<std::string>()] = values;
        }
        return out;
    }

    fs::path folder_;
    std::map<std::string, std::vector<std::string>> fields_;  // entity -> field names, contract order
    std::map<std::string, std::map<std::string, std::vector<std::string>>> staged_;
    syncwarden::sdk::contract_builder builder_;
    const sw_contract* contract_ = nullptr;
};

SW_CONNECTOR(jsonl_target, "jsonl-target", "1.0.0", SW_CAP_TARGET | SW_CAP_TRANSACTIONAL,
             "writes each entity to a JSON Lines file")
