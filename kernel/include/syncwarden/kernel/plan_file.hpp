// The persisted plan: the unit of work between the planner and the applier.
//
// Every run writes two files under <data_dir>/plans/:
//   <run_id>.json  the plan for people: counts, findings, every change with
//                  its old and new values
//   <run_id>.plan  the plan for the applier: a compact binary file holding
//                  the target it is for, the state token it was planned
//                  against, and every change with its content id, key, values
//                  and changed fields
// Both are written to temp files, synced and renamed. The binary file's
// SHA-256 (the plan digest) is recorded in the run store; the applier refuses
// a plan whose bytes do not match it.
#pragma once

#include <syncwarden/connector.h>
#include <syncwarden/kernel/plan.hpp>
#include <syncwarden/kernel/result.hpp>
#include <syncwarden/kernel/store.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace syncwarden::kernel {

struct plan_header {
    struct target_ref {
        std::string connector, version, build_id;
        nlohmann::json settings = nlohmann::json::object();  // as expanded for the run
        std::string base_dir;
    };
    struct entity {
        std::string name, key_name;
        std::vector<std::string> fields;
        uint64_t changes = 0;
        uint64_t creates = 0, updates = 0, deletes = 0, deactivates = 0, adopts = 0;
    };
    std::string job, run_id, created_at;
    target_ref target;
    size_t batch_size = 500;
    std::optional<std::string> state_token;  // the target's state when planned
    std::vector<entity> entities;
    // The order the applier sends changes in, when the target's entities
    // depend on each other (ABI 1.4): the creates and updates of each entity
    // after those of the entities it depends on, then the deletes in the
    // reverse order. Empty: each entity's changes in turn, as planned.
    struct section {
        size_t entity = 0;  // into `entities`
        bool deletes = false;
        uint64_t changes = 0;
    };
    std::vector<section> sections;

    uint64_t total_changes() const;
    // `sections`, or one section per entity when there are none.
    std::vector<section> apply_sections() const;
};

struct written_plan {
    std::filesystem::path json, binary;
    std::string digest;       // SHA-256 of `binary`, hex
    std::string json_digest;  // SHA-256 of `json`, hex
    // SHA-256 over the changes alone (entity and content id of each, in
    // order): equal for two plans that would make the same changes,
    // whatever run made them.
    std::string content_digest;
};

// The kind byte of a change in the binary plan: the sw_change_kind, with
// this bit set on an update that deactivates a record.
inline constexpr uint8_t k_deactivate_bit = 0x80;

// Writes both files of a plan. `header.entities` is filled from `p`.
// `json_header` is the human file's leading object (run, job, counts).
Result<written_plan> write_plan_files(const std::filesystem::path& dir, plan_header header, const plan& p,
                                      const nlohmann::json& json_header,
                                      const std::vector<finding_record>& findings);

// Puts the plan for people `report` (read-only, never written again) at
// `out` as well: a second name of the same file (a hard link) where both are
// on one file system, else a copy. A file already at `out` is replaced, never
// written into: it may itself be an earlier run's stored report.
Status place_plan_report(const std::filesystem::path& report, const std::filesystem::path& out);

// A persisted plan, mapped read-only and checked against its digest.
class plan_reader {
public:
    // Refuses a file that is missing, whose SHA-256 is not `expected_digest`,
    // or that is not a plan.
    static Result<std::unique_ptr<plan_reader>> open(const std::filesystem::path& file,
                                                     const std::string& expected_digest);
    ~plan_reader();
    plan_reader(const plan_reader&) = delete;
    plan_reader& operator=(const plan_reader&) = delete;

    const plan_header& header() const { return header_; }

    // Calls `fn` with each batch of at most `batch_size` changes, in plan
    // order, never mixing entities. `first_seq` is the plan position of the
    // batch's first change. The batch points into the mapped file; it is
    // valid during the call. Stops at the first failed status.
    using batch_fn = std::function<Status(const plan_header::entity&, const sw_change_batch&, uint64_t first_seq)>;
    Status for_each_batch(size_t batch_size, const batch_fn& fn) const;
    // During a for_each_batch call: whether change k of the batch is a
    // deactivating update.
    bool deactivates(size_t k) const { return k < flags_.size() && flags_[k]; }
    // During a for_each_batch call: for an adoption (ABI 1.4), the target's
    // id of the record change k takes over; else empty.
    std::string_view adopts(size_t k) const { return k < adopts_.size() ? adopts_[k] : std::string_view(); }

private:
    plan_reader() = default;
    void release_before(size_t offset) const;  // gives back pages already read
    std::filesystem::path file_;
    const char* data_ = nullptr;
    size_t size_ = 0;
    size_t body_ = 0;  // where the changes start
    mutable size_t released_ = 0;
    mutable std::vector<uint8_t> flags_;
    mutable std::vector<std::string_view> adopts_;
    plan_header header_;
};

}  // namespace syncwarden::kernel
