// OneRoster 1.1 / 1.2 CSV source: a folder or a zip. Structural defects are
// error findings with file, line and column; data defects are warnings.
#include "oneroster_schema.hpp"
#include "source_files.hpp"

#include <csv.hpp>
#include <settings.hpp>
#include <view_batch.hpp>
#include <syncwarden/connector.hpp>
#include <syncwarden/detail/hash_bytes.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <deque>
#include <filesystem>
#include <optional>
#include <map>
#include <memory>
#include <set>
#include <unordered_map>

namespace fs = std::filesystem;
using syncwarden::sdk::error;

namespace syncwarden::oneroster {
namespace {

constexpr size_t k_max_same_findings = 50;

bool is_iso_date(std::string_view v) {
    auto digits = [&](size_t a, size_t b) {
        for (size_t i = a; i < b; ++i)
            if (i >= v.size() || v[i] < '0' || v[i] > '9') return false;
        return true;
    };
    if (!(v.size() >= 10 && digits(0, 4) && v[4] == '-' && digits(5, 7) && v[7] == '-' && digits(8, 10))) return false;
    const int month = (v[5] - '0') * 10 + (v[6] - '0'), day = (v[8] - '0') * 10 + (v[9] - '0');
    return month >= 1 && month <= 12 && day >= 1 && day <= 31 && (v.size() == 10 || v[10] == 'T');
}

std::string lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

std::vector<std::string> split_list(const std::string& v) {
    std::vector<std::string> out;
    size_t start = 0;
    while (start <= v.size() && !v.empty()) {
        auto comma = v.find(',', start);
        auto piece = v.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        auto b = piece.find_first_not_of(' ');
        if (b != std::string::npos) out.push_back(piece.substr(b, piece.find_last_not_of(' ') - b + 1));
        if (comma == std::string::npos) break;
        start = comma + 1;
    }
    return out;
}

// The kernel's hash (a connector does not link the kernel; the header is
// shared): ids are hashed once or more per record and per reference,
// millions of times in a large export.
uint64_t hash_key(std::string_view v) { return ::syncwarden::detail::hash_bytes(v); }

// The sourcedIds of one entity as 64-bit hashes in an open-addressing table;
// the low bit says "tobedeleted". 35% to 70% full (12 to 23 bytes a
// record), a lookup a probe or a few in one cache line. Two different ids
// with the same 63-bit hash would be taken for one (about one chance in 10^5
// at 7M ids).
class key_set {
public:
    // What a key is kept as: its hash with bit 1 set (never 0, the empty
    // slot) and bit 0 clear (the tobedeleted flag's place). A caller that
    // prefetched a key's slot passes this back instead of hashing again.
    static uint64_t hashed(std::string_view key) { return (hash_key(key) | 2ULL) & ~1ULL; }
    // False when the key was already there.
    bool insert(std::string_view key, bool tobedeleted) { return insert_hashed(hashed(key), tobedeleted); }
    bool insert_hashed(uint64_t k, bool tobedeleted) {
        if ((size_ + 1) * 10 > slots_.size() * 7) grow();  // at most 70% full, as the kernel's index
        for (size_t i = home(k);; i = (i + 1) & (slots_.size() - 1)) {
            if (slots_[i] == 0) {
                slots_[i] = k | tobedeleted;
                ++size_;
                return true;
            }
            if ((slots_[i] & ~1ULL) == k) return false;
        }
    }
    // 0 absent, 1 present, 2 present and tobedeleted
    int find(std::string_view key) const { return find_hashed(hashed(key)); }
    int find_hashed(uint64_t k) const {
        for (size_t i = home(k); slots_[i] != 0; i = (i + 1) & (slots_.size() - 1))
            if ((slots_[i] & ~1ULL) == k) return (slots_[i] & 1ULL) ? 2 : 1;
        return 0;
    }
    void clear() { std::vector<uint64_t>(k_empty_slots, 0).swap(slots_); size_ = 0; }
    // Room for `n` keys without growing (each growth re-inserts every key).
    void reserve(size_t n) {
        size_t cap = std::max<size_t>(slots_.size(), 1024);
        while (cap * 7 < n * 10) cap <<= 1;
        if (cap > slots_.size()) rehash(cap);
    }
    // Brings the key's first slot into the cache ahead of an insert or find.
    // Unconditional: the table is never empty. (g++ 12 drops a prefetch
    // guarded by a test of the table's emptiness, found by reading the
    // machine code after keeping the hash made this slower.)
    void prefetch_hashed(uint64_t k) const { __builtin_prefetch(&slots_[home(k)]); }

private:
    // A key's first slot: from the hash's bits above the two that hashed()
    // fixes (bit 1 set, bit 0 the flag), or only a quarter of the slots
    // would ever be first slots and the probes would run long.
    size_t home(uint64_t k) const { return static_cast<size_t>(k >> 2) & (slots_.size() - 1); }
    static constexpr size_t k_empty_slots = 2;  // all empty: a find ends at once, the first insert grows
    void grow() { rehash(std::max<size_t>(slots_.size() * 2, 1024)); }
    void rehash(size_t cap) {
        std::vector<uint64_t> old;
        old.swap(slots_);
        slots_.assign(cap, 0);
        size_ = 0;
        for (uint64_t v : old)
            if (v) {
                for (size_t i = home(v & ~1ULL);; i = (i + 1) & (slots_.size() - 1))
                    if (slots_[i] == 0) { slots_[i] = v; ++size_; break; }
            }
    }
    std::vector<uint64_t> slots_ = std::vector<uint64_t>(k_empty_slots, 0);
    size_t size_ = 0;
};

struct entity_data {
    bool done = false;            // its file was read
    bool loaded = false;          // ... without a structural error
    sw_batch_mode mode = SW_MODE_BULK;
    bool referenced = false;      // other entities refer to it: keep its keys
    key_set keys;
};

// Rows of a file read ahead of their checks: their fields, lines, where
// each ends in the file, and the hashes of their key and checked
// references (0 where none was taken), by row and column.
constexpr size_t k_chunk = 32;
struct row_chunk {
    explicit row_chunk(size_t columns) : rows(k_chunk), hashes(k_chunk * columns, 0) {}
    std::vector<std::vector<csv::field>> rows;
    uint64_t lines[k_chunk] = {};
    size_t ends[k_chunk] = {};
    size_t start = 0, n = 0;
    std::deque<std::string> unescaped;  // quoted fields' text, which the reader keeps only until next()
    std::vector<uint64_t> hashes;
};

// A reference to an entity read later (or to its own entity), checked at the end.
struct pending_ref {
    uint16_t from_entity, column;
    uint32_t col;
    uint64_t line;
    std::string key, value;
};

class oneroster_csv final : public sdk::connector {
public:
    oneroster_csv(const sdk::host& h, const sw_create_args& args) : connector(h, args) {
        const nlohmann::json s = csv::parse_settings(settings_json());
        if (!s.contains("path") || !s["path"].is_string() || s["path"].get<std::string>().empty())
            throw error(SW_CONFIG, "settings",
                        "settings.path is required: the folder or .zip of the OneRoster CSV export");
        fs::path p = s["path"].get<std::string>();
        path_ = (p.is_absolute() ? p : fs::path(base_dir()) / p).lexically_normal().string();
        if (s.contains("encoding")) {
            static const char* known[] = {"utf-8", "windows-1252", "iso-8859-1"};
            std::string e = s["encoding"].is_string() ? s["encoding"].get<std::string>() : s["encoding"].dump();
            std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return std::tolower(c); });
            if (e == "utf8") e = "utf-8";
            if (e == "cp1252") e = "windows-1252";
            if (e == "latin1" || e == "latin-1") e = "iso-8859-1";
            if (std::find(std::begin(known), std::end(known), e) == std::end(known))
                throw error(SW_CONFIG, "settings", "settings.encoding: '" + e +
                                                       "' is not one of utf-8, windows-1252, iso-8859-1");
            files_options_.encoding = e;
        }
        if (s.contains("zip_limit_mb")) {
            if (!s["zip_limit_mb"].is_number_unsigned() || s["zip_limit_mb"].get<uint64_t>() == 0)
                throw error(SW_CONFIG, "settings", "settings.zip_limit_mb: expected a whole number of MiB above 0");
            files_options_.zip_limit = s["zip_limit_mb"].get<uint64_t>() << 20;
        }
        peek_extensions();
        for (auto& e : entities()) {
            builder_.entity(e.name, "sourcedId");
            builder_.field("dateLastModified");
            for (auto& c : e.columns) {
                builder_.field(c.name, c.type, c.required_value ? SW_FIELD_REQUIRED : 0);
                if (auto* values = vocabulary(e.name, c.name)) builder_.one_of(*values, k_extension_prefix);
            }
            for (auto& x : extensions_[e.name]) builder_.field(x);
        }
        contract_ = &builder_.build();
    }

