// The plan reader: a stored plan is the kernel's own file, but it sits in
// the data dir, and one altered together with its digest must still not
// take the kernel down. The input is written as a plan and read whole.
#include <syncwarden/kernel/digest.hpp>
#include <syncwarden/kernel/plan_file.hpp>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    namespace fs = std::filesystem;
    using namespace syncwarden::kernel;
    static const fs::path dir = [] {
        fs::path d = fs::temp_directory_path() / ("sw-fuzz-plan-" + std::to_string(::getpid()));
        fs::create_directories(d);
        return d;
    }();
    const fs::path file = dir / "x.plan";
    {
        std::ofstream out(file, std::ios::binary | std::ios::trunc);
        out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    }
    std::string err;
    const std::string digest = sha256_file_hex(file, &err);
    auto r = plan_reader::open(file, digest);
    if (!r) return 0;
    (void)(*r)->for_each_batch(7, [&](const plan_header::entity&, const sw_change_batch& b, uint64_t) {
        for (size_t k = 0; k < b.change_count; ++k) {
            (void)(*r)->deactivates(k);
            (void)(*r)->adopts(k);
        }
        return Status::ok();
    });
    return 0;
}
