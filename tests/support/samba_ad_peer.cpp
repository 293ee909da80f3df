#include "samba_ad_peer.hpp"

#include <arpa/inet.h>
#include <chrono>
#include <csignal>
#include <fcntl.h>
#include <fstream>
#include <netinet/in.h>
#include <poll.h>
#include <sstream>
#include <stdexcept>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace sw_test {
namespace {

bool port_free(int port) {
    int s = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port));
    const bool ok = ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(s);
    return ok;
}

std::string tail_of(const fs::path& log) {
    std::ifstream in(log);
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string all = ss.str();
    return all.size() > 3000 ? all.substr(all.size() - 3000) : all;
}

}  // namespace

std::string samba_ad_peer::unavailable() {
    if (::geteuid() != 0) return "samba's domain controller runs as root only (CI runs the tests as root)";
    return {};
}

samba_ad_peer::samba_ad_peer(const fs::path& dir, const std::string& password) : dir_(dir), password_(password) {
    if (auto why = unavailable(); !why.empty()) throw std::runtime_error(why);
    if (::access("/usr/sbin/samba", X_OK) != 0 || ::access("/usr/bin/samba-tool", X_OK) != 0 ||
        !fs::exists("/usr/share/samba/setup/ad-schema"))
        throw std::runtime_error(
            "samba is not installed: scripts/setup.sh test installs samba-ad-dc and samba-ad-provision");
    for (int port : {389, 636})
        if (!port_free(port))
            throw std::runtime_error("port " + std::to_string(port) +
                                     " on 127.0.0.1 is taken by another server, and samba's LDAP ports cannot be "
                                     "changed: stop that server (a system slapd?) to run these tests");
    fs::create_directories(dir_);
    const fs::path target = dir_ / "ad", log = dir_ / "provision.log";
    if (run_program({"samba-tool", "domain", "provision", "--targetdir=" + target.string(), "--realm=LAKESIDE.TEST",
                     "--domain=LAKESIDE", "--server-role=dc", "--dns-backend=NONE", "--host-name=swtestdc",
                     "--adminpass=" + password_},
                    log) != 0)
        throw std::runtime_error("samba-tool domain provision failed:\n" + tail_of(log));
    make_loopback_cert(ca_file(), dir_ / "key.pem");
    // The provisioned smb.conf, with everything the server writes kept in
    // the test's folder, only the LDAP service, only 127.0.0.1, and the
    // test's certificate.
    const fs::path conf = target / "etc" / "smb.conf";
    std::string text;
    {
        std::ifstream in(conf);
        std::stringstream ss;
        ss << in.rdbuf();
        text = ss.str();
    }
    fs::create_directories(target / "run");
    const std::string extra = "\n\tserver services = ldap\n\tinterfaces = 127.0.0.1\n\tbind interfaces only = yes\n"
                              "\tpid directory = " + (target / "run").string() + "\n\tlog file = " +
                              (dir_ / "samba.%m.log").string() + "\n\ttls enabled = yes\n\ttls keyfile = " +
                              (dir_ / "key.pem").string() + "\n\ttls certfile = " + ca_file().string() +
                              "\n\ttls cafile = \n";
    const auto at = text.find("[global]");
    if (at == std::string::npos) throw std::runtime_error(conf.string() + " has no [global] section");
    text.insert(at + 8, extra);
    std::ofstream(conf) << text;

    const fs::path server_log = dir_ / "samba.log";
    pid_ = ::fork();
    if (pid_ == 0) {
        int out = ::open(server_log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        ::dup2(out, 1);
        ::dup2(out, 2);
        ::setpgid(0, 0);
        const std::string c = conf.string();
        ::execl("/usr/sbin/samba", "samba", "-i", "-M", "single", "-s", c.c_str(), static_cast<char*>(nullptr));
        ::_exit(127);
    }
    // Ready when the Administrator can bind over LDAPS (samba prints nothing
    // when it listens). Each try is a real connection attempt; between them
    // the fixture waits on nothing but the clock, bounded by a minute.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    for (;;) {
        int status = 0;
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {
            pid_ = -1;
            throw std::runtime_error("samba exited while starting:\n" + tail_of(server_log));
        }
        if (can_bind(admin_dn(), password_)) break;
        if (std::chrono::steady_clock::now() > deadline) {
            stop();
            throw std::runtime_error("samba did not answer an LDAPS bind within a minute:\n" + tail_of(server_log));
        }
        ::poll(nullptr, 0, 100);
    }
}

samba_ad_peer::~samba_ad_peer() { stop(); }

void samba_ad_peer::stop() {
    if (pid_ > 0) {
        ::kill(-pid_, SIGTERM);
        ::kill(pid_, SIGTERM);
        ::waitpid(pid_, nullptr, 0);
        pid_ = -1;
    }
}

std::vector<ldap_entry> samba_ad_peer::search(const std::string& filter, const std::vector<std::string>& attrs,
                                              const std::string& base) const {
    return ldap_search({ldaps_url(), admin_dn(), password_, ca_file().string()}, base, filter, attrs);
}

void samba_ad_peer::add(const std::string& dn, const std::map<std::string, std::vector<std::string>>& attrs) const {
    ldap_add({ldaps_url(), admin_dn(), password_, ca_file().string()}, dn, attrs);
}

bool samba_ad_peer::can_bind(const std::string& dn, const std::string& password) const {
    return ldap_can_bind(ldaps_url(), ca_file().string(), dn, password);
}

}  // namespace sw_test
