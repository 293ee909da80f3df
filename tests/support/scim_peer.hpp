// The SCIM test peer (tests/peers/scim/server.mjs) as a test fixture: a real
// SCIM 2.0 server on loopback, on a port the system picks, stopped with the
// fixture. Its state is read back over the protocol, never from its files.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <sys/types.h>
#include <vector>

namespace sw_test {

class scim_peer {
public:
    // `options` are server.mjs flags ("--throttle", "20", "--etag", ...).
    // The store lives in `dir`; a second peer on the same dir sees the same
    // resources.
    scim_peer(const std::filesystem::path& dir, const std::string& token, std::vector<std::string> options = {});
    ~scim_peer();
    scim_peer(const scim_peer&) = delete;
    scim_peer& operator=(const scim_peer&) = delete;

    // https:// when started with "--tls CERT:KEY" (the certificate is then
    // the CA the fixture trusts).
    std::string base_url() const {
        return std::string(ca_file_.empty() ? "http" : "https") + "://127.0.0.1:" + std::to_string(port_) + "/scim";
    }
    std::string token_url() const {
        return std::string(ca_file_.empty() ? "http" : "https") + "://127.0.0.1:" + std::to_string(port_) +
               "/oauth/token";
    }
    int port() const { return port_; }
    // A request with the bearer token; the body is JSON text or empty.
    struct answer {
        int status = 0;
        nlohmann::json body;
    };
    answer request(const std::string& method, const std::string& path, const std::string& body = {}) const;
    // Every resource of "Users" or "Groups", all pages.
    std::vector<nlohmann::json> all(const std::string& type) const;
    nlohmann::json stats() const;  // GET /_stats

private:
    std::string bearer() const;  // the token, or a fresh one from the token endpoint with --oauth2
    pid_t pid_ = -1;
    int port_ = 0;
    std::string token_;
    std::string oauth_;    // CLIENT_ID:CLIENT_SECRET with --oauth2
    std::string ca_file_;  // with --tls
};

}  // namespace sw_test
