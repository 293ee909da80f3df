#include <syncwarden/kernel/digest.hpp>
#include <syncwarden/kernel/plan_file.hpp>
#include <syncwarden/kernel/text.hpp>

#include <cstring>
#include <vector>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace syncwarden::kernel {
namespace {

constexpr char k_magic[8] = {'S', 'W', 'P', 'L', 'A', 'N', '0', '2'};

// Bounds-checked reads from the mapped file. A plan whose digest matches was
// written by this kernel, but a reader that trusts its input is one bug away
// from reading past the map.
struct cursor {
    const char* p;
    const char* end;
    bool ok = true;
    template <class T>
    T get() {
        T v{};
        if (static_cast<size_t>(end - p) < sizeof v) {
            ok = false;
            return v;
        }
        std::memcpy(&v, p, sizeof v);
        p += sizeof v;
        return v;
    }
    uint64_t varint() {
        uint64_t v = 0;
        for (int shift = 0; shift < 64; shift += 7) {
            if (p == end) break;
            const auto b = static_cast<unsigned char>(*p++);
            v |= static_cast<uint64_t>(b & 0x7f) << shift;
            if (!(b & 0x80)) return v;
        }
        ok = false;
        return 0;
    }
    std::string_view raw(size_t n) {
        if (static_cast<size_t>(end - p) < n) {
            ok = false;
            return {};
        }
        std::string_view s(p, n);
        p += n;
        return s;
    }
    std::string_view bytes() {
        const uint64_t n = varint();
        if (!ok || static_cast<size_t>(end - p) < n) {
            ok = false;
            return {};
        }
        std::string_view s(p, n);
        p += n;
        return s;
    }
};

Result<plan_header> parse_header(std::string_view text) {
    try {
        auto j = nlohmann::json::parse(text);
        plan_header h;
        h.job = j.at("job");
        h.run_id = j.at("run_id");
        h.created_at = j.at("created_at");
        const auto& t = j.at("target");
        h.target = {t.at("connector"), t.at("version"), t.at("build_id"), t.at("settings"), t.at("base_dir")};
        h.batch_size = j.at("batch_size");
        if (j.contains("state_token")) h.state_token = j["state_token"].get<std::string>();
        for (auto& e : j.at("entities"))
            h.entities.push_back({e.at("name"), e.at("key_name"), e.at("fields").get<std::vector<std::string>>(),
                                  e.at("changes"), e.at("creates"), e.at("updates"), e.at("deletes"),
                                  e.value("deactivates", uint64_t{0}), e.value("adopts", uint64_t{0})});
        if (j.contains("sections")) {
            uint64_t total = 0;
            for (auto& sec : j["sections"]) {
                const std::string name = sec.at("entity");
                size_t i = 0;
                while (i < h.entities.size() && h.entities[i].name != name) ++i;
                if (i == h.entities.size()) throw std::runtime_error("section of unknown entity '" + name + "'");
                h.sections.push_back({i, sec.at("part") == "deletes", sec.at("changes")});
                total += h.sections.back().changes;
            }
            if (total != h.total_changes()) throw std::runtime_error("its sections do not add up to its changes");
        }
        return h;
    } catch (const std::exception& e) {
        return Status::error(error_kind::store, std::string("its header is not a plan header: ") + e.what());
    }
}

}  // namespace

plan_reader::~plan_reader() {
    if (data_) ::munmap(const_cast<char*>(data_), size_);
}

