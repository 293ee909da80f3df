// A connector's grants: read from its settings where its settings schema
// marks them ("x-syncwarden-grant"), by the kernel, before any of the
// connector's code runs.
#include <syncwarden/kernel/config.hpp>
#include <syncwarden/kernel/sandbox.hpp>

#include <algorithm>

namespace fs = std::filesystem;
using nlohmann::json;

namespace syncwarden::kernel {
namespace {

const std::vector<std::pair<std::string, uint16_t>>& default_ports() {
    static const std::vector<std::pair<std::string, uint16_t>> k{
        {"https", 443}, {"http", 80}, {"ldaps", 636}, {"ldap", 389}, {"sftp", 22}, {"ssh", 22},
        {"ftps", 990},  {"ftp", 21},  {"smtps", 465}, {"smtp", 25},  {"postgresql", 5432}, {"postgres", 5432},
        {"mysql", 3306}};
    return k;
}

// "https://user@host:8443/scim" -> host and port; "host:389" too.
Result<std::pair<std::string, uint16_t>> parse_endpoint(const std::string& text) {
    std::string rest = text, scheme;
    if (auto p = rest.find("://"); p != std::string::npos) {
        scheme = rest.substr(0, p);
        std::transform(scheme.begin(), scheme.end(), scheme.begin(), [](unsigned char c) { return std::tolower(c); });
        rest = rest.substr(p + 3);
    }
    rest = rest.substr(0, rest.find_first_of("/?#"));
    if (auto at = rest.rfind('@'); at != std::string::npos) rest = rest.substr(at + 1);
    std::string host, port;
    if (!rest.empty() && rest[0] == '[') {
        auto close = rest.find(']');
        if (close == std::string::npos) return Status::error(error_kind::config, "an IPv6 address without ']'");
        host = rest.substr(0, close + 1);
        if (close + 1 < rest.size() && rest[close + 1] == ':') port = rest.substr(close + 2);
    } else if (auto colon = rest.rfind(':'); colon != std::string::npos) {
        host = rest.substr(0, colon);
        port = rest.substr(colon + 1);
    } else {
        host = rest;
    }
    if (host.empty()) return Status::error(error_kind::config, "no host in '" + text + "'");
    if (port.empty()) {
        for (auto& [s, p] : default_ports())
            if (s == scheme) return std::make_pair(host, p);
        return Status::error(error_kind::config, "no port in '" + text + "', and the scheme '" + scheme +
                                                     "' has none known: write host:port");
    }
    if (port.size() > 5 || !std::all_of(port.begin(), port.end(), [](unsigned char c) { return std::isdigit(c); }))
        return Status::error(error_kind::config, "the port '" + port + "' in '" + text + "' is not a number");
    const unsigned long n = std::stoul(port);
    if (n == 0 || n > 65535) return Status::error(error_kind::config, "the port " + port + " is out of range");
    return std::make_pair(host, static_cast<uint16_t>(n));
}

Result<grant::kind> kind_of(const json& mark, const std::string& pointer) {
    const std::string k = mark.is_string() ? mark.get<std::string>() : "";
    if (k == "read-path") return grant::kind::read_path;
    if (k == "write-path") return grant::kind::write_path;
    if (k == "write-file") return grant::kind::write_file;
    if (k == "endpoint") return grant::kind::endpoint;
    return Status::error(error_kind::connector,
                         "the settings schema marks " + (pointer.empty() ? std::string("/") : pointer) +
                             " with x-syncwarden-grant " + mark.dump() +
                             "; expected \"read-path\", \"write-path\", \"write-file\" or \"endpoint\"");
}

struct walker {
    const fs::path& base;
    const std::string& where;
    std::vector<grant> out;

    Status one(grant::kind k, const json& v, const std::string& pointer) {
        if (!v.is_string())
            return Status::error(error_kind::config, where + ": " + pointer + ": a " + to_string(k) +
                                                         " grant needs a string, found " + v.type_name());
        const std::string text = v.get<std::string>();
        grant g{k, text, pointer.empty() ? "/" : pointer, 0};
        if (k == grant::kind::endpoint) {
            auto e = parse_endpoint(text);
            if (!e) return e.status().context(where + ": " + g.setting);
            g.value = e->first + ":" + std::to_string(e->second);
            g.port = e->second;
        } else {
            if (text.empty()) return Status::error(error_kind::config, where + ": " + g.setting + ": an empty path");
            fs::path p(text);
            if (p.is_relative()) p = base / p;
            g.value = p.lexically_normal().string();
            while (g.value.size() > 1 && g.value.back() == '/') g.value.pop_back();
        }
        out.push_back(std::move(g));
        return Status::ok();
    }

    Status walk(const json& schema, const json& value, const std::string& pointer) {
        if (!schema.is_object()) return Status::ok();
        if (auto m = schema.find("x-syncwarden-grant"); m != schema.end()) {
            auto k = kind_of(*m, pointer);
            if (!k) return k.status();
            if (value.is_array()) {
                for (size_t i = 0; i < value.size(); ++i)
                    if (auto s = one(*k, value[i], pointer + "/" + std::to_string(i)); !s) return s;
                return Status::ok();
            }
            return one(*k, value, pointer);
        }
        if (value.is_object()) {
            const json* props = schema.contains("properties") ? &schema["properties"] : nullptr;
            for (auto& [name, v] : value.items()) {
                std::string escaped;
                for (char c : name) escaped += c == '~' ? "~0" : c == '/' ? "~1" : std::string(1, c);
                const std::string p = pointer + "/" + escaped;
                if (props && props->contains(name)) {
                    if (auto s = walk((*props)[name], v, p); !s) return s;
                } else if (auto ap = schema.find("additionalProperties"); ap != schema.end() && ap->is_object()) {
                    if (auto s = walk(*ap, v, p); !s) return s;
                }
            }
        } else if (value.is_array()) {
            if (auto items = schema.find("items"); items != schema.end())
                for (size_t i = 0; i < value.size(); ++i)
                    if (auto s = walk(*items, value[i], pointer + "/" + std::to_string(i)); !s) return s;
        }
        return Status::ok();
    }
};

}  // namespace

const char* to_string(grant::kind k) {
    switch (k) {
        case grant::kind::read_path: return "read-path";
        case grant::kind::write_path: return "write-path";
        case grant::kind::write_file: return "write-file";
        case grant::kind::endpoint: return "endpoint";
    }
    return "?";
}

Result<std::vector<grant>> derive_grants(const std::string& schema_text, const json& settings, const fs::path& base_dir,
                                         const std::string& where) {
    if (schema_text.empty()) return std::vector<grant>{};
    auto parsed = parse_json_text(schema_text, "its settings schema");
    if (!parsed) return Status::error(error_kind::connector, parsed.status().message());
    const json schema = std::move(*parsed);
    walker w{base_dir, where, {}};
    if (auto s = w.walk(schema, settings, ""); !s) return s;
    return std::move(w.out);
}

json grants_json(const std::vector<grant>& g) {
    json out = json::array();
    for (auto& x : g) out.push_back({{"kind", to_string(x.k)}, {"value", x.value}, {"setting", x.setting}});
    return out;
}

std::string grants_text(const std::vector<grant>& g) {
    if (g.empty()) return "nothing (no files of its job, no network)";
    std::string out;
    for (auto& x : g) {
        if (!out.empty()) out += "; ";
        out += x.k == grant::kind::endpoint   ? "connect " + x.value
               : x.k == grant::kind::read_path ? "read " + x.value
                                               : "write " + x.value;
    }
    return out;
}

}  // namespace syncwarden::kernel
