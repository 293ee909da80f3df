#include <syncwarden/kernel/plan.hpp>

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <map>

using namespace syncwarden::kernel;

namespace {

void add(record_set& rs, std::string_view key, std::string_view a, std::string_view b, uint8_t state = 0) {
    std::string_view v[] = {a, b};
    rs.add(key, v, state);
}

entity_plan make(sw_batch_mode mode) {
    entity_plan ep;
    ep.schema.name = "people";
    ep.schema.key_name = "id";
    ep.schema.fields.resize(2);
    ep.schema.fields[0].name = "first";
    ep.schema.fields[1].name = "last";
    ep.mode = mode;
    ep.source_sent = true;
    ep.desired = record_set(2);
    ep.current = record_set(2);
    return ep;
}

}  // namespace

// Change ids are hashes of what a change holds, kept in plans, ledgers and
// audit logs: hash_bytes must give what it always gave. Here it is checked
// against its definition (eight bytes a step, then the rest read as one
// little-endian number) at every length up to 40 and every tail content.
TEST(hash_bytes, gives_the_hash_of_its_definition_at_every_length) {
    // Little-endian words of up to eight bytes, composed byte by byte.
    auto word = [](std::string_view s, size_t from) {
        uint64_t w = 0;
        for (size_t k = from; k < s.size() && k < from + 8; ++k)
            w |= uint64_t(static_cast<unsigned char>(s[k])) << (8 * (k - from));
        return w;
    };
    auto reference = [&](std::string_view s) {
        uint64_t h = 0x9e3779b97f4a7c15ULL ^ s.size();
        const size_t whole = s.size() / 8 * 8;
        for (size_t i = 0; i < whole; i += 8) h = ((h ^ word(s, i)) * 0xff51afd7ed558ccdULL), h ^= h >> 29;
        h = (h ^ word(s, whole)) * 0xc4ceb9fe1a85ec53ULL;
        h ^= h >> 32;
        h *= 0xff51afd7ed558ccdULL;
        return h ^ (h >> 29);
    };
    std::string text;
    for (size_t len = 0; len <= 40; ++len) {
        EXPECT_EQ(hash_bytes(text), reference(text)) << len;
        for (int byte : {0x00, 0x41, 0x80, 0xff}) {
            std::string t = text + std::string(1, static_cast<char>(byte));
            for (size_t at = t.size() > 8 ? t.size() - 8 : 0; at < t.size(); ++at) {
                std::string u = t;
                u[at] = static_cast<char>(0xa5 ^ byte);
                EXPECT_EQ(hash_bytes(u), reference(u)) << len << " " << at;
            }
        }
        text += static_cast<char>('a' + len % 26);
    }
    EXPECT_NE(hash_bytes("stu-00000001"), hash_bytes("stu-00000002"));
}

TEST(record_set, holds_fields_compactly_and_finds_by_key) {
    record_set rs(2);
    add(rs, "b", "Björn", "");
    add(rs, "a", "Ann", "Lee");
    EXPECT_EQ(rs.size(), 2u);
    EXPECT_EQ(rs.field(0, 0), "Björn");
    EXPECT_EQ(rs.field(0, 1), "");
    EXPECT_TRUE(rs.sort_by_key().empty());
    EXPECT_EQ(rs.key(rs.sorted(0)), "a");
    EXPECT_EQ(*rs.find("b"), 0u);
    EXPECT_FALSE(rs.find("c").has_value());
    add(rs, "a", "Dup", "");
    auto dups = rs.sort_by_key();
    ASSERT_EQ(dups.size(), 1u);
    EXPECT_EQ(rs.key(dups[0].first), "a");
    EXPECT_EQ(dups[0].first, 1u);
    EXPECT_EQ(dups[0].second, 2u) << "the positions of both copies";
}

