// RFC 4180 CSV: a reader that knows where every field came from (line and
// column) and hands out views instead of copies, and a writer.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace syncwarden::csv {

struct field {
    std::string_view text;          // valid until the next call to next()
    uint64_t line = 0, column = 0;  // 1-based, where the field starts
};

class reader {
public:
    // `data` must outlive the reader. A UTF-8 byte order mark is skipped.
    explicit reader(std::string_view data);

    // Reads the next row into `row`. Returns false at the end or on a format
    // error; error() is non-empty in the second case, error_line/column say
    // where. Blank lines are skipped.
    bool next(std::vector<field>& row);
    uint64_t row_line() const { return row_line_; }
    // Bytes of the input consumed so far.
    size_t position() const { return pos_; }
    const std::string& error() const { return error_; }
    uint64_t error_line() const { return error_line_; }
    uint64_t error_column() const { return error_column_; }

private:
    bool fail(uint64_t line, uint64_t col, std::string msg);
    bool plain_row(std::vector<field>& row);
    std::string_view d_;
    size_t pos_ = 0;
    uint64_t line_ = 1;
    size_t line_start_ = 0;
    uint64_t row_line_ = 0;
    std::string scratch_;  // unescaped text of quoted fields with doubled quotes
    std::vector<std::pair<size_t, size_t>> scratch_fields_;  // (field index, scratch offset)
    std::string error_;
    uint64_t error_line_ = 0, error_column_ = 0;
};

// Appends a value, quoted when it needs it.
void append_escaped(std::string& out, std::string_view v);
std::string join_row(const std::vector<std::string>& values);

}  // namespace syncwarden::csv
