/*
 * supervisor.c -- the sidecar's parent process.
 *
 * It owns no jobs: it forks each queue's pool of workers and supervises
 * each pool one_for_one, OTP style: a slot whose worker died is restarted
 * after a backoff (restart_backoff, doubling with jitter, back to the
 * minimum once a worker lived 10 s or completed a job); more than
 * max_restarts restarts of a pool within their period (one job's crashes
 * counting once, jobs finished between them starting the count again:
 * count_restart()) mark the pool failed: its workers are stopped and
 * nothing restarts until
 * restart_cooldown has passed, then the whole pool starts again.  Other
 * pools are not touched.
 *
 * Each worker keeps its scoreboard slot current, so when one dies the
 * supervisor knows which job it held: it reaps it with wait4 (for the
 * rusage), classifies the death, reports it (crash_report.c, events.c) and
 * has reclaim.c fail that job's attempt and hand the rest back, before a
 * new worker takes the slot.  It kills a worker whose job runs past the
 * queue's timeout, and replaces at once a worker that recycled itself
 * (max_jobs_per_worker, memory_limit).  Each worker leads its own process
 * group: every SIGKILL of a worker goes to the group, and every reap of
 * one sweeps it (pgroup.c).
 * It keeps the node registry up to date and, on SIGTERM or SIGINT, stops
 * the workers, removes the node from the registry and exits 0.  Every
 * stop of a worker (shutdown, a failed pool, a reload's rolling restart)
 * is offload_slot_stop(): SIGTERM, then SIGKILL if the worker still runs
 * shutdown_timeout later, its jobs handed back unchanged; a job that
 * crashes its stopping worker, or runs past its timeout, failed as at any
 * other time.  SIGHUP is reload.c's; lost nodes are claim.c's.
 *
 * The supervisor runs on its own libev loop, not the default one: the
 * default loop reaps every child itself (its SIGCHLD watcher calls waitpid)
 * and would leave wait4 nothing to see.  Workers are plain fork()s: each
 * starts from a fresh default loop and drops the parent's Redis connection.
 */

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cancel.h"
#include "claim.h"
#include "clock.h"
#include "crash_report.h"
#include "events.h"
#include "fnv.h"
#include "log.h"
#include "oom_kills.h"
#include "pgroup.h"
#include "reclaim.h"
#include "running.h"
#include "retry.h"
#include "reload.h"
#include "supervisor.h"
#include "worker.h"

/* A worker that lived this long resets its slot's backoff to the minimum.
 * A fixed 10 s rather than the pool's period: the intensity already counts
 * restarts over the period, the backoff only spaces out one slot's crash
 * loop, and a long period should not keep a healthy slot slow. */
#define HEALTHY_AFTER_US    (10 * 1000000LL)
#define REGISTRY_CLEANUP_S  2.0
#define TIMEOUT_SCAN_S      0.05
#define TIMEOUT_GRACE_US    (100 * 1000LL)


static void spawn(offload_supervisor_t *sup, offload_slot_t *slot);
static void stopped(offload_supervisor_t *sup);


offload_slot_t *
offload_slot_next(offload_supervisor_t *sup, offload_slot_iter_t *it)
{
    offload_pool_t  *pools;
    size_t           npools;

    for ( ;; ) {
        pools = it->retired ? sup->retired : sup->pools;
        npools = it->retired ? sup->nretired : sup->npools;

        if (it->p >= npools) {
            if (it->retired) {
                return NULL;
            }
            it->retired = 1;
            it->p = 0;
            it->i = 0;
            continue;
        }

        if (it->i < pools[it->p].nslots) {
            return &pools[it->p].slots[it->i++];
        }

        it->p++;
        it->i = 0;
    }
}


int
offload_slots_done(offload_supervisor_t *sup, int retired_only)
{
    offload_slot_iter_t   it = { retired_only, 0, 0 };
    offload_slot_t       *slot;

    while ((slot = offload_slot_next(sup, &it)) != NULL) {
        if (slot->pid != 0 || slot->reclaiming) {
            return 0;
        }
    }

    return 1;
}


offload_pool_t *
offload_pool_named(offload_pool_t *pools, size_t n, const char *queue)
{
    size_t  p;

    for (p = 0; p < n; p++) {
        if (strcmp(pools[p].queue->name, queue) == 0) {
            return &pools[p];
        }
    }

    return NULL;
}


offload_slot_t *
offload_slot_twin(offload_supervisor_t *sup, const offload_slot_t *slot)
{
    offload_pool_t  *twin;

    twin = slot->pool->retired
           ? offload_pool_named(sup->pools, sup->npools,
                                slot->pool->queue->name)
           : offload_pool_named(sup->retired, sup->nretired,
                                slot->pool->queue->name);

    return twin != NULL && slot->index < twin->nslots
           ? &twin->slots[slot->index] : NULL;
}


/*
 * The child side of fork(): becomes the slot's worker, never returns.
 *
 * A worker dies with its supervisor by SIGKILL, not SIGTERM: a handled
 * signal is only acted on between jobs, and a worker in a long or hung job
 * would outlive it and, beside the next sidecar's worker of the same
 * consumer name, run the same held jobs twice.  It leaves with _exit():
 * the parent's atexit handlers are not its own.
 *
 * spawn() forks with every signal blocked: until the ev_signal_stop()s
 * below, the parent's libev handlers are still installed here, and a
 * SIGTERM caught by them would be recorded in the parent's loop, destroyed
 * below: lost, and a worker stopped by a failed pool or a reload would run
 * on.  The signals the worker handles stay blocked, pending, until
 * offload_worker_run() has its own watchers; the others (the crash
 * handler's among them) are unblocked once the parent's handlers are gone.
 */
