// A fixture for the gates' end-to-end tests: the demo district copied into a
// temp folder, the shipped connectors installed, and a job into a vendor-csv
// drop, driven through the CLI.
#pragma once

#include "test_support.hpp"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace sw_test {

class demo_district : public ::testing::Test {
protected:
    void SetUp() override {
        install_shipped(data());
        src_ = tmp_ / "district";
        copy_tree(fs::path(SW_SOURCE_DIR) / "config/demo/district", src_);
        write_job("");
    }
    fs::path data() const { return tmp_ / "data"; }
    fs::path drop() const { return tmp_ / "drop"; }
    fs::path job() const { return tmp_ / "job.json"; }
    // roster_job() with `extra` top-level members (each with a trailing comma).
    void write_job(const std::string& extra) { write_file(job(), roster_job(src_, drop(), extra)); }
    cli_result run(std::vector<std::string> more = {}) {
        std::vector<std::string> a{"run", job().string()};
        a.insert(a.end(), more.begin(), more.end());
        return cli(data(), a);
    }
    nlohmann::json show(const std::string& id) {
        auto r = cli(data(), {"runs", "show", id, "--json"});
        EXPECT_EQ(r.code, 0) << r.err;
        return nlohmann::json::parse(r.out);
    }
    // users.csv with only its header and first `rows` records: cut at a row
    // boundary, so no parser error catches it.
    void keep_users(size_t rows) {
        auto u = read_file(src_ / "users.csv");
        size_t at = 0;
        for (size_t i = 0; i <= rows; ++i) at = u.find('\n', at) + 1;
        write_file(src_ / "users.csv", u.substr(0, at));
    }
    // Removes the row of users.csv whose sourcedId is `key`.
    void drop_user(const std::string& key) {
        auto u = read_file(src_ / "users.csv");
        const auto line = u.find("\n" + key + ",") + 1;
        ASSERT_NE(line, 0u) << key;
        u.erase(line, u.find('\n', line) + 1 - line);
        write_file(src_ / "users.csv", u);
    }

    temp_dir tmp_;
    fs::path src_;
};

}  // namespace sw_test
