// The audit signing key: created once with mode 0600, reloaded, refused when
// others can read it; signatures that check with the public key alone, and
// nothing else that does.
#include "test_support.hpp"

#include <syncwarden/kernel/signer.hpp>

#include <gtest/gtest.h>

#include <sys/stat.h>

using namespace syncwarden::kernel;
using ::testing::HasSubstr;

TEST(signing_key, is_created_private_and_reloaded_with_the_same_id) {
    sw_test::temp_dir d;
    const auto file = d / "audit" / "signing-key.pem";
    auto k = signing_key::load_or_create(file);
    ASSERT_TRUE(k) << k.status().message();
    struct stat st {};
    ASSERT_EQ(::stat(file.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    ASSERT_EQ(::stat(file.parent_path().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u);
    EXPECT_EQ(k->key_id().size(), 16u);
    auto again = signing_key::load_or_create(file);
    ASSERT_TRUE(again) << again.status().message();
    EXPECT_EQ(again->key_id(), k->key_id());
    EXPECT_EQ(again->public_pem(), k->public_pem());
}

TEST(signing_key, a_key_others_can_read_is_refused) {
    sw_test::temp_dir d;
    const auto file = d / "key.pem";
    ASSERT_TRUE(signing_key::load_or_create(file));
    ::chmod(file.c_str(), 0644);
    auto k = signing_key::load_or_create(file);
    ASSERT_FALSE(k);
    EXPECT_THAT(k.status().message(), HasSubstr("can be read by others (mode 644); make it private: chmod 600"));
}

TEST(signing_key, a_signature_checks_with_the_public_key_alone_and_nothing_else_does) {
    sw_test::temp_dir d;
    auto k = signing_key::load_or_create(d / "key.pem");
    auto other = signing_key::load_or_create(d / "other.pem");
    ASSERT_TRUE(k && other);
    const std::string head = R"({"key_id":"x","root":"ab","size":3,"timestamp":"2026-11-27T00:00:00.000Z"})";
    auto sig = k->sign(head);
    ASSERT_TRUE(sig);
    auto pub = verify_key::from_pem(k->public_pem());
    ASSERT_TRUE(pub) << pub.status().message();
    EXPECT_EQ(pub->key_id(), k->key_id());
    EXPECT_TRUE(pub->verify(head, *sig));
    std::string changed = head;
    changed[changed.find('3')] = '4';
    EXPECT_FALSE(pub->verify(changed, *sig)) << "a signed head with another size";
    std::string flipped = *sig;
    flipped[0] = flipped[0] == '0' ? '1' : '0';
    EXPECT_FALSE(pub->verify(head, flipped)) << "a signature one digit off";
    EXPECT_FALSE(pub->verify(head, sig->substr(2))) << "a signature cut short";
    EXPECT_FALSE(pub->verify(head, "zz" + sig->substr(2))) << "not hex";
    auto other_pub = verify_key::from_pem(other->public_pem());
    ASSERT_TRUE(other_pub);
    EXPECT_FALSE(other_pub->verify(head, *sig)) << "another key";
    EXPECT_FALSE(verify_key::from_pem("-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n"));
}
