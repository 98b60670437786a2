/*
 * stats.h -- the health figures a node reports in its registry document:
 * per worker slot, its process's RSS and CPU (from /proc) and its history
 * (jobs, crashes, restarts, last exit); per queue, run-time percentiles
 * and jobs/s over a window of heartbeats (from the scoreboard's
 * histograms) and what Redis knows (backlog, pending, oldest waiting job,
 * dead letters).
 */

#ifndef OFFLOAD_STATS_H
#define OFFLOAD_STATS_H

#include <stdint.h>
#include <sys/types.h>

#include "offload_hist.h"

#define OFFLOAD_STATS_WINDOW  60    /* heartbeats of run-time history */
#define OFFLOAD_STATS_RATE    10    /* heartbeats jobs/s averages over */

struct offload_slot_s;
struct offload_pool_s;
struct offload_supervisor_s;

typedef struct {
    /* Totals of the slot's earlier processes (the current one's are in
     * its scoreboard), and its own history. */
    uint64_t            jobs_ok;
    uint64_t            jobs_failed;
    uint64_t            jobs_retried;   /* failed for now, to run again */
    uint64_t            jobs_cancelled; /* dropped unrun, client gone */
    uint64_t            jobs_crashed;   /* its worker died running them */
    uint64_t            restarts;       /* processes after the first */
    uint64_t            spawned;
    char                last_exit[80];

    /* The current process's run_hist already added to its pool. */
    uint64_t            hist_seen[OFFLOAD_HIST_MAX];

    /* The last /proc sample. */
    pid_t               pid;
    int64_t             sampled_us;
    unsigned long long  utime, stime;   /* clock ticks */
    double              cpu_user;       /* % of one core since the sample */
    double              cpu_sys;        /* before */
    long long           rss;            /* bytes */

    /* Entries its consumer holds (the running job and the prefetched
     * ones): the worker's own queue, as Observer shows a process's. */
    long long           held;
} offload_slot_stats_t;

typedef struct {
    /* Run-time histograms, one per heartbeat, a ring. */
    uint64_t            window[OFFLOAD_STATS_WINDOW][OFFLOAD_HIST_MAX];
    uint64_t            period[OFFLOAD_HIST_MAX];  /* since the last one */
    int                 next;
    int                 filled;
    int                 dirty;      /* heartbeats until every period of the
                                       window is zero again; 0: it is, and
                                       it is neither read nor written (its
                                       pages, calloc's, are not touched) */

    /* From Redis at the last heartbeat; -1 until known. */
    long long           backlog;        /* entries no worker has read */
    long long           pending;        /* read, not acknowledged */
    long long           oldest_ms;      /* age of the oldest unread one */
    long long           dead;           /* dead letters */
    long long           retrying;       /* jobs in the retry set */
} offload_pool_stats_t;

/* ps must be zeroed (calloc). */
void offload_stats_pool_init(offload_pool_stats_t *ps);

/* The slot's process is about to be replaced (its scoreboard is reset):
 * keep what it did. */
void offload_stats_slot_harvest(struct offload_slot_s *slot);

/* A new process fills the slot. */
void offload_stats_slot_spawned(struct offload_slot_s *slot);

/* The slot's process exited: how (kept as its last exit), and whether it
 * died running a job. */
void offload_stats_slot_exited(struct offload_slot_s *slot, const char *how,
    int crashed_job);

/* Every heartbeat: samples /proc for every worker, closes the period of
 * every pool's window. */
void offload_stats_tick(struct offload_supervisor_s *sup);

/* Over the window: jobs per second (the last OFFLOAD_STATS_RATE
 * heartbeats) and a run-time quantile in us (-1: no jobs). */
double offload_stats_jobs_per_s(const struct offload_pool_s *pool,
    int heartbeat_ms);
int64_t offload_stats_run_quantile(const struct offload_pool_s *pool,
    double q);

/* The Redis side: one queue's reply to offload_queue_stats_script. */
void offload_stats_set_queue(struct offload_pool_s *pool,
    const struct redisReply *reply);

#endif /* OFFLOAD_STATS_H */
