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

/* The run-time window: the heartbeats of the current slice (1 .. 10)
 * and of the 5 slices before it, the last 51 to 60 heartbeats; the oldest
 * slice leaves it every 10th heartbeat. */
#define OFFLOAD_STATS_SLICE   10    /* heartbeats a slice counts */
#define OFFLOAD_STATS_SLICES  6
#define OFFLOAD_STATS_RATE    10    /* heartbeats jobs/s averages over */

struct offload_slot_s;
struct offload_pool_s;
struct offload_supervisor_s;

/* A slot's jobs by result. */
typedef struct {
    uint64_t            ok;
    uint64_t            failed;
    uint64_t            retried;        /* failed for now, to run again */
    uint64_t            cancelled;      /* dropped unrun: cancelled, or
                                           their sync client gone */
    uint64_t            expired;        /* answered expired unrun */
    uint64_t            crashed;        /* its worker died running them */
} offload_slot_counts_t;

typedef struct {
    /* Totals of the slot's earlier processes (the current one's are in
     * its scoreboard), and its own history. */
    offload_slot_counts_t  jobs;
    uint64_t            restarts;       /* processes after the first */
    uint64_t            spawned;
    char                last_exit[80];

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

#define OFFLOAD_STATS_LISTED  32    /* buckets a slice lists, at most */

/* One slice's run-time histogram (fine buckets): the buckets it counted,
 * listed while they are few (a queue's jobs mostly take alike times: an
 * echo queue counts 3 or so), as a whole histogram past 32 of them (2.8 KB
 * then).  Either way every count is exact. */
typedef struct {
    uint64_t            jobs;
    uint32_t           *dense;          /* OFFLOAD_HIST_FINE, or NULL */
    int                 nlisted;
    uint16_t            bucket[OFFLOAD_STATS_LISTED];
    uint32_t            count[OFFLOAD_STATS_LISTED];
} offload_stats_slice_t;

/* A pool's slices, a ring: 1.3 KB, 18.2 KB if all 6 turned dense.  A
 * quantile adds them up. */
typedef struct {
    offload_stats_slice_t  slice[OFFLOAD_STATS_SLICES];
} offload_stats_window_t;

typedef struct {
    /* Allocated at the first job counted, freed once the window is empty
     * again: an idle queue costs nothing. */
    offload_stats_window_t  *window;
    int                 current;        /* the slice runs are counted in */
    int                 beats;          /* heartbeats it counted, 0 .. 10 */

    /* Jobs per heartbeat: this one's, and a ring of the last ones. */
    uint64_t            period_jobs;
    uint64_t            beat_jobs[OFFLOAD_STATS_RATE];
    int                 next;
    int                 filled;

    /* From Redis at the last heartbeat; -1 until known. */
    long long           backlog;        /* entries no worker has read */
    long long           pending;        /* read, not acknowledged */
    long long           oldest_ms;      /* age of the oldest unread one */
    long long           dead;           /* dead letters */
    long long           retrying;       /* jobs in the retry set */
} offload_pool_stats_t;

void offload_stats_pool_init(offload_pool_stats_t *ps);
void offload_stats_pool_free(offload_pool_stats_t *ps);

/* Counts n runs of a fine bucket into the window's current slice. */
void offload_stats_pool_count(offload_pool_stats_t *ps, int bucket,
    uint32_t n);

/* The slot's jobs since the node started, as the registry reports them:
 * its earlier processes', its current one's, and while a reload rolls its
 * queue over, those of the retired slots it succeeds since the reload
 * (offload_stats_slot_succeed). */
void offload_stats_slot_counts(const struct offload_slot_s *slot,
    offload_slot_counts_t *c);

/* A reload: the retired slot's successor in pool, the new pool of its
 * queue (the slot of its index, or index modulo the new pool's size: a
 * pool made smaller keeps what its slots did), takes over its history
 * (job counts, restarts, last exit); the retired slot keeps counting its
 * process until it is gone, and (done) hands over the rest with its
 * run-time histogram.  The node's counters never go back over a reload. */
void offload_stats_slot_succeed(struct offload_pool_s *pool,
    struct offload_slot_s *retired, int done);

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

/* The window's fine buckets, its slices added (OFFLOAD_HIST_FINE of them);
 * returns the jobs they count. */
uint64_t offload_stats_run_counts(const struct offload_pool_s *pool,
    uint64_t *counts);

/* The Redis side: one queue's reply to offload_queue_stats_script. */
void offload_stats_set_queue(struct offload_pool_s *pool,
    const struct redisReply *reply);

#endif /* OFFLOAD_STATS_H */
