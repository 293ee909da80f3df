// Versions and version ranges, as release manifests and job files give them.
#include <syncwarden/kernel/semver.hpp>

#include <cstdint>
#include <cstdlib>
#include <string_view>

using syncwarden::kernel::semver;
using syncwarden::kernel::semver_range;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    const auto cut = in.find('\n');
    const std::string_view a = in.substr(0, cut), b = cut == std::string_view::npos ? a : in.substr(cut + 1);
    auto v = semver::parse(a);
    auto w = semver::parse(b);
    if (v) {
        // What it prints reads back as itself.
        auto again = semver::parse(v->str());
        if (!again || !(*again == *v)) std::abort();
    }
    if (v && w) {
        const auto x = *v <=> *w, y = *w <=> *v;
        if ((x < 0) != (y > 0)) std::abort();
    }
    if (auto r = semver_range::parse(b); r && v) (void)r->matches(*v);
    return 0;
}
