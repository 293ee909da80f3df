// ABI throughput: the null source emits N records of 6 fields through the
// ABI into the kernel's record checker (what every extract goes through).
// The baseline is the same emission into a host that accepts and drops each
// batch, so the ratio is the kernel's own cost. Then the same two runs with
// the connector in a worker process: records cross the process boundary
// through shared memory.
//
//   sw-bench-abi PATH/null-source.so [--records N]
#include <syncwarden/kernel/record_checker.hpp>
#include <syncwarden/kernel/session.hpp>
#include <syncwarden/kernel/worker.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>

using namespace syncwarden::kernel;

namespace {

struct result { double seconds; unsigned long long records; };

Result<result> run(const std::shared_ptr<const loaded_connector>& lib, unsigned long long n, bool check,
                   bool worker) {
    const nlohmann::json settings{{"records", std::to_string(n)}};
    auto session = worker ? open_in_worker(lib->path(), lib->info(), settings, "bench", ".", no_services(), "settings",
                                           worker_options{})
                          : open_in_process(lib, settings, "bench", ".", no_services());
    if (!session) return session.status();
    auto contract = (*session)->contract(no_services());
    if (!contract) return contract.status();
    unsigned long long seen = 0, bad = 0;
    record_checker checker(*contract, (*session)->who(), "extract", [&](finding_record) { ++bad; });
    struct sink final : record_sink {
        std::function<sw_status(const sw_batch&)> fn;
        sw_status on_records(const sw_batch& b) override { return fn(b); }
    } counter;
    counter.fn = [&](const sw_batch& b) -> sw_status {
        if (!check) {
            seen += b.record_count;
            return SW_OK;
        }
        const entity_schema* es = checker.check_batch(b);
        if (!es) return SW_SCHEMA;
        for (size_t i = 0; i < b.record_count; ++i) seen += checker.check_record(b.records[i], *es);
        return SW_OK;
    };
    auto t0 = std::chrono::steady_clock::now();
    auto s = (*session)->extract({"people"}, counter, no_services());
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!s) return s;
    if (seen != n || bad)
        return Status::error(error_kind::internal, "expected " + std::to_string(n) + " good records, saw " +
                                                       std::to_string(seen) + " and " + std::to_string(bad) + " bad");
    return result{secs, seen};
}

}  // namespace

int main(int argc, char** argv) {
    // This binary is also the worker it starts.
    if (is_worker_command(argc, argv)) return worker_main(argc, argv);
    if (argc < 2) {
        std::fprintf(stderr, "usage: sw-bench-abi PATH/null-source.so [--records N]\n");
        return 2;
    }
    unsigned long long n = 10'000'000;
    for (int i = 2; i + 1 < argc; i += 2)
        if (std::string(argv[i]) == "--records") n = std::strtoull(argv[i + 1], nullptr, 10);
    auto lib = load_connector(argv[1]);
    if (!lib) {
        std::fprintf(stderr, "error: %s\n", lib.status().message().c_str());
        return 4;
    }
    auto base = run(*lib, n, false, false);
    auto full = run(*lib, n, true, false);
    auto wbase = run(*lib, n, false, true);
    auto wfull = run(*lib, n, true, true);
    for (auto* r : {&base, &full, &wbase, &wfull})
        if (!*r) {
            std::fprintf(stderr, "error: %s\n", r->status().message().c_str());
            return 1;
        }
    std::printf("abi_throughput records=%llu fields=6 baseline_s=%.3f kernel_s=%.3f "
                "baseline_rps=%.0f kernel_rps=%.0f ratio=%.2f\n",
                n, base->seconds, full->seconds, n / base->seconds, n / full->seconds,
                full->seconds / base->seconds);
    std::printf("abi_worker records=%llu fields=6 crossing_s=%.3f kernel_s=%.3f "
                "crossing_rps=%.0f kernel_rps=%.0f ratio_to_in_process=%.2f\n",
                n, wbase->seconds, wfull->seconds, n / wbase->seconds, n / wfull->seconds,
                wfull->seconds / full->seconds);
    return 0;
}
