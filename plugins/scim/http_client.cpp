#include "http_client.hpp"

#include <Poco/Exception.h>
#include <Poco/Net/Context.h>
#include <Poco/Net/HTMLForm.h>
#include <Poco/Net/HTTPBasicCredentials.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPSClientSession.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/SSLException.h>
#include <Poco/Net/SSLManager.h>
#include <Poco/StreamCopier.h>

#include <cctype>
#include <ctime>
#include <iomanip>
#include <mutex>
#include <sstream>

namespace syncwarden::scim {

using sdk::error;

endpoint parse_url(const std::string& url, const std::string& setting) {
    auto bad = [&](const std::string& why) {
        return error(SW_CONFIG, "settings", "target settings" + setting + ": '" + url + "' " + why);
    };
    endpoint e;
    const auto colon = url.find("://");
    if (colon == std::string::npos) throw bad("is not a URL (expected https://host/path)");
    e.scheme = url.substr(0, colon);
    if (e.scheme != "https" && e.scheme != "http") throw bad("must start with https:// (or http:// on loopback)");
    std::string rest = url.substr(colon + 3);
    const auto slash = rest.find('/');
    std::string hostport = rest.substr(0, slash);
    e.base_path = slash == std::string::npos ? "" : rest.substr(slash);
    while (!e.base_path.empty() && e.base_path.back() == '/') e.base_path.pop_back();
    // [v6]:port, or host:port.
    std::string port_text;
    if (!hostport.empty() && hostport.front() == '[') {
        const auto close = hostport.find(']');
        if (close == std::string::npos) throw bad("has an unclosed '[' in its host");
        if (close + 1 < hostport.size()) {
            if (hostport[close + 1] != ':') throw bad("has something after its host");
            port_text = hostport.substr(close + 2);
        }
        hostport = hostport.substr(1, close - 1);
    } else if (const auto pc = hostport.rfind(':'); pc != std::string::npos) {
        port_text = hostport.substr(pc + 1);
        hostport = hostport.substr(0, pc);
    }
    if (!port_text.empty()) {
        if (port_text.find_first_not_of("0123456789") != std::string::npos || port_text.size() > 5)
            throw bad("has port '" + port_text + "', which is not a number");
        const long n = std::stol(port_text);
        if (n <= 0 || n > 65535) throw bad("has port " + port_text + ", out of range");
        e.port = static_cast<uint16_t>(n);
    }
    e.host = hostport;
    if (e.host.empty()) throw bad("has no host");
    if (!e.port) e.port = e.scheme == "https" ? 443 : 80;
    // Credentials never cross the network in clear text, except to this
    // machine (a test server, a local proxy).
    if (e.scheme == "http" && e.host != "127.0.0.1" && e.host != "localhost" && e.host != "::1")
        throw bad("uses http:// to another machine; the token would cross the network in clear text. Use https://");
    return e;
}

std::string url_encode(const std::string& v) {
    std::string o;
    static const char* hex = "0123456789ABCDEF";
    for (unsigned char c : v) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            o += static_cast<char>(c);
        } else {
            o += '%';
            o += hex[c >> 4];
            o += hex[c & 15];
        }
    }
    return o;
}

nlohmann::json response::json() const {
    try {
        return nlohmann::json::parse(body);
    } catch (const nlohmann::json::exception& e) {
        std::string head = body.substr(0, 120);
        for (auto& c : head)
            if (static_cast<unsigned char>(c) < 0x20) c = ' ';
        throw error(SW_PERMANENT, "bad_response",
                    "the server answered HTTP " + std::to_string(status) + " with a body that is not JSON ('" + head +
                        "'): " + e.what());
    }
}

namespace {

std::once_flag ssl_once;

// Retry-After is seconds or an HTTP-date (RFC 9110 10.2.3).
std::optional<uint32_t> retry_after(const std::string& v) {
    if (v.empty()) return std::nullopt;
    try {
        size_t used = 0;
        const long s = std::stol(v, &used);
        if (used == v.size() && s >= 0) return static_cast<uint32_t>(std::min<long>(s, 86400) * 1000);
    } catch (const std::logic_error&) {
    }
    std::tm tm{};
    std::istringstream in(v);
    in >> std::get_time(&tm, "%a, %d %b %Y %H:%M:%S GMT");
    if (in.fail()) return std::nullopt;
    const std::time_t at = timegm(&tm), now = std::time(nullptr);
    return at > now ? static_cast<uint32_t>(std::min<std::time_t>(at - now, 86400) * 1000) : 0u;
}

}  // namespace

struct http_client::impl {
    std::unique_ptr<Poco::Net::HTTPClientSession> session;
    Poco::Net::Context::Ptr context;
};

http_client::http_client(http_settings s) : impl_(std::make_unique<impl>()), s_(std::move(s)) {
    if (s_.base.scheme == "https") {
        std::call_once(ssl_once, [] { Poco::Net::initializeSSL(); });
        try {
            // Verification on: the peer's chain must lead to a trusted root
            // (the system's, plus ca_file) and the name must match the host.
            impl_->context = new Poco::Net::Context(
                Poco::Net::Context::TLS_CLIENT_USE, "", "", s_.ca_file,
                s_.verify_tls ? Poco::Net::Context::VERIFY_RELAXED : Poco::Net::Context::VERIFY_NONE, 9, true,
                "ALL:!ADH:!LOW:!EXP:!MD5:@STRENGTH");
            impl_->context->disableProtocols(Poco::Net::Context::PROTO_SSLV2 | Poco::Net::Context::PROTO_SSLV3 |
                                             Poco::Net::Context::PROTO_TLSV1 | Poco::Net::Context::PROTO_TLSV1_1);
        } catch (const Poco::Exception& e) {
            throw error(SW_CONFIG, "tls", "cannot set up TLS (ca_file '" + s_.ca_file + "'): " + e.displayText());
        }
    }
    token_ = s_.bearer;
}

