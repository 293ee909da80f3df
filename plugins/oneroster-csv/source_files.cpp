#include "source_files.hpp"

#include <syncwarden/connector.hpp>

#include <Poco/Exception.h>
#include <Poco/StreamCopier.h>
#include <Poco/Zip/ZipArchive.h>
#include <Poco/Zip/ZipStream.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace fs = std::filesystem;
using syncwarden::sdk::error;

namespace syncwarden::oneroster {
namespace {

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    return s;
}

}  // namespace

source_files::source_files(const std::string& path) : path_(path) {
    std::error_code ec;
    if (fs::is_directory(path, ec)) {
        for (auto& e : fs::directory_iterator(path, ec))
            if (e.is_regular_file()) by_lower_[lower(e.path().filename().string())] = e.path().filename().string();
        if (ec) throw error(SW_CONFIG, "path", "cannot list " + path + ": " + ec.message());
        return;
    }
    if (!fs::exists(path, ec))
        throw error(SW_CONFIG, "path", "settings.path: " + path +
                                           " does not exist; give the folder or .zip of a OneRoster CSV export");
    zip_ = true;
    std::ifstream in(path, std::ios::binary);
    if (!in) throw error(SW_CONFIG, "path", "cannot open " + path + "; check its permissions");
    try {
        Poco::Zip::ZipArchive archive(in);
        for (auto it = archive.headerBegin(); it != archive.headerEnd(); ++it) {
            if (it->second.isDirectory()) continue;
            std::string name = fs::path(it->first).filename().string();
            in.clear();
            Poco::Zip::ZipInputStream zin(in, it->second, true);
            std::ostringstream out;
            Poco::StreamCopier::copyStream(zin, out);
            by_lower_[lower(name)] = name;
            zip_content_[name] = out.str();
        }
    } catch (const Poco::Exception& e) {
        throw error(SW_SCHEMA, "zip", path + ": not a readable zip archive (" + e.displayText() +
                                          "); export the OneRoster files again or give the folder");
    } catch (const std::exception& e) {
        throw error(SW_SCHEMA, "zip", path + ": not a readable zip archive (" + e.what() +
                                          "); export the OneRoster files again or give the folder");
    }
    if (by_lower_.empty())
        throw error(SW_SCHEMA, "zip", path + ": the zip archive holds no files; is it a OneRoster export?");
}

std::optional<std::string> source_files::actual_name(const std::string& name) const {
    auto it = by_lower_.find(lower(name));
    if (it == by_lower_.end()) return std::nullopt;
    return it->second;
}

csv::mapped_file source_files::read(const std::string& actual) const {
    if (zip_) return csv::mapped_file::own(zip_content_.at(actual));
    try {
        return csv::mapped_file::open((fs::path(path_) / actual).string());
    } catch (const std::exception& e) {
        throw error(SW_CONFIG, "io", e.what());
    }
}

std::string source_files::display(const std::string& actual) const {
    return zip_ ? fs::path(path_).filename().string() + ":" + actual : actual;
}

}  // namespace syncwarden::oneroster