    static const char* settings_schema() {
        return R"({
  "$schema": "http://json-schema.org/draft-07/schema#",
  "title": "oneroster-csv settings",
  "type": "object",
  "required": ["path"],
  "additionalProperties": false,
  "properties": {
    "path": {"type": "string", "minLength": 1, "x-syncwarden-grant": "read-path",
             "description": "the folder or .zip of the OneRoster CSV export; relative to the job file"},
    "encoding": {"type": "string", "enum": ["utf-8", "utf8", "windows-1252", "cp1252", "iso-8859-1", "latin1", "latin-1"],
                 "default": "utf-8", "description": "the export's text encoding: utf-8, windows-1252 or iso-8859-1"},
    "zip_limit_mb": {"type": "integer", "minimum": 1, "default": 4096,
                     "description": "how large a zipped export may unpack to, in MiB"}}
})";
    }

    const sw_contract& contract() override { return *contract_; }

    void extract(const std::vector<std::string>& requested) override {
        if (!files_) files_ = std::make_unique<source_files>(path_, files_options_);
        const source_files& files = *files_;
        read_manifest(files);
        for (auto& spec : entities())
            for (auto& c : spec.columns)
                if (c.refers_to) data_[c.refers_to].referenced = true;
        for (auto& spec : entities()) {
            bool want = std::find(requested.begin(), requested.end(), spec.name) != requested.end();
            read_entity(files, spec, want);
        }
        check_pending();
    }

