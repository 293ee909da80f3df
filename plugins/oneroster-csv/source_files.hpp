// The CSV files of one export, from a folder or a zip, looked up by name
// without regard to case ("userprofiles.csv" is "userProfiles.csv").
#pragma once

#include <mapped_file.hpp>

#include <map>
#include <optional>
#include <string>

namespace syncwarden::oneroster {

class source_files {
public:
    // Throws sdk::error with a clear message when the path cannot be read.
    explicit source_files(const std::string& path);

    // The file's name as it is in the export, if present.
    std::optional<std::string> actual_name(const std::string& name) const;
    // The whole content of a present file.
    csv::mapped_file read(const std::string& actual) const;
    const std::string& where() const { return path_; }
    // "users.csv" or "district.zip:users.csv", for messages.
    std::string display(const std::string& actual) const;

private:
    std::string path_;
    bool zip_ = false;
    std::map<std::string, std::string> by_lower_;      // lower-case name -> actual name
    std::map<std::string, std::string> zip_content_;   // actual name -> content
};

}  // namespace syncwarden::oneroster
