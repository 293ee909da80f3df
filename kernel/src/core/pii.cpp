#include <syncwarden/kernel/pii.hpp>
#include <syncwarden/kernel/private_file.hpp>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdio>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <mutex>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace fs = std::filesystem;

namespace syncwarden::kernel::pii {

std::string redact_values(std::string_view t);

namespace {

struct secret {
    std::mutex mu;
    std::array<unsigned char, 32> key{};
    bool set = false;
};

secret& global() {
    static secret s;
    return s;
}

const char* k_hex = "0123456789abcdef";

bool word_start(std::string_view t, size_t i) {
    if (i == 0) return true;
    const unsigned char p = static_cast<unsigned char>(t[i - 1]);
    return !(std::isalnum(p) || p >= 0x80);
}

bool email_char(unsigned char c) {
    return std::isalnum(c) || c >= 0x80 || c == '.' || c == '_' || c == '-' || c == '+' || c == '%';
}

}  // namespace

fs::path key_file(const fs::path& data_dir) { return data_dir / "keys" / "pii-hmac.key"; }

Status use_data_dir_key(const fs::path& data_dir) {
    const fs::path file = key_file(data_dir);
    const std::string what = "the data dir's secret";
    std::error_code ec;
    if (!fs::exists(file, ec)) {
        std::string fresh(32, '\0');
        if (RAND_bytes(reinterpret_cast<unsigned char*>(fresh.data()), static_cast<int>(fresh.size())) != 1)
            return Status::error(error_kind::internal, "no randomness for the data dir's secret");
        if (auto s = create_private_file(file, fresh, what); !s) return s;
    }
    auto text = read_private_file(file, what, 64);
    if (!text) return text.status();
    if (text->size() != 32)
        return Status::error(error_kind::store, file.string() + ": the data dir's secret is not 32 bytes; restore it "
                                                                "from a backup (the hashes in the store depend on it)");
    auto& g = global();
    std::lock_guard l(g.mu);
    std::copy(text->begin(), text->end(), g.key.begin());
    g.set = true;
    return Status::ok();
}

std::string keyed(std::string_view value) {
    auto& g = global();
    std::array<unsigned char, 32> key;
    {
        std::lock_guard l(g.mu);
        if (!g.set) {
            RAND_bytes(g.key.data(), static_cast<int>(g.key.size()));
            g.set = true;
        }
        key = g.key;
    }
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(value.data()),
         value.size(), mac, &len);
    std::string out = "h:";
    for (unsigned i = 0; i < 8 && i < len; ++i) {
        out += k_hex[mac[i] >> 4];
        out += k_hex[mac[i] & 15];
    }
    return out;
}

namespace {
struct secret_values {
    std::mutex mu;
    std::vector<std::pair<std::string, std::string>> values;  // value, name
};
secret_values& scrubbed() {
    static secret_values s;
    return s;
}
}  // namespace

void scrub_secret(const std::string& value, const std::string& name) {
    if (value.size() < 4) return;
    auto& s = scrubbed();
    std::lock_guard l(s.mu);
    for (auto& [v, n] : s.values)
        if (v == value) return;
    s.values.emplace_back(value, name);
}

std::string without_secrets(std::string_view text) {
    std::string out(text);
    auto& s = scrubbed();
    std::lock_guard l(s.mu);
    for (auto& [v, n] : s.values)
        for (size_t at; (at = out.find(v)) != std::string::npos;) out.replace(at, v.size(), "<secret " + n + ">");
    return out;
}

std::string redact(std::string_view text) {
    std::string scrubbed_text;
    {
        auto& s = scrubbed();
        std::lock_guard l(s.mu);
        for (auto& [v, n] : s.values) {
            if (text.find(v) == std::string_view::npos) continue;
            if (scrubbed_text.empty()) scrubbed_text.assign(text);
            for (size_t at; (at = scrubbed_text.find(v)) != std::string::npos;)
                scrubbed_text.replace(at, v.size(), "<secret " + n + ">");
        }
    }
    if (!scrubbed_text.empty()) text = scrubbed_text;
    return redact_values(text);
}

std::string redact_values(std::string_view t) {
    std::string out;
    out.reserve(t.size());
    size_t i = 0;
    while (i < t.size()) {
        const char c = t[i];
        if ((c == '\'' || c == '"') && word_start(t, i)) {
            // The closing quote: the next one of the same kind that ends a word.
            size_t j = i + 1;
            for (; j < t.size(); ++j)
                if (t[j] == c && (j + 1 == t.size() || !std::isalnum(static_cast<unsigned char>(t[j + 1])))) break;
            if (j < t.size()) {
                out += "<" + keyed(t.substr(i + 1, j - i - 1)) + ">";
                i = j + 1;
                continue;
            }
        }
        if (c == '@') {
            // An e-mail address: the word around the @ with a dot after it.
            size_t b = i, e = i + 1;
            while (b > 0 && email_char(static_cast<unsigned char>(t[b - 1]))) --b;
            while (e < t.size() && email_char(static_cast<unsigned char>(t[e]))) ++e;
            const std::string_view domain = t.substr(i + 1, e - i - 1);
            const size_t local = i - b;
            if (local > 0 && domain.find('.') != std::string_view::npos && local <= out.size()) {
                out.resize(out.size() - local);
                out += "<" + keyed(t.substr(b, e - b)) + ">";
                i = e;
                continue;
            }
        }
        out += c;
        ++i;
    }
    return out;
}

namespace {
unsigned& saved_umask() {
    static unsigned m = [] {
        const mode_t now = ::umask(022);
        ::umask(now);
        return static_cast<unsigned>(now);
    }();
    return m;
}
}  // namespace

unsigned operator_umask() { return saved_umask(); }

Status make_private(const fs::path& data_dir) {
    (void)saved_umask();
    ::umask(077);
    std::error_code ec;
    fs::create_directories(data_dir, ec);
    struct stat st {};
    if (::stat(data_dir.c_str(), &st) != 0)
        return Status::error(error_kind::store, data_dir.string() + ": cannot create the data dir: " + std::strerror(errno));
    // Search rights for the group class alone are the ACL mask of a worker's
    // way to its drops/ folder (prepare_sandbox): nothing can be listed or read.
    if ((st.st_mode & 067) == 0) return Status::ok();
    // A data dir made open (by an older kernel, or by hand): closed, with
    // what is in it.
    if (::chmod(data_dir.c_str(), 0700) != 0)
        return Status::error(error_kind::store, data_dir.string() + ": cannot make the data dir private (chmod 700): " +
                                                    std::strerror(errno));
    for (auto it = fs::recursive_directory_iterator(data_dir, fs::directory_options::skip_permission_denied, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (it->is_symlink(ec)) continue;
        ::chmod(it->path().c_str(), it->is_directory(ec) ? 0700 : 0600);
    }
    return Status::ok();
}

}  // namespace syncwarden::kernel::pii
