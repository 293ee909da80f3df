#include "slapd_peer.hpp"

#include <arpa/inet.h>
#include <csignal>
#include <fcntl.h>
#include <fstream>
#include <netinet/in.h>
#include <stdexcept>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace sw_test {
namespace {

// A port nothing listens on now (the system picks it).
int free_port() {
    int s = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t n = sizeof a;
    if (::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &n) != 0) {
        ::close(s);
        throw std::runtime_error("no free port");
    }
    ::close(s);
    return ntohs(a.sin_port);
}

}  // namespace

slapd_peer::slapd_peer(const fs::path& dir, const std::string& password, options o)
    : dir_(dir), password_(password), ldaps_(o.tls && o.ldaps) {
    if (::access("/usr/sbin/slapd", X_OK) != 0)
        throw std::runtime_error("slapd is not installed: scripts/install-deps.sh installs slapd and ldap-utils");
    fs::create_directories(dir_ / "db");
    std::string tls;
    if (o.tls) {
        make_loopback_cert(ca_file(), dir_ / "key.pem");
        tls = "TLSCertificateFile " + ca_file().string() + "\nTLSCertificateKeyFile " + (dir_ / "key.pem").string() +
              "\n";
    }
    std::ofstream(dir_ / "slapd.conf") << "include /etc/ldap/schema/core.schema\n"
                                          "include /etc/ldap/schema/cosine.schema\n"
                                          "include /etc/ldap/schema/inetorgperson.schema\n"
                                          "modulepath /usr/lib/ldap\nmoduleload back_mdb\n"
                                       << tls << "pidfile " << (dir_ / "slapd.pid").string() << "\n"
                                       << "sizelimit size.soft=" << o.size_limit << " size.hard=" << o.size_limit
                                       << " size.pr=" << o.size_limit << " size.prtotal=unlimited\n"
                                       << "database mdb\nmaxsize 268435456\nsuffix \"" << base() << "\"\n"
                                       << "rootdn \"" << admin_dn() << "\"\nrootpw " << password_ << "\n"
                                       << "directory " << (dir_ / "db").string() << "\n"
                                       << "access to attrs=userPassword by dn.exact=\"" << service_dn()
                                       << "\" write by anonymous auth by * none\n"
                                       << "access to * by dn.exact=\"" << service_dn() << "\" write by * read\n";
    // The port is free when picked; another process may take it before
    // slapd binds it, so a failed start tries another.
    for (int attempt = 0; attempt < 3 && pid_ < 0; ++attempt) {
        port_ = free_port();
        int err[2];
        if (::pipe(err) != 0) throw std::runtime_error("pipe failed");
        pid_t pid = ::fork();
        if (pid == 0) {
            ::dup2(err[1], 2);
            ::close(err[0]);
            ::close(err[1]);
            const std::string conf = (dir_ / "slapd.conf").string(), url = url_for(port_);
            ::execl("/usr/sbin/slapd", "slapd", "-f", conf.c_str(), "-h", url.c_str(), "-d", "stats,conns",
                    static_cast<char*>(nullptr));
            ::_exit(127);
        }
        ::close(err[1]);
        // With -d, slapd stays in the foreground. "slapd starting" comes
        // before its listener thread calls listen(); that thread then logs
        // "daemon: added NNr listener=0x..." (conns level). It exits when it
        // cannot bind.
        std::string log, line;
        char c;
        bool ready = false;
        while (::read(err[0], &c, 1) == 1) {
            if (c != '\n') {
                line += c;
                continue;
            }
            log += line + "\n";
            if (line.find("daemon: added") != std::string::npos && line.find("listener=0x") != std::string::npos) {
                ready = true;
                break;
            }
            line.clear();
        }
        if (!ready) {
            ::close(err[0]);
            ::kill(pid, SIGKILL);
            ::waitpid(pid, nullptr, 0);
            if (attempt == 2) throw std::runtime_error("slapd did not start:\n" + log);
            continue;
        }
        // Keep reading its log into a file, so it never blocks on a full
        // pipe; the thread ends when slapd does.
        const int fd = err[0];
        drain_ = std::thread([fd, path = dir_ / "slapd.log", log] {
            std::ofstream out(path);
            out << log;
            char buf[4096];
            ssize_t n;
            while ((n = ::read(fd, buf, sizeof buf)) > 0) out.write(buf, n);
            ::close(fd);
        });
        pid_ = pid;
    }
    try {
        add(base(), {{"objectClass", {"dcObject", "organization"}}, {"o", {"District"}}, {"dc", {"district"}}});
        add("ou=people," + base(), {{"objectClass", {"organizationalUnit"}}, {"ou", {"people"}}});
        add("ou=groups," + base(), {{"objectClass", {"organizationalUnit"}}, {"ou", {"groups"}}});
        add(service_dn(), {{"objectClass", {"organizationalRole", "simpleSecurityObject"}},
                           {"cn", {"syncwarden"}},
                           {"userPassword", {password_}}});
    } catch (...) {
        stop();
        throw;
    }
}

slapd_peer::~slapd_peer() { stop(); }

void slapd_peer::stop() {
    if (pid_ > 0) {
        ::kill(pid_, SIGTERM);
        ::waitpid(pid_, nullptr, 0);
        pid_ = -1;
    }
    if (drain_.joinable()) drain_.join();
}

std::vector<slapd_peer::entry> slapd_peer::search(const std::string& filter, const std::vector<std::string>& attrs,
                                                  const std::string& base) const {
    return ldap_search({url(), admin_dn(), password_, ca_file().string()}, base, filter, attrs);
}

void slapd_peer::add(const std::string& dn, const std::map<std::string, std::vector<std::string>>& attrs) const {
    ldap_add({url(), admin_dn(), password_, ca_file().string()}, dn, attrs);
}

}  // namespace sw_test
