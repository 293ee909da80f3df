#include "csv.hpp"

namespace syncwarden::csv {

reader::reader(std::string_view data) : d_(data) {
    if (d_.substr(0, 3) == "\xEF\xBB\xBF") {
        pos_ = 3;
        line_start_ = 3;
    }
}

bool reader::fail(uint64_t line, uint64_t col, std::string msg) {
    error_ = std::move(msg);
    error_line_ = line;
    error_column_ = col;
    pos_ = d_.size();
    return false;
}

bool reader::next(std::vector<field>& row) {
    row.clear();
    if (!error_.empty()) return false;
    // Skip blank lines.
    while (pos_ < d_.size() && (d_[pos_] == '\n' || d_[pos_] == '\r')) {
        if (d_[pos_] == '\n') { ++line_; line_start_ = pos_ + 1; }
        ++pos_;
    }
    if (pos_ >= d_.size()) return false;
    row_line_ = line_;
    while (true) {
        field f;
        f.line = line_;
        f.column = pos_ - line_start_ + 1;
        if (pos_ < d_.size() && d_[pos_] == '"') {
            uint64_t open_line = line_, open_col = f.column;
            ++pos_;
            while (true) {
                if (pos_ >= d_.size())
                    return fail(open_line, open_col,
                                "the quoted field that starts here is never closed; the file may be "
                                "truncated, or a quote inside a field is not doubled (\"\")");
                char c = d_[pos_];
                if (c == '"') {
                    if (pos_ + 1 < d_.size() && d_[pos_ + 1] == '"') {
                        f.text += '"';
                        pos_ += 2;
                        continue;
                    }
                    ++pos_;
                    break;
                }
                if (c == '\n') { ++line_; line_start_ = pos_ + 1; }
                f.text += c;
                ++pos_;
            }
            if (pos_ < d_.size() && d_[pos_] != ',' && d_[pos_] != '\n' && d_[pos_] != '\r')
                return fail(line_, pos_ - line_start_ + 1,
                            std::string("bad quoting: '") + d_[pos_] +
                                "' follows a closing quote; quote the whole field and double any "
                                "quote inside it");
        } else {
            size_t start = pos_;
            while (pos_ < d_.size() && d_[pos_] != ',' && d_[pos_] != '\n' && d_[pos_] != '\r') {
                if (d_[pos_] == '"')
                    return fail(line_, pos_ - line_start_ + 1,
                                "bad quoting: a quote inside an unquoted field; quote the whole "
                                "field and double the quote (\"\")");
                ++pos_;
            }
            f.text.assign(d_.substr(start, pos_ - start));
        }
        row.push_back(std::move(f));
        if (pos_ >= d_.size()) return true;
        if (d_[pos_] == ',') {
            ++pos_;
            continue;
        }
        // End of row: \n, \r\n or a lone \r.
        if (d_[pos_] == '\r') ++pos_;
        if (pos_ < d_.size() && d_[pos_] == '\n') ++pos_;
        ++line_;
        line_start_ = pos_;
        return true;
    }
}

std::string escape(std::string_view v) {
    bool quote = v.find_first_of(",\"\r\n") != std::string_view::npos ||
                 (!v.empty() && (v.front() == ' ' || v.back() == ' '));
    if (!quote) return std::string(v);
    std::string out = "\"";
    for (char c : v) {
        if (c == '"') out += '"';
        out += c;
    }
    out += '"';
    return out;
}

std::string join_row(const std::vector<std::string>& values) {
    std::string out;
    for (size_t i = 0; i < values.size(); ++i) {
        if (i) out += ',';
        out += escape(values[i]);
    }
    out += "\r\n";
    return out;
}

}  // namespace syncwarden::csv
