// Vendor roster drop folder: one CSV file per entity in a layout the job
// declares. The current state is what was last delivered, read back from the
// folder; its state token is the SHA-256 of those files. Apply collects the
// changes (their rows in memory, 16 bytes of bookkeeping each; the changes
// log spooled to an unnamed file in $TMPDIR); commit checks, under the
// folder's lock, that the files are still the ones the token describes, then
// delivers complete new files plus a changes file all-or-nothing
// (delivery.hpp).
#include <csv.hpp>
#include <delivery.hpp>
#include <settings.hpp>
#include <mapped_file.hpp>
#include <view_batch.hpp>
#include <syncwarden/connector.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <optional>

#include <fcntl.h>
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

// The changes log, spooled to a file while changes arrive: a first delivery
// of 8M records writes about 700 MB of it, which need not stay in memory
// until commit. The file has no name until commit, so nothing is left
// behind, whatever happens. Where the delivery folder's file system has
// unnamed files (O_TMPFILE: ext4, xfs, btrfs, tmpfs), it is made in the
// folder (created, empty, if it is not there yet), starting with the header
// row, and at commit it is given the delivery's temp name: written once.
// Elsewhere it lives in $TMPDIR (else /tmp) and is copied into the delivery
// at commit.
class spool {
public:
    spool() = default;
    spool(const spool&) = delete;
    spool& operator=(const spool&) = delete;
    ~spool() { clear(); }

    // `header`: the first row, written first when the spool is the
    // delivered file itself.
    void write(std::string_view s, const std::filesystem::path& folder, std::string_view header) {
        if (!f_) open(folder, header);
        if (std::fwrite(s.data(), 1, s.size(), f_) != s.size())
            throw error(SW_PERMANENT, "io", "cannot write the changes log's spool file in " + dir_ + ": " +
                                                std::strerror(errno) + "; make room there" +
                                                (in_folder_ ? "" : " or set TMPDIR"));
    }
    bool started() const { return f_ != nullptr; }  // something was spooled
    bool in_folder() const { return in_folder_; }
    // In the folder: appends `tail`, makes the file durable and names it
    // `path` (the delivery's temp name, under the folder's lock). False when
    // the name cannot be given (no /proc); then replay() still can.
    bool finish_as(std::string_view tail, const std::filesystem::path& path) {
        if (std::fwrite(tail.data(), 1, tail.size(), f_) != tail.size() || std::fflush(f_) != 0 ||
            ::fsync(::fileno(f_)) != 0)
            throw error(SW_PERMANENT, "io", "cannot write the changes log in " + dir_ + ": " +
                                                std::strerror(errno) + "; make room there");
        ::unlink(path.c_str());  // a leftover of this process's pid (recover() removed any other)
        const std::string self = "/proc/self/fd/" + std::to_string(::fileno(f_));
        return ::linkat(AT_FDCWD, self.c_str(), AT_FDCWD, path.c_str(), AT_SYMLINK_FOLLOW) == 0;
    }
    // Hands what was written to `out`, in pieces, in order (without the
    // header row and the tail an in-folder spool holds).
    template <class F>
    void replay(F&& out) {
        if (!f_) return;
        if (std::fflush(f_) != 0 || std::fseek(f_, static_cast<long>(header_size_), SEEK_SET) != 0)
            throw error(SW_PERMANENT, "io", "cannot read back the changes log's spool file: " +
                                                std::string(std::strerror(errno)));
        std::string buf(size_t(1) << 20, '\0');
        size_t left = written_ - header_size_;
        for (size_t n; left && (n = std::fread(buf.data(), 1, std::min(buf.size(), left), f_)) > 0; left -= n)
            out(std::string_view(buf.data(), n));
        if (std::ferror(f_))
            throw error(SW_PERMANENT, "io", "cannot read back the changes log's spool file: " +
                                                std::string(std::strerror(errno)));
    }
    void clear() {
        if (f_) std::fclose(f_);
        f_ = nullptr;
        in_folder_ = false;
        header_size_ = written_ = 0;
    }
    void count(size_t n) { written_ += n; }

private:
    void open(const std::filesystem::path& folder, std::string_view header) {
        std::error_code ec;
        int fd = -1;
        // The folder of a first delivery is made now, empty (an abort
        // leaves it so), for the log to be written where it is delivered.
        fs::create_directories(folder, ec);
        if (fs::is_directory(folder, ec)) {
            fd = ::open(folder.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0666);
            if (fd >= 0) {
                dir_ = folder.string();
                in_folder_ = true;
            }
        }
        if (fd < 0) {
            const char* t = std::getenv("TMPDIR");
            dir_ = t && *t ? t : "/tmp";
            std::string name = dir_ + "/.vendor-csv-changes-XXXXXX";
            fd = ::mkstemp(name.data());
            if (fd < 0)
                throw error(SW_PERMANENT, "io", "cannot create the changes log's spool file in " + dir_ + ": " +
                                                    std::strerror(errno) + "; set TMPDIR to a writable folder");
            ::unlink(name.c_str());
        }
        f_ = ::fdopen(fd, "w+b");
        if (!f_) {
            ::close(fd);
            throw error(SW_PERMANENT, "io", "cannot open the changes log's spool file: " +
                                                std::string(std::strerror(errno)));
        }
        if (in_folder_) {
            if (std::fwrite(header.data(), 1, header.size(), f_) != header.size())
                throw error(SW_PERMANENT, "io", "cannot write the changes log in " + dir_ + ": " +
                                                    std::strerror(errno) + "; make room there");
            header_size_ = written_ = header.size();
        }
    }
    std::FILE* f_ = nullptr;
    std::string dir_;
    bool in_folder_ = false;
    size_t header_size_ = 0, written_ = 0;
};

