// Each gate on both sides of its limit: thresholds by count and percentage
// (of an empty and of a tiny target too), the shrink guard, findings,
// allowances, and how the job file states them.
#include "test_support.hpp"

#include <syncwarden/kernel/config.hpp>
#include <syncwarden/kernel/gates.hpp>

#include <gtest/gtest.h>

using namespace syncwarden::kernel;
using ::testing::HasSubstr;

namespace {

// A plan for one target entity that holds `size` records, with so many
// changes of each kind.
plan plan_of(const std::string& entity, size_t size, size_t creates, size_t updates, size_t deletes,
             size_t deactivates = 0) {
    entity_plan ep;
    ep.schema.name = entity;
    ep.schema.key_name = "id";
    ep.schema.fields.resize(1);
    ep.schema.fields[0].name = "name";
    ep.current = record_set(1);
    ep.desired = record_set(1);
    for (size_t i = 0; i < size; ++i) {
        std::string key = "k" + std::to_string(i);
        std::string_view v = "x";
        ep.current.add(key, &v, 0);
    }
    auto add = [&](sw_change_kind k, size_t n, bool deactivate) {
        for (size_t i = 0; i < n; ++i) {
            planned_change c{k, 0, static_cast<uint32_t>(i), 0, 0};
            c.deactivate = deactivate;
            ep.changes.push_back(c);
        }
    };
    add(SW_CHANGE_CREATE, creates, false);
    add(SW_CHANGE_UPDATE, updates, false);
    add(SW_CHANGE_DELETE, deletes, false);
    add(SW_CHANGE_UPDATE, deactivates, true);
    plan p;
    p.entities.push_back(std::move(ep));
    return p;
}

struct gate_case {
    gate_policy policy;
    gate_allowance allow;
    source_counts sources;
    std::optional<std::pair<std::string, run_profile>> last_good;
    finding_log findings;

    std::vector<gate_verdict> on(const plan& p) {
        return evaluate_gates({p, sources, last_good, findings, policy, allow});
    }
};

const gate_verdict* find(const std::vector<gate_verdict>& vs, const std::string& gate, const std::string& kind) {
    for (auto& v : vs)
        if (v.gate == gate && v.kind == kind) return &v;
    return nullptr;
}

std::string verdict(const std::vector<gate_verdict>& vs, const std::string& gate, const std::string& kind) {
    auto v = find(vs, gate, kind);
    return v ? v->verdict : "none";
}

gate_limit limit(const std::string& text) {
    std::string error;
    auto l = parse_limit_text(text, error);
    EXPECT_TRUE(l) << error;
    return l ? *l : gate_limit{};
}

}  // namespace

TEST(threshold_gate, default_delete_limit_is_ten_percent_of_the_target) {
    gate_case g;
    EXPECT_EQ(verdict(g.on(plan_of("students", 100, 0, 0, 10)), "threshold", "delete"), "pass");
    auto held = g.on(plan_of("students", 100, 0, 0, 11));
    EXPECT_EQ(verdict(held, "threshold", "delete"), "hold");
    EXPECT_EQ(hold_reason(held), "would delete 11 of 100 students (11%), limit 10%");
}

TEST(threshold_gate, the_reason_reads_like_an_operator_would_say_it) {
    gate_case g;
    auto held = g.on(plan_of("students", 9630, 0, 0, 4812));
    EXPECT_EQ(hold_reason(held), "would delete 4,812 of 9,630 students (50%), limit 10%");
}

TEST(threshold_gate, default_update_limit_is_seventy_five_percent) {
    gate_case g;
    EXPECT_EQ(verdict(g.on(plan_of("people", 100, 0, 75, 0)), "threshold", "update"), "pass");
    EXPECT_EQ(verdict(g.on(plan_of("people", 100, 0, 76, 0)), "threshold", "update"), "hold");
}

