#include "csv.hpp"

#include <cstring>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace syncwarden::csv {

reader::reader(std::string_view data) : d_(data) {
    if (d_.substr(0, 3) == "\xEF\xBB\xBF") {
        pos_ = 3;
        line_start_ = 3;
    }
}

namespace {

// The offset of the first ',', '\n', '\r' or '"' in d[pos, n), or n. Sixteen
// bytes at a time where the input has them (SSE2, in every x86-64): a field
// of a roster is 10 to 40 bytes, so one or two steps find its end.
inline size_t field_end(const char* d, size_t pos, size_t n) {
#if defined(__SSE2__)
    const __m128i comma = _mm_set1_epi8(','), lf = _mm_set1_epi8('\n'), cr = _mm_set1_epi8('\r'),
                  quote = _mm_set1_epi8('"');
    for (; pos + 16 <= n; pos += 16) {
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(d + pos));
        const __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, comma), _mm_cmpeq_epi8(v, lf)),
                                         _mm_or_si128(_mm_cmpeq_epi8(v, cr), _mm_cmpeq_epi8(v, quote)));
        if (const unsigned bits = static_cast<unsigned>(_mm_movemask_epi8(hit)))
            return pos + static_cast<size_t>(__builtin_ctz(bits));
    }
#endif
    for (; pos < n; ++pos) {
        const char c = d[pos];
        if (c == ',' || c == '\n' || c == '\r' || c == '"') break;
    }
    return pos;
}

}  // namespace

// The common row: no quote, and its line end at least 16 bytes before the
// data's end. Each 16 bytes are read once and their commas and line ends
// taken from one bit mask, instead of a search from each field's start. A
// row with a quote, or near the end, is left to the general reading below
// (false, nothing consumed).
bool reader::plain_row(std::vector<field>& row) {
#if defined(__SSE2__)
    const char* d = d_.data();
    const size_t n = d_.size();
    const size_t line_start = line_start_;
    const uint64_t line = line_;
    const __m128i comma = _mm_set1_epi8(','), lf = _mm_set1_epi8('\n'), cr = _mm_set1_epi8('\r'),
                  quote = _mm_set1_epi8('"');
    size_t start = pos_;
    for (size_t p = pos_; p + 16 <= n; p += 16) {
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(d + p));
        const unsigned stops = static_cast<unsigned>(_mm_movemask_epi8(
            _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, lf), _mm_cmpeq_epi8(v, cr)), _mm_cmpeq_epi8(v, quote))));
        unsigned commas = static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(v, comma)));
        if (stops) commas &= (1u << __builtin_ctz(stops)) - 1;  // the commas before the row's end
        for (; commas; commas &= commas - 1) {
            const size_t end = p + static_cast<size_t>(__builtin_ctz(commas));
            row.push_back({std::string_view(d + start, end - start), line, start - line_start + 1});
            start = end + 1;
        }
        if (!stops) continue;
        size_t end = p + static_cast<size_t>(__builtin_ctz(stops));
        if (d[end] == '"') break;
        row.push_back({std::string_view(d + start, end - start), line, start - line_start + 1});
        if (d[end] == '\r') ++end;
        if (end < n && d[end] == '\n') ++end;
        pos_ = end;
        ++line_;
        line_start_ = end;
        return true;
    }
