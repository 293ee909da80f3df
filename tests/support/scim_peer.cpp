#include "scim_peer.hpp"

#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPSClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/StreamCopier.h>

#include <cstdio>
#include <memory>
#include <csignal>
#include <stdexcept>
#include <sys/wait.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace sw_test {

scim_peer::scim_peer(const fs::path& dir, const std::string& token, std::vector<std::string> options)
    : token_(token) {
    for (size_t i = 0; i + 1 < options.size(); ++i) {
        if (options[i] == "--oauth2") oauth_ = options[i + 1];
        if (options[i] == "--tls") ca_file_ = options[i + 1].substr(0, options[i + 1].find(':'));
    }
    const fs::path peer = fs::path(SW_SOURCE_DIR) / "tests/peers/scim";
    if (!fs::exists(peer / "node_modules/scimmy"))
        throw std::runtime_error("the SCIM peer's packages are not installed: run `npm ci` in " + peer.string() +
                                 " (scripts/setup.sh test does)");
    fs::create_directories(dir);
    std::vector<std::string> args{"node", (peer / "server.mjs").string(), "--store", (dir / "scim-store.jsonl").string(),
                                  "--token", token};
    args.insert(args.end(), options.begin(), options.end());
    int out[2];
    if (::pipe(out) != 0) throw std::runtime_error("pipe failed");
    pid_ = ::fork();
    if (pid_ == 0) {
        ::dup2(out[1], 1);
        ::close(out[0]);
        ::close(out[1]);
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        ::execvp("node", argv.data());
        ::_exit(127);
    }
    ::close(out[1]);
    // The server prints "listening PORT" once it answers: wait for that line.
    std::string line;
    char c;
    while (::read(out[0], &c, 1) == 1 && c != '\n') line += c;
    ::close(out[0]);
    if (line.rfind("listening ", 0) != 0) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
        throw std::runtime_error("the SCIM peer did not start (it printed '" + line + "'); is node installed?");
    }
    port_ = std::stoi(line.substr(10));
}

scim_peer::~scim_peer() {
    if (pid_ > 0) {
        ::kill(pid_, SIGTERM);
        ::waitpid(pid_, nullptr, 0);
    }
}

namespace {
std::unique_ptr<Poco::Net::HTTPClientSession> session(int port, const std::string& ca_file) {
    if (ca_file.empty()) return std::make_unique<Poco::Net::HTTPClientSession>("127.0.0.1", static_cast<Poco::UInt16>(port));
    Poco::Net::Context::Ptr ctx = new Poco::Net::Context(Poco::Net::Context::TLS_CLIENT_USE, "", "", ca_file,
                                                         Poco::Net::Context::VERIFY_STRICT);
    return std::make_unique<Poco::Net::HTTPSClientSession>("127.0.0.1", static_cast<Poco::UInt16>(port), ctx);
}
}  // namespace

std::string scim_peer::bearer() const {
    if (oauth_.empty()) return token_;
    auto s = session(port_, ca_file_);
    Poco::Net::HTTPRequest req("POST", "/oauth/token", Poco::Net::HTTPMessage::HTTP_1_1);
    const std::string form = "grant_type=client_credentials&client_id=" + oauth_.substr(0, oauth_.find(':')) +
                             "&client_secret=" + oauth_.substr(oauth_.find(':') + 1);
    req.setContentType("application/x-www-form-urlencoded");
    req.setContentLength(static_cast<std::streamsize>(form.size()));
    s->sendRequest(req) << form;
    Poco::Net::HTTPResponse res;
    std::string text;
    Poco::StreamCopier::copyToString(s->receiveResponse(res), text);
    return nlohmann::json::parse(text).at("access_token").get<std::string>();
}

scim_peer::answer scim_peer::request(const std::string& method, const std::string& path, const std::string& body) const {
    auto sp = session(port_, ca_file_);
    auto& s = *sp;
    Poco::Net::HTTPRequest req(method, path.rfind("/_", 0) == 0 ? path : "/scim" + path, Poco::Net::HTTPMessage::HTTP_1_1);
    if (path.rfind("/_", 0) != 0) req.set("Authorization", "Bearer " + bearer());
    if (!body.empty()) {
        req.setContentType("application/scim+json");
        req.setContentLength(static_cast<std::streamsize>(body.size()));
    }
    s.sendRequest(req) << body;
    Poco::Net::HTTPResponse res;
    std::string text;
    Poco::StreamCopier::copyToString(s.receiveResponse(res), text);
    answer a;
    a.status = static_cast<int>(res.getStatus());
    if (!text.empty()) a.body = nlohmann::json::parse(text);
    return a;
}

std::vector<nlohmann::json> scim_peer::all(const std::string& type) const {
    std::vector<nlohmann::json> out;
    for (int start = 1;;) {
        auto a = request("GET", "/" + type + "?startIndex=" + std::to_string(start) + "&count=200");
        if (a.status != 200) throw std::runtime_error("GET " + type + " answered " + std::to_string(a.status));
        auto& res = a.body["Resources"];
        for (auto& r : res) out.push_back(r);
        start += static_cast<int>(res.size());
        if (res.empty() || start > a.body["totalResults"].get<int>()) break;
    }
    return out;
}

nlohmann::json scim_peer::stats() const { return request("GET", "/_stats").body; }

}  // namespace sw_test
