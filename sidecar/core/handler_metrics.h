/*
 * handler_metrics.h -- the counters and observations handlers record under
 * names of their own (offload_metric_count, offload_metric_observe and the
 * exec bridge's metric lines), one table per queue in memory its workers
 * share with their supervisor.
 *
 * The supervisor maps a queue's table before it forks the queue's first
 * worker; every worker of the queue adds into it with atomic adds, and the
 * supervisor reads it for the node document every heartbeat.  The table
 * outlives the workers, so what a worker added stays counted when it dies
 * (a SIGKILL included) and a new worker in its slot adds on top: nothing
 * is taken from a process, so nothing is lost or counted twice.  A name
 * takes an entry the first time it is used (a compare-and-swap claims a
 * free one); a queue has at most OFFLOAD_HM_NAMES of them, a name beyond
 * is refused, logged once per queue.
 */

#ifndef OFFLOAD_HANDLER_METRICS_H
#define OFFLOAD_HANDLER_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "offload_hist.h"

#define OFFLOAD_HM_NAMES     64
#define OFFLOAD_HM_NAME_MAX  48     /* the NUL included */
#define OFFLOAD_HM_BUCKETS   (OFFLOAD_HIST_VALUE_BOUNDS + 1)

typedef struct {
    uint32_t  state;                /* free, being named, named: atomic */
    char      name[OFFLOAD_HM_NAME_MAX];
    uint64_t  count;                /* what offload_metric_count added */
    uint64_t  observations;
    uint64_t  sum;                  /* a double's bits, changed by CAS */
    uint64_t  bucket[OFFLOAD_HM_BUCKETS];   /* offload_hist_value */
} offload_hm_entry_t;

typedef struct {
    uint32_t            named;      /* entries named, atomic: while 0 the
                                       supervisor reads nothing more (so
                                       an unused table's pages stay out of
                                       memory) */
    uint32_t            refused_logged;
    uint64_t            refused;    /* calls with a name past the last */
    offload_hm_entry_t  entry[OFFLOAD_HM_NAMES];
} offload_hm_table_t;

/* Maps a zeroed shared table; NULL on failure (errno set). */
offload_hm_table_t *offload_hm_map(void);
void offload_hm_unmap(offload_hm_table_t *t);

/* Checks a handler's name and writes its exported form into out
 * (OFFLOAD_HM_NAME_MAX bytes): 1 to 47 ASCII letters, digits, '.', '_'
 * and '-', starting with a letter; '.' and '-' become '_' and letters
 * lower case, so "Thumbs.bytes-in" and "thumbs_bytes_in" are one metric;
 * a trailing "_total" is dropped ("bytes_total" is "bytes").
 * Returns 0, or -1 for a name that is not one. */
int offload_hm_name(const char *name, char *out);

/* Whether an exported name may be observed: not one ending in _count,
 * _sum or _bucket, the series of a histogram. */
int offload_hm_observable(const char *exported);

/* Adds n to a name's count, or one observation of value (finite; an
 * observed name offload_hm_observable()).
 * Returns 0, -1 for a bad name or value, -2 when the table has no room
 * for a new name (the first such call of the queue logs it). */
int offload_hm_count(offload_hm_table_t *t, const char *name, uint64_t n);
int offload_hm_observe(offload_hm_table_t *t, const char *name,
    double value);

/* The table as the node document has it (docs/PROTOCOL.md): an object
 * of every name, {"count": n} and, once observed, "observations", "sum"
 * and "buckets" (the non-empty ones of offload_hist_value as [index,
 * count] pairs); NULL when no name is used (or out of memory). */
struct json_t *offload_hm_json(const offload_hm_table_t *t);

#endif /* OFFLOAD_HANDLER_METRICS_H */
