// The connectors' CSV reader (plugins/common/csv): fields, lines and columns
// wherever a field ends relative to the reader's 16-byte steps, and where a
// quote in an unquoted field is reported.
#include "csv.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

using syncwarden::csv::field;
using syncwarden::csv::reader;

namespace {

struct parsed {
    std::vector<std::vector<std::string>> rows;
    std::vector<std::vector<std::pair<uint64_t, uint64_t>>> where;  // (line, column) of each field
    std::string error;
    uint64_t error_line = 0, error_column = 0;
};

parsed read_all(const std::string& text) {
    parsed p;
    reader r(text);
    std::vector<field> row;
    while (r.next(row)) {
        p.rows.emplace_back();
        p.where.emplace_back();
        for (auto& f : row) {
            p.rows.back().emplace_back(f.text);
            p.where.back().emplace_back(f.line, f.column);
        }
    }
    p.error = r.error();
    p.error_line = r.error_line();
    p.error_column = r.error_column();
    return p;
}

}  // namespace

// Two rows of three unquoted fields, every field length from 0 to 40, each
// line ending in \n or \r\n, the last with or without its line end: what is
// read is what was written, with the column each field starts at.
TEST(csv_reader, unquoted_fields_of_every_length_end_where_they_end) {
    for (size_t len = 0; len <= 40; ++len)
        for (const std::string eol : {"\n", "\r\n"})
            for (bool last_eol : {true, false}) {
                const std::string a(len, 'a'), b(len % 7, 'b'), c(40 - len, 'c');
                const std::string text = a + "," + b + "," + c + eol + c + "," + a + "," + b + (last_eol ? eol : "");
                const parsed p = read_all(text);
                SCOPED_TRACE("len " + std::to_string(len) + (eol == "\n" ? " LF" : " CRLF") +
                             (last_eol ? "" : " no final line end"));
                ASSERT_EQ(p.error, "");
                ASSERT_EQ(p.rows.size(), 2u);
                EXPECT_EQ(p.rows[0], (std::vector<std::string>{a, b, c}));
                EXPECT_EQ(p.rows[1], (std::vector<std::string>{c, a, b}));
                EXPECT_EQ(p.where[0][1], (std::pair<uint64_t, uint64_t>{1, len + 2}));
                EXPECT_EQ(p.where[0][2], (std::pair<uint64_t, uint64_t>{1, len + len % 7 + 3}));
                EXPECT_EQ(p.where[1][0], (std::pair<uint64_t, uint64_t>{2, 1}));
                EXPECT_EQ(p.where[1][2], (std::pair<uint64_t, uint64_t>{2, 40 - len + len + 3}));
            }
}

// A quote inside an unquoted field, at every place in a long field: the error
// names the quote's own line and column.
TEST(csv_reader, a_quote_inside_an_unquoted_field_is_reported_where_it_is) {
    for (size_t at = 1; at < 40; ++at) {
        std::string field(40, 'x');
        field[at] = '"';
        const parsed p = read_all("id,name\n1,ok\n2," + field + "\n3,later\n");
        SCOPED_TRACE("quote at " + std::to_string(at));
        EXPECT_EQ(p.rows.size(), 2u) << "rows before the bad one are read";
        EXPECT_NE(p.error.find("a quote inside an unquoted field"), std::string::npos) << p.error;
        EXPECT_EQ(p.error_line, 3u);
        EXPECT_EQ(p.error_column, 3 + at);
    }
}

// Quoted fields beside long unquoted ones: doubled quotes, commas and line
// breaks inside quotes, and the line count after them.
TEST(csv_reader, quoted_fields_between_long_unquoted_ones) {
    const std::string long_field(33, 'z');
    const parsed p = read_all(long_field + ",\"a,\"\"b\"\"\nc\"," + long_field + "\r\nnext," + long_field + "\n");
    ASSERT_EQ(p.error, "");
    ASSERT_EQ(p.rows.size(), 2u);
    EXPECT_EQ(p.rows[0], (std::vector<std::string>{long_field, "a,\"b\"\nc", long_field}));
    EXPECT_EQ(p.rows[1], (std::vector<std::string>{"next", long_field}));
    EXPECT_EQ(p.where[1][0], (std::pair<uint64_t, uint64_t>{3, 1}));
}

