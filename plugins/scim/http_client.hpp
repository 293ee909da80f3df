// The SCIM connector's HTTP: one kept-alive connection to the service
// provider (Poco::Net, HTTPS through Poco::NetSSL with OpenSSL), bearer or
// OAuth 2.0 client-credentials auth, and the classification of every
// answer into the kernel's statuses.
#pragma once

#include <syncwarden/connector.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>

namespace syncwarden::scim {

struct endpoint {
    std::string scheme, host, base_path;  // base_path without a trailing '/'
    uint16_t port = 0;
};
// Parses "https://host[:port]/path"; throws SW_CONFIG naming the setting.
endpoint parse_url(const std::string& url, const std::string& setting);

struct http_settings {
    endpoint base;
    std::string ca_file;        // extra trust anchors (PEM); empty: the system's
    bool verify_tls = true;
    std::chrono::seconds timeout{30};
    // Auth: a bearer token, or OAuth 2.0 client credentials.
    std::string bearer;
    std::string token_url, client_id, client_secret, scope;
};

struct response {
    int status = 0;
    std::string body;
    std::string etag;
    std::optional<uint32_t> retry_after_ms;  // from Retry-After
    nlohmann::json json() const;             // throws SW_PERMANENT when the body is not JSON
};

class http_client {
public:
    explicit http_client(http_settings s);
    ~http_client();
    http_client(const http_client&) = delete;
    http_client& operator=(const http_client&) = delete;

    // A request to base_path + path. A lost connection is re-opened once;
    // what still fails throws SW_RETRYABLE ("connection"). A 401 with
    // client credentials fetches a new token once.
    response send(const std::string& method, const std::string& path, const std::string& body = {},
                  const std::string& if_match = {});
    std::string url(const std::string& path) const;

private:
    response exchange(const std::string& method, const std::string& target, const std::string& body,
                      const std::string& if_match, const std::string& content_type, bool with_auth);
    void fetch_token();
    struct impl;
    std::unique_ptr<impl> impl_;
    http_settings s_;
    std::string token_;  // the bearer token in use
};

// RFC 3986 percent-encoding of everything but the unreserved characters,
// for query values and form fields.
std::string url_encode(const std::string& v);

// What a non-2xx answer means for the kernel: status, category (the SCIM
// scimType, or "http_NNN") and a message naming the request and what the
// server said. 429 and 503 are throttled (with Retry-After), other 5xx
// retryable, 401/403 auth, other 4xx permanent.
sdk::error classify(const response& r, const std::string& what);

}  // namespace syncwarden::scim
