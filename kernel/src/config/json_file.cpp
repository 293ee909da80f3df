#include <syncwarden/kernel/config.hpp>

#include <fstream>
#include <sstream>

namespace syncwarden::kernel {

Result<nlohmann::json> parse_json_file(const std::filesystem::path& file) {
    std::ifstream in(file, std::ios::binary);
    if (!in)
        return Status::error(error_kind::config,
                             file.string() + ": cannot read the file; check the path");
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string text = ss.str();
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
