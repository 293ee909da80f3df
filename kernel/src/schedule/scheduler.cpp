#include <syncwarden/kernel/scheduler.hpp>

#include <algorithm>

namespace syncwarden::kernel {

namespace {
// A schedule that fires every minute and was down for years would list
// millions of missed fires; past this many, only the count is kept.
constexpr size_t k_max_missed_scan = 200000;
}  // namespace

scheduler::scheduler(const clock& clk, size_t max_runs, size_t max_runs_per_target)
    : clk_(clk), max_runs_(max_runs), max_per_target_(max_runs_per_target) {}

void scheduler::set_job(const std::string& job, std::optional<cron_schedule> cron, schedule_policy p,
                        std::optional<time_point> last_fire) {
    const time_point now = clk_.now();
    auto it = jobs_.find(job);
    if (it != jobs_.end()) {
        // A changed job file: new schedule and policies, same run state.
        it->second.removed = false;
        if (it->second.policy.target != p.target && it->second.st.running) {
            --running_per_target_[it->second.policy.target];
            ++running_per_target_[p.target];
        }
        it->second.cron = std::move(cron);
        it->second.policy = std::move(p);
        it->second.st.next_fire = it->second.cron ? it->second.cron->next_after(now) : std::nullopt;
        return;
    }
    entry e{std::move(cron), std::move(p), {}};
    e.st.last_fire = last_fire;
    e.st.next_fire = e.cron ? e.cron->next_after(now) : std::nullopt;
    auto& placed = jobs_.emplace(job, std::move(e)).first->second;
    if (!last_fire || !placed.cron) return;
    // Fires missed while the daemon was down: the latest runs once if it
    // is inside the catch-up window; the others are counted.
    std::optional<time_point> latest;
    size_t missed = 0;
    for (auto f = placed.cron->next_after(*last_fire); f && *f <= now && missed < k_max_missed_scan;
         f = placed.cron->next_after(*f)) {
        latest = f;
        ++missed;
    }
    if (!latest) return;
    placed.st.last_fire = latest;
    if (placed.policy.catch_up.count() > 0 && now - *latest <= placed.policy.catch_up) {
        --missed;
        fire(job, placed, *latest, true);
    }
    placed.st.missed += missed;
}

void scheduler::remove_job(const std::string& job) {
    waiting_.erase(std::remove_if(waiting_.begin(), waiting_.end(), [&](const scheduled_run& r) { return r.job == job; }),
                   waiting_.end());
    auto it = jobs_.find(job);
    if (it == jobs_.end()) return;
    if (!it->second.st.running) {
        jobs_.erase(it);
        return;
    }
    // A running job's run finishes; finished() then forgets it.
    it->second.st.next_fire.reset();
    it->second.removed = true;
}

void scheduler::fire(const std::string& job, entry& e, time_point due, bool catch_up) {
    if (!e.st.last_fire || *e.st.last_fire < due) e.st.last_fire = due;
    if (e.st.paused) {
        ++e.st.skipped_paused;
        return;
    }
    const bool busy = e.st.running || e.st.waiting || e.st.queued;
    if (busy) {
        if (e.policy.on_overlap == schedule_policy::overlap::skip || e.st.queued || e.st.waiting) {
            ++e.st.skipped_overlap;
            return;
        }
        e.st.queued = true;
    } else {
        e.st.waiting = true;
    }
    waiting_.push_back({job, due, catch_up});
}

bool scheduler::slot_free(const entry& e) const {
    if (max_runs_ && running_ >= max_runs_) return false;
    if (max_per_target_) {
        auto it = running_per_target_.find(e.policy.target);
        if (it != running_per_target_.end() && it->second >= max_per_target_) return false;
    }
    return true;
}

void scheduler::mark_running(entry& e) {
    e.st.running = true;
    e.st.waiting = false;
    e.st.queued = false;
    ++running_;
    ++running_per_target_[e.policy.target];
}

void scheduler::drain(std::vector<scheduled_run>& out) {
    for (auto it = waiting_.begin(); it != waiting_.end();) {
        auto j = jobs_.find(it->job);
        if (j == jobs_.end()) {
            it = waiting_.erase(it);
            continue;
        }
        entry& e = j->second;
        if (e.st.running || !slot_free(e)) {
            ++it;
            continue;
        }
        mark_running(e);
        out.push_back(*it);
        it = waiting_.erase(it);
    }
}

std::vector<scheduled_run> scheduler::take_due() {
    const time_point now = clk_.now();
    // Every job whose next fire has come, in the order of those fires. A
    // daemon that slept past several fires of one job runs it once, for the
    // latest, and counts the others as missed.
    std::vector<std::pair<time_point, std::string>> due;
    for (auto& [job, e] : jobs_) {
        if (e.removed || !e.cron || !e.st.next_fire || *e.st.next_fire > now) continue;
        time_point latest = *e.st.next_fire;
        size_t passed = 0;
        for (auto f = e.cron->next_after(latest); f && *f <= now && passed < k_max_missed_scan; f = e.cron->next_after(*f)) {
            latest = *f;
            ++passed;
        }
        e.st.missed += passed;
        e.st.next_fire = e.cron->next_after(now);
        due.emplace_back(latest, job);
    }
    std::sort(due.begin(), due.end());
    for (auto& [when, job] : due) fire(job, jobs_.at(job), when, false);
    std::vector<scheduled_run> out;
    drain(out);
    return out;
}

scheduler::trigger scheduler::start_now(const std::string& job) {
    auto it = jobs_.find(job);
    if (it == jobs_.end()) return trigger::unknown_job;
    entry& e = it->second;
    if (e.st.running || e.st.waiting) return trigger::already_running;
    if (slot_free(e)) {
        mark_running(e);
        return trigger::started;
    }
    e.st.waiting = true;
    waiting_.push_back({job, clk_.now(), false});
    return trigger::queued;
}

void scheduler::finished(const std::string& job, bool succeeded) {
    auto it = jobs_.find(job);
    if (it == jobs_.end() || !it->second.st.running) return;
    entry& e = it->second;
    e.st.running = false;
    --running_;
    --running_per_target_[e.policy.target];
    if (succeeded) {
        e.st.failures_in_a_row = 0;
    } else if (++e.st.failures_in_a_row >= e.policy.pause_after && e.policy.pause_after > 0) {
        e.st.paused = true;
        // A run queued behind this one does not start on a paused job.
        if (e.st.queued) {
            waiting_.erase(std::remove_if(waiting_.begin(), waiting_.end(),
                                          [&](const scheduled_run& r) { return r.job == job; }),
                           waiting_.end());
            e.st.queued = false;
            ++e.st.skipped_paused;
        }
    }
    if (e.removed) jobs_.erase(it);
}

void scheduler::set_limits(size_t max_runs, size_t max_runs_per_target) {
    max_runs_ = max_runs;
    max_per_target_ = max_runs_per_target;
}

void scheduler::restore(const std::string& job, unsigned failures_in_a_row, bool paused) {
    auto it = jobs_.find(job);
    if (it == jobs_.end()) return;
    it->second.st.failures_in_a_row = failures_in_a_row;
    it->second.st.paused = paused;
}

void scheduler::resume(const std::string& job) {
    auto it = jobs_.find(job);
    if (it == jobs_.end()) return;
    it->second.st.paused = false;
    it->second.st.failures_in_a_row = 0;
}

std::optional<scheduler::time_point> scheduler::next_wake() const {
    std::optional<time_point> best;
    for (auto& [job, e] : jobs_)
        if (e.st.next_fire && (!best || *e.st.next_fire < *best)) best = e.st.next_fire;
    return best;
}

std::optional<scheduler::job_state> scheduler::state(const std::string& job) const {
    auto it = jobs_.find(job);
    if (it == jobs_.end()) return std::nullopt;
    return it->second.st;
}

std::vector<std::string> scheduler::jobs() const {
    std::vector<std::string> out;
    for (auto& [job, e] : jobs_) out.push_back(job);
    return out;
}

}  // namespace syncwarden::kernel
