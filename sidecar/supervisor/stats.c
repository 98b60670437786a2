/*
 * stats.c -- collects the health figures of stats.h.  Everything here runs
 * in the supervisor on its heartbeat; a worker only counts into its
 * scoreboard, so watching it costs the worker nothing.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "clock.h"
#include "log.h"
#include "stats.h"
#include "supervisor.h"


void
offload_stats_pool_init(offload_pool_stats_t *ps)
{
    memset(ps, 0, sizeof(*ps));
    ps->backlog = -1;
    ps->pending = -1;
    ps->oldest_ms = -1;
    ps->dead = -1;
    ps->retrying = -1;
}


static void
slice_clear(offload_stats_slice_t *sl)
{
    free(sl->dense);
    memset(sl, 0, sizeof(*sl));
}


void
offload_stats_pool_free(offload_pool_stats_t *ps)
{
    int  s;

    if (ps->window == NULL) {
        return;
    }

    for (s = 0; s < OFFLOAD_STATS_SLICES; s++) {
        slice_clear(&ps->window->slice[s]);
    }

    free(ps->window);
    ps->window = NULL;
}


/* Where a slice counts a bucket: its place in the list, a new one, or,
 * once the list is full, the whole histogram the list turns into.  NULL:
 * out of memory. */
static uint32_t *
slice_count(offload_stats_slice_t *sl, int bucket)
{
    int  i;

    if (sl->dense != NULL) {
        return &sl->dense[bucket];
    }

    for (i = 0; i < sl->nlisted; i++) {
        if (sl->bucket[i] == bucket) {
            return &sl->count[i];
        }
    }

    if (sl->nlisted < OFFLOAD_STATS_LISTED) {
        sl->bucket[sl->nlisted] = (uint16_t) bucket;
        sl->count[sl->nlisted] = 0;
        return &sl->count[sl->nlisted++];
    }

    sl->dense = calloc(OFFLOAD_HIST_FINE, sizeof(uint32_t));
    if (sl->dense == NULL) {
        return NULL;
    }

    for (i = 0; i < sl->nlisted; i++) {
        sl->dense[sl->bucket[i]] = sl->count[i];
    }

    return &sl->dense[bucket];
}


/* Once the current slice counted its 10 heartbeats, before anything more
 * is counted: the oldest slice leaves the window and becomes the current
 * one, empty.  A window left empty is freed. */
static void
turn_slice(offload_pool_stats_t *ps)
{
    int                      s;
    uint64_t                 jobs = 0;
    offload_stats_window_t  *w = ps->window;

    if (ps->beats < OFFLOAD_STATS_SLICE) {
        return;
    }

    ps->beats = 0;
    ps->current = (ps->current + 1) % OFFLOAD_STATS_SLICES;

    if (w == NULL) {
        return;
    }

    slice_clear(&w->slice[ps->current]);

    for (s = 0; s < OFFLOAD_STATS_SLICES; s++) {
        jobs += w->slice[s].jobs;
    }

    if (jobs == 0) {
        offload_stats_pool_free(ps);
    }
}


void
offload_stats_pool_count(offload_pool_stats_t *ps, int bucket, uint32_t n)
{
    uint32_t               *count;
    offload_stats_slice_t  *sl;

    turn_slice(ps);

    if (ps->window == NULL) {
        ps->window = calloc(1, sizeof(offload_stats_window_t));
    }

    sl = ps->window != NULL ? &ps->window->slice[ps->current] : NULL;
    count = sl != NULL ? slice_count(sl, bucket) : NULL;

    if (count == NULL) {
        log_error("stats: out of memory: %u runs not counted", n);
        return;
    }

    /* a bucket of a slice holds 4.29e9 runs: 10 heartbeats of 1 h at
     * 119k jobs/s; past that it stays full rather than wrap */
    *count += n < UINT32_MAX - *count ? n : UINT32_MAX - *count;
    sl->jobs += n;
    ps->period_jobs += n;
}


/* Moves what the slot's process ran since the last look to pool (its
 * own, or its successor's after a reload): each bucket exchanged with 0,
 * so a run the worker counts meanwhile, or as it dies, is taken now or at
 * the next look, never twice nor lost, and the supervisor keeps no copy of
 * the worker's counts. */
static void
collect_runs(offload_slot_t *slot, offload_pool_t *pool)
{
    int        i;
    uint32_t  *hist = slot->sb->run_hist;

    for (i = 0; i < OFFLOAD_HIST_FINE; i++) {
        if (__atomic_load_n(&hist[i], __ATOMIC_RELAXED) != 0) {
            offload_stats_pool_count(&pool->stats, i,
                __atomic_exchange_n(&hist[i], 0, __ATOMIC_RELAXED));
        }
    }
}


