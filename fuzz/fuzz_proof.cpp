// An inclusion proof of the audit log, as an auditor receives it: any JSON.
// The checker must answer ok or not, never crash, and never accept a proof
// that a fixed key did not sign (no key here signs anything).
#include <syncwarden/kernel/audit.hpp>

#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace syncwarden::kernel;
    // A public key whose private half was thrown away when it was made.
    static auto key = verify_key::from_pem(
        "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA9+muX4cdV0P5jT0rbS3e57eyrOWM9QReLBCOzcXAgp8=\n-----END PUBLIC KEY-----\n");
    if (!key) std::abort();
    // nlohmann's parser recurses: nesting deeper than a proof has is cut
    // here, as the kernel's own reader (parse_json_file) cuts it.
    int depth = 0;
    for (size_t i = 0; i < size; ++i) {
        if (data[i] == '[' || data[i] == '{') ++depth;
        if (depth > 64) return 0;
        if (data[i] == ']' || data[i] == '}') --depth;
    }
    const auto j = nlohmann::json::parse(reinterpret_cast<const char*>(data), reinterpret_cast<const char*>(data) + size,
                                         nullptr, false);
    if (j.is_discarded()) return 0;
    if (check_inclusion_proof(j, *key).ok) std::abort();
    if (j.is_object() && j.contains("head")) (void)head_from_json(j["head"], "proof.json: $.head");
    return 0;
}