static void
become_worker(offload_supervisor_t *sup, offload_slot_t *slot, pid_t parent)
{
    int              rc;
    sigset_t         handled;
    struct ev_loop  *loop;

    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) {
        _exit(1);               /* the supervisor is already gone */
    }

    /* The group the supervisor kills (pgroup.c); spawn() sets it too, so
     * that it exists whichever of the two runs first. */
    if (setpgid(0, 0) != 0) {
        _exit(1);
    }

    srandom((unsigned) getpid());     /* own reconnect jitter */
    offload_log_forked();
    slot->sb->pid = getpid();

    /* Drop everything of the parent's loop, then start a clean one.
     * Stopping a signal's last watcher puts back SIG_DFL. */
    ev_signal_stop(sup->loop, &sup->sigterm);
    ev_signal_stop(sup->loop, &sup->sigint);
    ev_signal_stop(sup->loop, &sup->sigchld);
    ev_signal_stop(sup->loop, &sup->sighup);
    ev_signal_stop(sup->loop, &sup->sigusr1);
    ev_signal_stop(sup->loop, &sup->sigusr2);
    ev_signal_stop(sup->loop, &sup->sigalrm);
    offload_registry_forget(&sup->registry);
    ev_loop_destroy(sup->loop);

    offload_worker_signals(&handled);
    sigprocmask(SIG_SETMASK, &handled, NULL);

    loop = ev_default_loop(EVFLAG_AUTO);
    if (loop == NULL) {
        log_error("worker %s:%d: cannot create an event loop",
                  slot->pool->queue->name, slot->index);
        _exit(1);
    }

    rc = offload_worker_run(loop, sup->conf, slot->pool->queue, slot->index,
                            slot->sb);
    fflush(NULL);
    _exit(rc);
}


/* Starts the slot's worker once both the restart delay is over and its
 * predecessor's jobs are reclaimed, so the new worker never runs a job
 * that is being failed or handed back. */
void
offload_slot_maybe_spawn(offload_slot_t *slot)
{
    offload_slot_t        *twin;
    offload_supervisor_t  *sup = slot->pool->sup;

    if (!slot->want_spawn || slot->reclaiming || slot->pid != 0
        || sup->stopping || slot->pool->failed || slot->pool->retired)
    {
        return;
    }

    twin = offload_slot_twin(sup, slot);
    if (twin != NULL && (twin->pid != 0 || twin->reclaiming)) {
        return;     /* its predecessor still runs: it spawns us when done */
    }

    slot->want_spawn = 0;
    spawn(sup, slot);
}


/* The slot has no process and nothing in flight any more. */
static void
slot_idle(offload_slot_t *slot)
{
    offload_slot_t        *twin;
    offload_supervisor_t  *sup = slot->pool->sup;

    if (sup->stopping) {
        stopped(sup);
        return;
    }

    if (!slot->pool->retired) {
        offload_slot_maybe_spawn(slot);
        return;
    }

    twin = offload_slot_twin(sup, slot);
    if (twin != NULL) {
        offload_slot_maybe_spawn(twin);
    }

    offload_reload_step(sup);
}


static void
restart_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    offload_slot_t  *slot = w->data;

    (void) loop;
    (void) revents;

    slot->want_spawn = 1;
    offload_slot_maybe_spawn(slot);
}


/* The slot's next restart delay: its current step less up to a quarter of
 * jitter (never below the minimum), so that slots crashing together do not
 * restart in lockstep.  The step then doubles, up to the maximum. */
static int
next_backoff(offload_slot_t *slot)
{
    int                          step = slot->backoff_ms, low;
    const offload_conf_queue_t  *q = slot->pool->queue;

    low = step - step / 4;
    if (low < q->backoff_min_ms) {
        low = q->backoff_min_ms;
    }

    slot->backoff_ms = step > q->backoff_max_ms / 2 ? q->backoff_max_ms
                                                    : step * 2;

    return low + (int) (random() % (step - low + 1));
}


static void
schedule_restart(offload_supervisor_t *sup, offload_slot_t *slot)
{
    int  ms = next_backoff(slot);

    log_info("worker %s:%d: restarting in %d ms", slot->pool->queue->name,
             slot->index, ms);

    offload_event(offload_pool_node_conn(slot->pool), sup->conf->node_name,
                  "restart",
                  slot->pool->queue->name,
                  json_pack("{s:i,s:i}", "slot", slot->index, "delay_ms", ms));

    ev_timer_set(&slot->restart, ms / 1000.0, 0.0);
    ev_timer_start(sup->loop, &slot->restart);
}


static void
spawn(offload_supervisor_t *sup, offload_slot_t *slot)
{
    int       err;
    pid_t     pid, parent = getpid();
    sigset_t  all, old;

    fflush(NULL);
    offload_stats_slot_harvest(slot);
    offload_sb_reset(slot->sb, 0);      /* before the child writes to it */
    offload_sb_set_paused(slot->sb, sup->drained);
    offload_sb_set_standby(slot->sb, !sup->leased);
    offload_sb_set_clock_base(slot->sb, offload_pool_clock_base(slot->pool));

    /* No signal between fork() and the child's own handlers: see
     * become_worker(). */
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, &old);

    pid = fork();

    if (pid == 0) {
        become_worker(sup, slot, parent);
    }

    err = errno;

    if (pid > 0) {
        /* Fails only when the worker is gone already. */
        (void) setpgid(pid, pid);
    }

    sigprocmask(SIG_SETMASK, &old, NULL);

    if (pid == -1) {
        log_error("worker %s:%d: fork() failed: %s", slot->pool->queue->name,
                  slot->index, strerror(err));
        schedule_restart(sup, slot);
        return;
    }

    slot->pid = pid;
    slot->marked_seq = 0;
    slot->started_us = offload_mono_us();
    slot->stop_expired = 0;
    slot->timed_out = 0;
    slot->init_timed_out = 0;
    slot->cancelled = 0;
    slot->killed = 0;
    offload_stats_slot_spawned(slot);

    log_info("worker %s:%d: started, pid %d", slot->pool->queue->name,
             slot->index, (int) pid);

    offload_registry_update(&sup->registry);
}


static void
describe_exit(int status, char *buf, size_t size)
{
    const char  *name;

    if (WIFSIGNALED(status)) {
        name = sigabbrev_np(WTERMSIG(status));
        snprintf(buf, size, "killed by SIG%s%s", name ? name : "?",
                 WCOREDUMP(status) ? " (core dumped)" : "");
    } else {
        snprintf(buf, size, "exited with code %d", WEXITSTATUS(status));
    }
}