class vendor_csv final : public sdk::connector {
public:
    vendor_csv(const sdk::host& h, const sw_create_args& args) : connector(h, args) {
        const nlohmann::json s = csv::parse_settings(settings_json());
        auto fail = [](const std::string& path, const std::string& what) {
            throw error(SW_CONFIG, "settings", "target settings" + path + ": " + what);
        };
        if (!s.contains("folder") || !s["folder"].is_string() || s["folder"].get<std::string>().empty())
            fail(".folder", "required: the folder the vendor picks files up from");
        fs::path folder = s["folder"].get<std::string>();
        folder_ = folder.is_absolute() ? folder : fs::path(base_dir()) / folder;
        changes_file_ = s.value("changes_file", "changes.csv");
        if (auto why = bad_file_name(changes_file_); !why.empty()) fail(".changes_file", why);
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
            if (auto why = bad_file_name(l.file); !why.empty()) fail(p + ".file", why);
            if (l.file == changes_file_) fail(p + ".file", "'" + l.file + "' is the changes file's name");
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

    static const char* settings_schema() {
        return R"({
  "$schema": "http://json-schema.org/draft-07/schema#",
  "title": "vendor-csv settings",
  "type": "object",
  "required": ["folder", "files"],
  "additionalProperties": false,
  "properties": {
    "folder": {"type": "string", "minLength": 1, "x-syncwarden-grant": "write-path",
               "description": "the folder the vendor picks files up from; relative to the job file"},
    "changes_file": {"type": "string", "minLength": 1, "pattern": "^[^./][^/]*$", "default": "changes.csv",
                     "description": "a plain file name (no '/', not starting with '.') for the file listing each run's changes"},
    "files": {"type": "array", "minItems": 1, "description": "one CSV file per target entity",
      "items": {"type": "object", "required": ["entity", "file", "key", "columns"], "additionalProperties": false,
        "properties": {
          "entity": {"type": "string", "minLength": 1},
          "file": {"type": "string", "minLength": 1, "pattern": "^[^./][^/]*$",
                   "description": "a plain file name in the folder: no '/', not starting with '.'"},
          "key": {"type": "string", "minLength": 1, "description": "the column that identifies a row"},
          "columns": {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}},
          "required": {"type": "array", "items": {"type": "string", "minLength": 1},
                       "description": "columns that must never be empty"}}}}}
})";
    }

    const sw_contract& contract() override { return *contract_; }

    // Streams each delivered file back as records; nothing is kept. The
    // bytes are hashed as they are parsed, for the state token.
    void read_state(const std::vector<std::string>& entities) override {
        auto lock = lock_existing();
        csv::digest token;
        for (auto& l : layouts_) {
            if (std::find(entities.begin(), entities.end(), l.entity) == entities.end()) continue;
            fs::path p = folder_ / l.file;
            std::error_code ec;
            if (!begin_token(token, l, p)) continue;  // nothing delivered yet
            csv::mapped_file file = open(p);
            size_t hashed = 0;
            auto hash_to = [&](size_t pos) {
                token.update(file.data().substr(hashed, pos - hashed));
                hashed = pos;
            };
            csv::reader r(file.data());
            std::vector<csv::field> row;
            if (!check_header(r, row, l, p)) {
                hash_to(file.data().size());
                continue;
            }
            csv::view_batch out(host_api(), l.entity, SW_MODE_BULK, file.data());
            std::vector<std::string_view> values(l.fields.size());
            while (r.next(row)) {
                if (row.size() != l.columns.size())
                    bad_file(p, r.row_line(), 1, "row has " + std::to_string(row.size()) + " fields, expected " +
                                                     std::to_string(l.columns.size()));
                for (size_t c = 0, f = 0; c < row.size(); ++c)
                    if (c != l.key_pos) values[f++] = row[c].text;
                if (out.add(row[l.key_pos].text, values, SW_RECORD_ACTIVE)) {
                    hash_to(r.position());
                    file.release_before(r.position());
                }
            }
            if (!r.error().empty()) bad_file(p, r.error_line(), r.error_column(), r.error());
            out.flush();
            hash_to(file.data().size());
        }
        remember_token(entities, token.hex());
    }

    void state_token(const std::vector<std::string>& entities) override {
        auto lock = lock_existing();
        remember_token(entities, current_token(entities));
    }

    // Collects the changes; commit() writes them.
    void apply(const sw_change_batch& batch) override {
        std::string entity(sdk::from_sw(batch.entity));
        auto* layout = find_layout(entity);
        if (!layout) throw error(SW_SCHEMA, "entity", "no file layout for entity '" + entity + "'");
        auto& pend = pending_[entity];
        for (size_t i = 0; i < batch.change_count; ++i) {
            const sw_change& c = batch.changes[i];
            if (c.value_count != layout->fields.size() || c.kind > SW_CHANGE_DELETE) {
                host_api().change_result(i, SW_SCHEMA, "layout", "wrong number of values or unknown kind");
                continue;
            }
            pend.add(c, *layout);
            std::string fields;
            for (size_t k = 0; k < c.changed_count; ++k)
                if (c.changed_fields[k] < layout->fields.size())
                    fields += (fields.empty() ? "" : " ") + layout->fields[c.changed_fields[k]];
            static const char* kinds[] = {"create", "update", "delete"};
            csv::append_escaped(delta_, sdk::from_sw(c.id));
            delta_ += ',';
            csv::append_escaped(delta_, entity);
            delta_ += ',';
            delta_ += kinds[c.kind];
            delta_ += ',';
            csv::append_escaped(delta_, sdk::from_sw(c.key));
            delta_ += ',';
            csv::append_escaped(delta_, fields);
            delta_ += "\r\n";
            if (delta_.size() >= k_spool_chunk) {
                spool_.write(delta_, folder_, changes_header());
                spool_.count(delta_.size());
                delta_.clear();
            }
            host_api().change_result(i, SW_OK, "", "");
        }
    }

    // Under the folder's lock: refuses when the files are no longer the ones
    // the last state token described, then writes every touched file
    // completely and delivers them all-or-nothing.
    // Nothing reaches the folder before commit: dropping the pending rows is
    // the whole abort.
    void abort() override {
        pending_.clear();
        delta_.clear();
        spool_.clear();
    }

    // The folder's real path: two jobs that deliver to one folder (by
    // different paths) never apply at the same time.
    std::string system_id() override {
        std::error_code ec;
        auto real = fs::weakly_canonical(folder_, ec);
        return "vendor-csv folder " + (ec ? folder_ : real).string();
    }

    void commit() override {
        if (pending_.empty()) return;
        std::error_code ec;
        fs::create_directories(folder_, ec);
        if (ec) throw error(SW_PERMANENT, "io", "cannot create " + folder_.string() + ": " + ec.message());
        csv::folder_lock lock(folder_);
        log_recovery(csv::recover(folder_));
        if (token_ && current_token(token_entities_) != *token_)
            throw error(SW_PERMANENT, "state_changed",
                        folder_.string() + ": the delivered files changed after this run read them (another run, "
                                           "or someone else, wrote to the folder); nothing was delivered. Run the "
                                           "job again to plan against what the folder holds now");
        std::vector<std::pair<fs::path, std::string>> files;
        for (auto& l : layouts_) {
            auto it = pending_.find(l.entity);
            if (it == pending_.end()) continue;
            files.emplace_back(write_merged(l, it->second), l.file);
            if (files.size() == 1) csv::crash_point(1);
        }
        // The changes log spooled in the folder becomes the delivery's temp
        // file as it is; else it is written from the spool.
        const fs::path spooled = csv::temp_path(folder_, changes_file_);
        if (spool_.started() && spool_.in_folder() && spool_.finish_as(delta_, spooled)) {
            files.emplace_back(spooled, changes_file_);
        } else {
            csv::temp_writer changes(folder_, changes_file_);
            changes.write(changes_header());
            spool_.replay([&](std::string_view piece) { changes.write(piece); });
            changes.write(delta_);
            files.emplace_back(changes.finish(), changes_file_);
        }
        csv::publish(folder_, files);
        pending_.clear();
        delta_.clear();
        spool_.clear();
        token_.reset();
    }

