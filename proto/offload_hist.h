/*
 * offload_hist.h -- the fixed histogram buckets both ends use.  Two kinds:
 *
 * - coarse: a few Prometheus "le" bounds, what offload_metrics exports;
 *   fixed bounds make histograms of every process addable (Prometheus sums
 *   _bucket series across nginx workers and nodes);
 * - fine: log-linear (as HdrHistogram), what the quantiles in the status,
 *   the node documents, offloadctl and the dashboard are taken from: 32
 *   linear sub-buckets per power of two of microseconds, so a quantile
 *   reported as its bucket's midpoint is within 1/64 (1.6%) of the true
 *   value, from 1 us to 67 s.
 */

#ifndef OFFLOAD_HIST_H
#define OFFLOAD_HIST_H

#include <stdint.h>

/* Durations, in microseconds: 50 us .. 60 s, then +Inf. */
#define OFFLOAD_HIST_TIME_BOUNDS   19

/* Sizes, in bytes: 0 .. 1 GiB, then +Inf (a job's peak RSS growth). */
#define OFFLOAD_HIST_SIZE_BOUNDS   9

/* Values a handler observes (handler_metrics.h), in thousandths of their
 * unit: 0.01 .. 5e8 in steps of 1, 2.5, 5 a decade, then +Inf. */
#define OFFLOAD_HIST_VALUE_BOUNDS  33

/* offload_hist_value's "le" labels as a Lua list's items, for the nodes
 * script (t/unit/hist_test.c checks they are the same). */
#define OFFLOAD_HIST_VALUE_LE_LUA                                            \
    "'0.01','0.025','0.05','0.1','0.25','0.5','1','2.5','5','10','25',"      \
    "'50','100','250','500','1000','2500','5000','10000','25000','50000',"   \
    "'100000','250000','500000','1e+06','2.5e+06','5e+06','1e+07',"          \
    "'2.5e+07','5e+07','1e+08','2.5e+08','5e+08'"

/* The most buckets a time or size histogram has, +Inf included. */
#define OFFLOAD_HIST_MAX           (OFFLOAD_HIST_TIME_BOUNDS + 1)

typedef struct {
    int             nbounds;    /* buckets: nbounds + 1, the last is +Inf */
    const int64_t  *bounds;     /* upper bounds, inclusive, ascending */
    const char    **le;         /* the bounds as Prometheus "le" labels, in
                                   the family's base unit (s, bytes) */
} offload_hist_t;

extern const offload_hist_t  offload_hist_time;
extern const offload_hist_t  offload_hist_size;
extern const offload_hist_t  offload_hist_value;

/* The bucket a value falls in: 0 .. nbounds. */
int offload_hist_bucket(const offload_hist_t *h, int64_t value);

/* The fine durations histogram, in microseconds: values below 64 us have a
 * bucket each; from 2^e to 2^(e+1) (e = 6 .. 25) 32 buckets of 2^(e-5) us;
 * the last bucket holds every value of 2^26 us (67.1 s) and more. */
#define OFFLOAD_HIST_SUB_BITS      5
#define OFFLOAD_HIST_SUB           (1 << OFFLOAD_HIST_SUB_BITS)
#define OFFLOAD_HIST_TOP_BITS      26
#define OFFLOAD_HIST_FINE_TOP      ((int64_t) 1 << OFFLOAD_HIST_TOP_BITS)
#define OFFLOAD_HIST_FINE          (2 * OFFLOAD_HIST_SUB                     \
                                    + (OFFLOAD_HIST_TOP_BITS                 \
                                       - OFFLOAD_HIST_SUB_BITS - 1)          \
                                      * OFFLOAD_HIST_SUB                     \
                                    + 1)

/* The fine bucket of a duration in us (a negative one counts as 0). */
int offload_hist_fine_bucket(int64_t us);

/* A fine bucket's smallest value and its width (0 for the last bucket,
 * which has no upper bound). */
int64_t offload_hist_fine_lower(int bucket);
int64_t offload_hist_fine_width(int bucket);

/* The value a fine bucket stands for: the middle of its whole
 * microseconds (the value itself for a bucket of 1 us; the lower bound for
 * the last bucket). */
int64_t offload_hist_fine_value(int bucket);

/* The q-quantile (0 < q <= 1) of fine counts (OFFLOAD_HIST_FINE of them):
 * the value of the bucket holding the ceil(q * n)-th smallest of the n
 * values counted.  -1 when counts are all zero. */
int64_t offload_hist_fine_quantile(const uint64_t *counts, double q);

/* The n quantiles q[0] <= q[1] ... of fine counts in value[], in one walk
 * over them: what offload_hist_fine_quantile() gives for each.  Only the
 * buckets from .. to - 1 are read, the others taken as zero. */
void offload_hist_fine_quantiles(const uint64_t *counts, int from, int to,
    const double *q, int64_t *value, int n);

#endif /* OFFLOAD_HIST_H */
