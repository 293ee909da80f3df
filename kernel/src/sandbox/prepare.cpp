// The kernel's side of a worker's sandbox: the identity it runs as, the
// folders and files its grants name, made ready for that identity, and its
// private temporary folder.
#include <syncwarden/detail/hash_bytes.hpp>
#include <syncwarden/kernel/config.hpp>
#include <syncwarden/kernel/pii.hpp>
#include <syncwarden/kernel/sandbox.hpp>

#include <acl/libacl.h>
#include <sys/acl.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <set>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace fs = std::filesystem;
using nlohmann::json;

namespace syncwarden::kernel {
namespace {

Status fail(const std::string& what) {
    return Status::error(error_kind::config, "sandbox: " + what).with_category("sandbox_unavailable");
}

// The id of a job's worker in a role, the same at every run, so that what
// it wrote in its folders the last time is its own the next time.
Result<uint32_t> identity_of(const sandbox_config& cfg, const fs::path& data_dir, const std::string& job,
                             const std::string& role) {
    if (job.empty()) return cfg.first_id;
    const fs::path dir = data_dir / "sandbox";
    std::error_code ec;
    fs::create_directories(dir, ec);
    const int lock = ::open((dir / "ids.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock < 0) return fail("cannot open " + (dir / "ids.lock").string() + ": " + std::strerror(errno));
    ::flock(lock, LOCK_EX);
    struct unlock {
        int fd;
        ~unlock() { ::close(fd); }
    } u{lock};
    const fs::path file = dir / "ids.json";
    json ids = json::object();
    if (fs::exists(file, ec)) {
        auto read = parse_json_file(file);
        if (!read || !read->is_object())
            return fail((read ? file.string() + ": not an object" : read.status().message()) +
                        "; the file is damaged: remove it (ids are given again) and run again");
        ids = std::move(*read);
    }
    const std::string key = job + " " + role;
    if (auto it = ids.find(key); it != ids.end() && it->is_number_unsigned()) return it->get<uint32_t>();
    std::set<uint32_t> used;
    for (auto& [k, v] : ids.items())
        if (v.is_number_unsigned()) used.insert(v.get<uint32_t>());
    const uint32_t span = cfg.id_count > 1 ? cfg.id_count - 1 : 1;
    const uint64_t h = syncwarden::detail::hash_bytes(key) >> 2;
    uint32_t id = 0;
    for (uint32_t i = 0; i < span && !id; ++i) {
        const uint32_t cand = cfg.first_id + 1 + static_cast<uint32_t>((h + i) % span);
        if (!used.count(cand)) id = cand;
    }
    if (!id) return fail("every id of sandbox.first_id .. + id_count is taken; widen sandbox.id_count");
    ids[key] = id;
    const fs::path tmp = dir / "ids.json.tmp";
    {
        std::ofstream out(tmp, std::ios::trunc);
        out << ids.dump(1) << "\n";
        if (!out) return fail("cannot write " + tmp.string());
    }
    fs::rename(tmp, file, ec);
    if (ec) return fail("cannot write " + file.string() + ": " + ec.message());
    return id;
}

// Whether `uid` (with its own gid, in no other group) may do `want` (rwx
// bits, as 4/2/1) by the mode bits alone.
bool mode_allows(const struct stat& st, uint32_t uid, unsigned want) {
    const unsigned bits = st.st_uid == uid ? (st.st_mode >> 6) & 7 : st.st_mode & 7;
    return (bits & want) == want;
}

// The named-user entry of `uid` in `acl`, if there is one.
bool find_user_entry(acl_t acl, uint32_t uid, acl_entry_t& out) {
    acl_entry_t e;
    for (int r = ::acl_get_entry(acl, ACL_FIRST_ENTRY, &e); r == 1; r = ::acl_get_entry(acl, ACL_NEXT_ENTRY, &e)) {
        acl_tag_t tag;
        if (::acl_get_tag_type(e, &tag) != 0 || tag != ACL_USER) continue;
        auto* q = static_cast<uid_t*>(::acl_get_qualifier(e));
        const bool mine = q && *q == uid;
        ::acl_free(q);
        if (mine) {
            out = e;
            return true;
        }
    }
    return false;
}

// Appends an entry for `uid` with `want` (rwx as 4/2/1) and a mask that
// lets it through.
bool add_user_entry(acl_t& acl, uint32_t uid, unsigned want) {
    acl_entry_t e;
    acl_permset_t ps;
    const uid_t q = uid;
    if (::acl_create_entry(&acl, &e) != 0 || ::acl_set_tag_type(e, ACL_USER) != 0 || ::acl_set_qualifier(e, &q) != 0 ||
        ::acl_get_permset(e, &ps) != 0)
        return false;
    ::acl_clear_perms(ps);
    if (want & 4) ::acl_add_perm(ps, ACL_READ);
    if (want & 2) ::acl_add_perm(ps, ACL_WRITE);
    if (want & 1) ::acl_add_perm(ps, ACL_EXECUTE);
    return ::acl_calc_mask(&acl) == 0;
}

// Gives `uid` `want` on `path` with a POSIX ACL entry, unless its mode or an
// entry already does.
Status give(const fs::path& path, uint32_t uid, unsigned want) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return Status::ok();
    if (mode_allows(st, uid, want)) return Status::ok();
    acl_t acl = ::acl_get_file(path.c_str(), ACL_TYPE_ACCESS);
    if (!acl) return fail("cannot read the ACL of " + path.string() + ": " + std::strerror(errno));
    struct freer {
        acl_t& a;
        ~freer() { ::acl_free(a); }
    } f{acl};
    if (acl_entry_t e; find_user_entry(acl, uid, e)) {
        acl_permset_t ps;
        ::acl_get_permset(e, &ps);
        const bool has = (!(want & 4) || ::acl_get_perm(ps, ACL_READ) == 1) &&
                         (!(want & 2) || ::acl_get_perm(ps, ACL_WRITE) == 1) &&
                         (!(want & 1) || ::acl_get_perm(ps, ACL_EXECUTE) == 1);
        if (has && (st.st_mode & 070) >> 3 == 7) return Status::ok();  // the mask lets it through
        ::acl_delete_entry(acl, e);
    }
    if (!add_user_entry(acl, uid, want) || ::acl_set_file(path.c_str(), ACL_TYPE_ACCESS, acl) != 0)
        return fail("cannot give uid " + std::to_string(uid) + " access to " + path.string() +
                    " (a POSIX ACL entry): " + std::strerror(errno) +
                    ". Give it yourself (setfacl -m u:" + std::to_string(uid) + ":" +
                    std::string(want & 4 ? "r" : "-") + (want & 2 ? "w" : "-") + (want & 1 ? "x" : "-") + " " +
                    path.string() + "), or use a file system with ACLs");
    return Status::ok();
}

// A default ACL entry on folder `dir`, so that files others make in it later
// (a test's, an operator's, whatever their umask) are the identity's too:
// for a write-file grant's folder, where the file is still to come.
Status give_default(const fs::path& dir, uint32_t uid, unsigned want) {
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return Status::ok();
    acl_t acl = ::acl_get_file(dir.c_str(), ACL_TYPE_DEFAULT);
    if (!acl) return fail("cannot read the default ACL of " + dir.string() + ": " + std::strerror(errno));
    struct freer {
        acl_t& a;
        ~freer() { ::acl_free(a); }
    } f{acl};
    acl_entry_t e;
    if (find_user_entry(acl, uid, e)) return Status::ok();
    const bool empty = ::acl_get_entry(acl, ACL_FIRST_ENTRY, &e) != 1;
    if (empty) {
        // The folder's own mode, as the start of its default ACL.
        ::acl_free(acl);
        acl = ::acl_from_mode(st.st_mode & 0777);
        if (!acl) return fail("cannot make a default ACL for " + dir.string());
    }
    if (!add_user_entry(acl, uid, want) || ::acl_set_file(dir.c_str(), ACL_TYPE_DEFAULT, acl) != 0)
        return fail("cannot set the default ACL of " + dir.string() + ": " + std::strerror(errno));
    return Status::ok();
}

// Search rights on every folder above `path` that the identity lacks.
Status give_way(const fs::path& path, uint32_t uid) {
    fs::path cur;
    for (auto part = path.begin(); part != path.end(); ++part) {
        cur /= *part;
        if (cur == path) break;
        if (auto s = give(cur, uid, 1); !s) return s;
    }
    return Status::ok();
}

// `dir` and everything in it: folders `dirs`, files `files` (rwx bits).
Status give_tree(const fs::path& dir, uint32_t uid, unsigned dirs, unsigned files) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) return give(dir, uid, files);
    if (auto s = give(dir, uid, dirs); !s) return s;
    for (auto it = fs::recursive_directory_iterator(dir, fs::directory_options::skip_permission_denied, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (it->is_symlink(ec)) continue;
        if (auto s = give(it->path(), uid, it->is_directory(ec) ? dirs : files); !s) return s;
    }
    return Status::ok();
}

bool within(const fs::path& p, const fs::path& dir) {
    auto a = p.begin();
    for (auto b = dir.begin(); b != dir.end(); ++b, ++a)
        if (a == p.end() || *a != *b) return false;
    return true;
}

fs::path real(const fs::path& p) {
    std::error_code ec;
    fs::path r = fs::weakly_canonical(p, ec);
    return ec ? p.lexically_normal() : r;
}

std::string tmp_base() {
    const char* base = std::getenv("TMPDIR");
    return base && *base ? base : "/tmp";
}

// A worker's private temporary folder; "" when it cannot be made.
std::string make_tmp(const std::string& role) {
    std::string tmpl = tmp_base() + "/syncwarden-" + (role.empty() ? "probe" : role) + "-XXXXXX";
    return ::mkdtemp(tmpl.data()) ? tmpl : std::string();
}

// prepare_sandbox's work; what it made so far is in `p` when it fails.
Status fill_sandbox(const sandbox_config& cfg, const fs::path& data_dir, const sandbox_request& req,
                    sandbox_policy& p) {
    p.enabled = true;
    p.off = req.layers_off;
    const bool own_ids = ::geteuid() == 0 && std::find(p.off.begin(), p.off.end(), "identity") == p.off.end();
    if (own_ids) {
        auto id = identity_of(cfg, data_dir, req.job, req.role);
        if (!id) return id.status();
        p.uid = p.gid = *id;
    }
    p.tmp = make_tmp(req.role);
    if (p.tmp.empty()) return fail("cannot make a temporary folder in " + tmp_base() + ": " + std::strerror(errno));
    if (own_ids) {
        if (::chown(p.tmp.c_str(), p.uid, p.gid) != 0)
            return fail("cannot hand " + p.tmp + " to uid " + std::to_string(p.uid));
        if (auto s = give_way(p.tmp, p.uid); !s) return s;
    }
    const fs::path data = real(data_dir);
    const fs::path drops = data / "drops";
    const mode_t mask = static_cast<mode_t>(pii::operator_umask());
    for (auto& g : req.grants) {
        if (g.k == grant::kind::endpoint) {
            p.network = true;
            if (std::find(p.ports.begin(), p.ports.end(), g.port) == p.ports.end()) p.ports.push_back(g.port);
            continue;
        }
        const fs::path path = real(g.value);
        if ((within(path, data) && !within(path, drops)) || within(data, path))
            return fail("the setting " + g.setting + " (" + to_string(g.k) + ") names " + path.string() +
                        ", which " + (within(data, path) ? "holds" : "is in") + " the kernel's data dir " +
                        data.string() + "; a connector never reaches the data dir (its drops/ folder excepted): "
                        "give it a path of its own");
        std::error_code ec;
        if (g.k == grant::kind::read_path) {
            p.read.push_back(path.string());
            if (own_ids) {
                if (auto s = give_way(path, p.uid); !s) return s;
                if (auto s = give_tree(path, p.uid, 5, 4); !s) return s;
            }
            continue;
        }
        const bool exists = fs::exists(path, ec);
        if (g.k == grant::kind::write_file && !exists) {
            // A file to be: Landlock can only name what exists, so the
            // worker may make files in its folder (not folders, not removals).
            const fs::path dir = path.parent_path();
            if (!fs::is_directory(dir, ec))
                return fail("the folder of " + path.string() + " (" + g.setting + ") does not exist; make it first");
            p.create_in.push_back(dir.string());
            if (own_ids) {
                if (auto s = give_way(dir, p.uid); !s) return s;
                if (auto s = give(dir, p.uid, 7); !s) return s;
                if (auto s = give_default(dir, p.uid, 6); !s) return s;
            }
            continue;
        }
        if (g.k == grant::kind::write_file || (exists && !fs::is_directory(path, ec))) {
            p.write_files.push_back(path.string());
            if (own_ids) {
                if (auto s = give_way(path, p.uid); !s) return s;
                if (auto s = give(path, p.uid, 6); !s) return s;
            }
            continue;
        }
        if (!exists) {
            // Made as the connector would have made it, then handed to it.
            fs::path made;
            for (fs::path cur = path; !cur.empty() && !fs::exists(cur, ec); cur = cur.parent_path()) made = cur;
            fs::create_directories(path, ec);
            if (ec) return fail("cannot create the folder " + path.string() + " (" + g.setting + "): " + ec.message());
            for (fs::path cur = path; !made.empty() && within(cur, made); cur = cur.parent_path()) {
                p.made.push_back(cur.string());
                ::chmod(cur.c_str(), 0777 & ~mask);
                if (own_ids && ::chown(cur.c_str(), p.uid, p.gid) != 0)
                    return fail("cannot hand " + cur.string() + " to uid " + std::to_string(p.uid));
                if (cur == made) break;
            }
        }
        p.write.push_back(path.string());
        if (own_ids) {
            if (auto s = give_way(path, p.uid); !s) return s;
            // No default ACL here: what the worker writes is its own and
            // takes the operator's umask, as a drop always has.
            if (auto s = give_tree(path, p.uid, 7, 6); !s) return s;
        }
    }
    if (!req.library.empty()) {
        const fs::path lib = real(req.library);
        p.library.push_back(lib.string());
        struct stat st {};
        // The worker opens it again through the descriptor the kernel gives
        // it: the file's own mode decides (a release is read-only anyway).
        if (::stat(lib.c_str(), &st) == 0 && (st.st_mode & 0444) != 0444) ::chmod(lib.c_str(), st.st_mode | 0444);
    }
    return Status::ok();
}

}  // namespace

Result<sandbox_policy> prepare_sandbox(const sandbox_config& cfg, const fs::path& data_dir, const sandbox_request& req) {
    sandbox_policy p;
    // A grant refused half-way leaves nothing made for the grants before it.
    if (auto s = fill_sandbox(cfg, data_dir, req, p); !s) {
        release_sandbox(p);
        return s;
    }
    return p;
}

Result<sandbox_policy> make_sandbox(const fs::path& data_dir, sandbox_request req) {
    const sandbox_config cfg = current_sandbox_config();
    auto off = check_sandbox_layers(cfg);
    if (!off) return off.status();
    req.layers_off = std::move(*off);
    return prepare_sandbox(cfg, data_dir, req);
}

void release_sandbox(const sandbox_policy& p) {
    std::error_code ec;
    if (!p.tmp.empty()) fs::remove_all(p.tmp, ec);
    // A folder made for a connector that wrote nothing in it goes again: a
    // run that delivered nothing leaves nothing behind.
    for (auto& dir : p.made) ::rmdir(dir.c_str());
}

}  // namespace syncwarden::kernel