http_client::~http_client() = default;

std::string http_client::url(const std::string& path) const {
    return s_.base.scheme + "://" + s_.base.host + ":" + std::to_string(s_.base.port) + s_.base.base_path + path;
}

response http_client::exchange(const std::string& method, const std::string& target, const std::string& body,
                               const std::string& if_match, const std::string& content_type, bool with_auth) {
    using namespace Poco::Net;
    for (int attempt = 0;; ++attempt) {
        try {
            if (!impl_->session) {
                if (impl_->context)
                    impl_->session = std::make_unique<HTTPSClientSession>(s_.base.host, s_.base.port, impl_->context);
                else
                    impl_->session = std::make_unique<HTTPClientSession>(s_.base.host, s_.base.port);
                impl_->session->setKeepAlive(true);
                impl_->session->setTimeout(Poco::Timespan(static_cast<long>(s_.timeout.count()), 0));
            }
            HTTPRequest req(method, target, HTTPMessage::HTTP_1_1);
            req.setKeepAlive(true);
            req.set("Accept", "application/scim+json, application/json");
            if (with_auth && !token_.empty()) req.set("Authorization", "Bearer " + token_);
            if (!if_match.empty()) req.set("If-Match", if_match);
            if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH") {
                req.setContentType(content_type);
                req.setContentLength(static_cast<std::streamsize>(body.size()));
            }
            std::ostream& out = impl_->session->sendRequest(req);
            out.write(body.data(), static_cast<std::streamsize>(body.size()));
            HTTPResponse res;
            std::istream& in = impl_->session->receiveResponse(res);
            response r;
            r.status = static_cast<int>(res.getStatus());
            Poco::StreamCopier::copyToString(in, r.body);
            r.etag = res.get("ETag", "");
            r.retry_after_ms = retry_after(res.get("Retry-After", ""));
            if (!res.getKeepAlive()) impl_->session.reset();
            return r;
        } catch (const Poco::Net::SSLException& e) {
            impl_->session.reset();
            throw error(SW_CONFIG, "tls",
                        "TLS with " + s_.base.host + " failed: " + e.displayText() +
                            ". The server's certificate must be trusted by this machine or by the ca_file setting, "
                            "and name the host");
        } catch (const Poco::Exception& e) {
            impl_->session.reset();
            // A kept-alive connection the server closed: once more, anew.
            if (attempt == 0) continue;
            throw error(SW_RETRYABLE, "connection",
                        method + " " + url(target.substr(s_.base.base_path.size())) + ": " + e.displayText());
        }
    }
}

void http_client::fetch_token() {
    const endpoint te = parse_url(s_.token_url, ".auth.token_url");
    http_settings ts = s_;
    ts.base = te;
    ts.bearer.clear();
    ts.token_url.clear();
    http_client tc(ts);
    std::string form = "grant_type=client_credentials";
    form += "&client_id=" + url_encode(s_.client_id) + "&client_secret=" + url_encode(s_.client_secret);
    if (!s_.scope.empty()) form += "&scope=" + url_encode(s_.scope);
    response r = tc.exchange("POST", te.base_path.empty() ? "/" : te.base_path, form, "",
                             "application/x-www-form-urlencoded", false);
    if (r.status / 100 != 2) {
        sdk::error e = classify(r, "POST " + s_.token_url + " (OAuth 2.0 client credentials)");
        throw error(r.status == 400 || r.status == 401 ? SW_AUTH : e.status(), e.category(), e.what());
    }
    auto j = r.json();
    if (!j.is_object() || !j.contains("access_token") || !j["access_token"].is_string())
        throw error(SW_AUTH, "oauth", "the token endpoint " + s_.token_url + " answered without an access_token");
    token_ = j["access_token"].get<std::string>();
}

response http_client::send(const std::string& method, const std::string& path, const std::string& body,
                           const std::string& if_match) {
    if (token_.empty() && !s_.token_url.empty()) fetch_token();
    response r = exchange(method, s_.base.base_path + path, body, if_match, "application/scim+json", true);
    if (r.status == 401 && !s_.token_url.empty()) {  // the token expired: one new one
        fetch_token();
        r = exchange(method, s_.base.base_path + path, body, if_match, "application/scim+json", true);
    }
    return r;
}

error classify(const response& r, const std::string& what) {
    std::string scim_type, detail;
    try {
        auto j = nlohmann::json::parse(r.body);
        if (j.is_object()) {
            if (j.contains("scimType") && j["scimType"].is_string()) scim_type = j["scimType"];
            if (j.contains("detail") && j["detail"].is_string()) detail = j["detail"];
        }
    } catch (const nlohmann::json::exception&) {
        detail = r.body.substr(0, 200);
        for (auto& c : detail)
            if (static_cast<unsigned char>(c) < 0x20) c = ' ';
        if (!detail.empty()) detail = "(not a SCIM error) " + detail;
    }
    const std::string msg = what + ": HTTP " + std::to_string(r.status) + (detail.empty() ? "" : ": " + detail);
    const std::string category = !scim_type.empty() ? scim_type : "http_" + std::to_string(r.status);
    if (r.status == 429 || r.status == 503)
        return error(SW_THROTTLED, "http_" + std::to_string(r.status), msg, r.retry_after_ms.value_or(0));
    if (r.status >= 500) return error(SW_RETRYABLE, category, msg);
    if (r.status == 401 || r.status == 403)
        return error(SW_AUTH, "auth", msg + "; check the token (or client credentials) in the job's target settings");
    return error(SW_PERMANENT, category, msg);
}

}  // namespace syncwarden::scim
