/*
 * hist_test.c -- the shared histogram buckets and quantiles
 * (proto/offload_hist.c), printed as TAP.
 */

#include <string.h>

#include "offload_hist.h"
#include "tap.h"


static void
test_bucket(void)
{
    const offload_hist_t  *t = &offload_hist_time;

    ok(offload_hist_bucket(t, 0) == 0, "0 us is in the first bucket");
    ok(offload_hist_bucket(t, 50) == 0, "a bound is inclusive");
    ok(offload_hist_bucket(t, 51) == 1, "just past a bound: next bucket");
    ok(offload_hist_bucket(t, 1000) == 4, "1 ms");
    ok(offload_hist_bucket(t, 60000000) == t->nbounds - 1, "60 s");
    ok(offload_hist_bucket(t, 60000001) == t->nbounds, "past 60 s: +Inf");
    ok(offload_hist_bucket(&offload_hist_size, 0) == 0,
       "no growth is the size histogram's first bucket");
    ok(offload_hist_bucket(&offload_hist_size, 1) == 1,
       "one byte of growth is the second");
}


static void
test_quantile(void)
{
    int       i;
    uint64_t  counts[OFFLOAD_HIST_MAX];
    const offload_hist_t  *t = &offload_hist_time;

    memset(counts, 0, sizeof(counts));
    ok(offload_hist_quantile(t, counts, 0.5) == -1, "empty: no quantile");

    /* 100 values in (500, 1000] us */
    counts[4] = 100;
    ok(offload_hist_quantile(t, counts, 0.5) == 750,
       "p50 interpolates inside the bucket");
    ok(offload_hist_quantile(t, counts, 0.99) == 995, "p99 too");

    /* one slow outlier in (1 s, 2.5 s] */
    counts[14] = 1;
    ok(offload_hist_quantile(t, counts, 0.5) < 1000, "p50 stays fast");
    ok(offload_hist_quantile(t, counts, 0.999) > 1000000,
       "p99.9 sees the outlier");

    memset(counts, 0, sizeof(counts));
    counts[t->nbounds] = 3;
    ok(offload_hist_quantile(t, counts, 0.5) == 60000000,
       "all in +Inf: the last finite bound");

    for (i = 0; i < t->nbounds; i++) {
        if (i > 0 && t->bounds[i] <= t->bounds[i - 1]) {
            break;
        }
    }
    ok(i == t->nbounds, "time bounds ascend");
}


int
main(void)
{
    test_bucket();
    test_quantile();
    return done_testing();
}