/* "5s" or "250ms", for log lines about configured times. */
static void
format_ms(char *buf, size_t size, int ms)
{
    if (ms % 1000 == 0) {
        snprintf(buf, size, "%ds", ms / 1000);
    } else {
        snprintf(buf, size, "%dms", ms);
    }
}


/* A job id's hash, never 0 (0: no job). */
static uint64_t
job_hash(const char *id)
{
    uint64_t  h = offload_fnv1a(id, strlen(id));

    return h ? h : 1;
}


/*
 * Records a restart in the pool's sliding window of restart_period, for
 * the job (hash) its worker died under, 0 for none.  Returns -1,
 * recording nothing, when it would make more than max_restarts restarts
 * within the period.
 *
 * The intensity tells a broken pool from bad jobs.  A job that crashes its
 * worker crashes the next one at its next attempt: its crashes count once
 * (max_attempts and the dead letters deal with the job).  And crashes
 * between which the pool finished jobs are the jobs', not a broken
 * handler's: the window starts again (worker_exited()).  Before,
 * three bad payloads at max_attempts 2 failed a pool (6 restarts), and
 * any client could take a queue offline for its restart_cooldown.
 */
static int
count_restart(offload_pool_t *pool, int64_t now_us, uint64_t job)
{
    int                          i, at;
    const offload_conf_queue_t  *q = pool->queue;

    if (q->max_restarts == 0) {
        return -1;
    }

    for (i = 0; job != 0 && i < pool->nrecent; i++) {
        at = (pool->next - 1 - i + q->max_restarts) % q->max_restarts;

        if (pool->restart_job[at] == job
            && now_us - pool->restart_us[at]
               < (int64_t) q->restart_period_ms * 1000)
        {
            pool->restarts++;
            return 0;
        }
    }

    /* When the ring is full, restart_us[next] is the oldest entry. */
    if (pool->nrecent == q->max_restarts
        && now_us - pool->restart_us[pool->next]
           < (int64_t) q->restart_period_ms * 1000)
    {
        return -1;
    }

    pool->restart_us[pool->next] = now_us;
    pool->restart_job[pool->next] = job;
    pool->next = (pool->next + 1) % q->max_restarts;
    if (pool->nrecent < q->max_restarts) {
        pool->nrecent++;
    }

    pool->restarts++;
    return 0;
}


void
offload_supervisor_drain(offload_supervisor_t *sup, int drained)
{
    offload_slot_iter_t   it = { 0, 0, 0 };
    offload_slot_t       *slot;

    if (sup->drained == drained) {
        return;
    }

    log_notice(drained ? "draining: workers take no new jobs"
                       : "resuming: workers take jobs again");
    sup->drained = drained;

    while ((slot = offload_slot_next(sup, &it)) != NULL) {
        offload_sb_set_paused(slot->sb, drained);
    }
}


void
offload_supervisor_lease(offload_supervisor_t *sup, int leased)
{
    offload_slot_iter_t   it = { 0, 0, 0 };
    offload_slot_t       *slot;

    if (sup->leased == leased) {
        return;
    }

    sup->leased = leased;

    while ((slot = offload_slot_next(sup, &it)) != NULL) {
        offload_sb_set_standby(slot->sb, !leased);
    }
}


void
offload_slot_stop(offload_slot_t *slot)
{
    offload_supervisor_t  *sup = slot->pool->sup;

    if (slot->stopping) {
        return;                 /* asked already: its deadline runs */
    }

    if (kill(slot->pid, SIGTERM) != 0 && errno != ESRCH) {
        log_error("kill(%d) failed: %s", (int) slot->pid, strerror(errno));
    }
    slot->stopping = 1;

    ev_timer_set(&slot->kill, sup->conf->shutdown_timeout_ms / 1000.0, 0.0);
    ev_timer_start(sup->loop, &slot->kill);
}


/* A stopping worker outlived shutdown_timeout: a long job (timeout off),
 * or completions it cannot deliver without Redis.  Its exit still goes
 * through worker_exited's stop path. */
static void
kill_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    char             timeout[32];
    offload_slot_t  *slot = w->data;

    (void) loop;
    (void) revents;

    if (slot->pid == 0) {
        return;
    }

    format_ms(timeout, sizeof(timeout),
              slot->pool->sup->conf->shutdown_timeout_ms);
    log_warn("worker %s:%d: pid %d still running %s after SIGTERM, sending "
             "SIGKILL; its jobs go back to the queue",
             slot->pool->queue->name, slot->index, (int) slot->pid, timeout);

    if (offload_slot_kill(slot) != 0 && errno != ESRCH) {
        log_error("kill(%d) failed: %s", (int) slot->pid, strerror(errno));
    }

    slot->stop_expired = 1;
}


/* The pool's restart intensity is exceeded (failing: a worker of that slot
 * never started, init_failures in a row, however far apart; last: how the
 * last worker ended): stop the pool's remaining workers and restart
 * nothing until the cooldown is over. */
static void
fail_pool(offload_pool_t *pool, const offload_slot_t *failing,
    const char *last)
{
    int                          i;
    char                         period[32], cooldown[32];
    offload_slot_t              *slot;
    const offload_conf_queue_t  *q = pool->queue;

    format_ms(period, sizeof(period), q->restart_period_ms);
    format_ms(cooldown, sizeof(cooldown), q->restart_cooldown_ms);

    if (failing != NULL) {
        log_error("pool %s failed: %d workers of slot %d in a row ended "
                  "before their handler's init succeeded (the last: %s), "
                  "cooling down %s", q->name, failing->init_failures,
                  failing->index, last, cooldown);
    } else {
        log_error("pool %s failed: %d restarts in %s (the last: %s), "
                  "cooling down %s", q->name, q->max_restarts + 1, period,
                  last, cooldown);
    }

    pool->failed = 1;

    for (i = 0; i < pool->nslots; i++) {
        slot = &pool->slots[i];
        ev_timer_stop(pool->sup->loop, &slot->restart);

        if (slot->pid != 0 && !slot->stopping) {
            offload_slot_stop(slot);
        }
    }

    ev_timer_set(&pool->cooldown, q->restart_cooldown_ms / 1000.0, 0.0);
    ev_timer_start(pool->sup->loop, &pool->cooldown);

    offload_event(offload_pool_node_conn(pool), pool->sup->conf->node_name,
                  "pool_failed", q->name,
                  json_pack("{s:i,s:i,s:i}", "restarts", q->max_restarts + 1,
                            "period_ms", q->restart_period_ms,
                            "cooldown_ms", q->restart_cooldown_ms));

    offload_registry_update(&pool->sup->registry);
}