// Short records keep one-byte offsets; records whose text reaches 256 bytes
// and 64 KiB need wider ones. Every size reads back as it was added, with
// its state, next to records of the other sizes.
TEST(record_set, records_of_every_size_read_back_whole_with_their_state) {
    record_set rs(2);
    const std::vector<size_t> sizes{0, 1, 120, 127, 128, 200, 254, 255, 256, 300, 40000, 65535, 65536, 70000, 300000};
    for (size_t i = 0; i < sizes.size(); ++i) {
        const std::string a(sizes[i], static_cast<char>('a' + i % 26)), b = "b" + std::to_string(i);
        add(rs, "k" + std::to_string(i), a, b, static_cast<uint8_t>(i % 3));
    }
    for (size_t i = 0; i < sizes.size(); ++i) {
        EXPECT_EQ(rs.key(i), "k" + std::to_string(i));
        EXPECT_EQ(rs.field(i, 0), std::string(sizes[i], static_cast<char>('a' + i % 26))) << "size " << sizes[i];
        EXPECT_EQ(rs.field(i, 1), "b" + std::to_string(i)) << "size " << sizes[i];
        EXPECT_EQ(rs.state(i), i % 3) << "size " << sizes[i];
    }
    rs.build_index();
    EXPECT_EQ(rs.lookup("k12"), 12u);
}

// The target's records are indexed batch by batch as they arrive; the
// table grows many times on the way. Every key is found afterwards, absent
// keys are not, and a key held twice is reported whichever batches its
// copies came in, with the first copy the one the index keeps.
TEST(record_set, an_index_built_batch_by_batch_finds_every_key_and_every_duplicate) {
    record_set rs(2);
    const size_t n = 100000;
    size_t batches = 0;
    for (size_t i = 0; i < n; ++i) {
        add(rs, "person-" + std::to_string(i), "x", "y");
        if (i % 997 == 0 || i == 5) {
            rs.index_more();
            ++batches;
        }
    }
    add(rs, "person-3", "copy", "");       // duplicates of keys indexed long before
    add(rs, "person-99999", "copy", "");
    rs.index_more();
    add(rs, "person-3", "third", "");
    auto dups = rs.build_index();
    EXPECT_GT(batches, 100u);
    ASSERT_EQ(dups.size(), 3u);
    EXPECT_EQ(dups[0].first, 3u);
    EXPECT_EQ(dups[0].second, n);
    EXPECT_EQ(dups[1].first, 99999u);
    EXPECT_EQ(dups[1].second, n + 1);
    EXPECT_EQ(dups[2].first, 3u);
    EXPECT_EQ(dups[2].second, n + 2);
    for (size_t i = 0; i < n; ++i) ASSERT_EQ(rs.lookup("person-" + std::to_string(i)), i) << i;
    EXPECT_FALSE(rs.lookup("person-100000").has_value());
    EXPECT_FALSE(rs.lookup("").has_value());
    // Built at once, the same answers.
    record_set once(2);
    for (size_t i = 0; i < n; ++i) add(once, "person-" + std::to_string(i), "x", "y");
    EXPECT_TRUE(once.build_index().empty());
    for (size_t i = 0; i < n; i += 7) ASSERT_EQ(once.lookup("person-" + std::to_string(i)), i);
}

