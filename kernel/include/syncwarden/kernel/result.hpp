// Errors inside the kernel are values: Status and Result<T>.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace syncwarden::kernel {

// What went wrong, coarsely; the CLI maps each to an exit code (README).
enum class error_kind {
    usage,       // the command line is wrong
    config,      // a kernel or job config file is wrong
    connector,   // a connector .so was refused, or misbehaved
    input,       // the source data was rejected
    target,      // the target refused or failed changes
    store,       // the run store failed
    not_found,   // a run, job or connector that does not exist
    internal,    // a bug in the kernel
    cancelled,   // an operator or a signal stopped the run
    busy,        // another run holds the target system (--no-wait)
    held,        // a safety gate held the run; nothing was applied
    tampered     // the audit log or a proof failed verification
};

class [[nodiscard]] Status {
public:
    Status() = default;
    static Status ok() { return {}; }
    static Status error(error_kind kind, std::string message) {
        Status s;
        s.failed_ = true;
        s.kind_ = kind;
        s.message_ = std::move(message);
        return s;
    }
    bool is_ok() const { return !failed_; }
    explicit operator bool() const { return !failed_; }
    error_kind kind() const { return kind_; }
    const std::string& message() const { return message_; }
    // A stable word for reports ("connector_crashed", "timeout"); may be empty.
    const std::string& category() const { return category_; }
    Status with_category(std::string category) const {
        Status s = *this;
        s.category_ = std::move(category);
        return s;
    }
    // Prepends context: "loading x.so: " + message.
    Status context(const std::string& where) const {
        if (!failed_) return *this;
        return error(kind_, where + ": " + message_).with_category(category_);
    }

private:
    bool failed_ = false;
    error_kind kind_ = error_kind::internal;
    std::string message_;
    std::string category_;
};

template <class T>
class [[nodiscard]] Result {
public:
    Result(T value) : v_(std::move(value)) {}
    Result(Status status) : v_(std::move(status)) {}
    bool is_ok() const { return std::holds_alternative<T>(v_); }
    explicit operator bool() const { return is_ok(); }
    T& value() & { return std::get<T>(v_); }
    const T& value() const& { return std::get<T>(v_); }
    T&& value() && { return std::get<T>(std::move(v_)); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    T& operator*() { return value(); }
    Status status() const { return is_ok() ? Status::ok() : std::get<Status>(v_); }

private:
    std::variant<T, Status> v_;
};

inline const char* to_string(error_kind k) {
    switch (k) {
        case error_kind::usage: return "usage";
        case error_kind::config: return "config";
        case error_kind::connector: return "connector";
        case error_kind::input: return "input";
        case error_kind::target: return "target";
        case error_kind::store: return "store";
        case error_kind::not_found: return "not_found";
        case error_kind::internal: return "internal";
        case error_kind::cancelled: return "cancelled";
        case error_kind::busy: return "busy";
        case error_kind::held: return "held";
        case error_kind::tampered: return "tampered";
    }
    return "internal";
}

}  // namespace syncwarden::kernel
