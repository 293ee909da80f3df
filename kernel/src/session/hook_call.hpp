// Calling a connector's hook: a fresh sw_error, anything thrown caught, and
// a status outside sw_status turned into SW_INTERNAL. Used in process and by
// the worker.
#pragma once

#include <syncwarden/connector.h>

#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

namespace syncwarden::kernel {

inline void set_error(sw_error& err, const char* category, const std::string& message) {
    std::snprintf(err.category, sizeof err.category, "%s", category);
    std::snprintf(err.message, sizeof err.message, "%s", message.c_str());
}

template <class F>
sw_status call_hook(const char* hook, sw_error& err, F&& f) {
    std::memset(&err, 0, sizeof err);
    err.struct_size = sizeof err;
    try {
        auto s = static_cast<sw_status>(f());
        if (s > SW_CANCELLED) {
            set_error(err, "bad_status", std::string(hook) + " returned status " +
                                             std::to_string(static_cast<unsigned>(s)) + ", which is not a sw_status");
            return SW_INTERNAL;
        }
        return s;
    } catch (const std::exception& e) {
        set_error(err, "exception", std::string(hook) + " threw across the ABI: " + e.what());
    } catch (...) {
        set_error(err, "exception", std::string(hook) + " threw across the ABI");
    }
    return SW_INTERNAL;
}

}  // namespace syncwarden::kernel