TEST(threshold_gate, deactivations_count_on_their_own_with_the_delete_default) {
    gate_case g;
    auto ok = g.on(plan_of("people", 100, 0, 0, 0, 10));
    EXPECT_EQ(verdict(ok, "threshold", "deactivate"), "pass");
    EXPECT_EQ(verdict(ok, "threshold", "update"), "none") << "a deactivation is not an update";
    EXPECT_EQ(verdict(g.on(plan_of("people", 100, 0, 0, 0, 11)), "threshold", "deactivate"), "hold");
}

TEST(threshold_gate, a_first_sync_into_an_empty_target_is_not_held_for_its_creates) {
    gate_case g;
    g.policy.thresholds["*"]["create"] = limit("10%");
    auto vs = g.on(plan_of("people", 0, 5000, 0, 0));
    EXPECT_EQ(verdict(vs, "threshold", "create"), "pass");
    EXPECT_THAT(find(vs, "threshold", "create")->message, HasSubstr("first sync into an empty target"));
    // Into a target that holds records, the percentage counts.
    EXPECT_EQ(verdict(g.on(plan_of("people", 100, 10, 0, 0)), "threshold", "create"), "pass");
    EXPECT_EQ(verdict(g.on(plan_of("people", 100, 11, 0, 0)), "threshold", "create"), "hold");
}

TEST(threshold_gate, an_explicit_count_limits_creates_even_into_an_empty_target) {
    gate_case g;
    g.policy.thresholds["people"]["create"] = limit("500");
    EXPECT_EQ(verdict(g.on(plan_of("people", 0, 500, 0, 0)), "threshold", "create"), "pass");
    EXPECT_EQ(verdict(g.on(plan_of("people", 0, 501, 0, 0)), "threshold", "create"), "hold");
}

TEST(threshold_gate, percentages_of_a_tiny_target) {
    gate_case g;
    // One of three is 33%: over 10%. Nothing of an empty target is a share.
    EXPECT_EQ(verdict(g.on(plan_of("people", 3, 0, 0, 1)), "threshold", "delete"), "hold");
    EXPECT_EQ(verdict(g.on(plan_of("people", 10, 0, 0, 1)), "threshold", "delete"), "pass");
    auto empty = g.on(plan_of("people", 0, 0, 0, 0));
    EXPECT_EQ(hold_reason(empty), "");
    // A count floor is how a tiny target opts out of percentages.
    g.policy.thresholds["people"]["delete"] = limit("2");
    EXPECT_EQ(verdict(g.on(plan_of("people", 3, 0, 0, 2)), "threshold", "delete"), "pass");
    EXPECT_EQ(verdict(g.on(plan_of("people", 3, 0, 0, 3)), "threshold", "delete"), "hold");
}

TEST(threshold_gate, count_and_percentage_trip_on_whichever_is_exceeded) {
    gate_case g;
    g.policy.thresholds["people"]["delete"] = limit("50/5%");
    EXPECT_EQ(verdict(g.on(plan_of("people", 10000, 0, 0, 50)), "threshold", "delete"), "pass");
    EXPECT_EQ(verdict(g.on(plan_of("people", 10000, 0, 0, 51)), "threshold", "delete"), "hold");
    EXPECT_EQ(verdict(g.on(plan_of("people", 100, 0, 0, 5)), "threshold", "delete"), "pass");
    EXPECT_EQ(verdict(g.on(plan_of("people", 100, 0, 0, 6)), "threshold", "delete"), "hold");
}

TEST(threshold_gate, an_entity_limit_wins_over_star_which_wins_over_the_default) {
    gate_case g;
    g.policy.thresholds["*"]["delete"] = limit("20%");
    g.policy.thresholds["staff"]["delete"] = limit("off");
    EXPECT_EQ(verdict(g.on(plan_of("people", 100, 0, 0, 20)), "threshold", "delete"), "pass");
    EXPECT_EQ(verdict(g.on(plan_of("people", 100, 0, 0, 21)), "threshold", "delete"), "hold");
    EXPECT_EQ(verdict(g.on(plan_of("staff", 100, 0, 0, 100)), "threshold", "delete"), "pass");
}

