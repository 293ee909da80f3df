#include "test_support.hpp"

#include <syncwarden/kernel/cli.hpp>

#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <sstream>

namespace sw_test {

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
    std::vector<std::string> all{"--data-dir", data_dir.string()};
    all.insert(all.end(), args.begin(), args.end());
    std::ostringstream out, err;
    syncwarden::kernel::system_clock clk;
    cli_result r;
    r.code = syncwarden::kernel::run_cli(all, out, err, clk);
    r.out = out.str();
    r.err = err.str();
    return r;
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

std::string roster_job(const fs::path& source, const fs::path& drop_folder) {
    return R"({
  "name": "test-roster",
  "source": {"connector": "oneroster-csv", "version": "^1", "settings": {"path": ")" + source.string() + R"("}},
  "target": {"connector": "vendor-csv", "version": "^1", "settings": {
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

void copy_tree(const fs::path& from, const fs::path& to) {
    fs::create_directories(to);
    fs::copy(from, to, fs::copy_options::recursive | fs::copy_options::overwrite_existing);
    for (auto& e : fs::recursive_directory_iterator(to))
        fs::permissions(e.path(), fs::perms::owner_read | fs::perms::owner_write, fs::perm_options::add);
}

}  // namespace sw_test
