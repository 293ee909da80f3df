#include "test_support.hpp"

#include <algorithm>

#include <syncwarden/kernel/cli.hpp>
#include <syncwarden/kernel/worker.hpp>

#include <gtest/gtest.h>

#include <fcntl.h>
#include <fstream>
#include <sys/wait.h>
#include <unistd.h>
#include <random>
#include <thread>
#include <cerrno>
#include <sstream>

namespace sw_test {

// The CLI runs inside the test executables, which are not `syncwarden`:
// their connector workers are started from the real binary.
const bool k_worker_is_kernel = (syncwarden::kernel::set_worker_executable(SW_KERNEL_BIN), true);

temp_dir::temp_dir() {
    std::random_device rd;
    path_ = fs::temp_directory_path() / ("syncwarden-test-" + std::to_string(rd()) + std::to_string(rd()));
    fs::create_directories(path_);
}

temp_dir::~temp_dir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
}

cli_result cli(const fs::path& data_dir, const std::vector<std::string>& args) {
    syncwarden::kernel::system_clock clk;
    return cli(data_dir, args, clk);
}

cli_result cli(const fs::path& data_dir, const std::vector<std::string>& args, const syncwarden::kernel::clock& clk) {
    std::vector<std::string> all{"--data-dir", data_dir.string()};
    all.insert(all.end(), args.begin(), args.end());
    std::ostringstream out, err;
    cli_result r;
    r.code = syncwarden::kernel::run_cli(all, out, err, clk);
    r.out = out.str();
    r.err = err.str();
    return r;
}

process_result run_kernel(const fs::path& data_dir, const std::vector<std::string>& args,
                          const std::vector<std::string>& env) {
    return wait_kernel(start_kernel(data_dir, args, env));
}

pid_t start_kernel(const fs::path& data_dir, const std::vector<std::string>& args,
                   const std::vector<std::string>& env) {
    std::vector<std::string> argv{SW_KERNEL_BIN, "--data-dir", data_dir.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<char*> av;
    for (auto& a : argv) av.push_back(const_cast<char*>(a.c_str()));
    av.push_back(nullptr);
    std::vector<std::string> envs;
    for (char** e = environ; *e; ++e) envs.emplace_back(*e);
    envs.insert(envs.end(), env.begin(), env.end());
    std::vector<char*> ev;
    for (auto& e : envs) ev.push_back(const_cast<char*>(e.c_str()));
    ev.push_back(nullptr);
    fs::create_directories(data_dir);
    const std::string out = (data_dir / "child.out").string();
    pid_t pid = ::fork();
    if (pid == 0) {
        int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            ::dup2(fd, 1);
            ::dup2(fd, 2);
        }
        ::execve(av[0], av.data(), ev.data());
        ::_exit(127);
    }
    return pid;
}

process_result wait_kernel(pid_t pid) {
    process_result r;
    int status = 0;
    if (pid <= 0) return r;
    while (::waitpid(pid, &status, 0) != pid)
        if (errno != EINTR) return r;
    if (WIFEXITED(status)) r.code = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
    return r;
}

bool wait_for_file(const fs::path& p, std::chrono::seconds limit) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (!fs::exists(p)) {
        if (std::chrono::steady_clock::now() > until) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return true;
}

void write_file(const fs::path& p, const std::string& content) {
    fs::create_directories(p.parent_path());
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << content;
}