// Keys that arrive in order need no hash table: copies are the keys equal
// to the one before, lookups search by halves. When lookups become many,
// or a key arrives out of order, the table is built and every answer stays
// the same.
TEST(record_set, keys_in_order_are_found_with_or_without_a_table) {
    auto key = [](size_t i) {
        char k[32];
        std::snprintf(k, sizeof k, "enr-%08zu", i);
        return std::string(k);
    };
    for (bool out_of_order : {false, true}) {
        record_set rs(2);
        const size_t n = 50000;
        for (size_t i = 0; i < n; ++i) {
            add(rs, key(i), "x", "y");
            if (i == 700 || i == 701 || i == 30000) add(rs, key(i), "copy", "");  // records i+1.. shift
            if (i % 4096 == 0) rs.index_more();
        }
        if (out_of_order) add(rs, key(5), "late", "");  // breaks the order: a copy of record 5
        auto dups = rs.build_index();
        ASSERT_EQ(dups.size(), out_of_order ? 4u : 3u) << out_of_order;
        EXPECT_EQ(rs.key(dups[0].first), key(700));
        EXPECT_EQ(dups[0].second, dups[0].first + 1);
        EXPECT_EQ(rs.key(dups[1].first), key(701));
        EXPECT_EQ(rs.key(dups[2].first), key(30000));
        if (out_of_order) {
            EXPECT_EQ(dups[3].first, 5u);
            EXPECT_EQ(dups[3].second, n + 3);
        }
        // More lookups than the halving allows (n/64 + 4096): all found,
        // the first copy where there are two, before and after the switch.
        for (int round = 0; round < 2; ++round)
            for (size_t i = 0; i < n; ++i) {
                auto at = rs.lookup(key(i));
                ASSERT_TRUE(at.has_value()) << i;
                ASSERT_EQ(rs.key(*at), key(i));
                ASSERT_TRUE(*at == 0 || rs.key(*at - 1) != key(i)) << "the first copy of " << key(i);
            }
        EXPECT_FALSE(rs.lookup(key(n)).has_value());
        EXPECT_FALSE(rs.lookup("enr-").has_value());
        EXPECT_FALSE(rs.lookup("zzz").has_value());
    }
}

// lookup_near gives lookup's answers from any hint: at it, just before it
// (a key the target does not hold), far after it, before it, past the end,
// and on a key held twice (the first copy).
TEST(record_set, a_lookup_near_a_hint_answers_as_a_lookup_does) {
    record_set rs(2);
    for (int i = 0; i < 3000; i += 2) {
        char k[16];
        std::snprintf(k, sizeof k, "k%05d", i);
        add(rs, k, "x", "");
        if (i == 1000) add(rs, k, "copy", "");
    }
    ASSERT_EQ(rs.build_index().size(), 1u);
    for (int probe = -1; probe <= 3001; probe += 1) {
        char k[16];
        std::snprintf(k, sizeof k, "k%05d", probe < 0 ? 99999 : probe);
        const auto want = rs.lookup(k);
        for (size_t hint : {size_t(0), size_t(1), size_t(250), size_t(500), size_t(501), size_t(502), size_t(1400),
                            rs.size() - 1, rs.size()})
            ASSERT_EQ(rs.lookup_near(k, hint), want) << k << " from " << hint;
    }
    EXPECT_EQ(rs.lookup_near("k01000", 502), 500u) << "the first copy, from the second";
}

TEST(keyed_diff, plans_creates_field_level_updates_and_deletes) {
    auto ep = make(SW_MODE_BULK);
    add(ep.desired, "1", "Ann", "Lee");       // unchanged
    add(ep.desired, "2", "Bo", "Chen");       // renamed
    add(ep.desired, "4", "Di", "Diaz");       // new
    add(ep.current, "1", "Ann", "Lee");
    add(ep.current, "2", "Bob", "Chen");
    add(ep.current, "3", "Cy", "Cole");       // gone from the source
    keyed_diff(ep);
    ASSERT_EQ(ep.changes.size(), 3u);
    std::map<sw_change_kind, planned_change> by_kind;
    for (auto& c : ep.changes) by_kind[c.kind] = c;
    auto& up = by_kind.at(SW_CHANGE_UPDATE);
    EXPECT_EQ(ep.key_of(up), "2");
    ASSERT_EQ(up.changed_count, 1u);
    EXPECT_EQ(ep.changed_fields[up.changed_begin], 0u);
    EXPECT_EQ(ep.desired.field(up.desired, 0), "Bo");
    EXPECT_EQ(ep.current.field(up.current, 0), "Bob");
    EXPECT_EQ(ep.key_of(by_kind.at(SW_CHANGE_DELETE)), "3");
    EXPECT_EQ(ep.key_of(by_kind.at(SW_CHANGE_CREATE)), "4");
    EXPECT_EQ(ep.desired.size(), 2u) << "only what changed is kept";
}

