// The CSV files of one export, from a folder or a zip, looked up by name
// without regard to case ("userprofiles.csv" is "userProfiles.csv").
// Zip members are extracted to a private temp folder (removed with this
// object), never held in memory, and capped in size. Files in another
// encoding are converted to UTF-8 as they are read.
#pragma once

#include <mapped_file.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>

namespace syncwarden::oneroster {

class source_files {
public:
    struct options {
        std::string encoding = "utf-8";             // utf-8, windows-1252, iso-8859-1
        uint64_t zip_limit = 4ull << 30;            // bytes a zip may unpack to, in all
    };
    // Throws sdk::error with a clear message when the path cannot be read.
    source_files(const std::string& path, const options& opts);
    ~source_files();
    source_files(const source_files&) = delete;
    source_files& operator=(const source_files&) = delete;

    // The file's name as it is in the export, if present.
    std::optional<std::string> actual_name(const std::string& name) const;
    // The whole content of a present file.
    csv::mapped_file read(const std::string& actual) const;
    // Its first line (the header), converted, without reading the rest.
    std::string first_line(const std::string& actual) const;
    const std::string& where() const { return path_; }
    // "users.csv" or "district.zip:users.csv", for messages.
    std::string display(const std::string& actual) const;

private:
    void unpack(const options& opts);
    std::string path_, encoding_;
    bool zip_ = false;
    std::string unpacked_;                          // temp folder holding the zip's members
    std::map<std::string, std::string> by_lower_;   // lower-case name -> actual name
    std::map<std::string, std::string> members_;    // actual name -> file in unpacked_
};

}  // namespace syncwarden::oneroster