/* The cooldown is over: the pool starts afresh, with an empty restart
 * window.  A slot whose worker is still stopping restarts when it exits. */
static void
cooldown_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    int              i;
    offload_pool_t  *pool = w->data;
    offload_slot_t  *slot;

    (void) loop;
    (void) revents;

    log_notice("pool %s restarting after cooldown", pool->queue->name);
    offload_event(offload_pool_node_conn(pool), pool->sup->conf->node_name,
                  "pool_restarted", pool->queue->name, NULL);

    pool->failed = 0;
    pool->nrecent = 0;
    pool->next = 0;

    /* Through the same guard as every restart: a slot whose dead worker's
     * jobs are still being failed or handed back starts after that. */
    for (i = 0; i < pool->nslots; i++) {
        slot = &pool->slots[i];
        slot->backoff_ms = pool->queue->backoff_min_ms;
        slot->init_failures = 0;
        slot->want_spawn = 1;
        offload_slot_maybe_spawn(slot);
    }

    offload_registry_update(&pool->sup->registry);
}


static void
reclaimed(void *data)
{
    offload_slot_t  *slot = data;

    slot->reclaiming = 0;

    if (slot->pid == 0) {
        slot_idle(slot);
    }
}


/* Sends the dead worker's jobs to reclaim.c: the one it held fails an
 * attempt (failure not NULL), the others go back to the queue.  The slot
 * goes idle (slot_idle) once that is over, or at once without Redis. */
static void
reclaim_slot(offload_slot_t *slot, const offload_failure_t *failure)
{
    int                    busy;
    char                   consumer[OFFLOAD_CONSUMER_MAX];
    offload_pool_t        *pool = slot->pool;
    offload_supervisor_t  *sup = pool->sup;

    /* The node does not hold its name (node_lease.c): what the consumer
     * holds is the workers' of the sidecar that does, and runs. */
    if (!sup->leased) {
        slot_idle(slot);
        return;
    }

    busy = offload_sb_state(slot->sb) == OFFLOAD_SB_BUSY;

    snprintf(consumer, sizeof(consumer), OFFLOAD_CONSUMER_FMT,
             sup->conf->node_name, pool->queue->name, slot->index);

    slot->reclaiming = 1;

    if (offload_reclaim_worker(offload_pool_conn(pool), sup->conf,
                               pool->queue,
                               consumer, busy ? slot->sb->entry_id : NULL,
                               busy ? failure : NULL, reclaimed, slot)
        != 0)
    {
        /* Redis is away: the next worker reads the slot's history, and
         * fails the attempt of the job marked running (running.c). */
        log_warn("worker %s:%d: redis unavailable, its jobs stay pending",
                 pool->queue->name, slot->index);
        slot->reclaiming = 0;
        slot_idle(slot);
    }
}


static offload_fail_reason_e
classify(offload_supervisor_t *sup, offload_slot_t *slot, int status)
{
    long long  kills;

    if (slot->timed_out) {
        return OFFLOAD_FAIL_JOB_TIMEOUT;
    }

    if (slot->init_timed_out) {
        return OFFLOAD_FAIL_INIT_TIMEOUT;
    }

    if (slot->sb->exit_reason == OFFLOAD_SB_EXIT_OUT_OF_MEMORY) {
        return slot->pool->queue->memory_limit > 0
               ? OFFLOAD_FAIL_MEMORY_LIMIT : OFFLOAD_FAIL_ALLOCATION;
    }

    if (!WIFSIGNALED(status)) {
        return OFFLOAD_FAIL_EXIT;
    }

    if (WTERMSIG(status) == SIGKILL && sup->oom_events != NULL) {
        kills = offload_oom_kills(sup->oom_events);
        if (kills > sup->oom_kills) {
            sup->oom_kills = kills;
            return OFFLOAD_FAIL_OOM;
        }
    }

    return OFFLOAD_FAIL_SIGNAL;
}


/*
 * A worker asked to stop left as asked: it held no job, or left once its
 * job was done (exit 0), or outlived shutdown_timeout (killed: its job
 * goes back unchanged).  One that died under its job otherwise (a crash,
 * the job's own timeout) failed that job, as it would at any other time:
 * handed back, it would run again past max_attempts, uncounted.
 */
static int
stopped_as_asked(offload_slot_t *slot, int status)
{
    if (offload_sb_state(slot->sb) != OFFLOAD_SB_BUSY || slot->stop_expired) {
        return 1;
    }

    return !slot->timed_out && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}


/* Why a worker left on its own after finishing its batch (recycling), as
 * its log line, last exit and event name it; NULL if it did not. */
static const char *
recycled(offload_slot_t *slot, int status)
{
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        return NULL;
    }

    switch (slot->sb->exit_reason) {
    case OFFLOAD_SB_EXIT_MAX_JOBS:  return "max_jobs_per_worker";
    case OFFLOAD_SB_EXIT_MEMORY:    return "memory_limit";
    case OFFLOAD_SB_EXIT_FDS:       return "file_descriptors";
    case OFFLOAD_SB_EXIT_UNSETTLED: return "unsettled_entry";
    default:                        return NULL;
    }
}


/* The jobs the pool's workers finished (answered 200), all processes. */
static uint64_t
pool_jobs_ok(const offload_pool_t *pool)
{
    int                    i;
    uint64_t               ok = 0;
    offload_slot_counts_t  c;

    for (i = 0; i < pool->nslots; i++) {
        offload_stats_slot_counts(&pool->slots[i], &c);
        ok += c.ok;
    }

    return ok;
}