TEST(keyed_diff, an_entity_the_source_said_nothing_about_is_left_alone) {
    auto ep = make(SW_MODE_BULK);
    ep.source_sent = false;
    add(ep.current, "1", "Ann", "Lee");
    keyed_diff(ep);
    EXPECT_TRUE(ep.changes.empty());
    ep.source_sent = true;  // an empty bulk batch: the entity is now empty
    keyed_diff(ep);
    ASSERT_EQ(ep.changes.size(), 1u);
    EXPECT_EQ(ep.changes[0].kind, SW_CHANGE_DELETE);
}

// The diff compares the target's next record first, as a target usually
// lists its records in the source's last order. The plan must not depend on
// that: the same source in the target's order, reversed and shuffled, with
// keys offered twice, plans the same changes.
TEST(streaming_diff, the_plan_does_not_depend_on_the_order_the_source_sends) {
    std::vector<std::string> keys;
    for (int i = 0; i < 200; ++i) keys.push_back("k" + std::to_string(i));
    auto plan_for = [&](const std::vector<std::string>& order) {
        auto ep = make(SW_MODE_BULK);
        for (auto& k : keys)
            if (k != "k7") add(ep.current, k, "Ann", k == "k50" ? "Old" : "Lee");  // k7 is new
        streaming_diff d(ep);
        std::map<std::string, std::string> out;
        for (auto& k : order) {
            if (k == "k9") continue;  // deleted
            std::string_view v[] = {"Ann", "Lee"};
            if (!d.offer(k, v, k == "k120")) out[k] += "dup;";
        }
        d.finish();
        for (auto& c : ep.changes) {
            const std::string k(c.kind == SW_CHANGE_CREATE ? ep.desired.key(c.desired) : ep.current.key(c.current));
            out[k] += kind_name(c.kind);
        }
        return out;
    };
    std::vector<std::string> same = keys;
    same.insert(same.begin() + 30, "k29");  // sent twice, right after itself
    const auto expected = plan_for(same);
    EXPECT_EQ(expected, (std::map<std::string, std::string>{
                            {"k7", "create"}, {"k9", "delete"}, {"k29", "dup;"}, {"k50", "update"}, {"k120", "delete"}}));
    std::vector<std::string> reversed(same.rbegin(), same.rend());
    EXPECT_EQ(plan_for(reversed), expected);
    std::vector<std::string> shuffled = same;
    for (size_t i = 0; i < shuffled.size(); ++i) std::swap(shuffled[i], shuffled[(i * 7919) % shuffled.size()]);
    EXPECT_EQ(plan_for(shuffled), expected);
}

TEST(streaming_diff, reports_duplicates_on_both_sides) {
    auto ep = make(SW_MODE_BULK);
    add(ep.current, "1", "Ann", "Lee");
    add(ep.current, "1", "Ann", "Twice");
    streaming_diff d(ep);
    ASSERT_EQ(d.target_duplicates().size(), 1u);
    std::string_view v[] = {"Ann", "Lee"};
    EXPECT_TRUE(d.offer("1", v, false));
    EXPECT_FALSE(d.offer("1", v, false)) << "the same existing key offered twice";
    EXPECT_TRUE(d.offer("5", v, false));
    EXPECT_TRUE(d.offer("5", v, false));
    auto dups = d.finish();
    ASSERT_EQ(dups.size(), 1u);
    EXPECT_EQ(dups[0], "5");
}

