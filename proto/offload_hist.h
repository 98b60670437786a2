/*
 * offload_hist.h -- the fixed histogram buckets both ends use: the sidecar
 * for a queue's run-time percentiles, the module for its Prometheus
 * histograms.  Fixed bounds make histograms of every process addable
 * (Prometheus sums _bucket series across nginx workers and nodes).
 */

#ifndef OFFLOAD_HIST_H
#define OFFLOAD_HIST_H

#include <stdint.h>

/* Durations, in microseconds: 50 us .. 60 s, then +Inf. */
#define OFFLOAD_HIST_TIME_BOUNDS   19

/* Sizes, in bytes: 0 .. 1 GiB, then +Inf (a job's peak RSS growth). */
#define OFFLOAD_HIST_SIZE_BOUNDS   9

/* The most buckets a histogram has, +Inf included. */
#define OFFLOAD_HIST_MAX           (OFFLOAD_HIST_TIME_BOUNDS + 1)

typedef struct {
    int             nbounds;    /* buckets: nbounds + 1, the last is +Inf */
    const int64_t  *bounds;     /* upper bounds, inclusive, ascending */
    const char    **le;         /* the bounds as Prometheus "le" labels, in
                                   the family's base unit (s, bytes) */
} offload_hist_t;

extern const offload_hist_t  offload_hist_time;
extern const offload_hist_t  offload_hist_size;

/* The bucket a value falls in: 0 .. nbounds. */
int offload_hist_bucket(const offload_hist_t *h, int64_t value);

/* The q-quantile (0 < q < 1) of counts (nbounds + 1 of them), interpolated
 * linearly inside its bucket as Prometheus' histogram_quantile() does; the
 * +Inf bucket answers its lower bound.  -1 when counts are all zero. */
int64_t offload_hist_quantile(const offload_hist_t *h, const uint64_t *counts,
    double q);

#endif /* OFFLOAD_HIST_H */