static void
worker_exited(offload_slot_t *slot, int status, const struct rusage *ru)
{
    int                    at_once, timed_out, busy, stopping;
    char                   how[64], last[80];
    uint64_t               ok;
    pid_t                  pid;
    size_t                 len;
    int64_t                now_us;
    const char            *why;
    offload_crash_t        crash;
    offload_pool_t        *pool = slot->pool;
    offload_failure_t      failure;
    offload_supervisor_t  *sup = pool->sup;

    ev_timer_stop(sup->loop, &slot->kill);

    describe_exit(status, how, sizeof(how));
    pid = slot->pid;
    slot->pid = 0;
    now_us = offload_mono_us();

    /* the next process of the slot is not asked to stop, however this
     * one left */
    stopping = sup->stopping || slot->stopping;
    slot->stopping = 0;

    if (stopping && stopped_as_asked(slot, status)) {
        /* We asked it to stop: what it still held goes back unchanged. */
        log_info("worker %s:%d: pid %d %s", pool->queue->name, slot->index,
                 (int) pid, how);
        offload_stats_slot_exited(slot, "stopped", 0);
        slot->want_spawn = !pool->failed;   /* the cooldown ended */
        reclaim_slot(slot, NULL);
        return;
    }

    if (slot->cancelled) {
        /* Its job was cancelled (cancel.c): the record says so already;
         * its entry goes back and the start script drops it (the worker
         * that sees that counts it). */
        log_notice("worker %s:%d: pid %d %s: its job was cancelled",
                   pool->queue->name, slot->index, (int) pid, how);
        offload_stats_slot_exited(slot, "cancelled", 0);
        slot->want_spawn = 1;
        reclaim_slot(slot, NULL);
        return;
    }

    why = recycled(slot, status);
    if (why != NULL) {
        log_info("worker %s:%d: pid %d recycled (%s)", pool->queue->name,
                 slot->index, (int) pid, why);
        snprintf(last, sizeof(last), "recycled: %s", why);
        offload_stats_slot_exited(slot, last, 0);
        offload_event(offload_pool_node_conn(pool), sup->conf->node_name,
                      "recycle",
                      pool->queue->name,
                      json_pack("{s:i,s:i,s:s,s:I}", "slot", slot->index,
                                "pid", (int) pid, "reason", why,
                                "maxrss_kb", (json_int_t) ru->ru_maxrss));
        slot->want_spawn = 1;
        reclaim_slot(slot, NULL);
        return;
    }

    /* Logged by its crash report (offload_crash_report()), once. */

    /* A worker that left because its exec handler's process died reports
     * that process's end: its signal or exit code is the crash's. */
    crash.handler_left = slot->sb->exit_reason
                             == OFFLOAD_SB_EXIT_HANDLER_PROCESS
                         && slot->sb->child_status != -1;
    if (crash.handler_left) {
        status = slot->sb->child_status;
        len = snprintf(how, sizeof(how), "left: its handler process ");
        describe_exit(status, how + len, sizeof(how) - len);
    }

    if (slot->sb->exit_reason == OFFLOAD_SB_EXIT_INIT_FAILED) {
        len = strlen(how);
        snprintf(how + len, sizeof(how) - len, ": its handler's init "
                 "failed");
    }

    crash.node = sup->conf->node_name;
    crash.queue = pool->queue->name;
    crash.slot = slot->index;
    crash.pid = pid;
    crash.reason = classify(sup, slot, status);
    crash.status = status;
    crash.how = how;
    crash.rusage = ru;
    crash.uptime_us = now_us - slot->started_us;
    crash.sb = slot->sb;

    failure.reason = crash.reason;
    failure.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    failure.exit_code = WIFEXITED(status)
                        && (slot->sb->exit_reason == OFFLOAD_SB_EXIT_NONE
                            || crash.handler_left)
                        ? WEXITSTATUS(status) : -1;
    failure.report = offload_crash_report(&crash);
    failure.answer_partial = __atomic_load_n(&slot->sb->answer_partial,
                                             __ATOMIC_RELAXED);

    snprintf(last, sizeof(last), "%s: %s",
             offload_fail_reason_name(crash.reason), how);

    /* A job that ran too long is the job's fault, not the worker's: it
     * failed (504 job_timeout), and its kill is a "timeout" event, not a
     * crash kept among the node's latest crash reports; the replacement
     * starts at once and is not counted as a restart.  A retired slot's
     * successor starts instead. */
    timed_out = crash.reason == OFFLOAD_FAIL_JOB_TIMEOUT;
    busy = offload_sb_state(slot->sb) == OFFLOAD_SB_BUSY;

    /* the job it died under ended too: its run counts in the pool's jobs/s
     * and run times as a finished job's (a queue whose every job crashes
     * or times out is not idle) */
    if (busy) {
        offload_sb_run_observe(slot->sb, now_us - slot->sb->job_start_us);
    }

    offload_stats_slot_exited(slot, last, busy && !timed_out);

    if (timed_out) {
        if (busy) {
            slot->stats.jobs.failed++;  /* not one that ended meanwhile */
        }

        offload_event(offload_pool_node_conn(pool), sup->conf->node_name,
                      "timeout", pool->queue->name,
                      json_incref(failure.report));

    } else {
        offload_crash_event(offload_pool_node_conn(pool),
                            sup->conf->node_name, pool->queue->name,
                            json_incref(failure.report));
    }

    at_once = timed_out || pool->retired;
    slot->want_spawn = at_once;

    /* One asked to stop is not restarted as a crash: it is replaced as a
     * stopped one is (a reload's, a failed pool's after its cooldown) */

    if (stopping) {
        slot->want_spawn = !pool->failed;
        at_once = 1;
    }

    reclaim_slot(slot, &failure);
    json_decref(failure.report);

    if (at_once) {
        return;
    }

    /* A worker that started, then lived a while or finished a job, was
     * healthy: what killed it is not the crash loop the backoff spaces
     * out.  One whose init never ended was not, however long that took
     * (init_timeout): such starts in a row fail the pool, even when they
     * are too far apart for the restart period to see them. */
    if (!offload_sb_init_done(slot->sb)) {
        slot->init_failures++;

    } else {
        slot->init_failures = 0;

        if (now_us - slot->started_us > HEALTHY_AFTER_US
            || slot->sb->jobs_ok > 0)
        {
            slot->backoff_ms = pool->queue->backoff_min_ms;
        }
    }

    if (slot->init_failures > pool->queue->max_restarts) {
        fail_pool(pool, slot, last);
        return;
    }

    ok = pool_jobs_ok(pool);
    if (ok != pool->restart_ok) {
        pool->restart_ok = ok;          /* jobs done since the last crash */
        pool->nrecent = 0;
    }

    if (count_restart(pool, now_us, busy ? job_hash(slot->sb->job_id) : 0)
        != 0)
    {
        fail_pool(pool, NULL, last);
        return;
    }

    schedule_restart(sup, slot);
}