// Random documents as the writer writes them: values with commas, quotes,
// CR, LF, spaces and UTF-8 anywhere, rows of one to nine fields, LF or CRLF
// line ends, blank lines between rows, with or without a final line end.
// Every row and value is read back, each field with the line and column it
// starts at (rows without a quote are read sixteen bytes at a time, the
// others field by field: both must agree with what was written).
TEST(csv_reader, random_documents_read_back_with_every_position) {
    std::mt19937 rng(20261129);
    const std::vector<std::string> pieces = {"a", "b", "7", " ", ",", "\"", "\r", "\n", "\xc3\xa9", "xyz0123456789"};
    auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
    for (int doc = 0; doc < 3000; ++doc) {
        std::string text;
        std::vector<std::vector<std::string>> rows;
        std::vector<std::vector<std::pair<uint64_t, uint64_t>>> where;
        auto position = [&]() {
            const size_t nl = text.rfind('\n');
            const uint64_t line = 1 + static_cast<uint64_t>(std::count(text.begin(), text.end(), '\n'));
            return std::pair<uint64_t, uint64_t>{line, text.size() - (nl == std::string::npos ? 0 : nl + 1) + 1};
        };
        const size_t nrows = 1 + pick(6);
        const bool plain_doc = pick(2) == 0;  // no special characters at all
        for (size_t r = 0; r < nrows; ++r) {
            if (pick(5) == 0) text += pick(2) ? "\n" : "\r\n";  // a blank line
            rows.emplace_back();
            where.emplace_back();
            const size_t nfields = 1 + pick(9);
            for (size_t f = 0; f < nfields; ++f) {
                std::string v;
                for (size_t k = pick(8); k > 0; --k) v += pieces[plain_doc ? (pick(2) ? 0 : 9) : pick(pieces.size())];
                if (nfields == 1 && v.empty()) v = "x";  // a row with one empty value would be a blank line
                if (f) text += ',';
                where.back().push_back(position());
                syncwarden::csv::append_escaped(text, v);
                rows.back().push_back(v);
            }
            if (r + 1 < nrows || pick(2)) text += pick(2) ? "\n" : "\r\n";
        }
        const parsed p = read_all(text);
        SCOPED_TRACE("document " + std::to_string(doc) + ": " + text);
        ASSERT_EQ(p.error, "");
        ASSERT_EQ(p.rows, rows);
        ASSERT_EQ(p.where, where);
    }
}

// What the writer escapes, the reader reads back: a comma, quote, CR or LF at
// every place of values up to 40 bytes is quoted, and a value without them
// (and without an edge space) is written as it is.
TEST(csv_writer, values_with_a_special_character_anywhere_round_trip_and_only_they_are_quoted) {
    for (size_t len = 1; len <= 40; ++len)
        for (size_t at = 0; at < len; ++at)
            for (char special : {',', '"', '\r', '\n', 'x'}) {
                std::string v(len, 'v');
                v[at] = special;
                std::string line;
                syncwarden::csv::append_escaped(line, v);
                SCOPED_TRACE("length " + std::to_string(len) + ", '" + std::string(1, special) + "' at " +
                             std::to_string(at));
                if (special == 'x') {
                    EXPECT_EQ(line, v) << "quoted without need";
                    continue;
                }
                EXPECT_EQ(line.front(), '"');
                const parsed p = read_all(line + ",end\n");
                ASSERT_EQ(p.error, "");
                ASSERT_EQ(p.rows.size(), 1u);
                EXPECT_EQ(p.rows[0], (std::vector<std::string>{v, "end"}));
            }
    std::string edge;
    syncwarden::csv::append_escaped(edge, " padded ");
    EXPECT_EQ(edge, "\" padded \"");
}
