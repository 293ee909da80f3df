// Turns source records into target records, per the job's mapping.
#pragma once

#include <syncwarden/connector.h>
#include <syncwarden/kernel/config.hpp>
#include <syncwarden/kernel/result.hpp>
#include <syncwarden/kernel/schema.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace syncwarden::kernel {

class entity_mapper {
public:
    // Checks the mapping against both contracts; errors name the job file and
    // the JSON path.
    static Result<entity_mapper> compile(const entity_mapping& m, const job_config& job,
                                         const entity_schema& source, const entity_schema& target);

    enum class outcome { mapped, filtered, failed };
    // On failed, `error` says which target field and why. On filtered (the
    // record does not match `where`), `key` is its target key, or empty.
    // `where` is not checked when `check_where` is false (a record made from
    // a distinct value: the source records were checked).
    outcome map(const sw_record& rec, std::string& key, std::vector<std::string>& values,
                std::string& error, bool check_where = true) const;
    // The same, with the values as views: a value copied as it is from one
    // source field views the record's bytes; any other is made in
    // `values` and viewed there. Valid while `rec` and `values` are.
    outcome map(const sw_record& rec, std::string& key, std::vector<std::string>& values,
                std::vector<std::string_view>& views, std::string& error) const;
    const std::string& source() const { return source_; }
    const std::string& target() const { return target_; }

    // Target fields filled by `collect` (map() leaves them empty), with the
    // separator their items are joined with.
    struct collected { size_t field; const field_rule* rule; char join; };
    const std::vector<collected>& collects() const { return collects_; }
    // The source field whose distinct values make the records (-1: none),
    // and its list separator (0: a single value).
    int distinct() const { return distinct_; }
    char distinct_split() const { return distinct_split_; }
    bool deferred() const { return distinct_ >= 0 || !collects_.empty(); }
    // Target fields whose rule says `unique`.
    const std::vector<size_t>& unique_fields() const { return unique_; }

private:
    struct piece { bool literal; std::string text; int field; };  // field -1 = key
    struct rule {
        std::string target_field;
        std::vector<piece> pieces;
        const std::map<std::string, std::string>* table = nullptr;
        std::string table_name;
        field_rule::on_missing missing = field_rule::on_missing::error;
        std::string default_value;
        std::vector<std::string> transform;
        // A list is split into items at `split` (the source field's
        // separator; 0: the value is one item), the table maps each item,
        // and the items are joined with `join` (the target field's: ABI 1.4
        // SW_ITEM_SEP for an items field, else a comma). 0/0: not a list.
        char split = 0, join = 0;
        // A plain copy between two fields that tell the empty string from
        // absent (ABI 1.4): the source's empty string stays one.
        bool pass_empty = false;
        // One source field, as it is: no literal, table, list or transform.
        bool copy = false;
    };
    outcome map_where(const sw_record& rec, std::string& key, std::string& error) const;
    // Writes the value into `out`, reusing its storage.
    bool value_of(const rule& r, const sw_record& rec, std::string& out, std::string& error) const;

    std::string source_, target_;
    std::vector<std::pair<int, std::vector<std::string>>> where_;
    int key_rule_ = -1;
    std::vector<int> field_rule_;  // per target field: index into rules_, or -1
    std::vector<rule> rules_;
    std::vector<collected> collects_;
    std::vector<size_t> unique_;
    int distinct_ = -1;
    char distinct_split_ = 0;
};

}  // namespace syncwarden::kernel