static offload_slot_t *
find_slot(offload_supervisor_t *sup, pid_t pid)
{
    offload_slot_iter_t   it = { 0, 0, 0 };
    offload_slot_t       *slot;

    while ((slot = offload_slot_next(sup, &it)) != NULL) {
        if (slot->pid == pid) {
            return slot;
        }
    }

    return NULL;
}


static void
sigchld_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    int                    status;
    pid_t                  pid;
    struct rusage          ru;
    offload_slot_t        *slot;
    offload_supervisor_t  *sup = w->data;

    (void) loop;
    (void) revents;

    while ((pid = wait4(-1, &status, WNOHANG, &ru)) > 0) {
        slot = find_slot(sup, pid);
        if (slot != NULL) {
            offload_pgroup_sweep(slot, pid);
            worker_exited(slot, status, &ru);
        }
    }
}


/* Kills the worker of a job that ran past its queue's timeout. */
static void
check_job_timeout(offload_slot_t *slot, int64_t now_us)
{
    char                         hint[128];
    const offload_conf_queue_t  *q = slot->pool->queue;

    if (q->timeout_ms == 0 || slot->timed_out
        || offload_sb_state(slot->sb) != OFFLOAD_SB_BUSY
        || now_us - slot->sb->job_start_us
           < (int64_t) q->timeout_ms * 1000 + TIMEOUT_GRACE_US)
    {
        return;
    }

    log_warn("worker %s:%d: job %s ran past the %d ms timeout, killing "
             "pid %d%s", q->name, slot->index, slot->sb->job_id,
             q->timeout_ms, (int) slot->pid,
             offload_partial_hint(hint, sizeof(hint),
                                  __atomic_load_n(&slot->sb->answer_partial,
                                                  __ATOMIC_RELAXED)));

    if (offload_slot_kill(slot) == 0) {
        slot->timed_out = 1;
    }
}


/* Kills a worker whose handler's init has not returned init_timeout after
 * its start (a model that never loads, a connect without a deadline): left
 * alone it would show "starting" for ever and never read a job.  It is a
 * crash of its slot: restarted with backoff, under the restart intensity. */
static void
check_init_timeout(offload_slot_t *slot, int64_t now_us)
{
    const offload_conf_queue_t  *q = slot->pool->queue;

    /* an exit_reason set: the init failed, and the worker is leaving */
    if (q->init_timeout_ms == 0 || slot->init_timed_out || slot->stopping
        || offload_sb_init_done(slot->sb)
        || slot->sb->exit_reason != OFFLOAD_SB_EXIT_NONE
        || now_us - slot->started_us < (int64_t) q->init_timeout_ms * 1000)
    {
        return;
    }

    if (q->wait_ready) {
        log_warn("worker %s:%d: its process did not write {\"ready\":true} "
                 "within the %d ms init_timeout, killing pid %d", q->name,
                 slot->index, q->init_timeout_ms, (int) slot->pid);
    } else {
        log_warn("worker %s:%d: the init of handler %s ran past the %d ms "
                 "init_timeout, killing pid %d", q->name, slot->index,
                 q->handler->name, q->init_timeout_ms, (int) slot->pid);
    }

    if (offload_slot_kill(slot) == 0) {
        slot->init_timed_out = 1;
    }
}


/* Every TIMEOUT_SCAN_S: kills the workers whose job or init ran past its
 * timeout, and moves a reload's rolling restart along. */
static void
scan_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    int64_t                now_us;
    offload_slot_iter_t    it = { 0, 0, 0 };
    offload_slot_t        *slot;
    offload_supervisor_t  *sup = w->data;

    (void) loop;
    (void) revents;

    now_us = offload_mono_us();

    while ((slot = offload_slot_next(sup, &it)) != NULL) {
        if (slot->pid != 0) {
            check_job_timeout(slot, now_us);
            check_init_timeout(slot, now_us);
        }
    }

    if (sup->rolling != NULL) {
        offload_reload_step(sup);
    }
}


static void
claim_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) loop;
    (void) revents;

    offload_claim_round(w->data);
}


static void
retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    size_t                 p;
    offload_redis_conn_t  *conn;
    offload_supervisor_t  *sup = w->data;

    (void) loop;
    (void) revents;

    if (sup->stopping) {
        return;
    }

    for (p = 0; p < sup->npools; p++) {
        conn = offload_pool_conn(&sup->pools[p]);
        if (conn->ready) {
            offload_retry_due(conn, sup->pools[p].retry_key,
                              sup->pools[p].stream_key,
                              offload_redis_clock_ms(conn));
        }
    }
}


/* While a worker is busy: cancelled jobs to stop, running jobs to mark */
static void
cancel_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) loop;
    (void) revents;

    offload_cancel_round(w->data);
    offload_running_round(w->data);
}


static void
finish(offload_supervisor_t *sup)
{
    ev_timer_stop(sup->loop, &sup->exit_timer);
    ev_signal_stop(sup->loop, &sup->sigterm);
    ev_signal_stop(sup->loop, &sup->sigint);
    ev_signal_stop(sup->loop, &sup->sigchld);
    ev_signal_stop(sup->loop, &sup->sighup);
    ev_signal_stop(sup->loop, &sup->sigusr1);
    ev_signal_stop(sup->loop, &sup->sigusr2);
    ev_signal_stop(sup->loop, &sup->sigalrm);
    ev_timer_stop(sup->loop, &sup->scan);
    ev_timer_stop(sup->loop, &sup->claim);
    ev_timer_stop(sup->loop, &sup->retry);
    ev_timer_stop(sup->loop, &sup->cancel);
    offload_registry_stop(&sup->registry);
    ev_break(sup->loop, EVBREAK_ALL);
}


