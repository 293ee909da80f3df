// The audit log at scale: append N run summaries to a fresh SQLite store,
// then verify the whole log (every leaf recomputed, the tree rebuilt, every
// head's root and chain link checked, the newest signature) - and, as the
// floor in the same process, read the same entries and hash them once
// without checking anything.
//
//   sw-bench-audit --entries N [--per-append K] --work DIR
//
// Summaries are shaped like a real one (four entities, seven gate verdicts,
// about 1.9 KB of canonical JSON). A run's end appends one summary under one
// signed head; here K summaries share an append (a head), as a busy state
// deployment's would over a day, so that appending a million stays minutes,
// not hours. The single-append latency is measured apart, on 2,000 appends.
#include <syncwarden/kernel/audit.hpp>
#include <syncwarden/kernel/merkle.hpp>
#include <syncwarden/kernel/store.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

using namespace syncwarden::kernel;
namespace fs = std::filesystem;

namespace {

double since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

audit_event summary(uint64_t i) {
    nlohmann::json changes;
    const char* entities[] = {"students", "teachers", "sections", "rosters"};
    for (int e = 0; e < 4; ++e)
        changes[entities[e]]["create"] = {{"planned", i % 97 + e}, {"applied", i % 97 + e}, {"failed", 0}, {"skipped", 0}};
    nlohmann::json gates = nlohmann::json::array();
    for (int g = 0; g < 7; ++g)
        gates.push_back({{"gate", g < 4 ? "threshold" : "shrink"}, {"entity", entities[g % 4]},
                         {"kind", g < 4 ? "create" : ""}, {"verdict", "pass"}, {"count", i % 1000 + g},
                         {"base", 1000}, {"limit", g < 4 ? "10%" : "none"}});
    const std::string id = "r20261128T" + std::to_string(100000 + i % 900000) + "-" + std::to_string(i);
    nlohmann::json d{{"job", "nightly-roster"},
                     {"job_digest", std::string(64, 'e')},
                     {"trigger", "schedule"},
                     {"mode", "apply"},
                     {"source", {{"name", "oneroster-csv"}, {"version", "1.0.0"}, {"build_id", "182fb5872ecd6690"}}},
                     {"target", {{"name", "vendor-csv"}, {"version", "1.2.0"}, {"build_id", "452ef061781a64b8"}}},
                     {"started_at", "2026-11-28T01:42:00.477Z"},
                     {"ended_at", "2026-11-28T01:42:00.555Z"},
                     {"phase_seconds", {{"contract", 0}, {"extract", 0.017}, {"diff", 0.004}, {"gates", 0.005}, {"apply", 0.01}}},
                     {"changes", changes},
                     {"applied", i % 400},
                     {"failed", 0},
                     {"error_rate_permille", 0},
                     {"failures_by_category", nlohmann::json::object()},
                     {"findings", {{"extracted", 0}, {"blocking", 0}}},
                     {"gates", gates},
                     {"plan_digest", std::string(64, 'd')},
                     {"outcome", {{"state", "succeeded"}, {"exit_code", 0}}}};
    return {"run_summary", id, std::move(d)};
}

}  // namespace

int main(int argc, char** argv) {
    uint64_t entries = 100000, per_append = 1000;
    fs::path work;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string a = argv[i];
        if (a == "--entries") entries = std::strtoull(argv[i + 1], nullptr, 10);
        else if (a == "--per-append") per_append = std::strtoull(argv[i + 1], nullptr, 10);
        else if (a == "--work") work = argv[i + 1];
    }
    if (work.empty() || entries == 0 || per_append == 0) {
        std::fprintf(stderr, "usage: sw-bench-audit --entries N [--per-append K] --work DIR\n");
        return 2;
    }
    std::error_code ec;
    fs::remove_all(work, ec);
    fs::create_directories(work);
    manual_clock clk(std::chrono::system_clock::now());
    auto store = open_sqlite_store(work / "audit.db");
    if (!store) {
        std::fprintf(stderr, "%s\n", store.status().message().c_str());
        return 1;
    }
    auto log = audit_log::open(**store, work, clk);
    if (!log) {
        std::fprintf(stderr, "%s\n", log.status().message().c_str());
        return 1;
    }
    // One summary per append, as a run's end writes it.
    const uint64_t singles = std::min<uint64_t>(2000, entries);
    auto t = std::chrono::steady_clock::now();
    for (uint64_t i = 0; i < singles; ++i)
        if (auto s = (*log)->append({summary(i)}); !s) {
            std::fprintf(stderr, "%s\n", s.message().c_str());
            return 1;
        }
    const double single_ms = since(t) * 1000.0 / static_cast<double>(singles);
    t = std::chrono::steady_clock::now();
    uint64_t bytes = 0;
    for (uint64_t i = singles; i < entries;) {
        std::vector<audit_event> batch;
        for (uint64_t k = 0; k < per_append && i < entries; ++k, ++i) batch.push_back(summary(i));
        if (auto s = (*log)->append(batch); !s) {
            std::fprintf(stderr, "%s\n", s.message().c_str());
            return 1;
        }
    }
    const double append_s = since(t);
    auto vk = verify_key::from_pem((*log)->key().public_pem());
    // The floor: read every entry and hash it once, checking nothing.
    t = std::chrono::steady_clock::now();
    merkle::frontier f;
    for (uint64_t from = 0;; from += 65536) {
        auto es = (*store)->audit_entries(from, 65536);
        if (!es) return 1;
        for (auto& e : *es) {
            bytes += e.entry.size();
            f.append(merkle::leaf_hash(e.entry));
        }
        if (es->size() < 65536) break;
    }
    const double floor_s = since(t);
    t = std::chrono::steady_clock::now();
    auto v = verify_audit_log(**store, *vk);
    const double verify_s = since(t);
    if (!v || !v->ok) {
        std::fprintf(stderr, "verify failed: %s\n", v ? v->message.c_str() : v.status().message().c_str());
        return 1;
    }
    t = std::chrono::steady_clock::now();
    auto all = verify_audit_log(**store, *vk, {true});
    const double all_s = since(t);
    if (!all || !all->ok) return 1;
    std::printf("audit log: %llu summaries (%.0f bytes each), %llu signed heads\n",
                static_cast<unsigned long long>(v->entries), static_cast<double>(bytes) / static_cast<double>(entries),
                static_cast<unsigned long long>(v->heads));
    std::printf("append, one summary per signed head: %.3f ms each (over %llu)\n", single_ms,
                static_cast<unsigned long long>(singles));
    std::printf("append, %llu summaries per signed head: %.2f s for %llu\n", static_cast<unsigned long long>(per_append),
                append_s, static_cast<unsigned long long>(entries - singles));
    std::printf("floor (read + hash each entry once): %.2f s\n", floor_s);
    std::printf("audit verify: %.2f s (budget: at most 5 s at 1M), %.2fx the floor\n", verify_s, verify_s / floor_s);
    std::printf("audit verify --all-signatures: %.2f s\n", all_s);
    if (entries >= 1000000 && verify_s > 5.0) {
        std::printf("OVER BUDGET: verifying 1M summaries took more than 5 s\n");
        return 3;
    }
    return 0;
}
