/*
 * hist_test.c -- the shared histogram buckets and quantiles
 * (proto/offload_hist.c), printed as TAP.
 */

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
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
test_bounds(void)
{
    int                    i;
    const offload_hist_t  *t = &offload_hist_time;

    for (i = 0; i < t->nbounds; i++) {
        if (i > 0 && t->bounds[i] <= t->bounds[i - 1]) {
            break;
        }
    }
    ok(i == t->nbounds, "time bounds ascend");
}


static void
test_fine_buckets(void)
{
    int      b, bad_edges = 0, bad_width = 0;
    int64_t  lo, w;

    ok(OFFLOAD_HIST_FINE == 705, "705 fine buckets");
    ok(offload_hist_fine_bucket(-5) == 0, "a negative value counts as 0");
    ok(offload_hist_fine_bucket(1) == 1, "1 us has its own bucket");
    ok(offload_hist_fine_bucket(63) == 63, "63 us too");
    ok(offload_hist_fine_bucket(64) == 64
       && offload_hist_fine_bucket(65) == 64, "64 and 65 us share one");
    ok(offload_hist_fine_bucket(127) == 95, "127 us: the last of 64..127");
    ok(offload_hist_fine_bucket(128) == 96, "128 us: a new power of two");
    ok(offload_hist_fine_bucket(OFFLOAD_HIST_FINE_TOP - 1)
       == OFFLOAD_HIST_FINE - 2, "just under 2^26 us: the last finite one");
    ok(offload_hist_fine_bucket(OFFLOAD_HIST_FINE_TOP)
       == OFFLOAD_HIST_FINE - 1, "2^26 us: the open last bucket");
    ok(offload_hist_fine_bucket(INT64_MAX) == OFFLOAD_HIST_FINE - 1,
       "the largest value too");
    ok(offload_hist_fine_value(OFFLOAD_HIST_FINE - 1) == OFFLOAD_HIST_FINE_TOP,
       "the last bucket stands for its lower bound");
    ok(offload_hist_fine_value(5) == 5, "a 1-us bucket stands for itself");
    ok(offload_hist_fine_value(64) == 65, "64..65 us stands for 65");

    /* every finite bucket: its ends map back to it, the next starts where
     * it ends, and it is at most 1/32 of its lower bound wide */
    for (b = 0; b < OFFLOAD_HIST_FINE - 1; b++) {
        lo = offload_hist_fine_lower(b);
        w = offload_hist_fine_width(b);
        if (offload_hist_fine_bucket(lo) != b
            || offload_hist_fine_bucket(lo + w - 1) != b
            || offload_hist_fine_bucket(lo + w) != b + 1
            || offload_hist_fine_lower(b + 1) != lo + w)
        {
            bad_edges++;
        }
        if (w != 1 && w * OFFLOAD_HIST_SUB > lo) {
            bad_width++;
        }
    }
    ok(bad_edges == 0, "fine buckets tile 0 .. 2^26 us (%d bad)", bad_edges);
    ok(bad_width == 0, "every bucket is 1 us or <= 1/32 wide (%d bad)",
       bad_width);
}


static int
cmp_i64(const void *a, const void *b)
{
    int64_t  x = *(const int64_t *) a, y = *(const int64_t *) b;

    return x < y ? -1 : x > y;
}


/* The ceil(q * n)-th smallest of sorted values: what the fine quantile
 * estimates. */
static int64_t
true_quantile(const int64_t *sorted, size_t n, double q)
{
    size_t  rank = (size_t) ceil(q * (double) n);

    return sorted[rank < 1 ? 0 : rank - 1];
}


#define NVALUES  20000

static const double  qs[] = { 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99,
                              0.999, 1.0 };

/* Random values over 1 us .. 60 s (log-uniform, and clustered around a few
 * durations as real jobs are): every quantile within 2%. */
