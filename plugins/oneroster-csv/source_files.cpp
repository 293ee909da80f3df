#include "source_files.hpp"

#include <syncwarden/connector.hpp>

#include <Poco/Exception.h>
#include <Poco/Zip/ZipArchive.h>
#include <Poco/Zip/ZipStream.h>

#include <algorithm>
#include <iconv.h>
#include <cstdlib>
#include <vector>
#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;
using syncwarden::sdk::error;

namespace syncwarden::oneroster {
namespace {

// The bytes of a file in `encoding`, as UTF-8 (glibc's iconv). Both
// single-byte encodings map every byte, except the five bytes Windows-1252
// leaves undefined; those are an error naming the offset.
std::string to_utf8(std::string_view in, const std::string& encoding, const std::string& name) {
    const char* from = encoding == "windows-1252" ? "WINDOWS-1252" : "ISO-8859-1";
    iconv_t cd = ::iconv_open("UTF-8", from);
    if (cd == reinterpret_cast<iconv_t>(-1))
        throw error(SW_CONFIG, "encoding", "this system cannot convert from " + encoding);
    std::string out(in.size() * 3 + 16, '\0');
    char* src = const_cast<char*>(in.data());
    size_t src_left = in.size();
    char* dst = out.data();
    size_t dst_left = out.size();
    const size_t r = ::iconv(cd, &src, &src_left, &dst, &dst_left);
    ::iconv_close(cd);
    if (r == static_cast<size_t>(-1))
        throw error(SW_SCHEMA, "encoding",
                    name + ": byte " + std::to_string(in.size() - src_left + 1) + " is not a " + encoding +
                        " character; check the \"encoding\" setting against the export");
    out.resize(out.size() - dst_left);
    return out;
}

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    return s;
}

}  // namespace

source_files::source_files(const std::string& path, const options& opts) : path_(path), encoding_(opts.encoding) {
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
    unpack(opts);
}

source_files::~source_files() {
    if (unpacked_.empty()) return;
    std::error_code ec;
    fs::remove_all(unpacked_, ec);
}

void source_files::unpack(const options& opts) {
    std::ifstream in(path_, std::ios::binary);
    if (!in) throw error(SW_CONFIG, "path", "cannot open " + path_ + "; check its permissions");
    std::string tmpl = (fs::temp_directory_path() / "syncwarden-zip-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw error(SW_PERMANENT, "io", "cannot create a temp folder to unpack " + path_);
    unpacked_ = tmpl;
    uint64_t total = 0;
    try {
        Poco::Zip::ZipArchive archive(in);
        size_t n = 0;
        for (auto it = archive.headerBegin(); it != archive.headerEnd(); ++it) {
            if (it->second.isDirectory()) continue;
            std::string name = fs::path(it->first).filename().string();
            in.clear();
            Poco::Zip::ZipInputStream zin(in, it->second, true);
            const fs::path file = fs::path(unpacked_) / std::to_string(n++);
            std::ofstream out(file, std::ios::binary);
            std::vector<char> buf(1 << 16);
            while (zin) {
                zin.read(buf.data(), static_cast<std::streamsize>(buf.size()));
                const auto got = static_cast<uint64_t>(zin.gcount());
                total += got;
                if (total > opts.zip_limit)
                    throw error(SW_SCHEMA, "zip",
                                path_ + ": unpacks to more than " + std::to_string(opts.zip_limit >> 20) +
                                    " MiB (at member " + name + "); if the export is really that large, raise the "
                                    "oneroster-csv setting zip_limit_mb");
                out.write(buf.data(), static_cast<std::streamsize>(got));
            }
            if (!out.flush()) throw error(SW_PERMANENT, "io", "cannot unpack " + path_ + ": writing " + file.string() + " failed (disk full?)");
            by_lower_[lower(name)] = name;
            members_[name] = file.string();
        }
    } catch (const error&) {
        throw;
    } catch (const Poco::Exception& e) {
        throw error(SW_SCHEMA, "zip", path_ + ": not a readable zip archive (" + e.displayText() +
                                          "); export the OneRoster files again or give the folder");
    } catch (const std::exception& e) {
        throw error(SW_SCHEMA, "zip", path_ + ": not a readable zip archive (" + e.what() +
                                          "); export the OneRoster files again or give the folder");
    }
    if (by_lower_.empty())
        throw error(SW_SCHEMA, "zip", path_ + ": the zip archive holds no files; is it a OneRoster export?");
}

std::optional<std::string> source_files::actual_name(const std::string& name) const {
    auto it = by_lower_.find(lower(name));
    if (it == by_lower_.end()) return std::nullopt;
    return it->second;
}

csv::mapped_file source_files::read(const std::string& actual) const {
    csv::mapped_file file;
    try {
        file = csv::mapped_file::open(zip_ ? members_.at(actual) : (fs::path(path_) / actual).string());
    } catch (const std::exception& e) {
        throw error(SW_CONFIG, "io", e.what());
    }
    if (encoding_ == "utf-8") return file;
    return csv::mapped_file::own(to_utf8(file.data(), encoding_, display(actual)));
}

std::string source_files::first_line(const std::string& actual) const {
    csv::mapped_file file;
    try {
        file = csv::mapped_file::open(zip_ ? members_.at(actual) : (fs::path(path_) / actual).string());
    } catch (const std::exception& e) {
        throw error(SW_CONFIG, "io", e.what());
    }
    std::string_view head = file.data().substr(0, file.data().find('\n'));
    if (encoding_ == "utf-8") return std::string(head);
    return to_utf8(head, encoding_, display(actual));
}

std::string source_files::display(const std::string& actual) const {
    return zip_ ? fs::path(path_).filename().string() + ":" + actual : actual;
}

}  // namespace syncwarden::oneroster