private:
    // The extension columns (metadata.*, ext_*) of each file's header become
    // string fields at the end of the entity's contract, so a mapping can
    // read them. An export that cannot be opened here is reported by extract.
    void peek_extensions() {
        try {
            files_ = std::make_unique<source_files>(path_, files_options_);
        } catch (const std::exception&) {
            return;
        }
        for (auto& spec : entities()) {
            auto actual = files_->actual_name(std::string(spec.name) + ".csv");
            if (!actual) continue;
            try {
                const std::string head = files_->first_line(*actual);
                csv::reader r(head);
                std::vector<csv::field> header;
                if (!r.next(header)) continue;
                auto& ext = extensions_[spec.name];
                for (auto& h : header) {
                    std::string name(h.text);
                    if (is_extension_column(name) && std::find(ext.begin(), ext.end(), name) == ext.end())
                        ext.push_back(name);
                }
            } catch (const std::exception&) {
                // read again, and reported, by extract
            }
        }
    }

    void finding(sw_severity sev, const std::string& code, const std::string& entity, const std::string& file,
                 uint64_t line, uint64_t col, const std::string& key, const std::string& msg) {
        auto& n = counts_[file + "|" + code];
        if (++n > k_max_same_findings) {
            if (n == k_max_same_findings + 1)
                host_api().finding(sev, code, entity, file, line, col, key,
                                   "more '" + code + "' findings in " + file + " are not listed");
            return;
        }
        host_api().finding(sev, code, entity, file, line, col, key, msg);
    }

    void read_manifest(const source_files& files) {
        auto name = files.actual_name("manifest.csv");
        if (!name) {
            finding(SW_SEVERITY_WARNING, "no_manifest", "", "manifest.csv", 0, 0, "",
                    "the export has no manifest.csv; reading every OneRoster file present as bulk");
            return;
        }
        has_manifest_ = true;
        csv::mapped_file file = files.read(*name);
        std::string disp = files.display(*name);
        csv::reader r(file.data());
        std::vector<csv::field> row;
        bool header = true;
        while (r.next(row)) {
            if (header) { header = false; continue; }
            if (row.size() < 2) {
                finding(SW_SEVERITY_WARNING, "manifest", "", disp, r.row_line(), 1, "",
                        "expected two columns propertyName,value; row ignored");
                continue;
            }
            const std::string prop(row[0].text), value(row[1].text);
            if (prop == "oneroster.version") version_ = value;
            if (prop.rfind("file.", 0) != 0) continue;
            std::string entity = prop.substr(5);
            std::string mode = lower(value);
            if (mode == "bulk" || mode == "delta" || mode == "absent") {
                manifest_modes_[lower(entity)] = mode;
            } else {
                manifest_modes_[lower(entity)] = "absent";
                finding(SW_SEVERITY_WARNING, "manifest", "", disp, r.row_line(), row[1].column, "",
                        prop + " is '" + value + "', expected absent, bulk or delta; treated as absent");
            }
        }
        if (!r.error().empty())
            finding(SW_SEVERITY_ERROR, "csv_format", "", disp, r.error_line(), r.error_column(), "", r.error());
        if (version_ != "1.1" && version_ != "1.2") {
            finding(SW_SEVERITY_WARNING, "manifest", "", disp, 0, 0, "",
                    "oneroster.version is '" + version_ + "', expected 1.1 or 1.2; reading as 1.2");
            version_ = "1.2";
        }
    }

    // Decides whether an entity's file is read and in which mode.
    std::optional<std::string> present_file(const source_files& files, const entity_spec& spec,
                                            entity_data& ed) {
        std::string fname = std::string(spec.name) + ".csv";
        auto actual = files.actual_name(fname);
        std::string mode = "bulk";
        if (has_manifest_) {
            auto it = manifest_modes_.find(lower(spec.name));
            mode = it == manifest_modes_.end() ? "absent" : it->second;
        }
        if (mode == "absent") {
            if (actual)
                finding(SW_SEVERITY_WARNING, "undeclared_file", spec.name, files.display(*actual), 0, 0, "",
                        "present, but manifest.csv does not declare it bulk or delta; not read");
            return std::nullopt;
        }
        if (!actual && !has_manifest_) return std::nullopt;  // without a manifest, an absent file says nothing
        if (!actual) {
            finding(SW_SEVERITY_ERROR, "missing_file", spec.name, fname, 0, 0, "",
                    "manifest.csv declares this file (" + mode + ") but the export does not contain it; "
                    "the export may be incomplete");
            return std::nullopt;
        }
        if (*actual != fname)
            finding(SW_SEVERITY_INFO, "file_name_case", spec.name, files.display(*actual), 0, 0, "",
                    "file name differs in case from " + fname + "; read anyway");
        ed.mode = mode == "delta" ? SW_MODE_DELTA : SW_MODE_BULK;
        return actual;
    }

    void read_entity(const source_files& files, const entity_spec& spec, bool want) {
        entity_data& ed = data_[spec.name];
        ed.done = true;
        auto actual = present_file(files, spec, ed);
        if (!actual) return;
        const std::string disp = files.display(*actual);
        csv::mapped_file file = files.read(*actual);
        csv::reader r(file.data());
        std::vector<csv::field> header;
        if (!r.next(header)) {
            if (!r.error().empty())
                finding(SW_SEVERITY_ERROR, "csv_format", spec.name, disp, r.error_line(), r.error_column(), "", r.error());
            else
                finding(SW_SEVERITY_ERROR, "empty_file", spec.name, disp, 1, 1, "",
                        "the file is empty; expected a header row");
            return;
        }
        {
            std::vector<std::string_view> columns;
            for (auto& h : header) columns.push_back(h.text);
            host_api().layout(spec.name, disp, columns);
        }
        std::vector<int> slot;
        size_t named = 0;
        if (!map_header(spec, disp, header, slot, named)) return;
        // The entity each column refers to, found once for the file, not
        // once per reference (a roster has three references a row).
        ref_to_.assign(spec.columns.size(), {nullptr, false});
        for (size_t ci = 0; ci < spec.columns.size(); ++ci)
            if (const char* to = spec.columns[ci].refers_to) ref_to_[ci] = {&data_[to], std::strcmp(to, spec.name) == 0};
        std::optional<csv::view_batch> out;
        if (want) out.emplace(host_api(), spec.name, ed.mode, file.data());
        const size_t nf = spec.columns.size() + 1 + extensions_[spec.name].size();
        std::vector<std::string_view> values(nf);
        bool structural = false;
        const bool is_users_12 = version_ == "1.2" && std::string_view(spec.name) == "users";
        const bool is_roles = std::string_view(spec.name) == "roles";
        // An entity nothing refers to needs its keys only to find second
        // copies. While its rows come in order of sourcedId (as exports
        // are usually written), a copy is a key equal to the one before and
        // no key set is kept; at the first key out of order the keys so far
        // are read again into the set, and the set takes over.
        bool in_order = !ed.referenced;
        std::string last_key;
        if (!in_order) ed.keys.reserve(estimate_rows(file.data()));
        // The key sets' slots are random places in tables far larger than
        // the cache. Rows are read a chunk at a time, and the slots each row
        // of a chunk will touch (its own key's, and those of the references
        // checked now) are prefetched while the chunk before is checked, so
        // the cache misses overlap with work.
        std::vector<std::pair<size_t, const key_set*>> prefetched;  // (column, key set)
        size_t key_column = SIZE_MAX;
        for (size_t i = 0; i < slot.size(); ++i) {
            if (slot[i] == k_id) key_column = i;
            if (slot[i] <= 0 || static_cast<size_t>(slot[i]) > spec.columns.size()) continue;
            const column_spec& c = spec.columns[static_cast<size_t>(slot[i]) - 1];
            if (!c.refers_to || c.type == SW_TYPE_LIST || std::string_view(c.refers_to) == spec.name) continue;
            const entity_data& t = data_[c.refers_to];
            if (t.done && t.loaded && t.mode != SW_MODE_DELTA) prefetched.emplace_back(i, &t.keys);
        }
        const size_t ncols = slot.size();
        row_chunk bufs[2] = {row_chunk(ncols), row_chunk(ncols)};
        // Reads the next rows into `c` and prefetches their slots; false
        // when the file has no more.
        auto fill = [&](row_chunk& c) {
            c.n = 0;
            c.start = r.position();
            c.unescaped.clear();
            for (; c.n < k_chunk; ++c.n) {
                auto& row = c.rows[c.n];
                if (!r.next(row)) break;
                c.lines[c.n] = r.row_line();
                c.ends[c.n] = r.position();
                for (auto& f : row)
                    if (!f.text.empty() && (f.text.data() < file.data().data() ||
                                            f.text.data() >= file.data().data() + file.data().size()))
                        f.text = c.unescaped.emplace_back(f.text);
                uint64_t* h = &c.hashes[c.n * ncols];
                std::fill(h, h + ncols, 0);
                if (key_column < row.size() && !in_order)
                    ed.keys.prefetch_hashed(h[key_column] = key_set::hashed(row[key_column].text));
                for (auto& [i, keys] : prefetched)
                    if (i < row.size() && !row[i].text.empty()) keys->prefetch_hashed(h[i] = key_set::hashed(row[i].text));
            }
            return c.n == k_chunk;
        };
        bool more = fill(bufs[0]);
        for (int cur = 0; bufs[cur].n; cur ^= 1) {
            row_chunk& next = bufs[cur ^ 1];
            next.n = 0;
            if (more) more = fill(next);
            const row_chunk& c = bufs[cur];
            const size_t n = c.n, chunk_start = c.start;
            const auto& chunk = c.rows;
            const auto& lines = c.lines;
            const auto& ends = c.ends;
            const auto& hashes = c.hashes;
            for (size_t j = 0; j < n; ++j) {
                const auto& row = chunk[j];
                const uint64_t line = lines[j];
                if (row.size() != header.size() && !(row.size() >= named && row.size() < header.size())) {
                    const auto& last = row.back();
                    finding(SW_SEVERITY_ERROR, "csv_row_length", spec.name, disp, line, last.column + last.text.size(),
                            "", "row has " + std::to_string(row.size()) + " fields, the header has " +
                                    std::to_string(named) + (row.size() < named ? "; the file may be truncated" : ""));
                    structural = true;
                    continue;
                }
                std::fill(values.begin(), values.end(), std::string_view());
                std::string_view key;
                bool tobedeleted = false;
                for (size_t i = 0; i < row.size() && i < slot.size(); ++i) {
                    int s = slot[i];
                    const auto& f = row[i];
                    if (s >= 0) values[static_cast<size_t>(s)] = f.text;
                    else if (s == k_id) key = f.text;
                    else if (s == k_status && !f.text.empty()) {
                        if (iequals(f.text, "tobedeleted") || iequals(f.text, "inactive")) tobedeleted = true;
                        else if (!iequals(f.text, "active"))
                            finding(SW_SEVERITY_ERROR, "bad_status", spec.name, disp, line, f.column, std::string(key),
                                    "status is '" + std::string(f.text) + "', expected active or tobedeleted");
                    }
                }
                if (key.empty()) {
                    finding(SW_SEVERITY_ERROR, "missing_key", spec.name, disp, line, 1, "", "sourcedId is empty");
                    continue;
                }
                const uint64_t* row_hashes = &hashes[j * ncols];
                bool first_copy = true;
                if (in_order) {
                    const int c = std::string_view(last_key).compare(key);
                    if (c < 0 || last_key.empty()) last_key.assign(key);
                    else if (c == 0) first_copy = false;
                    else {
                        in_order = false;
                        ed.keys.reserve(estimate_rows(file.data()));
                        keys_before(file.data().substr(0, j ? ends[j - 1] : chunk_start), header.size(), named,
                                    key_column, ed.keys);
                    }
                }
                if (!in_order)
                    first_copy = key_column < row.size() && row_hashes[key_column]
                                     ? ed.keys.insert_hashed(row_hashes[key_column], tobedeleted)
                                     : ed.keys.insert(key, tobedeleted);
                if (!first_copy) {
                    finding(SW_SEVERITY_ERROR, "duplicate_key", spec.name, disp, line, 1, std::string(key),
                            "sourcedId '" + std::string(key) +
                                "' appeared earlier in this file; sourcedIds must be unique");
                    continue;
                }
                if (!check_values(spec, disp, line, row, slot, row_hashes, key, values, tobedeleted)) continue;
                if (is_users_12) fill_roles(key, values);
                if (is_roles) remember_role(values);
                // The rows after this one in the chunk are still read from
                // the file: only what lies before them is given back.
                if (out && out->add(key, values, tobedeleted ? SW_RECORD_TOBEDELETED : SW_RECORD_ACTIVE))
                    file.release_before(ends[j]);
            }
        }
        if (!r.error().empty()) {
            finding(SW_SEVERITY_ERROR, "csv_format", spec.name, disp, r.error_line(), r.error_column(), "", r.error());
            structural = true;
        }
        if (out) out->flush();
        if (!ed.referenced) ed.keys.clear();
        ed.loaded = !structural;
    }

    static constexpr int k_ignore = -1, k_id = -2, k_status = -3;

    // The keys of the rows in `data` (a file's start, header included) that
    // were read as records: the right length, a sourcedId.
    static void keys_before(std::string_view data, size_t columns, size_t named, size_t key_column, key_set& keys) {
        csv::reader r(data);
        std::vector<csv::field> row;
        for (bool header = true; r.next(row); header = false) {
            if (header || key_column >= row.size()) continue;
            if (row.size() != columns && !(row.size() >= named && row.size() < columns)) continue;
            if (!row[key_column].text.empty()) (void)keys.insert(row[key_column].text, false);
        }
    }

    // About how many rows a file holds, from the rows in its first 64 KiB;
    // a generous guess, as a key set sized too small grows itself.
    static size_t estimate_rows(std::string_view data) {
        const std::string_view sample = data.substr(0, 64 * 1024);
        const size_t lines = static_cast<size_t>(std::count(sample.begin(), sample.end(), '\n')) + 1;
        if (sample.size() == data.size()) return lines;
        return static_cast<size_t>(static_cast<double>(data.size()) / static_cast<double>(sample.size()) *
                                   static_cast<double>(lines) * 1.1);
    }

    static bool iequals(std::string_view a, std::string_view b) {
        if (a.size() != b.size()) return false;
        for (size_t i = 0; i < a.size(); ++i) {  // b is lower case ASCII
            const char c = a[i] >= 'A' && a[i] <= 'Z' ? static_cast<char>(a[i] - 'A' + 'a') : a[i];
            if (c != b[i]) return false;
        }
        return true;
    }

    // Column positions: field index in the contract (0 = dateLastModified), or special.
    bool map_header(const entity_spec& spec, const std::string& disp, const std::vector<csv::field>& header,
                    std::vector<int>& slot, size_t& named) {
        slot.assign(header.size(), k_ignore);
        std::set<std::string> seen;
        size_t trailing_empty = 0;
        bool bad = false;  // every defect of the header is reported before giving up
        for (size_t i = 0; i < header.size(); ++i) {
            std::string h(header[i].text);
            if (h.empty()) {
                ++trailing_empty;
                continue;
            }
            if (trailing_empty) {
                finding(SW_SEVERITY_ERROR, "csv_header", spec.name, disp, 1, header[i].column, "",
                        "empty column name before column '" + h + "'; every column needs a name");
                trailing_empty = 0;
                bad = true;
            }
            if (const char* alias = header_alias(spec.name, h)) {
                finding(SW_SEVERITY_WARNING, "header_alias", spec.name, disp, 1, header[i].column, "",
                        "column '" + h + "' is read as '" + alias + "' (" + alias_reason(h) + ")");
                h = alias;
            }
            if (!seen.insert(h).second) {
                finding(SW_SEVERITY_ERROR, "csv_header", spec.name, disp, 1, header[i].column, "",
                        "column '" + h + "' appears twice in the header");
                bad = true;
                continue;
            }
            if (h == "sourcedId") slot[i] = k_id;
            else if (h == "status") slot[i] = k_status;
            else if (h == "dateLastModified") slot[i] = 0;
            else {
                bool found = false;
                for (size_t c = 0; c < spec.columns.size(); ++c)
                    if (h == spec.columns[c].name) { slot[i] = static_cast<int>(c) + 1; found = true; }
                const auto& ext = extensions_[spec.name];
                if (!found && is_extension_column(h)) {
                    auto it = std::find(ext.begin(), ext.end(), h);
                    if (it != ext.end()) slot[i] = static_cast<int>(spec.columns.size() + 1 + (it - ext.begin()));
                    finding(SW_SEVERITY_INFO, "extension_column", spec.name, disp, 1, header[i].column, "",
                            "column '" + h + "' is an extension column (metadata.* or ext_*), allowed by the "
                            "OneRoster CSV binding" +
                                (it != ext.end() ? "; a mapping can read it as field '" + h + "'"
                                                 : "; it appeared after the run started, so no mapping reads it"));
                }
                else if (!found)
                    finding(SW_SEVERITY_WARNING, "unknown_column", spec.name, disp, 1, header[i].column, "",
                            "column '" + h + "' is not part of OneRoster " + version_ + " " + spec.name + "; ignored");
            }
        }
        if (trailing_empty)
            finding(SW_SEVERITY_WARNING, "csv_header", spec.name, disp, 1, header.back().column, "",
                    std::to_string(trailing_empty) + " trailing column(s) with an empty name; ignored");
        named = header.size() - trailing_empty;
        std::vector<std::string> missing;
        if (!seen.count("sourcedId")) missing.push_back("sourcedId");
        for (auto& c : spec.columns)
            if ((version_ == "1.1" ? c.required_11 : c.required_12) && !seen.count(c.name)) missing.push_back(c.name);
        if (missing.empty()) return !bad;
        std::string list;
        for (auto& m : missing) list += (list.empty() ? "'" : ", '") + m + "'";
        finding(SW_SEVERITY_ERROR, "missing_column", spec.name, disp, 1, header.back().column + header.back().text.size(), "",
                "the header lacks required column(s) " + list + " for OneRoster " + version_ + " " + spec.name +
                    "; the file was not read. Re-export it with those columns");
        return false;
    }

    // False when the row breaks a rule the contract states (a required
    // value is empty): that is reported here, with its line and column, and
    // the row is not emitted.
    bool check_values(const entity_spec& spec, const std::string& disp, uint64_t line,
                      const std::vector<csv::field>& row, const std::vector<int>& slot, const uint64_t* hashes,
                      std::string_view key, std::vector<std::string_view>& values, bool tobedeleted) {
        bool ok = true;
        for (size_t i = 0; i < row.size() && i < slot.size(); ++i) {
            int s = slot[i];
            if (s < 0) continue;
            auto& v = values[static_cast<size_t>(s)];
            const uint64_t col = row[i].column;
            if (v.empty()) {
                if (s > 0 && static_cast<size_t>(s) <= spec.columns.size() &&
                    spec.columns[static_cast<size_t>(s) - 1].required_value && !tobedeleted) {
                    finding(SW_SEVERITY_ERROR, "missing_required", spec.name, disp, line, col, std::string(key),
                            std::string(spec.columns[static_cast<size_t>(s) - 1].name) + " is empty; OneRoster " +
                                version_ + " requires it for " + spec.name);
                    ok = false;
                }
                continue;
            }
            if (s == 0) {
                if (!is_iso_date(v))
                    finding(SW_SEVERITY_WARNING, "bad_date", spec.name, disp, line, col, std::string(key),
                            "dateLastModified '" + std::string(v) + "' is not an ISO 8601 date; kept as written");
                continue;
            }
            if (static_cast<size_t>(s) > spec.columns.size()) continue;  // an extension column: any text
            const column_spec& c = spec.columns[static_cast<size_t>(s) - 1];
            if (c.type == SW_TYPE_BOOL) {
                if (iequals(v, "true")) v = "true";
                else if (iequals(v, "false")) v = "false";
                else {
                    finding(SW_SEVERITY_ERROR, "bad_value", spec.name, disp, line, col, std::string(key),
                            std::string(c.name) + " is '" + std::string(v) + "', expected true or false");
                    v = {};
                }
            } else if (c.type == SW_TYPE_DATE && !(v.size() == 10 && is_iso_date(v))) {
                finding(SW_SEVERITY_ERROR, "bad_date", spec.name, disp, line, col, std::string(key),
                        std::string(c.name) + " is '" + std::string(v) + "', expected a date YYYY-MM-DD");
                v = {};
            }
            if (c.refers_to) {
                if (c.type == SW_TYPE_LIST) {
                    for (auto& item : split_list(std::string(v))) check_ref(spec, c, s, disp, line, col, key, item);
                } else {
                    check_ref(spec, c, s, disp, line, col, key, v, hashes[i]);
                }
            }
        }
        return ok;
    }

    // Checks now when the referenced entity was read already; else later.
    void check_ref(const entity_spec& spec, const column_spec& c, int slot, const std::string& disp, uint64_t line,
                   uint64_t col, std::string_view key, std::string_view value, uint64_t hashed = 0) {
        const auto [target, self] = ref_to_[static_cast<size_t>(slot) - 1];
        if (target->done && !self) {
            verify_ref(spec.name, c, disp, line, col, key, value, *target, hashed);
            return;
        }
        pending_.push_back({entity_index(spec.name), static_cast<uint16_t>(slot), static_cast<uint32_t>(col), line,
                            std::string(key), std::string(value)});
    }

    // Tens of millions of calls in a large export; what is reported when a
    // reference does not hold lives out of line (report_ref), so this stays
    // a lookup.
    void verify_ref(const char* from, const column_spec& c, const std::string& disp, uint64_t line,
                    uint64_t col, std::string_view key, std::string_view value, const entity_data& target,
                    uint64_t hashed = 0) {
        if (!target.loaded || target.mode == SW_MODE_DELTA) [[unlikely]] {
            not_checked(from, c, disp, target);
            return;
        }
        // `hashed`: the value's hash, when the row's prefetch took it.
        const int found = hashed ? target.keys.find_hashed(hashed) : target.keys.find(value);
        if (found != 1) [[unlikely]] report_ref(from, c, disp, line, col, key, value, found);
    }

    [[gnu::noinline, gnu::cold]] void not_checked(const char* from, const column_spec& c, const std::string& disp,
                                                  const entity_data& target) {
        if (!target.loaded && unchecked_.insert(std::string(from) + "." + c.name).second)
            finding(SW_SEVERITY_INFO, "reference_not_checked", from, disp, 0, 0, "",
                    std::string(from) + "." + c.name + " refers to " + c.refers_to + ", which this export does "
                    "not include (or could not be read); those references were not checked");
    }

    // found: 0 absent, 2 marked tobedeleted.
    [[gnu::noinline, gnu::cold]] void report_ref(const char* from, const column_spec& c, const std::string& disp,
                                                 uint64_t line, uint64_t col, std::string_view key,
                                                 std::string_view value, int found) {
        if (found == 0)
            finding(SW_SEVERITY_WARNING, "dangling_reference", from, disp, line, col, std::string(key),
                    std::string(from) + " '" + std::string(key) + "': " + c.name + " '" + std::string(value) + "' is not in " + c.refers_to);
        else
            finding(SW_SEVERITY_WARNING, "reference_to_deleted", from, disp, line, col, std::string(key),
                    std::string(from) + " '" + std::string(key) + "': " + c.name + " '" + std::string(value) + "' is marked tobedeleted");
    }

    static uint16_t entity_index(const std::string& name) {
        for (size_t i = 0; i < entities().size(); ++i)
            if (entities()[i].name == name) return static_cast<uint16_t>(i);
        return 0;
    }

    struct role_info { std::string primary_role, any_role, orgs; };

    void remember_role(const std::vector<std::string_view>& v) {
        // values: dateLastModified, userSourcedId, roleType, role, beginDate, endDate, orgSourcedId, ...
        auto& ri = roles_[std::string(v[1])];
        if (v[2] == "primary" && ri.primary_role.empty()) ri.primary_role = v[3];
        if (ri.any_role.empty()) ri.any_role = v[3];
        if (!v[6].empty() && ("," + ri.orgs + ",").find("," + std::string(v[6]) + ",") == std::string::npos)
            ri.orgs += (ri.orgs.empty() ? "" : ",") + std::string(v[6]);
    }

    // OneRoster 1.2 keeps role and org membership in roles.csv; the contract's
    // users carry them, as in 1.1.
    void fill_roles(std::string_view key, std::vector<std::string_view>& values) {
        auto it = roles_.find(std::string(key));
        if (it == roles_.end()) return;
        const size_t org_slot = 2, role_slot = 3;  // 1 + index in the users spec
        if (values[role_slot].empty())
            values[role_slot] = it->second.primary_role.empty() ? it->second.any_role : it->second.primary_role;
        if (values[org_slot].empty()) values[org_slot] = it->second.orgs;
    }

    void check_pending() {
        for (auto& p : pending_) {
            const entity_spec& from = entities()[p.from_entity];
            const column_spec& c = from.columns[p.column - 1];
            verify_ref(from.name, c, std::string(from.name) + ".csv", p.line, p.col, p.key, p.value, data_[c.refers_to]);
        }
        pending_.clear();
    }

    std::string path_;
    source_files::options files_options_;
    std::unique_ptr<source_files> files_;  // opened by the constructor, read by extract
    std::map<std::string, std::vector<std::string>> extensions_;  // entity -> extension columns
    sdk::contract_builder builder_;
    const sw_contract* contract_ = nullptr;
    bool has_manifest_ = false;
    std::string version_ = "1.1";
    std::map<std::string, std::string> manifest_modes_;
    std::map<std::string, entity_data> data_;
    std::map<std::string, size_t> counts_;
    std::vector<pending_ref> pending_;
    // Of the file being read, by column: the entity it refers to, and
    // whether that is its own (checked once the file is read).
    std::vector<std::pair<entity_data*, bool>> ref_to_;
    std::unordered_map<std::string, role_info> roles_;
    std::set<std::string> unchecked_;
};

}  // namespace
}  // namespace syncwarden::oneroster

SW_CONNECTOR(syncwarden::oneroster::oneroster_csv, "oneroster-csv", "1.0.0", SW_CAP_SOURCE,
             "OneRoster 1.1/1.2 CSV export, from a folder or a zip")