std::string read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::vector<std::vector<std::string>> csv_rows(const fs::path& p) {
    std::vector<std::vector<std::string>> out;
    std::istringstream in(read_file(p));
    std::string line;
    std::getline(in, line);
    while (std::getline(in, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        std::vector<std::string> cells;
        std::string cell;
        std::istringstream ls(line);
        while (std::getline(ls, cell, ',')) cells.push_back(cell);
        out.push_back(std::move(cells));
    }
    return out;
}

std::vector<std::pair<std::string, std::string>> snapshot(const fs::path& dir) {
    std::vector<std::pair<std::string, std::string>> out;
    if (!fs::exists(dir)) return out;
    for (auto& e : fs::recursive_directory_iterator(dir))
        if (e.is_regular_file()) out.emplace_back(fs::relative(e.path(), dir).string(), read_file(e.path()));
    std::sort(out.begin(), out.end());
    return out;
}

fs::path fixture(const std::string& name) { return fs::path(SW_FIXTURE_DIR) / (name + ".so"); }
fs::path plugin(const std::string& name) { return fs::path(SW_PLUGIN_DIR) / ("lib" + name + ".so"); }

fs::path shared_data(const std::string& rel) {
    const char* env = std::getenv("SYNCWARDEN_SHARED_DATA");
    return fs::path(env && *env ? env : SW_SHARED_DATA) / rel;
}

void install_shipped(const fs::path& data_dir) {
    for (auto name : {"oneroster-csv", "vendor-csv"}) {
        auto r = cli(data_dir, {"connectors", "install", plugin(name).string()});
        ASSERT_EQ(r.code, 0) << r.err;
    }
}

std::string roster_job(const fs::path& source, const fs::path& drop_folder, const std::string& extra) {
    return R"({
  "name": "test-roster",)" + extra + R"(
  "source": {"connector": "oneroster-csv", "version": "^1", "settings": {"path": ")" + source.string() + R"("}},
  "target": {"connector": "vendor-csv", "version": "^1", "env": ["VENDOR_CSV_CRASH_AT"], "settings": {
    "folder": ")" + drop_folder.string() + R"(",
    "files": [
      {"entity": "people", "file": "people.csv", "key": "person_id",
       "columns": ["person_id", "username", "first_name", "last_name", "role"]},
      {"entity": "rosters", "file": "rosters.csv", "key": "roster_id",
       "columns": ["roster_id", "class_id", "person_id", "role"]}]}},
  "mapping": {"entities": [
    {"target": "people", "source": "users",
     "fields": {"person_id": "sourcedId", "username": "username", "first_name": "givenName",
                "last_name": "familyName", "role": "role"}},
    {"target": "rosters", "source": "enrollments",
     "fields": {"roster_id": "sourcedId", "class_id": "classSourcedId", "person_id": "userSourcedId",
                "role": "role"}}]}
})";
}

std::string run_id_of(const std::string& out) {
    auto p = out.rfind("\nrun r");
    p = p == std::string::npos ? out.find("run r") : p + 1;
    if (p == std::string::npos) return {};
    return out.substr(p + 4, out.find(' ', p + 4) - p - 4);
}

void diff_target_job(const fs::path& dir, const std::string& extra, const std::string& top) {
    for (auto f : {"good", "diff_target"})
        ASSERT_EQ(cli(dir / "data", {"connectors", "install", fixture(f).string()}).code, 0);
    write_file(dir / "job.json", R"({"name": "d",)" + top + R"(
      "source": {"connector": "good"},
      "target": {"connector": "diff-target", "settings": {"log": ")" + (dir / "applied.log").string() + "\"" + extra +
                                     R"(}},
      "mapping": {"entities": [{"target": "items", "source": "items", "fields": {"id": "id", "name": "name"}}]}})");
}

void copy_tree(const fs::path& from, const fs::path& to) {
    fs::create_directories(to);
    fs::copy(from, to, fs::copy_options::recursive | fs::copy_options::overwrite_existing);
    for (auto& e : fs::recursive_directory_iterator(to))
        fs::permissions(e.path(), fs::perms::owner_read | fs::perms::owner_write, fs::perm_options::add);
}

std::string read_run_logs(const fs::path& data_dir) {
    std::vector<fs::path> files;
    std::error_code ec;
    for (auto it = fs::directory_iterator(data_dir / "logs" / "runs", ec); !ec && it != fs::directory_iterator();
         it.increment(ec))
        if (it->path().extension() == ".jsonl") files.push_back(it->path());
    std::sort(files.begin(), files.end());
    std::string out;
    for (auto& f : files) out += read_file(f);
    return out;
}

std::string read_all_logs(const fs::path& data_dir) { return read_logs(data_dir) + read_run_logs(data_dir); }

std::string read_logs(const fs::path& data_dir) {
    std::vector<fs::path> files;
    std::error_code ec;
    for (auto it = fs::directory_iterator(data_dir / "logs", ec); !ec && it != fs::directory_iterator(); it.increment(ec))
        if (it->path().extension() == ".jsonl") files.push_back(it->path());
    std::sort(files.begin(), files.end());
    std::string out;
    for (auto& f : files) out += read_file(f);
    return out;
}

cli_result job_dir::run(bool dry) const {
    std::vector<std::string> a{"run", job().string()};
    if (dry) a.push_back("--dry-run");
    return cli(data(), a);
}

nlohmann::json job_dir::plan(const cli_result& r) const {
    return nlohmann::json::parse(read_file(data() / "plans" / (run_id_of(r.out) + ".json")));
}

std::map<std::string, std::string> ledger_state(const fs::path& p) {
    std::map<std::string, std::string> out;
    std::ifstream in(p);
    for (std::string l; std::getline(in, l);) {
        const auto a = l.find('\t'), b = l.find('\t', a + 1);
        std::string key = l.substr(0, a), name = l.substr(a + 1, b - a - 1);
        if (name.empty()) out.erase(key);
        else out[key] = name;
    }
    return out;
}

}  // namespace sw_test
