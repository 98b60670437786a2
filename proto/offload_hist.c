/*
 * offload_hist.c -- the coarse histograms' bounds and the fine ones'
 * buckets and quantiles (offload_hist.h).
 */

#include <stddef.h>

#include "offload_hist.h"


static const int64_t  time_bounds[OFFLOAD_HIST_TIME_BOUNDS] = {
    50, 100, 250, 500,
    1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
    1000000, 2500000, 5000000, 10000000, 30000000, 60000000
};

static const char  *time_le[OFFLOAD_HIST_TIME_BOUNDS] = {
    "0.00005", "0.0001", "0.00025", "0.0005",
    "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5",
    "1", "2.5", "5", "10", "30", "60"
};

static const int64_t  size_bounds[OFFLOAD_HIST_SIZE_BOUNDS] = {
    0, 65536, 262144, 1048576, 4194304, 16777216, 67108864, 268435456,
    1073741824
};

static const char  *size_le[OFFLOAD_HIST_SIZE_BOUNDS] = {
    "0", "65536", "262144", "1048576", "4194304", "16777216", "67108864",
    "268435456", "1073741824"
};

static const int64_t  value_bounds[OFFLOAD_HIST_VALUE_BOUNDS] = {
    10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000,
    250000, 500000, 1000000, 2500000, 5000000, 10000000, 25000000, 50000000,
    100000000, 250000000, 500000000, 1000000000, 2500000000, 5000000000,
    10000000000, 25000000000, 50000000000, 100000000000, 250000000000,
    500000000000
};

static const char  *value_le[OFFLOAD_HIST_VALUE_BOUNDS] = {
    "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10",
    "25", "50", "100", "250", "500", "1000", "2500", "5000", "10000", "25000",
    "50000", "100000", "250000", "500000", "1e+06", "2.5e+06", "5e+06",
    "1e+07", "2.5e+07", "5e+07", "1e+08", "2.5e+08", "5e+08"
};

const offload_hist_t  offload_hist_time = {
    OFFLOAD_HIST_TIME_BOUNDS, time_bounds, time_le
};

const offload_hist_t  offload_hist_size = {
    OFFLOAD_HIST_SIZE_BOUNDS, size_bounds, size_le
};

const offload_hist_t  offload_hist_value = {
    OFFLOAD_HIST_VALUE_BOUNDS, value_bounds, value_le
};


int
offload_hist_bucket(const offload_hist_t *h, int64_t value)
{
    int  lo = 0, hi = h->nbounds, mid;

    /* the first bound >= value; nbounds (+Inf) when none is */
    while (lo < hi) {
        mid = (lo + hi) / 2;
        if (h->bounds[mid] >= value) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }

    return lo;
}


int
offload_hist_fine_bucket(int64_t us)
{
    int  e;

    if (us < 2 * OFFLOAD_HIST_SUB) {
        return us < 0 ? 0 : (int) us;
    }

    if (us >= OFFLOAD_HIST_FINE_TOP) {
        return OFFLOAD_HIST_FINE - 1;
    }

    /* us is in [2^e, 2^(e+1)), e >= SUB_BITS + 1; its top SUB_BITS + 1
     * bits pick one of the SUB sub-buckets of that power of two */
    e = 63 - __builtin_clzll((unsigned long long) us);

    return 2 * OFFLOAD_HIST_SUB
           + (e - OFFLOAD_HIST_SUB_BITS - 1) * OFFLOAD_HIST_SUB
           + (int) (us >> (e - OFFLOAD_HIST_SUB_BITS)) - OFFLOAD_HIST_SUB;
}


int64_t
offload_hist_fine_width(int bucket)
{
    if (bucket < 2 * OFFLOAD_HIST_SUB) {
        return 1;
    }

    if (bucket >= OFFLOAD_HIST_FINE - 1) {
        return 0;
    }

    return (int64_t) 1 << ((bucket - OFFLOAD_HIST_SUB) / OFFLOAD_HIST_SUB);
}


int64_t
offload_hist_fine_lower(int bucket)
{
    int  sub;

    if (bucket < 2 * OFFLOAD_HIST_SUB) {
        return bucket;
    }

    if (bucket >= OFFLOAD_HIST_FINE - 1) {
        return OFFLOAD_HIST_FINE_TOP;
    }

    sub = (bucket - 2 * OFFLOAD_HIST_SUB) % OFFLOAD_HIST_SUB;

    return (OFFLOAD_HIST_SUB + sub) * offload_hist_fine_width(bucket);
}


int64_t
offload_hist_fine_value(int bucket)
{
    return offload_hist_fine_lower(bucket)
           + offload_hist_fine_width(bucket) / 2;
}


int64_t
offload_hist_fine_quantile(const uint64_t *counts, double q)
{
    int64_t  value;

    offload_hist_fine_quantiles(counts, 0, OFFLOAD_HIST_FINE, &q, &value, 1);

    return value;
}


void
offload_hist_fine_quantiles(const uint64_t *counts, int from, int to,
    const double *q, int64_t *value, int n)
{
    int       i, k;
    double    at;
    uint64_t  total = 0, rank, below;

    for (i = from; i < to; i++) {
        total += counts[i];
    }

    below = 0;
    i = from;

    for (k = 0; k < n; k++) {
        if (total == 0) {
            value[k] = -1;
            continue;
        }

        /* ceil(q * total), at least 1 (no libm in the module) */
        at = q[k] * (double) total;
        rank = (uint64_t) at;
        if ((double) rank < at || rank == 0) {
            rank++;
        }

        /* the walk goes on from the previous quantile's bucket */
        while (i < to - 1 && below + counts[i] < rank) {
            below += counts[i];
            i++;
        }

        value[k] = offload_hist_fine_value(i);
    }
}