#endif
    row.clear();
    return false;
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
    scratch_.clear();
    scratch_fields_.clear();
    if (!error_.empty()) return false;
    const char* d = d_.data();
    const size_t n = d_.size();
    while (pos_ < n && (d[pos_] == '\n' || d[pos_] == '\r')) {
        if (d[pos_] == '\n') { ++line_; line_start_ = pos_ + 1; }
        ++pos_;
    }
    if (pos_ >= n) return false;
    // The input streams from memory that is not in the cache: the lines a
    // kilobyte or so ahead are asked for now, so that the hardware's own
    // prefetching, which stops at each 4 KiB page, never leaves the reader
    // waiting at a page's start.
    __builtin_prefetch(d + pos_ + 1024);
    __builtin_prefetch(d + pos_ + 1024 + 64);
    row_line_ = line_;
    if (plain_row(row)) return true;
    while (true) {
        field f;
        f.line = line_;
        f.column = pos_ - line_start_ + 1;
        if (pos_ < n && d[pos_] == '"') {
            const uint64_t open_line = line_, open_col = f.column;
            const size_t start = ++pos_;
            bool escaped = false;
            size_t scratch_at = 0;
            while (true) {
                const char* q = static_cast<const char*>(std::memchr(d + pos_, '"', n - pos_));
                const size_t stop = q ? static_cast<size_t>(q - d) : n;
                for (const char* nl = static_cast<const char*>(std::memchr(d + pos_, '\n', stop - pos_)); nl;
                     nl = static_cast<const char*>(std::memchr(nl + 1, '\n', stop - static_cast<size_t>(nl + 1 - d)))) {
                    ++line_;
                    line_start_ = static_cast<size_t>(nl - d) + 1;
                }
                if (escaped) scratch_.append(d + pos_, stop - pos_);
                pos_ = stop;
                if (!q)
                    return fail(open_line, open_col,
                                "the quoted field that starts here is never closed; the file may be "
                                "truncated, or a quote inside a field is not doubled (\"\")");
                if (pos_ + 1 < n && d[pos_ + 1] == '"') {
                    if (!escaped) {
                        escaped = true;
                        scratch_at = scratch_.size();
                        scratch_.append(d + start, pos_ - start);
                    }
                    scratch_ += '"';
                    pos_ += 2;
                    continue;
                }
                if (!escaped) f.text = std::string_view(d + start, pos_ - start);
                ++pos_;
                break;
            }
            if (escaped) {
                scratch_fields_.emplace_back(row.size(), scratch_at);
                f.text = std::string_view(nullptr, scratch_.size() - scratch_at);
            }
            if (pos_ < n && d[pos_] != ',' && d[pos_] != '\n' && d[pos_] != '\r')
                return fail(line_, pos_ - line_start_ + 1,
                            std::string("bad quoting: '") + d[pos_] +
                                "' follows a closing quote; quote the whole field and double any "
                                "quote inside it");
        } else {
            const size_t start = pos_;
            pos_ = field_end(d, pos_, n);
            if (pos_ < n && d[pos_] == '"')
                return fail(line_, pos_ - line_start_ + 1,
                            "bad quoting: a quote inside an unquoted field; quote the whole "
                            "field and double the quote (\"\")");
            f.text = std::string_view(d + start, pos_ - start);
        }
        row.push_back(f);
        bool end_of_row = true;
        if (pos_ < n) {
            if (d[pos_] == ',') {
                ++pos_;
                end_of_row = false;
            } else {
                if (d[pos_] == '\r') ++pos_;
                if (pos_ < n && d[pos_] == '\n') ++pos_;
                ++line_;
                line_start_ = pos_;
            }
        }
        if (!end_of_row) continue;
        // scratch_ no longer grows for this row: point the escaped fields into it.
        for (auto [idx, off] : scratch_fields_) row[idx].text = std::string_view(scratch_.data() + off, row[idx].text.size());
        return true;
    }
}

void append_escaped(std::string& out, std::string_view v) {
    // field_end finds the same four characters 16 bytes at a time
    // (find_first_of calls memchr once per character of the value).
    bool quote = field_end(v.data(), 0, v.size()) != v.size() ||
                 (!v.empty() && (v.front() == ' ' || v.back() == ' '));
    if (!quote) {
        out.append(v);
        return;
    }
    out += '"';
    for (char c : v) {
        if (c == '"') out += '"';
        out += c;
    }
    out += '"';
}

std::string join_row(const std::vector<std::string>& values) {
    std::string out;
    for (size_t i = 0; i < values.size(); ++i) {
        if (i) out += ',';
        append_escaped(out, values[i]);
    }
    out += "\r\n";
    return out;
}

}  // namespace syncwarden::csv