static void
counts_add(offload_slot_counts_t *to, const offload_slot_counts_t *c)
{
    to->ok += c->ok;
    to->failed += c->failed;
    to->retried += c->retried;
    to->cancelled += c->cancelled;
    to->expired += c->expired;
    to->crashed += c->crashed;
}


/* What the slot's process counted (the last one's, until the next spawn
 * harvests it), added to c. */
static void
counts_add_process(offload_slot_counts_t *c, const offload_slot_t *slot)
{
    offload_slot_counts_t  p = {
        .ok = slot->sb->jobs_ok,
        .failed = slot->sb->jobs_failed,
        .retried = slot->sb->jobs_retried,
        .cancelled = slot->sb->jobs_cancelled,
        .expired = slot->sb->jobs_expired
    };

    counts_add(c, &p);
}


void
offload_stats_slot_harvest(offload_slot_t *slot)
{
    collect_runs(slot, slot->pool);
    counts_add_process(&slot->stats.jobs, slot);
}


void
offload_stats_slot_counts(const offload_slot_t *slot,
    offload_slot_counts_t *c)
{
    int                    i;
    offload_pool_t        *old;
    offload_supervisor_t  *sup = slot->pool->sup;

    *c = slot->stats.jobs;
    counts_add_process(c, slot);

    old = slot->pool->retired
          ? NULL
          : offload_pool_named(sup->retired, sup->nretired,
                               slot->pool->queue->name);

    for (i = slot->index; old != NULL && i < old->nslots;
         i += slot->pool->nslots)
    {
        counts_add(c, &old->slots[i].stats.jobs);
        counts_add_process(c, &old->slots[i]);
    }
}


void
offload_stats_slot_succeed(offload_pool_t *pool, offload_slot_t *retired,
    int done)
{
    offload_slot_stats_t  *st, *old = &retired->stats;

    st = &pool->slots[retired->index % pool->nslots].stats;

    if (done) {
        collect_runs(retired, pool);            /* its last process's */
        counts_add_process(&st->jobs, retired);

    } else if (retired->index < pool->nslots) {
        memcpy(st->last_exit, old->last_exit, sizeof(st->last_exit));
    }

    /* not its spawns: the successor's first process is no restart */
    counts_add(&st->jobs, &old->jobs);
    st->restarts += old->restarts;

    /* counted once: from now on, the retired slot counts only what its
     * process does */
    memset(&old->jobs, 0, sizeof(old->jobs));
    old->restarts = 0;
}


void
offload_stats_slot_spawned(offload_slot_t *slot)
{
    offload_slot_stats_t  *st = &slot->stats;

    if (st->spawned++ > 0) {
        st->restarts++;
    }

    st->pid = slot->pid;
    st->sampled_us = slot->started_us;
    st->utime = 0;
    st->stime = 0;
    st->cpu_user = 0;
    st->cpu_sys = 0;
    st->rss = 0;
}


void
offload_stats_slot_exited(offload_slot_t *slot, const char *how,
    int crashed_job)
{
    snprintf(slot->stats.last_exit, sizeof(slot->stats.last_exit), "%s",
             how);

    if (crashed_job) {
        slot->stats.jobs.crashed++;
    }
}


/* utime and stime of /proc/<pid>/stat, fields 14 and 15: counted after
 * the command name, which may itself hold spaces and parentheses. */
static int
read_cpu(pid_t pid, unsigned long long *utime, unsigned long long *stime)
{
    int    n;
    char   path[64], buf[1024], *p;
    FILE  *f;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
    f = fopen(path, "r");
    if (f == NULL) {
        return -1;
    }

    n = (int) fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n > 0 ? n : 0] = '\0';

    p = strrchr(buf, ')');
    if (p == NULL
        || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu "
                  "%llu", utime, stime) != 2)
    {
        return -1;
    }

    return 0;
}


static long long
read_rss(pid_t pid)
{
    char        path[64];
    FILE       *f;
    long long   pages;

    snprintf(path, sizeof(path), "/proc/%d/statm", (int) pid);
    f = fopen(path, "r");
    if (f == NULL) {
        return 0;
    }

    if (fscanf(f, "%*d %lld", &pages) != 1) {
        pages = 0;
    }
    fclose(f);

    return pages * sysconf(_SC_PAGESIZE);
}