// The target holds s-1 twice and the source still sends s-1, renamed: the
// plan must never delete a key the source sends.
TEST(streaming_diff, never_deletes_a_key_the_source_sends_when_the_target_holds_it_twice) {
    auto ep = make(SW_MODE_BULK);
    ep.source_sent = true;
    add(ep.current, "s-1", "Zoe", "Garcia");
    add(ep.current, "s-2", "Bo", "Chen");
    add(ep.current, "s-1", "Zoe", "Garcia");
    streaming_diff d(ep);
    ASSERT_EQ(d.target_duplicates().size(), 1u);
    EXPECT_EQ(d.target_duplicates()[0].first, 0u);
    EXPECT_EQ(d.target_duplicates()[0].second, 2u);
    std::string_view renamed[] = {"Zoé", "Garcia"}, same[] = {"Bo", "Chen"};
    EXPECT_TRUE(d.offer("s-1", renamed, false));
    EXPECT_TRUE(d.offer("s-2", same, false));
    (void)d.finish();
    for (auto& c : ep.changes)
        EXPECT_NE(c.kind, SW_CHANGE_DELETE) << "planned delete of " << ep.key_of(c);
    ASSERT_EQ(ep.changes.size(), 1u);
    EXPECT_EQ(ep.changes[0].kind, SW_CHANGE_UPDATE);
}

TEST(keyed_diff, delta_mode_deletes_only_what_is_marked_tobedeleted) {
    auto ep = make(SW_MODE_DELTA);
    add(ep.desired, "2", "Bo", "Chen", SW_RECORD_TOBEDELETED);
    add(ep.desired, "9", "Nu", "New", SW_RECORD_TOBEDELETED);  // never delivered: nothing to do
    add(ep.current, "1", "Ann", "Lee");
    add(ep.current, "2", "Bo", "Chen");
    keyed_diff(ep);
    ASSERT_EQ(ep.changes.size(), 1u);
    EXPECT_EQ(ep.changes[0].kind, SW_CHANGE_DELETE);
    EXPECT_EQ(ep.key_of(ep.changes[0]), "2");
}

TEST(keyed_diff, change_ids_are_content_ids) {
    record_set d(2);
    add(d, "2", "Ann", "Lee");
    add(d, "2", "Ann", "Leigh");
    add(d, "2", "AnnL", "ee");
    auto a = change_id("job", "people", "2", SW_CHANGE_UPDATE, &d, 0);
    EXPECT_EQ(a, change_id("job", "people", "2", SW_CHANGE_UPDATE, &d, 0)) << "the same change, the same id";
    EXPECT_NE(a, change_id("other-job", "people", "2", SW_CHANGE_UPDATE, &d, 0));
    EXPECT_NE(a, change_id("job", "staff", "2", SW_CHANGE_UPDATE, &d, 0));
    EXPECT_NE(a, change_id("job", "people", "2", SW_CHANGE_CREATE, &d, 0));
    EXPECT_NE(a, change_id("job", "people", "2", SW_CHANGE_UPDATE, &d, 1)) << "other desired values, another id";
    EXPECT_NE(a, change_id("job", "people", "2", SW_CHANGE_UPDATE, &d, 2)) << "values are not just concatenated";
    EXPECT_EQ(change_id("job", "people", "2", SW_CHANGE_DELETE, &d, 0),
              change_id("job", "people", "2", SW_CHANGE_DELETE, &d, 1)) << "a delete has no desired values";
    EXPECT_EQ(a.size(), 24u);
}

// The diff's byte comparison agrees with == at every length to 40 and for a
// difference at every place (its reads overlap differently per length).
TEST(same_bytes, agrees_with_equality_at_every_length_and_difference) {
    for (size_t n = 0; n <= 40; ++n) {
        std::string a(n, 'a'), b(n, 'a');
        for (size_t i = 0; i < n; ++i) a[i] = b[i] = static_cast<char>('a' + i % 26);
        EXPECT_TRUE(syncwarden::kernel::same_bytes(a, b)) << n;
        EXPECT_FALSE(syncwarden::kernel::same_bytes(a, b + "x")) << n;
        for (size_t i = 0; i < n; ++i) {
            std::string c = b;
            c[i] ^= 0x20;
            EXPECT_FALSE(syncwarden::kernel::same_bytes(a, c)) << "length " << n << ", byte " << i;
        }
    }
}
