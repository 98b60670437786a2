/*
 * stats_test.c -- a pool's run-time window (sidecar/supervisor/stats.c):
 * its quantiles see exactly the last 60 heartbeats, precise to 2%, and
 * jobs/s the last 10.
 */

#include <math.h>
#include <string.h>

#include "supervisor.h"
#include "tap.h"


/* Within 2% of want. */
static int
near(int64_t got, double want)
{
    return fabs((double) got - want) <= 0.02 * want;
}


int
main(void)
{
    int                   k;
    offload_pool_t        pool;
    offload_supervisor_t  sup;

    memset(&sup, 0, sizeof(sup));
    memset(&pool, 0, sizeof(pool));
    sup.pools = &pool;
    sup.npools = 1;
    offload_stats_pool_init(&pool.stats);

    ok(offload_stats_run_quantile(&pool, 0.5) == -1, "no jobs: no quantile");

    /* heartbeat k ran one job of k + 1 ms, 70 heartbeats */
    for (k = 0; k < 70; k++) {
        pool.stats.period[offload_hist_fine_bucket((k + 1) * 1000)]++;
        offload_stats_tick(&sup);

        if (k == 29) {
            ok(near(offload_stats_run_quantile(&pool, 0.5), 15000),
               "30 heartbeats in: p50 of 1 .. 30 ms is 15 ms (%lld us)",
               (long long) offload_stats_run_quantile(&pool, 0.5));
        }
    }

    /* the window holds heartbeats 10 .. 69: jobs of 11 .. 70 ms */
    ok(near(offload_stats_run_quantile(&pool, 0.01), 11000),
       "the oldest 10 heartbeats left the window: min 11 ms (%lld us)",
       (long long) offload_stats_run_quantile(&pool, 0.01));
    ok(near(offload_stats_run_quantile(&pool, 0.5), 40000),
       "p50 of 11 .. 70 ms: 40 ms (%lld us)",
       (long long) offload_stats_run_quantile(&pool, 0.5));
    ok(near(offload_stats_run_quantile(&pool, 0.99), 70000),
       "p99: 70 ms (%lld us)",
       (long long) offload_stats_run_quantile(&pool, 0.99));
    ok(fabs(offload_stats_jobs_per_s(&pool, 500) - 2.0) < 1e-9,
       "jobs/s over the last 10 heartbeats of 500 ms: 2");

    /* 60 idle heartbeats empty it */
    for (k = 0; k < OFFLOAD_STATS_WINDOW; k++) {
        offload_stats_tick(&sup);
    }
    ok(offload_stats_run_quantile(&pool, 0.5) == -1,
       "60 heartbeats without jobs: no quantile");

    return done_testing();
}
