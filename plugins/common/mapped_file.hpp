// A file mapped read-only for one sequential pass. release_before() gives
// the pages already parsed back to the kernel, so reading a 1 GB export does
// not keep 1 GB resident.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace syncwarden::csv {

class mapped_file {
public:
    mapped_file() = default;
    // Throws std::runtime_error naming the file when it cannot be read.
    static mapped_file open(const std::string& path);
    // Content already in memory (from a zip, say).
    static mapped_file own(std::string content);
    ~mapped_file();
    mapped_file(mapped_file&& o) noexcept;
    mapped_file& operator=(mapped_file&& o) noexcept;
    mapped_file(const mapped_file&) = delete;
    mapped_file& operator=(const mapped_file&) = delete;

    std::string_view data() const { return view_; }
    // Drops resident pages wholly before `offset`. A no-op for owned content.
    void release_before(size_t offset);

private:
    void reset();
    void map_path(const std::string& path);
    std::string owned_;
    std::string_view view_;
    void* map_ = nullptr;
    size_t size_ = 0, released_ = 0;
};

}  // namespace syncwarden::csv
