#include <syncwarden/kernel/config.hpp>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace syncwarden::kernel {
namespace {

// "file:line:col" of byte `byte` (1-based, as nlohmann counts) of `text`.
std::string where_in(const std::filesystem::path& file, const std::string& text, size_t byte) {
    size_t line = 1, col = 1;
    for (size_t i = 0; i + 1 < byte && i < text.size(); ++i) {
        if (text[i] == '\n') {
            ++line;
            col = 1;
        } else {
            ++col;
        }
    }
    return file.string() + ":" + std::to_string(line) + ":" + std::to_string(col);
}

struct too_big {
    std::string what;
};

}  // namespace

Result<nlohmann::json> parse_json_text(const std::string& text, const std::filesystem::path& file) {
    // Limits first: nesting (whose cost grew with its square, and whose
    // destruction overflowed the stack) and the number of values.
    size_t values = 0;
    nlohmann::json::parser_callback_t limit = [&](int depth, nlohmann::json::parse_event_t, nlohmann::json&) {
        if (depth > static_cast<int>(k_max_json_depth))
            throw too_big{"nested more than " + std::to_string(k_max_json_depth) + " deep"};
        if (++values > k_max_json_values)
            throw too_big{"more than " + std::to_string(k_max_json_values) + " values"};
        return true;
    };
    try {
        return nlohmann::json::parse(text, limit, true, /*ignore_comments=*/true);
    } catch (const too_big& e) {
        return Status::error(error_kind::config, file.string() + ": " + e.what +
                                                     "; a config or job file (and every JSON the kernel reads) "
                                                     "must stay within that: flatten the settings");
    } catch (const nlohmann::json::parse_error& e) {
        std::string what = e.what();
        if (auto p = what.find("syntax error"); p != std::string::npos) what = what.substr(p);
        return Status::error(error_kind::config, where_in(file, text, e.byte) + ": not valid JSON: " + what);
    }
}

Result<nlohmann::json> parse_json_file(const std::filesystem::path& file) {
    // Opened without waiting (a FIFO would wait for a writer), then checked:
    // a device, a FIFO or a huge file is refused before anything is read.
    const int fd = ::open(file.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return Status::error(error_kind::config, file.string() + ": cannot read the file (" + std::strerror(errno) +
                                                     "); check the path and its permissions");
    struct closer {
        int fd;
        ~closer() { ::close(fd); }
    } c{fd};
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        return Status::error(error_kind::config, file.string() + ": not a regular file; give the path of a JSON file");
    const auto size = static_cast<uintmax_t>(st.st_size);
    if (size > k_max_config_bytes)
        return Status::error(error_kind::config, file.string() + ": the file is " + std::to_string(size >> 20) +
                                                     " MiB; a config or job file may be at most " +
                                                     std::to_string(k_max_config_bytes >> 20) + " MiB");
    std::string text(size, '\0');
    size_t got = 0;
    while (got < text.size()) {
        const ssize_t n = ::read(fd, text.data() + got, text.size() - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0)
            return Status::error(error_kind::config, file.string() + ": cannot read the file: " + std::strerror(errno));
        if (n == 0) break;
        got += static_cast<size_t>(n);
    }
    text.resize(got);
    return parse_json_text(text, file);
}

}  // namespace syncwarden::kernel
