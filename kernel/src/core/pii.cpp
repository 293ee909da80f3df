#include <syncwarden/kernel/pii.hpp>
#include <syncwarden/kernel/private_file.hpp>

#include <nlohmann/json.hpp>
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

// One form a secret may take in text: the value itself, or an encoding of
// it. `run`: the form was found inside a base64 text, whose whole run of
// base64 characters is replaced (so nothing of the secret's neighbours in
// the same encoding, a user name before it in a Basic-auth header, is left
// to decode either).
struct secret_form {
    std::string text;
    std::string name;
    bool run = false;
};

struct secret_values {
    std::mutex mu;
    std::vector<std::string> values;
    std::vector<secret_form> forms;
};
secret_values& scrubbed() {
    static secret_values s;
    return s;
}

std::string base64(std::string_view in, bool url, bool pad) {
    static const char* std_abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    static const char* url_abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const char* abc = url ? url_abc : std_abc;
    std::string out;
    size_t i = 0;
    for (; i + 3 <= in.size(); i += 3) {
        const uint32_t n = (uint32_t(uint8_t(in[i])) << 16) | (uint32_t(uint8_t(in[i + 1])) << 8) | uint8_t(in[i + 2]);
        for (int k = 18; k >= 0; k -= 6) out += abc[(n >> k) & 63];
    }
    if (const size_t rest = in.size() - i; rest > 0) {
        uint32_t n = uint32_t(uint8_t(in[i])) << 16;
        if (rest == 2) n |= uint32_t(uint8_t(in[i + 1])) << 8;
        out += abc[(n >> 18) & 63];
        out += abc[(n >> 12) & 63];
        if (rest == 2) out += abc[(n >> 6) & 63];
        if (pad) out.append(rest == 1 ? "==" : "=");
    }
    return out;
}

// Percent-encoding as URLs and forms write it: every byte outside the
// unreserved set, upper- or lower-case hex; a form may write space as '+'.
std::string percent(std::string_view in, bool lower, bool plus_for_space) {
    const char* hex = lower ? "0123456789abcdef" : "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : in) {
        if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
            out += static_cast<char>(c);
        } else if (c == ' ' && plus_for_space) {
            out += '+';
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

// As the logs' JSON writer escapes it (nlohmann, invalid UTF-8 replaced).
std::string json_escaped(std::string_view in) {
    std::string out = nlohmann::json(std::string(in)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    return out.substr(1, out.size() - 2);
}

bool base64_char(unsigned char c) { return std::isalnum(c) || c == '+' || c == '/' || c == '-' || c == '_'; }

// Every form of `v` to look for. Base64 depends on where the value starts
// in what is encoded (a Basic-auth header encodes "user:" before it), so
// for each of the three alignments the characters that encode whole groups
// of the value alone are a form; at least 6 bytes of it, so that what is
// matched says something (shorter values are matched whole, at alignment 0).
std::vector<secret_form> forms_of(const std::string& v, const std::string& name) {
    std::vector<secret_form> out;
    auto add = [&](std::string t, bool run) {
        if (t.size() < 4) return;
        for (auto& f : out)
            if (f.text == t) return;
        out.push_back({std::move(t), name, run});
    };
    add(v, false);
    add(json_escaped(v), false);
    for (bool lower : {false, true})
        for (bool plus : {false, true}) add(percent(v, lower, plus), false);
    std::string hex;
    for (unsigned char c : v) {
        hex += k_hex[c >> 4];
        hex += k_hex[c & 15];
    }
    add(hex, false);
    for (bool url : {false, true}) {
        add(base64(v, url, false), true);
        for (size_t o = 0; o < 3 && o < v.size(); ++o) {
            const size_t whole = (v.size() - o) / 3 * 3;
            if (whole >= 6) add(base64(std::string_view(v).substr(o, whole), url, false), true);
        }
    }
    return out;
}

// Replaces each form of each secret in `text`; false when there was none.
bool scrub_into(std::string_view text, std::string& out) {
    auto& s = scrubbed();
    std::lock_guard l(s.mu);
    bool any = false;
    for (auto& f : s.forms) {
        const std::string_view hay = any ? std::string_view(out) : text;
        if (hay.find(f.text) == std::string_view::npos) continue;
        if (!any) out.assign(text);
        any = true;
        for (size_t at = 0; (at = out.find(f.text, at)) != std::string::npos;) {
            size_t b = at, e = at + f.text.size();
            if (f.run) {
                while (b > 0 && base64_char(static_cast<unsigned char>(out[b - 1]))) --b;
                while (e < out.size() && (base64_char(static_cast<unsigned char>(out[e])) || out[e] == '=')) ++e;
            }
            const std::string mark = "<secret " + f.name + ">";
            out.replace(b, e - b, mark);
            at = b + mark.size();
        }
    }
    return any;
}

}  // namespace

bool scrub_secret(const std::string& value, const std::string& name) {
    if (value.size() < 4) return false;
    auto& s = scrubbed();
    std::lock_guard l(s.mu);
    for (auto& v : s.values)
        if (v == value) return value.size() >= k_short_secret;
    s.values.push_back(value);
    auto forms = forms_of(value, name);
    s.forms.insert(s.forms.end(), std::make_move_iterator(forms.begin()), std::make_move_iterator(forms.end()));
    // Longer forms first, so that a form inside another (the value inside
    // its JSON escape) does not break the longer one before it is matched.
    std::stable_sort(s.forms.begin(), s.forms.end(),
                     [](const secret_form& a, const secret_form& b) { return a.text.size() > b.text.size(); });
    return value.size() >= k_short_secret;
}

std::string without_secrets(std::string_view text) {
    std::string out;
    if (!scrub_into(text, out)) return std::string(text);
    return out;
}

std::string redact(std::string_view text) {
    std::string scrubbed_text;
    if (scrub_into(text, scrubbed_text)) text = scrubbed_text;
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
