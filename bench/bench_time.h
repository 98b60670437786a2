/*
 * bench_time.h -- what the bench programs share to time requests: a
 * monotonic clock in ms, and a percentile of sorted latencies.
 */

#ifndef OFFLOAD_BENCH_TIME_H
#define OFFLOAD_BENCH_TIME_H

#include <time.h>


static inline double
mono_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}


static inline int
by_value(const void *a, const void *b)
{
    double  x = *(const double *) a, y = *(const double *) b;

    return (x > y) - (x < y);
}


/* the p-th percentile (p in 0..100) of n sorted values */
static inline double
pctl(const double *v, int n, int p)
{
    int  i = (n * p) / 100;

    return v[i < n ? i : n - 1];
}

#endif /* OFFLOAD_BENCH_TIME_H */