static void
sample_slot(offload_slot_t *slot, int64_t now_us, double ticks_per_s)
{
    double                 secs;
    pid_t                  child;
    unsigned long long     utime, stime, child_utime, child_stime;
    offload_slot_stats_t  *st = &slot->stats;

    if (slot->pid == 0) {
        return;
    }

    collect_runs(slot, slot->pool);

    if (read_cpu(slot->pid, &utime, &stime) != 0) {
        return;                         /* exited; SIGCHLD is on its way */
    }

    /* An exec handler's process is part of its worker. */
    child = slot->sb->child_pid;
    if (child > 0 && read_cpu(child, &child_utime, &child_stime) == 0) {
        utime += child_utime;
        stime += child_stime;
    }

    secs = (now_us - st->sampled_us) / 1e6;
    if (secs > 0 && utime >= st->utime && stime >= st->stime) {
        st->cpu_user = 100.0 * (utime - st->utime) / ticks_per_s / secs;
        st->cpu_sys = 100.0 * (stime - st->stime) / ticks_per_s / secs;
    }

    st->utime = utime;
    st->stime = stime;
    st->sampled_us = now_us;
    st->rss = read_rss(slot->pid) + (child > 0 ? read_rss(child) : 0);
}


void
offload_stats_tick(offload_supervisor_t *sup)
{
    int                    i;
    size_t                 p;
    int64_t                now_us = offload_mono_us();
    double                 ticks_per_s = (double) sysconf(_SC_CLK_TCK);
    offload_pool_t        *pool;
    offload_pool_stats_t  *ps;

    for (p = 0; p < sup->npools; p++) {
        pool = &sup->pools[p];
        ps = &pool->stats;

        /* the runs of the heartbeat ending now, in the slice it ends */
        turn_slice(ps);

        for (i = 0; i < pool->nslots; i++) {
            sample_slot(&pool->slots[i], now_us, ticks_per_s);
        }

        ps->beats++;
        ps->beat_jobs[ps->next] = ps->period_jobs;
        ps->period_jobs = 0;
        ps->next = (ps->next + 1) % OFFLOAD_STATS_RATE;
        if (ps->filled < OFFLOAD_STATS_RATE) {
            ps->filled++;
        }
    }
}


double
offload_stats_jobs_per_s(const offload_pool_t *pool, int heartbeat_ms)
{
    int                          k;
    uint64_t                     jobs = 0;
    const offload_pool_stats_t  *ps = &pool->stats;

    if (ps->filled == 0) {
        return 0;
    }

    for (k = 0; k < ps->filled; k++) {
        jobs += ps->beat_jobs[k];
    }

    return jobs * 1000.0 / ((double) ps->filled * heartbeat_ms);
}


uint64_t
offload_stats_run_counts(const offload_pool_t *pool, uint64_t *counts)
{
    int                           s, i;
    uint64_t                      jobs = 0;
    const offload_stats_slice_t  *sl;

    memset(counts, 0, OFFLOAD_HIST_FINE * sizeof(*counts));

    if (pool->stats.window == NULL) {
        return 0;
    }

    for (s = 0; s < OFFLOAD_STATS_SLICES; s++) {
        sl = &pool->stats.window->slice[s];

        if (sl->dense != NULL) {
            for (i = 0; i < OFFLOAD_HIST_FINE; i++) {
                counts[i] += sl->dense[i];
            }

        } else {
            for (i = 0; i < sl->nlisted; i++) {
                counts[sl->bucket[i]] += sl->count[i];
            }
        }

        jobs += sl->jobs;
    }

    return jobs;
}


int64_t
offload_stats_run_quantile(const offload_pool_t *pool, double q)
{
    uint64_t  counts[OFFLOAD_HIST_FINE];

    if (offload_stats_run_counts(pool, counts) == 0) {
        return -1;
    }

    return offload_hist_fine_quantile(counts, q);
}


static long long
integer_of(const redisReply *r)
{
    return r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
}


void
offload_stats_set_queue(offload_pool_t *pool, const redisReply *reply)
{
    int                i;
    size_t             k, len;
    char               prefix[OFFLOAD_CONSUMER_MAX];
    const redisReply  *held, *name;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 6) {
        return;
    }

    pool->stats.backlog = integer_of(reply->element[0]);
    pool->stats.pending = integer_of(reply->element[1]);
    pool->stats.oldest_ms = integer_of(reply->element[2]);
    pool->stats.dead = integer_of(reply->element[3]);
    pool->stats.retrying = integer_of(reply->element[5]);

    for (i = 0; i < pool->nslots; i++) {
        pool->slots[i].stats.held = 0;
    }

    /* consumers are named <node>:<queue>:<slot> */
    len = (size_t) snprintf(prefix, sizeof(prefix), "%s:%s:",
                            pool->sup->conf->node_name, pool->queue->name);
    held = reply->element[4];

    for (k = 0; held->type == REDIS_REPLY_ARRAY && k + 1 < held->elements;
         k += 2)
    {
        name = held->element[k];
        if (name->type != REDIS_REPLY_STRING || name->len <= len
            || memcmp(name->str, prefix, len) != 0)
        {
            continue;
        }

        i = atoi(name->str + len);
        if (i >= 0 && i < pool->nslots) {
            pool->slots[i].stats.held = integer_of(held->element[k + 1]);
        }
    }
}
