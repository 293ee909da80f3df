// The CSV reader (plugins/common/csv.hpp): every byte of a vendor's or an
// SIS's export. Each field it hands out must lie inside the input, with a
// line and column that exist.
#include "../plugins/common/csv.hpp"

#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    syncwarden::csv::reader r(in);
    std::vector<syncwarden::csv::field> row;
    size_t rows = 0;
    while (r.next(row)) {
        for (auto& f : row)
            if (f.line == 0 || f.column == 0) std::abort();
        if (r.position() > size) std::abort();
        if (++rows > size + 1) std::abort();  // every row takes a byte
    }
    if (!r.error().empty() && r.error_line() == 0) std::abort();
    return 0;
}
