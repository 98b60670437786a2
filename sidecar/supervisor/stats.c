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
#include "stats.h"
#include "supervisor.h"


void
offload_stats_pool_init(offload_pool_stats_t *ps)
{
    /* no memset: ps is zeroed, and its window's pages, untouched, take
     * no memory until the queue runs jobs */
    ps->backlog = -1;
    ps->pending = -1;
    ps->oldest_ms = -1;
    ps->dead = -1;
    ps->retrying = -1;
}


/* Adds what the slot's process ran since the last look to its pool. */
static void
collect_runs(offload_slot_t *slot)
{
    int                    i;
    uint64_t               now;
    offload_slot_stats_t  *st = &slot->stats;

    for (i = 0; i < OFFLOAD_HIST_MAX; i++) {
        now = slot->sb->run_hist[i];
        slot->pool->stats.period[i] += now - st->hist_seen[i];
        st->hist_seen[i] = now;
    }
}


void
offload_stats_slot_harvest(offload_slot_t *slot)
{
    offload_slot_stats_t  *st = &slot->stats;

    collect_runs(slot);
    st->jobs_ok += slot->sb->jobs_ok;
    st->jobs_failed += slot->sb->jobs_failed;
    st->jobs_retried += slot->sb->jobs_retried;
    st->jobs_cancelled += slot->sb->jobs_cancelled;
    memset(st->hist_seen, 0, sizeof(st->hist_seen));
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
        slot->stats.jobs_crashed++;
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

    collect_runs(slot);

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


static int
hist_zero(const uint64_t *counts)
{
    int  i;

    for (i = 0; i < OFFLOAD_HIST_MAX; i++) {
        if (counts[i] != 0) {
            return 0;
        }
    }

    return 1;
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

        for (i = 0; i < pool->nslots; i++) {
            sample_slot(&pool->slots[i], now_us, ticks_per_s);
        }

        /* this period goes in the window, and the window is all zero
         * again once it is written over, a whole turn later */
        if (!hist_zero(ps->period)) {
            ps->dirty = OFFLOAD_STATS_WINDOW + 1;
        }
        if (ps->dirty > 0) {
            memcpy(ps->window[ps->next], ps->period, sizeof(ps->period));
            memset(ps->period, 0, sizeof(ps->period));
            ps->dirty--;
        }
        ps->next = (ps->next + 1) % OFFLOAD_STATS_WINDOW;
        if (ps->filled < OFFLOAD_STATS_WINDOW) {
            ps->filled++;
        }
    }
}


/* Sums the last n periods of the window into counts. */
static void
window_sum(const offload_pool_stats_t *ps, int n, uint64_t *counts)
{
    int  k, i, at;

    memset(counts, 0, sizeof(uint64_t) * OFFLOAD_HIST_MAX);

    for (k = 1; ps->dirty > 0 && k <= n && k <= ps->filled; k++) {
        at = (ps->next - k + OFFLOAD_STATS_WINDOW) % OFFLOAD_STATS_WINDOW;
        for (i = 0; i < OFFLOAD_HIST_MAX; i++) {
            counts[i] += ps->window[at][i];
        }
    }
}


double
offload_stats_jobs_per_s(const offload_pool_t *pool, int heartbeat_ms)
{
    int                          i, n;
    uint64_t                     counts[OFFLOAD_HIST_MAX], jobs = 0;
    const offload_pool_stats_t  *ps = &pool->stats;

    n = ps->filled < OFFLOAD_STATS_RATE ? ps->filled : OFFLOAD_STATS_RATE;
    if (n == 0) {
        return 0;
    }

    window_sum(ps, n, counts);
    for (i = 0; i < OFFLOAD_HIST_MAX; i++) {
        jobs += counts[i];
    }

    return jobs * 1000.0 / ((double) n * heartbeat_ms);
}


int64_t
offload_stats_run_quantile(const offload_pool_t *pool, double q)
{
    uint64_t  counts[OFFLOAD_HIST_MAX];

    window_sum(&pool->stats, OFFLOAD_STATS_WINDOW, counts);
    return offload_hist_quantile(&offload_hist_time, counts, q);
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