TEST(threshold_gate, an_allowance_lets_one_run_through_up_to_its_own_limit) {
    gate_case g;
    g.allow.limits["delete"] = limit("60%");
    g.allow.as_given = {"delete=60%"};
    auto vs = g.on(plan_of("people", 100, 0, 0, 60));
    EXPECT_EQ(verdict(vs, "threshold", "delete"), "allowed");
    EXPECT_THAT(find(vs, "threshold", "delete")->message, HasSubstr("allowed for this run by --allow delete=60%"));
    EXPECT_EQ(verdict(g.on(plan_of("people", 100, 0, 0, 61)), "threshold", "delete"), "hold");
    // An allowance for another entity does not apply.
    gate_case other;
    other.allow.limits["staff.delete"] = limit("off");
    EXPECT_EQ(verdict(other.on(plan_of("people", 100, 0, 0, 61)), "threshold", "delete"), "hold");
}

namespace {

gate_case with_history(uint64_t before, uint64_t now, bool delta = false) {
    gate_case g;
    run_profile last;
    last.sources["users"] = {before, 0, true, false};
    g.last_good = std::pair{std::string("r-last"), last};
    g.sources["users"] = {now, 0, true, delta};
    return g;
}

}  // namespace

TEST(shrink_gate, holds_a_source_that_shrank_past_its_limit_since_the_last_good_run) {
    auto g = with_history(1000, 900);
    EXPECT_EQ(verdict(g.on(plan_of("people", 0, 0, 0, 0)), "shrink", ""), "pass");
    g = with_history(1000, 899);
    auto vs = g.on(plan_of("people", 0, 0, 0, 0));
    EXPECT_EQ(verdict(vs, "shrink", ""), "hold");
    EXPECT_EQ(hold_reason(vs), "the source sent 899 users; the last good run r-last had 1,000: 101 fewer (10.1% shrink), "
                               "limit 10%");
}

TEST(shrink_gate, zero_records_for_an_entity_that_had_some_holds_whatever_the_percentage) {
    auto g = with_history(5, 0);
    g.policy.shrink["*"] = limit("100%");
    auto vs = g.on(plan_of("people", 0, 0, 0, 0));
    EXPECT_EQ(verdict(vs, "shrink", ""), "hold");
    EXPECT_THAT(hold_reason(vs), HasSubstr("the source sent no users at all (0 records)"));
    g.policy.shrink["users"] = limit("off");
    EXPECT_EQ(verdict(g.on(plan_of("people", 0, 0, 0, 0)), "shrink", ""), "pass");
}

TEST(shrink_gate, tobedeleted_rows_do_not_count_as_records_the_source_still_has) {
    auto g = with_history(100, 50);
    g.sources["users"].tobedeleted = 50;
    auto vs = g.on(plan_of("people", 0, 0, 0, 0));
    EXPECT_EQ(verdict(vs, "shrink", ""), "hold");
    EXPECT_THAT(hold_reason(vs), HasSubstr("(and 50 marked tobedeleted)"));
}

TEST(shrink_gate, passes_without_history_for_a_delta_feed_and_for_growth) {
    gate_case first;
    first.sources["users"] = {0, 0, true, false};
    EXPECT_EQ(verdict(first.on(plan_of("people", 0, 0, 0, 0)), "shrink", ""), "pass");
    EXPECT_EQ(verdict(with_history(1000, 10, true).on(plan_of("people", 0, 0, 0, 0)), "shrink", ""), "pass");
    EXPECT_EQ(verdict(with_history(1000, 2000).on(plan_of("people", 0, 0, 0, 0)), "shrink", ""), "pass");
}