static void
registry_removed(offload_registry_t *reg)
{
    finish(reg->sup);
}


static void
exit_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) loop;
    (void) revents;

    log_warn("could not remove the node from the registry in time");
    finish(w->data);
}


/* Called as workers exit during shutdown: once all are gone, remove the
 * node from the registry and leave. */
static void
stopped(offload_supervisor_t *sup)
{
    if (!offload_slots_done(sup, 0)) {
        return;
    }

    log_info("all workers stopped");

    ev_timer_start(sup->loop, &sup->exit_timer);
    offload_registry_remove(&sup->registry, registry_removed);
}


static void
stop_signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    size_t                 p;
    offload_slot_iter_t    it = { 0, 0, 0 };
    offload_slot_t        *slot;
    offload_supervisor_t  *sup = w->data;

    (void) loop;
    (void) revents;

    if (sup->stopping) {
        return;
    }

    log_notice("got SIG%s, stopping", sigabbrev_np(w->signum));
    sup->stopping = 1;

    for (p = 0; p < sup->npools; p++) {
        ev_timer_stop(sup->loop, &sup->pools[p].cooldown);
    }

    for (p = 0; p < sup->nretired; p++) {
        ev_timer_stop(sup->loop, &sup->retired[p].cooldown);
    }

    sup->rolling = NULL;

    while ((slot = offload_slot_next(sup, &it)) != NULL) {
        ev_timer_stop(sup->loop, &slot->restart);

        if (slot->pid != 0) {
            offload_slot_stop(slot);
        }
    }

    stopped(sup);
}


void
offload_pools_free(offload_pool_t *pools, size_t npools)
{
    size_t  p;
    int     i;

    for (p = 0; p < npools; p++) {
        for (i = 0; pools[p].slots && i < pools[p].nslots; i++) {
            offload_sb_unmap(pools[p].slots[i].sb);
        }
        free(pools[p].slots);
        free(pools[p].restart_us);
        free(pools[p].restart_job);
        offload_hm_unmap(pools[p].metrics);
        offload_stats_pool_free(&pools[p].stats);
    }
    free(pools);
}


void
offload_pool_adopt_metrics(offload_pool_t *pool, offload_pool_t *old)
{
    int  i;

    offload_hm_unmap(pool->metrics);
    pool->metrics = old->metrics;
    old->metrics = NULL;

    for (i = 0; i < pool->nslots; i++) {
        pool->slots[i].sb->metrics = pool->metrics;
    }
}


offload_redis_conn_t *
offload_pool_conn(const offload_pool_t *pool)
{
    return offload_registry_conn(&pool->sup->registry, &pool->queue->redis);
}


/* What its workers read Redis' clock by (registry.c measures it). */
int64_t
offload_pool_clock_base(const offload_pool_t *pool)
{
    return offload_redis_clock_base(offload_pool_conn(pool));
}


offload_redis_conn_t *
offload_pool_node_conn(const offload_pool_t *pool)
{
    return offload_registry_node_conn(&pool->sup->registry,
                                      &pool->queue->redis);
}


offload_pool_t *
offload_pools_make(offload_supervisor_t *sup, const offload_conf_t *conf)
{
    size_t           p;
    int              i;
    offload_pool_t  *pools, *pool;
    offload_slot_t  *slot;

    pools = calloc(conf->nqueues, sizeof(offload_pool_t));
    if (pools == NULL) {
        return NULL;
    }

    for (p = 0; p < conf->nqueues; p++) {
        pool = &pools[p];
        pool->sup = sup;
        pool->queue = &conf->queues[p];
        pool->nslots = pool->queue->workers;
        pool->slots = calloc((size_t) pool->nslots, sizeof(offload_slot_t));
        /* + 1: max_restarts may be 0, and calloc(0) may return NULL */
        pool->restart_us = calloc((size_t) pool->queue->max_restarts + 1,
                                  sizeof(int64_t));
        pool->restart_job = calloc((size_t) pool->queue->max_restarts + 1,
                                   sizeof(uint64_t));
        pool->metrics = offload_hm_map();
        if (pool->slots == NULL || pool->restart_us == NULL
            || pool->restart_job == NULL || pool->metrics == NULL)
        {
            offload_pools_free(pools, p + 1);
            return NULL;
        }
        ev_timer_init(&pool->cooldown, cooldown_cb, 0.0, 0.0);
        pool->cooldown.data = pool;
        offload_stats_pool_init(&pool->stats);
        offload_stream_key(pool->stream_key, sizeof(pool->stream_key),
                           pool->queue->name, strlen(pool->queue->name));
        offload_dead_key(pool->dead_key, sizeof(pool->dead_key),
                         pool->queue->name, strlen(pool->queue->name));
        snprintf(pool->retry_key, sizeof(pool->retry_key), OFFLOAD_RETRY_FMT,
                 (int) strlen(pool->queue->name), pool->queue->name);

        for (i = 0; i < pool->nslots; i++) {
            slot = &pool->slots[i];
            slot->pool = pool;
            slot->index = i;
            slot->backoff_ms = pool->queue->backoff_min_ms;
            slot->sb = offload_sb_map();
            if (slot->sb == NULL) {
                offload_pools_free(pools, p + 1);
                return NULL;
            }
            slot->sb->metrics = pool->metrics;
            ev_timer_init(&slot->restart, restart_cb, 0.0, 0.0);
            slot->restart.data = slot;
            ev_timer_init(&slot->kill, kill_cb, 0.0, 0.0);
            slot->kill.data = slot;
        }
    }

    return pools;
}


/* A signal the sidecar has no use for, whose default action would end
 * the node at once, with no line said and its workers' children left
 * running: one sent to the wrong pid (a script, a handler process of the
 * same user) is logged instead. */