private:
    // The changes to one file, kept as text in one buffer.
    struct pending_file {
        std::string text;  // per change: its key, then the whole new row (CSV, with CRLF) or nothing for delete
        // 16 bytes a change: the row follows the key in `text`.
        struct item {
            uint64_t key_at;
            uint32_t key_len;
            uint32_t row_len : 30;
            uint32_t kind : 2;
        };
        std::vector<item> items;
        void add(const sw_change& c, const file_layout& l) {
            if (c.key.len > UINT32_MAX) throw error(SW_SCHEMA, "key", "a key longer than 4 GiB");
            item it{text.size(), static_cast<uint32_t>(c.key.len), 0, static_cast<uint32_t>(c.kind)};
            text.append(c.key.ptr, c.key.len);
            const size_t row_at = text.size();
            if (c.kind != SW_CHANGE_DELETE) {
                for (size_t col = 0, f = 0; col < l.columns.size(); ++col) {
                    if (col) text += ',';
                    csv::append_escaped(text, col == l.key_pos ? sdk::from_sw(c.key) : sdk::from_sw(c.values[f++]));
                }
                text += "\r\n";
            }
            if (text.size() - row_at >= (size_t(1) << 30))
                throw error(SW_SCHEMA, "row", "the row of '" + std::string(sdk::from_sw(c.key)) + "' is 1 GiB or more");
            it.row_len = static_cast<uint32_t>(text.size() - row_at) & ((1u << 30) - 1);
            items.push_back(it);
        }
        std::string_view key(const item& i) const { return {text.data() + i.key_at, i.key_len}; }
        std::string_view row(const item& i) const { return {text.data() + i.key_at + i.key_len, i.row_len}; }
    };

    static csv::mapped_file open(const fs::path& p) {
        try {
            return csv::mapped_file::open(p.string());
        } catch (const std::exception& e) {
            throw error(SW_PERMANENT, "io", e.what());
        }
    }

    bool check_header(csv::reader& r, std::vector<csv::field>& row, const file_layout& l, const fs::path& p) {
        if (!r.next(row)) {
            if (!r.error().empty()) bad_file(p, r.error_line(), r.error_column(), r.error());
            return false;
        }
        bool same = row.size() == l.columns.size();
        for (size_t i = 0; same && i < row.size(); ++i) same = row[i].text == l.columns[i];
        if (!same)
            throw error(SW_SCHEMA, "layout",
                        p.string() + ":1:1: the header differs from the job's layout for '" + l.entity +
                            "'; the layout changed since the last delivery. Move the old file away to "
                            "deliver everything afresh");
        return true;
    }

    // The old file's rows with the changes applied, in key order.
    fs::path write_merged(const file_layout& l, pending_file& pf) {
        struct old_row { std::string_view key, raw; };
        std::vector<old_row> old;
        std::deque<std::string> escaped_keys;  // keys that were quoted with "" live in the reader's scratch
        csv::mapped_file file;
        fs::path p = folder_ / l.file;
        std::error_code ec;
        if (fs::exists(p, ec)) {
            file = open(p);
            csv::reader r(file.data());
            std::vector<csv::field> row;
            if (check_header(r, row, l, p)) {
                size_t start = r.position();
                while (r.next(row)) {
                    if (row.size() != l.columns.size()) bad_file(p, r.row_line(), 1, "unexpected number of fields");
                    std::string_view key = row[l.key_pos].text, data = file.data();
                    if (key.data() < data.data() || key.data() + key.size() > data.data() + data.size())
                        key = escaped_keys.emplace_back(key);
                    old.push_back({key, data.substr(start, r.position() - start)});
                    start = r.position();
                }
                if (!r.error().empty()) bad_file(p, r.error_line(), r.error_column(), r.error());
            }
        }
        std::stable_sort(old.begin(), old.end(), [](auto& a, auto& b) { return a.key < b.key; });
        // The last change to a key wins.
        std::stable_sort(pf.items.begin(), pf.items.end(), [&](auto& a, auto& b) { return pf.key(a) < pf.key(b); });
        csv::temp_writer out(folder_, l.file);
        out.write(csv::join_row(l.columns));
        auto put = [&](std::string_view row) {
            out.write(row);
            if (!row.empty() && row.back() != '\n') out.write("\r\n");
        };
        size_t i = 0, j = 0;
        while (i < old.size() || j < pf.items.size()) {
            size_t jn = j;
            while (jn + 1 < pf.items.size() && pf.key(pf.items[jn + 1]) == pf.key(pf.items[j])) ++jn;
            int cmp = i == old.size() ? 1 : j == pf.items.size() ? -1 : old[i].key.compare(pf.key(pf.items[j]));
            if (cmp < 0) {
                put(old[i++].raw);
                continue;
            }
            if (cmp == 0) ++i;
            const auto& last = pf.items[jn];
            if (last.kind != SW_CHANGE_DELETE) put(pf.row(last));
            j = jn + 1;
        }
        return out.finish();
    }

    [[noreturn]] static void bad_file(const fs::path& p, uint64_t line, uint64_t col, const std::string& msg) {
        throw error(SW_SCHEMA, "csv", p.string() + ":" + std::to_string(line) + ":" + std::to_string(col) + ": " + msg +
                                          "; the delivered file is damaged, move it away to deliver afresh");
    }

    // A plain file name in the folder: no separators, not "." or "..", not
    // hidden (dot files are the connector's own), not empty.
    static std::string bad_file_name(const std::string& name) {
        if (name.empty()) return "must not be empty";
        if (name.find('/') != std::string::npos || name.find('\\') != std::string::npos)
            return "'" + name + "' must be a plain file name, without '/' or '\\'";
        if (name[0] == '.') return "'" + name + "' must not start with '.'";
        return "";
    }

    // The folder's lock while it is read, after repairing an interrupted
    // delivery; nothing when nothing was ever delivered (no folder, or an
    // empty one, as the kernel makes a granted folder for a confined worker:
    // left empty, it is removed again).
    std::unique_ptr<csv::folder_lock> lock_existing() {
        std::error_code ec;
        if (!fs::is_directory(folder_, ec) || fs::is_empty(folder_, ec)) return nullptr;
        auto lock = std::make_unique<csv::folder_lock>(folder_);
        log_recovery(csv::recover(folder_));
        return lock;
    }

    void log_recovery(const std::string& did) const {
        if (!did.empty()) host_api().log(SW_LOG_WARN, folder_.string() + ": " + did);
    }

    // Each file's name, then "absent" or its bytes.
    bool begin_token(csv::digest& token, const file_layout& l, const fs::path& p) const {
        token.update(l.file);
        token.update(std::string_view("\0", 1));
        std::error_code ec;
        const bool present = fs::exists(p, ec);
        token.update(present ? "present" : "absent");
        return present;
    }

    std::string current_token(const std::vector<std::string>& entities) const {
        csv::digest token;
        for (auto& l : layouts_) {
            if (std::find(entities.begin(), entities.end(), l.entity) == entities.end()) continue;
            fs::path p = folder_ / l.file;
            if (!begin_token(token, l, p)) continue;
            csv::mapped_file file = open(p);
            token.update(file.data());
        }
        return token.hex();
    }

    void remember_token(const std::vector<std::string>& entities, std::string token) {
        token_entities_ = entities;
        token_ = std::move(token);
        host_api().state_token(*token_);
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
    std::map<std::string, pending_file> pending_;
    std::string delta_;  // the changes log's rows not yet spooled
    spool spool_;         // and those that were
    static std::string changes_header() { return csv::join_row({"change_id", "entity", "kind", "key", "changed_fields"}); }
    static constexpr size_t k_spool_chunk = size_t(1) << 20;
    std::optional<std::string> token_;         // the state last read or reported
    std::vector<std::string> token_entities_;  // the entities it covers
};

}  // namespace
}  // namespace syncwarden::vendor

SW_CONNECTOR(syncwarden::vendor::vendor_csv, "vendor-csv", "1.2.0", SW_CAP_TARGET | SW_CAP_STATE_TOKEN | SW_CAP_TRANSACTIONAL,
             "a vendor's roster drop folder: one CSV file per entity, written atomically")
