/*
 * stats_test.c -- a pool's run-time window (sidecar/supervisor/stats.c):
 * its quantiles see the last 51 to 60 heartbeats (six slices of 10),
 * precise to 2%, and jobs/s the last 10; it takes a worker's runs from its
 * scoreboard once each; it holds memory only while it counts something.
 */

#include <math.h>
#include <string.h>
#include <unistd.h>

#include "supervisor.h"
#include "tap.h"


/* Within 2% of want. */
static int
near(int64_t got, double want)
{
    return fabs((double) got - want) <= 0.02 * want;
}


static int64_t
quantile(offload_pool_t *pool, double q)
{
    return offload_stats_run_quantile(pool, q);
}


int
main(void)
{
    int                   k, b;
    uint32_t              left;
    uint64_t              counts[OFFLOAD_HIST_FINE], want[OFFLOAD_HIST_FINE];
    offload_pool_t        pool;
    offload_slot_t        slot;
    offload_supervisor_t  sup;

    memset(&sup, 0, sizeof(sup));
    memset(&pool, 0, sizeof(pool));
    sup.pools = &pool;
    sup.npools = 1;
    offload_stats_pool_init(&pool.stats);

    ok(quantile(&pool, 0.5) == -1, "no jobs: no quantile");
    ok(pool.stats.window == NULL, "no jobs: no window allocated");

    /* heartbeat k ran one job of k + 1 ms, 70 heartbeats */
    for (k = 0; k < 70; k++) {
        offload_stats_pool_count(&pool.stats,
                                 offload_hist_fine_bucket((k + 1) * 1000), 1);
        offload_stats_tick(&sup);

        if (k == 29) {
            ok(near(quantile(&pool, 0.5), 15000),
               "30 heartbeats in: p50 of 1 .. 30 ms is 15 ms (%lld us)",
               (long long) quantile(&pool, 0.5));
        }
    }

    /* 70 = 7 slices: the window holds heartbeats 10 .. 69 (the last 60):
     * jobs of 11 .. 70 ms */
    ok(near(quantile(&pool, 0.01), 11000),
       "the oldest slice left the window: min 11 ms (%lld us)",
       (long long) quantile(&pool, 0.01));
    ok(near(quantile(&pool, 0.5), 40000),
       "p50 of 11 .. 70 ms: 40 ms (%lld us)",
       (long long) quantile(&pool, 0.5));
    ok(near(quantile(&pool, 0.99), 70000),
       "p99: 70 ms (%lld us)", (long long) quantile(&pool, 0.99));
    ok(fabs(offload_stats_jobs_per_s(&pool, 500) - 2.0) < 1e-9,
       "jobs/s over the last 10 heartbeats of 500 ms: 2");

    /* one more heartbeat opens a slice: the window is the last 51 */
    offload_stats_tick(&sup);
    ok(near(quantile(&pool, 0.01), 21000),
       "a new slice: the one of 11 .. 20 ms left, min 21 ms (%lld us)",
       (long long) quantile(&pool, 0.01));
    ok(fabs(offload_stats_jobs_per_s(&pool, 500) - 1.8) < 1e-9,
       "jobs/s: 9 jobs in the last 10 heartbeats of 500 ms: 1.8");

    /* heartbeats 60 .. 69 stay until 50 heartbeats later */
    for (k = 71; k < 120; k++) {
        offload_stats_tick(&sup);
    }
    ok(near(quantile(&pool, 0.01), 61000)
       && near(quantile(&pool, 0.99), 70000),
       "50 heartbeats without jobs: the last slice with jobs, 61 .. 70 ms "
       "(%lld .. %lld us)", (long long) quantile(&pool, 0.01),
       (long long) quantile(&pool, 0.99));
    ok(offload_stats_jobs_per_s(&pool, 500) == 0, "jobs/s: 0");

    offload_stats_tick(&sup);
    ok(quantile(&pool, 0.5) == -1 && pool.stats.window == NULL,
       "51 heartbeats without jobs: no quantile, the window freed");

    /* a slice lists its first 32 buckets, then turns into a whole
     * histogram: the counts stay exact either way */
    memset(want, 0, sizeof(want));
    for (b = 100; b < 100 + 3 * OFFLOAD_STATS_LISTED; b++) {
        offload_stats_pool_count(&pool.stats, b, (uint32_t) b);
        want[b] = (uint64_t) b;
        if (b == 100 + OFFLOAD_STATS_LISTED - 1) {
            offload_stats_run_counts(&pool, counts);
            ok(memcmp(counts, want, sizeof(want)) == 0
               && pool.stats.window->slice[pool.stats.current].dense
                  == NULL, "32 buckets: listed, counted exactly");
        }
    }
    for (k = 0; k < OFFLOAD_STATS_SLICE; k++) {
        offload_stats_tick(&sup);
    }
    offload_stats_pool_count(&pool.stats, 5, 7);
    want[5] = 7;
    offload_stats_run_counts(&pool, counts);
    ok(memcmp(counts, want, sizeof(want)) == 0
       && pool.stats.window->slice[pool.stats.current].dense == NULL,
       "96 buckets: a whole histogram, counted exactly, beside a listed one");

    for (k = 0; k <= OFFLOAD_STATS_SLICES * OFFLOAD_STATS_SLICE; k++) {
        offload_stats_tick(&sup);
    }
    ok(pool.stats.window == NULL, "61 heartbeats later, both out: freed");

    /* a worker's runs, taken from its scoreboard by exchange */
    memset(&slot, 0, sizeof(slot));
    slot.pool = &pool;
    slot.pid = getpid();                /* a process /proc knows */
    slot.sb = offload_sb_map();
    pool.slots = &slot;
    pool.nslots = 1;
    if (slot.sb == NULL) {
        ok(0, "a scoreboard slot mapped");
        return done_testing();
    }

    for (k = 0; k < 3; k++) {
        offload_sb_job_end(slot.sb, 1, 5000);
    }
    offload_stats_tick(&sup);
    offload_sb_job_end(slot.sb, 1, 5000);
    offload_stats_tick(&sup);
    offload_stats_tick(&sup);

    left = 0;
    for (b = 0; b < OFFLOAD_HIST_FINE; b++) {
        left += slot.sb->run_hist[b];
    }
    ok(offload_stats_run_counts(&pool, counts) == 4 && left == 0,
       "4 runs counted over 3 heartbeats: the window has 4, the scoreboard 0 "
       "(%u)", left);
    ok(near(quantile(&pool, 0.5), 5000), "their p50: 5 ms (%lld us)",
       (long long) quantile(&pool, 0.5));

    /* the process dies after a run: the slot is harvested before reuse */
    offload_sb_job_end(slot.sb, 1, 5000);
    offload_stats_slot_harvest(&slot);
    ok(offload_stats_run_counts(&pool, counts) == 5,
       "a dead worker's last run is taken once, when its slot is harvested");

    offload_sb_unmap(slot.sb);
    offload_stats_pool_free(&pool.stats);

    return done_testing();
}