Result<std::unique_ptr<plan_reader>> plan_reader::open(const fs::path& file, const std::string& expected_digest) {
    auto refuse = [&](const std::string& why) {
        return Status::error(error_kind::store, "the plan " + file.string() + " " + why);
    };
    std::unique_ptr<plan_reader> r(new plan_reader());
    r->file_ = file;
    int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return refuse("cannot be opened: " + std::string(std::strerror(errno)) + "; make a new plan");
    struct stat st {};
    if (::fstat(fd, &st) != 0 || st.st_size < static_cast<off_t>(sizeof k_magic)) {
        ::close(fd);
        return refuse("is empty or truncated; make a new plan");
    }
    r->size_ = static_cast<size_t>(st.st_size);
    // The digest is checked with plain reads, so that checking an 8M-change
    // plan does not make it all resident; the map is read once, in order,
    // and its pages are given back behind the reader (for_each_batch).
    sha256 h;
    {
        std::vector<char> buf(1 << 20);
        for (off_t at = 0; at < st.st_size;) {
            const ssize_t n = ::pread(fd, buf.data(), buf.size(), at);
            if (n <= 0) {
                ::close(fd);
                return refuse("cannot be read: " + std::string(n < 0 ? std::strerror(errno) : "it is shorter than its size"));
            }
            h.update(buf.data(), static_cast<size_t>(n));
            at += n;
        }
    }
    const std::string digest = h.hex();
    void* m = ::mmap(nullptr, r->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    ::close(fd);
    if (m == MAP_FAILED) return refuse("cannot be mapped: " + std::string(std::strerror(errno)));
    r->data_ = static_cast<const char*>(m);
    ::madvise(m, r->size_, MADV_SEQUENTIAL);
    if (digest != expected_digest)
        return refuse("does not match its digest (sha256 " + digest.substr(0, 16) + ", the run store recorded " +
                      expected_digest.substr(0, 16) + "): it was changed or damaged after it was made; " +
                      "nothing was applied. Make a new plan");
    if (std::memcmp(r->data_, k_magic, sizeof k_magic) != 0) return refuse("is not a Syncwarden plan file");
    cursor c{r->data_ + sizeof k_magic, r->data_ + r->size_};
    auto text = c.bytes();
    if (!c.ok) return refuse("is truncated in its header");
    auto hdr = parse_header(text);
    if (!hdr) return refuse(hdr.status().message());
    r->header_ = std::move(*hdr);
    r->body_ = static_cast<size_t>(c.p - r->data_);
    return r;
}

void plan_reader::release_before(size_t offset) const {
    static const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
    const size_t end = offset / page * page;
    if (end <= released_ + (16u << 20)) return;  // in steps of at least 16 MiB
    ::madvise(const_cast<char*>(data_) + released_, end - released_, MADV_DONTNEED);
    released_ = end;
}

Status plan_reader::for_each_batch(size_t batch_size, const batch_fn& fn) const {
    if (batch_size == 0) batch_size = 1;
    cursor c{data_ + body_, data_ + size_};
    std::vector<sw_change> changes;
    std::vector<std::vector<sw_str>> values;
    std::vector<std::vector<uint32_t>> changed;
    std::vector<char> ids;  // the batch's content ids as hex text
    static const char* hex = "0123456789abcdef";
    uint64_t seq = 0;
    for (auto& sec : header_.apply_sections()) {
        const auto& e = header_.entities[sec.entity];
        const size_t nf = e.fields.size();
        uint64_t left = sec.changes;
        while (left > 0) {
            const size_t n = static_cast<size_t>(std::min<uint64_t>(left, batch_size));
            changes.resize(n);
            values.resize(n);
            changed.resize(n);
            ids.resize(n * 24);
            flags_.assign(n, 0);
            adopts_.assign(n, {});
            for (size_t k = 0; k < n; ++k) {
                auto kind = c.get<uint8_t>();
                if (kind == (SW_CHANGE_UPDATE | k_deactivate_bit)) {
                    kind = SW_CHANGE_UPDATE;
                    flags_[k] = 1;
                }
                auto raw_id = c.raw(12);
                char* id = ids.data() + k * 24;
                for (size_t i = 0; i < raw_id.size(); ++i) {
                    id[2 * i] = hex[static_cast<unsigned char>(raw_id[i]) >> 4];
                    id[2 * i + 1] = hex[static_cast<unsigned char>(raw_id[i]) & 15];
                }
                auto key = c.bytes();
                values[k].resize(nf);
                for (size_t f = 0; f < nf; ++f) {
                    values[k][f] = value_out(c.bytes());
                }
                changed[k].clear();
                if (kind == SW_CHANGE_CREATE)
                    for (uint32_t f = 0; f < nf; ++f) changed[k].push_back(f);
                else if (kind == SW_CHANGE_UPDATE || kind == SW_CHANGE_ADOPT)
                    for (uint64_t i = 0, nc = c.varint(); i < nc && c.ok; ++i) {
                        const uint64_t f = c.varint();
                        if (f >= nf) c.ok = false;
                        changed[k].push_back(static_cast<uint32_t>(f));
                    }
                if (kind == SW_CHANGE_ADOPT) adopts_[k] = c.bytes();
                // An ordered plan keeps deletes in their own sections.
                if (!header_.sections.empty() && (kind == SW_CHANGE_DELETE) != sec.deletes) c.ok = false;
                if (!c.ok || kind > SW_CHANGE_ADOPT)
                    return Status::error(error_kind::store, "the plan " + file_.string() + " is malformed at change " +
                                                                std::to_string(seq + k + 1) + "; make a new plan");
                changes[k] = {{id, 24}, kind, {key.data(), key.size()}, values[k].data(), nf, changed[k].data(),
                              changed[k].size()};
            }
            sw_change_batch b{sizeof(sw_change_batch), {e.name.data(), e.name.size()}, changes.data(), n, 1, nullptr};
            if (auto s = fn(e, b, seq); !s) return s;
            release_before(static_cast<size_t>(c.p - data_));
            seq += n;
            left -= n;
        }
    }
    return Status::ok();
}

}  // namespace syncwarden::kernel
