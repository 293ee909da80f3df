// What crosses from a worker to the kernel arrives as it was sent: every
// value length across the inline copy's steps, empty and absent values,
// and bytes of every kind.
#include "../../kernel/src/worker/wire.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

using namespace syncwarden::kernel;

TEST(wire, a_batch_decodes_to_the_values_it_was_encoded_from_at_every_length) {
    std::vector<std::string> texts;
    for (size_t n = 0; n <= 70; ++n) {
        std::string t;
        for (size_t i = 0; i < n; ++i) t += static_cast<char>((n * 31 + i * 7) % 256);
        texts.push_back(t);
    }
    // Record r holds texts r, r+1, r+2 (mod the count); each value sits at
    // the end of a larger buffer, so a copy that read past it would differ.
    std::vector<std::string> backing;
    for (auto& t : texts) backing.push_back("#####" + t);
    auto at = [&](size_t i) { return sw_str{backing[i].data() + 5, texts[i].size()}; };
    const size_t nr = texts.size(), nv = 3;
    std::vector<sw_str> values(nr * nv);
    std::vector<sw_record> recs(nr);
    for (size_t r = 0; r < nr; ++r) {
        for (size_t v = 0; v < nv; ++v) values[r * nv + v] = at((r + v) % nr);
        if (r == 4) values[r * nv + 1] = {nullptr, 0};  // absent
        recs[r] = {at(nr - 1 - r), values.data() + r * nv, nv, static_cast<uint32_t>(r % 2)};
    }
    sw_batch b{sizeof b, {"items", 5}, SW_MODE_BULK, recs.data(), recs.size()};
    std::string buf(wire::encoded_size(b), '\xee');
    ASSERT_EQ(wire::try_encode(b, buf.data(), buf.size()), buf.size());
    std::string short_buf(buf.size() - 1, '\xee');
    EXPECT_EQ(wire::try_encode(b, short_buf.data(), short_buf.size()), 0u) << "one byte short does not fit";
    wire::batch_decoder dec;
    sw_batch out;
    std::string why;
    ASSERT_TRUE(dec.decode(buf.data(), buf.size(), out, why)) << why;
    ASSERT_EQ(out.record_count, nr);
    for (size_t r = 0; r < nr; ++r) {
        const sw_record& o = out.records[r];
        EXPECT_EQ(std::string(o.key.ptr, o.key.len), texts[nr - 1 - r]) << "record " << r;
        EXPECT_EQ(o.state, r % 2);
        ASSERT_EQ(o.value_count, nv);
        for (size_t v = 0; v < nv; ++v) {
            if (r == 4 && v == 1) {
                EXPECT_EQ(o.values[v].ptr, nullptr) << "absent stays absent";
                continue;
            }
            const std::string& want = texts[(r + v) % nr];
            ASSERT_NE(o.values[v].ptr, nullptr);
            EXPECT_EQ(std::string(o.values[v].ptr, o.values[v].len), want) << "record " << r << " value " << v;
        }
    }
}