static void
stray_signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void) loop;
    (void) revents;

    log_warn("got SIG%s, which offload-sidecar does not use: ignored",
             sigabbrev_np(w->signum));
}


/* SIGUSR1 (logrotate): reopen the log here and in every worker. */
static void
sigusr1_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    offload_slot_iter_t    it = { 0, 0, 0 };
    offload_slot_t        *slot;
    offload_supervisor_t  *sup = w->data;

    (void) loop;
    (void) revents;

    if (offload_log_reopen() != 0) {
        log_error("cannot reopen the log: %s", strerror(errno));
    }

    while ((slot = offload_slot_next(sup, &it)) != NULL) {
        if (slot->pid != 0) {
            kill(slot->pid, SIGUSR1);
        }
    }

    log_notice("log reopened");
}


static void
sighup_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    offload_supervisor_t  *sup = w->data;

    (void) loop;
    (void) revents;

    if (!sup->stopping) {
        offload_reload(sup);
    }
}


void
offload_supervisor_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGHUP);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGUSR1);
    sigaddset(set, SIGUSR2);
    sigaddset(set, SIGALRM);
}


int
offload_supervisor_run(const offload_conf_t *conf, const char *conf_file)
{
    size_t                p;
    int                   i;
    sigset_t              watched;
    offload_supervisor_t  sup;

    memset(&sup, 0, sizeof(sup));
    sup.conf = conf;
    sup.first_conf = conf;
    sup.conf_file = conf_file;
    sup.started_us = offload_mono_us();

    sup.loop = ev_loop_new(EVFLAG_AUTO);
    if (sup.loop == NULL) {
        log_error("cannot create the event loop");
        return 1;
    }

    sup.pools = offload_pools_make(&sup, conf);
    if (sup.pools == NULL) {
        log_error("out of memory");
        ev_loop_destroy(sup.loop);
        return 1;
    }
    sup.npools = conf->nqueues;

    /* hiredis writes to sockets the server may have closed */
    signal(SIGPIPE, SIG_IGN);

    ev_signal_init(&sup.sigterm, stop_signal_cb, SIGTERM);
    ev_signal_init(&sup.sigint, stop_signal_cb, SIGINT);
    ev_signal_init(&sup.sigchld, sigchld_cb, SIGCHLD);
    ev_signal_init(&sup.sighup, sighup_cb, SIGHUP);
    ev_signal_init(&sup.sigusr1, sigusr1_cb, SIGUSR1);
    ev_signal_init(&sup.sigusr2, stray_signal_cb, SIGUSR2);
    ev_signal_init(&sup.sigalrm, stray_signal_cb, SIGALRM);
    sup.sigterm.data = &sup;
    sup.sigint.data = &sup;
    sup.sigchld.data = &sup;
    sup.sighup.data = &sup;
    sup.sigusr1.data = &sup;
    ev_signal_start(sup.loop, &sup.sigterm);
    ev_signal_start(sup.loop, &sup.sigint);
    ev_signal_start(sup.loop, &sup.sigchld);
    ev_signal_start(sup.loop, &sup.sighup);
    ev_signal_start(sup.loop, &sup.sigusr1);
    ev_signal_start(sup.loop, &sup.sigusr2);
    ev_signal_start(sup.loop, &sup.sigalrm);

    /* main() held them from its pid file on: theirs now */
    offload_supervisor_signals(&watched);
    sigprocmask(SIG_UNBLOCK, &watched, NULL);

    ev_timer_init(&sup.scan, scan_cb, TIMEOUT_SCAN_S, TIMEOUT_SCAN_S);
    sup.scan.data = &sup;
    ev_timer_start(sup.loop, &sup.scan);

    ev_timer_init(&sup.claim, claim_cb, conf->claim_idle_ms / 2000.0,
                  conf->claim_idle_ms / 2000.0);
    sup.claim.data = &sup;
    ev_timer_start(sup.loop, &sup.claim);

    ev_timer_init(&sup.retry, retry_cb, OFFLOAD_RETRY_ROUND_S,
                  OFFLOAD_RETRY_ROUND_S);
    sup.retry.data = &sup;
    ev_timer_start(sup.loop, &sup.retry);

    ev_timer_init(&sup.cancel, cancel_cb, OFFLOAD_CANCEL_ROUND_S,
                  OFFLOAD_CANCEL_ROUND_S);
    sup.cancel.data = &sup;
    ev_timer_start(sup.loop, &sup.cancel);

    sup.oom_events = offload_oom_events_path();
    sup.oom_kills = offload_oom_kills(sup.oom_events);

    ev_timer_init(&sup.exit_timer, exit_timer_cb, REGISTRY_CLEANUP_S, 0.0);
    sup.exit_timer.data = &sup;

    log_notice("node %s starting, %zu queue(s)", conf->node_name,
               sup.npools);

    if (conf->fault_handlers) {
        log_warn("fault handlers are on: handlers crash, abort, exit, hang, "
                 "leak and flaky can kill workers; for tests and demos only");
    }

    /* Before the first fork: workers let go of it (become_worker). */
    if (offload_registry_start(&sup.registry, &sup) != 0) {
        log_error("out of memory for the redis links");
        return 1;
    }

    for (p = 0; p < sup.npools; p++) {
        for (i = 0; i < sup.pools[p].nslots; i++) {
            spawn(&sup, &sup.pools[p].slots[i]);
        }
    }

    ev_run(sup.loop, 0);

    log_notice("node %s stopped", sup.conf->node_name);

    offload_registry_free(&sup.registry);
    offload_pools_free(sup.pools, sup.npools);
    offload_pools_free(sup.retired, sup.nretired);
    if (sup.retired_conf != NULL && sup.retired_conf != conf) {
        offload_conf_free((offload_conf_t *) sup.retired_conf);
        free((void *) sup.retired_conf);
    }
    if (sup.conf != conf) {
        offload_conf_free((offload_conf_t *) sup.conf);
        free((void *) sup.conf);
    }
    free(sup.oom_events);
    ev_loop_destroy(sup.loop);
    return 0;
}