TEST(findings_gate, error_findings_on_kept_records_hold_the_run) {
    gate_case g;
    g.findings.use_entity("users");
    EXPECT_EQ(verdict(g.on(plan_of("people", 0, 0, 0, 0)), "findings", ""), "none");
    g.findings.add({"error", "bad_value", "users", "users.csv", 4, 7, "u-1", "birthDate is '13/45'"}, true);
    auto vs = g.on(plan_of("people", 0, 0, 0, 0));
    EXPECT_EQ(verdict(vs, "findings", ""), "hold");
    EXPECT_THAT(hold_reason(vs), HasSubstr("users.csv:4:7: birthDate is '13/45'"));
}

namespace {

Result<job_config> job_with_gates(const sw_test::temp_dir& d, const std::string& gates) {
    sw_test::write_file(d / "job.json", R"({"name": "j", "source": {"connector": "s"}, "target": {"connector": "t"},
      "mapping": {"entities": [{"target": "a", "source": "b", "fields": {"id": "id"}}]},
      "gates": )" + gates + "}");
    return load_job(d / "job.json");
}

}  // namespace

TEST(gate_config, reads_every_form_of_limit) {
    sw_test::temp_dir d;
    auto j = job_with_gates(d, R"({"thresholds": {"*": {"delete": "5%", "update": 1000},
                                                     "students": {"delete": {"count": 50, "percent": 2.5},
                                                                  "deactivate": "off"}},
                                     "shrink": {"enrollments": "20%"}})");
    ASSERT_TRUE(j) << j.status().message();
    EXPECT_EQ(j->gates.threshold("staff", "delete").text(), "5%");
    EXPECT_EQ(j->gates.threshold("staff", "update").text(), "1000");
    EXPECT_EQ(j->gates.threshold("students", "delete").text(), "50 or 2.5%");
    EXPECT_EQ(j->gates.threshold("students", "deactivate").text(), "off");
    EXPECT_EQ(j->gates.threshold("students", "update").text(), "1000");
    EXPECT_EQ(j->gates.threshold("staff", "create").text(), "none");
    EXPECT_EQ(j->gates.shrink_limit("enrollments").text(), "20%");
    EXPECT_EQ(j->gates.shrink_limit("users").text(), "10%");
}

TEST(gate_config, errors_name_the_json_path_and_what_was_expected) {
    sw_test::temp_dir d;
    struct bad { const char* gates; const char* path; const char* words; };
    for (auto b : {bad{R"({"thresholds": {"students": {"remove": "5%"}}})", "$.gates.thresholds.students.remove",
                       "unknown field"},
                   bad{R"({"thresholds": {"students": {"delete": "five"}}})", "$.gates.thresholds.students.delete",
                       "expected a count (500), a percentage"},
                   bad{R"({"protect": [{"field": "username", "regex": "(admin"}]})", "$.gates.protect[0].regex",
                       "not a valid regular expression"},
                   bad{R"({"protect": [{"field": "username", "prefix": "a", "exact": "b"}]})", "$.gates.protect[0]",
                       "exactly one of 'exact', 'prefix' or 'regex'"},
                   bad{R"({"deprovision": {"students": {"action": "deactivate"}}})", "$.gates.deprovision.students.set",
                       "needs the fields to set"},
                   bad{R"({"deprovision": {"students": {"action": "delete", "delete_after": "30d"}}})",
                       "$.gates.deprovision.students.delete_after", "only a deactivate policy"},
                   bad{R"({"deprovision": {"students": {"action": "archive"}}})",
                       "$.gates.deprovision.students.action", "expected \"delete\" or \"deactivate\""}}) {
        auto j = job_with_gates(d, b.gates);
        ASSERT_FALSE(j) << b.gates;
        EXPECT_THAT(j.status().message(), HasSubstr(std::string("job.json: ") + b.path + ": ")) << b.gates;
        EXPECT_THAT(j.status().message(), HasSubstr(b.words)) << b.gates;
    }
}
