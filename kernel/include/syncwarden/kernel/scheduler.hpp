// When scheduled jobs run: the daemon's decisions, apart from the daemon.
// The scheduler holds each job's cron schedule and policies and answers
// "what starts now?" against an injected clock; the daemon starts the runs,
// tells it when each ends, and sleeps until next_wake().
//
// Policies (config/README.md, "Schedules"):
// - overlap: a fire while the job's last run is still going is skipped
//   (the default) or queued, one at most;
// - catch_up: after the daemon was down, the latest fire it missed runs
//   once at start if it is no older than this window (0: never);
// - pause_after: after this many failed runs in a row the job is paused
//   until an operator resumes it (0: never);
// - concurrency: at most this many runs at once in all, and per target
//   system; a due run beyond a limit waits, in the order it became due.
#pragma once

#include <syncwarden/kernel/clock.hpp>
#include <syncwarden/kernel/cron.hpp>

#include <chrono>
#include <cstddef>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace syncwarden::kernel {

struct schedule_policy {
    enum class overlap { skip, queue };
    overlap on_overlap = overlap::skip;
    std::chrono::seconds catch_up{0};
    unsigned pause_after = 0;
    std::string target;  // the target system's id, for the per-target limit
};

struct scheduled_run {
    std::string job;
    std::chrono::system_clock::time_point due;  // the fire time it stands for
    bool catch_up = false;                      // a fire missed while the daemon was down
};

class scheduler {
public:
    using time_point = std::chrono::system_clock::time_point;

    // 0 for a limit: none.
    scheduler(const clock& clk, size_t max_runs, size_t max_runs_per_target);

    // Adds or replaces a job. `last_fire` is when it last fired (kept in the
    // run store across daemon restarts), for catch-up; nothing for a new job.
    // Replacing keeps the job's running, queued and failure state. A job
    // without a cron schedule never fires on its own; it runs when
    // triggered, within the same limits.
    void set_job(const std::string& job, std::optional<cron_schedule> cron, schedule_policy p,
                 std::optional<time_point> last_fire);
    void remove_job(const std::string& job);

    // The runs to start now, in the order they became due; each is counted
    // as running until finished() is called for it.
    std::vector<scheduled_run> take_due();
    // A run an operator asks for (a trigger), paused or not: started now
    // when a slot is free, else queued for take_due(); counted against the
    // limits like the others.
    enum class trigger { started, queued, already_running, unknown_job };
    trigger start_now(const std::string& job);
    void finished(const std::string& job, bool succeeded);
    // Clears a pause and the failure count.
    void resume(const std::string& job);
    // New limits (a reloaded kernel config); runs beyond them finish.
    void set_limits(size_t max_runs, size_t max_runs_per_target);
    // The failure count and pause a job had before the daemon restarted.
    void restore(const std::string& job, unsigned failures_in_a_row, bool paused);

    // When take_due() next has something to do (nothing: no job is
    // scheduled). Runs waiting for a free slot wake the daemon through
    // finished(), not through this.
    std::optional<time_point> next_wake() const;

    struct job_state {
        // last_fire: the latest fire dealt with (started, queued or
        // skipped); the daemon keeps it for catch-up after a restart.
        std::optional<time_point> next_fire, last_fire;
        bool running = false, queued = false, paused = false, waiting = false;
        unsigned failures_in_a_row = 0;
        size_t skipped_overlap = 0, skipped_paused = 0, missed = 0;
    };
    std::optional<job_state> state(const std::string& job) const;
    std::vector<std::string> jobs() const;

private:
    struct entry {
        std::optional<cron_schedule> cron;
        schedule_policy policy;
        job_state st;
        bool removed = false;  // by remove_job while it ran
    };
    void fire(const std::string& job, entry& e, time_point due, bool catch_up);
    bool slot_free(const entry& e) const;
    void mark_running(entry& e);
    void drain(std::vector<scheduled_run>& out);

    const clock& clk_;
    size_t max_runs_, max_per_target_;
    std::map<std::string, entry> jobs_;
    std::deque<scheduled_run> waiting_;  // due, held by a limit or by overlap=queue
    size_t running_ = 0;
    std::map<std::string, size_t> running_per_target_;
};

}  // namespace syncwarden::kernel