static void
test_fine_random(void)
{
    int       run, k, b;
    size_t    i, nq = sizeof(qs) / sizeof(qs[0]), checked = 0, bad = 0;
    size_t    walked = 0;
    double    err, worst = 0;
    int64_t  *v, want, got, all[sizeof(qs) / sizeof(qs[0])];
    int64_t   part[sizeof(qs) / sizeof(qs[0])];
    int       lo, hi;
    uint64_t  counts[OFFLOAD_HIST_FINE];

    v = malloc(NVALUES * sizeof(int64_t));
    srand(14);

    for (run = 0; run < 20; run++) {
        memset(counts, 0, sizeof(counts));

        for (i = 0; i < NVALUES; i++) {
            if (run % 2 == 0) {
                /* log-uniform over 1 us .. 60 s */
                v[i] = (int64_t) exp(log(60e6) * rand() / RAND_MAX);
            } else {
                /* a few modes, +-10% around each */
                static const double  modes[] = { 40e3, 260e3, 1.3e6,
                                                 150.0, 59e6 };
                k = rand() % 5;
                v[i] = (int64_t) (modes[k]
                                  * (0.9 + 0.2 * rand() / RAND_MAX));
            }
            if (v[i] < 1) {
                v[i] = 1;
            }
            counts[offload_hist_fine_bucket(v[i])]++;
        }

        qsort(v, NVALUES, sizeof(int64_t), cmp_i64);
        offload_hist_fine_quantiles(counts, 0, OFFLOAD_HIST_FINE, qs, all,
                                    (int) nq);

        /* and of the buckets used only */
        for (lo = 0; counts[lo] == 0; lo++) { /* void */ }
        for (hi = OFFLOAD_HIST_FINE; counts[hi - 1] == 0; hi--) {
            /* void */
        }
        offload_hist_fine_quantiles(counts, lo, hi, qs, part, (int) nq);

        for (k = 0; k < (int) nq; k++) {
            want = true_quantile(v, NVALUES, qs[k]);
            got = offload_hist_fine_quantile(counts, qs[k]);
            walked += (all[k] != got) + (part[k] != got);
            err = fabs((double) (got - want)) / (double) want;
            if (err > worst) {
                worst = err;
            }
            if (err > 0.02) {
                bad++;
                printf("# run %d q %g: got %lld, want %lld\n", run, qs[k],
                       (long long) got, (long long) want);
            }
            checked++;
        }
    }

    ok(bad == 0, "%zu quantiles of random values within 2%% (%zu off)",
       checked, bad);
    printf("# worst relative error %.3f%%\n", worst * 100);
    ok(walked == 0, "the quantiles of one walk are those taken one by one "
       "(%zu differ)", walked);

    /* every single value alone: its bucket's value within 1/64 */
    worst = 0;
    for (i = 1; i < (size_t) OFFLOAD_HIST_FINE_TOP; i += 1 + i / 97) {
        b = offload_hist_fine_bucket((int64_t) i);
        err = fabs((double) offload_hist_fine_value(b) - (double) i)
              / (double) i;
        if (err > worst) {
            worst = err;
        }
    }
    ok(worst <= 1.0 / 64, "any value's bucket value is within 1/64 "
       "(worst %.3f%%)", worst * 100);

    free(v);
}


/* Histograms add: the quantiles of two processes' counts summed are those
 * of all their values together. */
static void
test_fine_add(void)
{
    int       b;
    uint64_t  a[OFFLOAD_HIST_FINE], c[OFFLOAD_HIST_FINE];

    memset(a, 0, sizeof(a));
    memset(c, 0, sizeof(c));
    ok(offload_hist_fine_quantile(a, 0.5) == -1, "empty: no quantile");

    /* one process: 99 jobs of 260 ms; another: one of 1.3 s */
    a[offload_hist_fine_bucket(260000)] = 99;
    c[offload_hist_fine_bucket(1300000)] = 1;
    ok(offload_hist_fine_quantile(c, 0.5) == offload_hist_fine_value(
           offload_hist_fine_bucket(1300000)), "one value: its bucket");

    for (b = 0; b < OFFLOAD_HIST_FINE; b++) {
        a[b] += c[b];
    }

    ok(fabs(offload_hist_fine_quantile(a, 0.99) - 260000.0) / 260000 < 0.02,
       "p99 of 99 x 260 ms + 1 x 1.3 s: 260 ms (%lld)",
       (long long) offload_hist_fine_quantile(a, 0.99));
    ok(fabs(offload_hist_fine_quantile(a, 0.999) - 1300000.0) / 1300000
       < 0.02, "p99.9: 1.3 s (%lld)",
       (long long) offload_hist_fine_quantile(a, 0.999));
    ok(fabs(offload_hist_fine_quantile(a, 0.5) - 260000.0) / 260000 < 0.02,
       "p50: 260 ms");
}


/* The handler metrics' buckets, and the nodes script's copy of their
 * labels. */
static void
test_value(void)
{
    int                    i;
    char                   lua[1024] = "";
    const offload_hist_t  *v = &offload_hist_value;

    for (i = 0; i < v->nbounds; i++) {
        if (strtod(v->le[i], NULL) * 1000 != (double) v->bounds[i]) {
            break;
        }
        snprintf(lua + strlen(lua), sizeof(lua) - strlen(lua), "%s'%s'",
                 i ? "," : "", v->le[i]);
    }
    ok(i == v->nbounds, "each value le is its bound in thousandths");
    is_str(lua, OFFLOAD_HIST_VALUE_LE_LUA,
           "OFFLOAD_HIST_VALUE_LE_LUA lists the same labels");
    ok(offload_hist_bucket(v, 12500) == 10, "12.5 is in the 10 .. 25 bucket");
}


int
main(void)
{
    test_bucket();
    test_value();
    test_bounds();
    test_fine_buckets();
    test_fine_random();
    test_fine_add();
    return done_testing();
}
