#include <syncwarden/kernel/config.hpp>

#include <fstream>

namespace syncwarden::kernel {

Result<nlohmann::json> parse_json_file(const std::filesystem::path& file) {
    std::ifstream in(file, std::ios::binary);
    if (!in)
        return Status::error(error_kind::config,
                             file.string() + ": cannot read the file; check the path");
    // A config file is small; a device or a huge file is refused before it
    // is read into memory.
    std::error_code ec;
    if (!std::filesystem::is_regular_file(file, ec))
        return Status::error(error_kind::config, file.string() + ": not a regular file; give the path of a JSON file");
    const auto size = std::filesystem::file_size(file, ec);
    if (ec || size > k_max_config_bytes)
        return Status::error(error_kind::config, file.string() + ": the file is " + std::to_string(size >> 20) +
                                                     " MiB; a config or job file may be at most " +
                                                     std::to_string(k_max_config_bytes >> 20) + " MiB");
    std::string text(size, '\0');
    in.read(text.data(), static_cast<std::streamsize>(size));
    text.resize(static_cast<size_t>(in.gcount()));
    try {
        return nlohmann::json::parse(text, nullptr, true, /*ignore_comments=*/true);
    } catch (const nlohmann::json::parse_error& e) {
        size_t byte = e.byte == 0 ? 0 : e.byte - 1;
        size_t line = 1, col = 1;
        for (size_t i = 0; i < byte && i < text.size(); ++i) {
            if (text[i] == '\n') { ++line; col = 1; } else { ++col; }
        }
        std::string what = e.what();
        if (auto p = what.find("syntax error"); p != std::string::npos) what = what.substr(p);
        return Status::error(error_kind::config, file.string() + ":" + std::to_string(line) + ":" +
                                                     std::to_string(col) + ": not valid JSON: " + what);
    }
}

}  // namespace syncwarden::kernel
