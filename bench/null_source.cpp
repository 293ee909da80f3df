// A source that emits N records of 6 fields as fast as the ABI allows:
// preformatted values, batches of 4096, no allocation per record. Used by
// sw-bench-abi to measure what the kernel's side of the ABI costs.
#include <syncwarden/connector.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

constexpr size_t k_fields = 6, k_batch = 4096;

struct instance {
    const sw_host_api* host;
    sw_host_ctx* ctx;
    unsigned long long count = 0;
};

sw_status create(const sw_host_api* host, sw_host_ctx* ctx, const sw_create_args*, void** out, sw_error* err) {
    auto* i = new (std::nothrow) instance{host, ctx};
    if (!i) return SW_INTERNAL;
    sw_str v{};
    if (host->config_get(ctx, {"/records", 8}, &v) != SW_OK) {
        std::snprintf(err->message, sizeof err->message, "settings.records is required");
        delete i;
        return SW_CONFIG;
    }
    i->count = std::strtoull(std::string(v.ptr, v.len).c_str(), nullptr, 10);
    *out = i;
    return SW_OK;
}

void destroy(void* inst) { delete static_cast<instance*>(inst); }

const sw_field_def k_defs[k_fields] = {
    {sizeof(sw_field_def), {"given", 5}, SW_TYPE_STRING, SW_FIELD_REQUIRED},
    {sizeof(sw_field_def), {"family", 6}, SW_TYPE_STRING, SW_FIELD_REQUIRED},
    {sizeof(sw_field_def), {"email", 5}, SW_TYPE_STRING, 0},
    {sizeof(sw_field_def), {"grade", 5}, SW_TYPE_STRING, 0},
    {sizeof(sw_field_def), {"school", 6}, SW_TYPE_STRING, 0},
    {sizeof(sw_field_def), {"active", 6}, SW_TYPE_BOOL, 0}};
const sw_entity_def k_entity = {sizeof(sw_entity_def), {"people", 6}, {"id", 2}, k_defs, k_fields};
const sw_contract k_contract = {sizeof(sw_contract), &k_entity, 1, nullptr, 0, nullptr, 0, nullptr, 0};

sw_status contract(void*, const sw_contract** out, sw_error*) {
    *out = &k_contract;
    return SW_OK;
}

sw_status extract(void* inst, const sw_str*, size_t, sw_error*) {
    auto* i = static_cast<instance*>(inst);
    static const char* given[] = {"Zoë", "José", "Amélie", "Noah"};
    static const char* family[] = {"García", "Nguyen", "Müller", "Okafor"};
    std::vector<char> keys(k_batch * 16);
    std::vector<sw_str> values(k_batch * k_fields);
    std::vector<sw_record> recs(k_batch);
    // The key is a 13-digit counter incremented in place: formatting it with
    // snprintf cost more than the ABI call it is there to measure.
    char counter[14] = "p000000000000";
    const int len = 13;
    for (unsigned long long done = 0; done < i->count;) {
        size_t n = static_cast<size_t>(std::min<unsigned long long>(k_batch, i->count - done));
        for (size_t r = 0; r < n; ++r) {
            unsigned long long id = done + r;
            char* k = &keys[r * 16];
            std::memcpy(k, counter, 14);
            for (int d = 12; d > 0 && ++counter[d] > '9'; --d) counter[d] = '0';
            sw_str* v = &values[r * k_fields];
            v[0] = {given[id & 3], std::strlen(given[id & 3])};
            v[1] = {family[(id >> 2) & 3], std::strlen(family[(id >> 2) & 3])};
            v[2] = {"someone@students.example.org", 28};
            v[3] = {"09", 2};
            v[4] = {"org-00000042", 12};
            v[5] = {"true", 4};
            recs[r] = {{k, static_cast<size_t>(len)}, v, k_fields, SW_RECORD_ACTIVE};
        }
        sw_batch b{sizeof(sw_batch), {"people", 6}, SW_MODE_BULK, recs.data(), n};
        sw_status s = i->host->emit(i->ctx, &b);
        if (s != SW_OK) return s;
        done += n;
    }
    return SW_OK;
}

const sw_manifest k_manifest = {sizeof(sw_manifest), {"null-source", 11}, {"1.0.0", 5}, {"bench", 5},
                                {"emits N synthetic records", 25}, SW_CAP_SOURCE, SW_THREAD_INSTANCE, {nullptr, 0}};
const sw_hooks k_hooks = {sizeof(sw_hooks), create, destroy, contract, extract, nullptr, nullptr, nullptr, nullptr,
                          nullptr, nullptr, nullptr};
const sw_connector k_connector = {sizeof(sw_connector), SW_ABI_MAJOR, SW_ABI_MINOR, &k_manifest, &k_hooks};

}  // namespace

extern "C" SW_EXPORT const sw_connector* sw_connector_entry(void) { return &k_connector; }
