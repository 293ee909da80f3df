// Decisions on held runs: approve (apply exactly the held plan, or plan
// again when it went stale) and reject.
#include <syncwarden/kernel/config.hpp>
#include <syncwarden/kernel/os_user.hpp>
#include <syncwarden/kernel/pipeline.hpp>
#include <syncwarden/kernel/plan_file.hpp>

namespace syncwarden::kernel {

namespace {

Result<run_record> held_run(run_store& store, const std::string& run_id, const char* what) {
    auto run = store.get_run(run_id);
    if (!run) return run.status();
    if (run->state != "held")
        return Status::error(error_kind::usage, "run " + run_id + " is " + run->state + "; only a held run can be " +
                                                    what + " (`syncwarden runs list` shows the held ones)");
    return run;
}

Status check_decision(const decision& d, bool reason_required) {
    if (d.by.empty())
        return Status::error(error_kind::usage, "say who decides with --as NAME: the decision is recorded with it");
    if (reason_required && d.reason.empty())
        return Status::error(error_kind::usage, "say why with --reason TEXT: a rejection is recorded with its reason");
    return Status::ok();
}

}  // namespace

run_outcome pipeline::approve(const std::string& run_id, const decision& d, bool no_wait) {
    run_outcome out;
    if (auto s = check_decision(d, false); !s) {
        out.status = s;
        return out;
    }
    auto held = held_run(store_, run_id, "approved");
    if (!held) {
        out.status = held.status();
        return out;
    }
    auto pr = store_.get_plan(run_id);
    if (!pr) {
        out.status = pr.status();
        return out;
    }
    if (!*pr || (*pr)->plan_file.empty()) {
        out.status = Status::error(error_kind::not_found, "run " + run_id + " has no stored plan to approve");
        return out;
    }
    if (!d.plan.empty() && (d.plan.size() < 8 || (*pr)->digest.compare(0, d.plan.size(), d.plan) != 0)) {
        out.status = Status::error(error_kind::usage,
                                   "run " + run_id + "'s plan has digest " + (*pr)->digest.substr(0, 16) +
                                       ", not the " + d.plan + " given with --plan; nothing was approved. Review "
                                       "the plan `syncwarden runs show " + run_id + "` shows, and approve that one");
        return out;
    }
    auto job = load_job(held->job_file);
    if (!job) {
        out.status = job.status().context("run " + run_id + "'s job");
        return out;
    }
    auto reader = plan_reader::open((*pr)->plan_file, (*pr)->digest);
    if (!reader) {
        out.status = reader.status();
        return out;
    }
    run_options opts;
    opts.no_wait = no_wait;
    opts.trigger = "approval of " + run_id + " by " + d.by;
    opts.approval = run_options::approved_plan{run_id, d.by, (*pr)->plan_file, (*pr)->digest, (*pr)->content_digest,
                                               (*reader)->header().state_token};
    reader->reset();
    // The decision is recorded, and the held run closed, before anything is
    // applied; what followed is added to the held run when the new run ends.
    run_record r = *held;
    const os_user me = authenticated_user();
    r.state = "approved";
    r.error = "approved by " + d.by;
    auto log = audit();
    if (!log) {
        out.status = log.status();
        return out;
    }
    if (auto s = store_.in_transaction([&] {
            if (auto x = store_.add_approval({run_id, "approve", d.by, iso8601(clock_.now()), d.reason, (*pr)->digest, "",
                                                 me.text()});
                !x)
                return x;
            if (auto x = store_.update_run(r); !x) return x;
            return (*log)->append({{"approval", run_id,
                                    {{"by", d.by}, {"os_user", me.to_json()}, {"reason", d.reason},
                                     {"plan_digest", (*pr)->digest}}}});
        });
        !s) {
        out.status = s;
        return out;
    }
    out = run(*job, opts);
    if (out.run.id.empty()) {
        // Nothing happened: the run stays held and can be approved again.
        r = *held;
    } else if (out.applied_approved_plan) {
        r.error += "; its plan was applied by run " + out.run.id + " (" + out.run.state + ")";
    } else if (!out.stale_reason.empty()) {
        r.state = "superseded";
        r.error += ", but its plan was stale: " + out.stale_reason + ". Nothing of it was applied; the job was "
                   "planned again as run " + out.run.id + " (" + out.run.state + ")";
    } else {
        r = *held;
        r.error = held->error + " (approved by " + d.by + ", but run " + out.run.id + " stopped before it could "
                  "compare plans: " + out.run.state + "; approve it again)";
    }
    if (auto s = store_.update_run(r); !s && out.status) out.status = s;
    return out;
}

Status pipeline::reject(const std::string& run_id, const decision& d) {
    if (auto s = check_decision(d, true); !s) return s;
    auto held = held_run(store_, run_id, "rejected");
    if (!held) return held.status();
    auto pr = store_.get_plan(run_id);
    if (!pr) return pr.status();
    run_record r = *held;
    r.state = "rejected";
    r.error = "rejected by " + d.by + ": " + d.reason;
    auto log = audit();
    if (!log) return log.status();
    const std::string digest = *pr ? (*pr)->digest : "";
    return store_.in_transaction([&] {
        if (auto x = store_.add_approval({run_id, "reject", d.by, iso8601(clock_.now()), d.reason, digest, "closed",
                                                 authenticated_user().text()});
            !x)
            return x;
        if (auto x = store_.update_run(r); !x) return x;
        return (*log)->append({{"rejection", run_id,
                                {{"by", d.by}, {"os_user", authenticated_user().to_json()}, {"reason", d.reason},
                                 {"plan_digest", digest}}}});
    });
}

}  // namespace syncwarden::kernel
