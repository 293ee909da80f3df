// Job files and kernel config files, as operators (or a broken deploy) write
// them: the input is written to a file and loaded as each.
#include <syncwarden/kernel/config.hpp>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    namespace fs = std::filesystem;
    static const fs::path dir = [] {
        fs::path d = fs::temp_directory_path() / ("sw-fuzz-config-" + std::to_string(::getpid()));
        fs::create_directories(d);
        return d;
    }();
    const fs::path file = dir / "job.json";
    {
        std::ofstream out(file, std::ios::binary | std::ios::trunc);
        out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    }
    (void)syncwarden::kernel::load_job(file);
    (void)syncwarden::kernel::load_kernel_config(file, dir / "data");
    return 0;
}
