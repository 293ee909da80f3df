#include <delivery.hpp>

#include <syncwarden/connector.hpp>

#include <openssl/evp.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <sys/file.h>
#include <unistd.h>

namespace fs = std::filesystem;
using syncwarden::sdk::error;

namespace syncwarden::csv {
namespace {

constexpr const char* k_journal = ".syncwarden-journal";

std::string sys_error() { return std::strerror(errno); }

void sync_dir(const fs::path& folder) {
    int fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    ::fsync(fd);
    ::close(fd);
}

bool is_leftover(const std::string& name) {
    return name.size() > 1 && name[0] == '.' &&
           (name.find(".tmp-") != std::string::npos || name == std::string(k_journal) + ".tmp");
}

}  // namespace

void crash_point(int step) {
    static const int at = [] {
        const char* v = std::getenv("VENDOR_CSV_CRASH_AT");
        return v ? std::atoi(v) : 0;
    }();
    if (at == step) std::raise(SIGKILL);
}

folder_lock::folder_lock(const fs::path& folder) {
    auto p = folder / ".syncwarden.lock";
    fd_ = ::open(p.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) throw error(SW_PERMANENT, "io", "cannot open " + p.string() + ": " + sys_error());
    while (::flock(fd_, LOCK_EX) != 0)
        if (errno != EINTR) throw error(SW_PERMANENT, "io", "cannot lock " + p.string() + ": " + sys_error());
}

folder_lock::~folder_lock() {
    if (fd_ >= 0) ::close(fd_);  // releases the lock
}

std::string recover(const fs::path& folder) {
    std::string did;
    std::error_code ec;
    const fs::path journal = folder / k_journal;
    if (fs::exists(journal, ec)) {
        std::ifstream in(journal);
        std::string tmp, name;
        size_t n = 0;
        while (std::getline(in, tmp, '\t') && std::getline(in, name)) {
            if (name.empty() || name.find('/') != std::string::npos || tmp.find('/') != std::string::npos) continue;
            if (fs::exists(folder / tmp, ec)) {
                fs::rename(folder / tmp, folder / name, ec);
                if (ec) throw error(SW_PERMANENT, "io", "finishing the interrupted delivery in " + folder.string() +
                                                            ": cannot rename " + tmp + " to " + name + ": " + ec.message());
                ++n;
            }
        }
        sync_dir(folder);
        fs::remove(journal, ec);
        sync_dir(folder);
        did = "finished an interrupted delivery (" + std::to_string(n) + " files)";
    }
    size_t removed = 0;
    for (auto& e : fs::directory_iterator(folder, ec)) {
        const std::string name = e.path().filename().string();
        if (is_leftover(name) && fs::remove(e.path(), ec)) ++removed;
    }
    if (removed) did += (did.empty() ? "" : "; ") + std::string("removed ") + std::to_string(removed) +
                        " temp file(s) a failed or interrupted delivery left";
    return did;
}

fs::path temp_path(const fs::path& folder, const std::string& name) {
    return folder / ("." + name + ".tmp-" + std::to_string(::getpid()));
}

temp_writer::temp_writer(const fs::path& folder, const std::string& name) : path_(temp_path(folder, name)) {
    out_ = std::fopen(path_.c_str(), "wb");
    if (!out_) fail("cannot create");
}

temp_writer::~temp_writer() {
    if (out_) std::fclose(out_);
    if (!done_) {
        std::error_code ec;
        fs::remove(path_, ec);
    }
}

void temp_writer::fail(const char* what) {
    const std::string why = sys_error();
    if (out_) std::fclose(out_);
    out_ = nullptr;
    std::error_code ec;
    fs::remove(path_, ec);
    throw error(SW_PERMANENT, "io", std::string(what) + " " + path_.string() + ": " + why +
                                        "; nothing was delivered, the folder keeps the previous delivery");
}

void temp_writer::write(std::string_view s) {
    buf_.append(s);
    if (buf_.size() < (1u << 20)) return;
    if (std::fwrite(buf_.data(), 1, buf_.size(), out_) != buf_.size()) fail("cannot write");
    buf_.clear();
}

fs::path temp_writer::finish() {
    if (!buf_.empty() && std::fwrite(buf_.data(), 1, buf_.size(), out_) != buf_.size()) fail("cannot write");
    buf_.clear();
    if (std::fflush(out_) != 0) fail("cannot write");
    if (::fsync(::fileno(out_)) != 0) fail("cannot sync");
    std::FILE* f = out_;
    out_ = nullptr;
    if (std::fclose(f) != 0) fail("cannot close");
    done_ = true;
    return path_;
}

void publish(const fs::path& folder, const std::vector<std::pair<fs::path, std::string>>& files) {
    crash_point(2);
    std::string text;
    for (auto& [tmp, name] : files) text += tmp.filename().string() + "\t" + name + "\n";
    const fs::path journal = folder / k_journal, journal_tmp = folder / (std::string(k_journal) + ".tmp");
    {
        temp_writer w(folder, std::string(k_journal).substr(1));
        w.write(text);
        auto p = w.finish();
        std::error_code ec;
        fs::rename(p, journal_tmp, ec);
        if (ec) throw error(SW_PERMANENT, "io", "cannot write the journal in " + folder.string() + ": " + ec.message());
    }
    crash_point(3);
    std::error_code ec;
    fs::rename(journal_tmp, journal, ec);
    if (ec) throw error(SW_PERMANENT, "io", "cannot write the journal in " + folder.string() + ": " + ec.message());
    sync_dir(folder);
    crash_point(4);
    // From here the delivery is decided: a failure or a crash is finished by
    // the next recover().
    for (size_t i = 0; i < files.size(); ++i) {
        fs::rename(files[i].first, folder / files[i].second, ec);
        if (ec)
            throw error(SW_PERMANENT, "io", "cannot rename " + files[i].first.string() + " to " + files[i].second +
                                                ": " + ec.message() + "; the next run finishes this delivery");
        if (i == 0) crash_point(5);
    }
    sync_dir(folder);
    crash_point(6);
    fs::remove(journal, ec);
    sync_dir(folder);
}

digest::digest() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), EVP_sha256(), nullptr); }
digest::~digest() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_)); }
void digest::update(std::string_view s) { EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), s.data(), s.size()); }
std::string digest::hex() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(ctx_), md, &n);
    static const char* d = "0123456789abcdef";
    std::string out;
    for (unsigned i = 0; i < n; ++i) {
        out += d[md[i] >> 4];
        out += d[md[i] & 15];
    }
    return out;
}

}  // namespace syncwarden::csv
