/*
 * expiry.h -- whether a Redis the node uses holds every command up while
 * it deletes expired keys, said in the log.
 */

#ifndef OFFLOAD_EXPIRY_H
#define OFFLOAD_EXPIRY_H

#include "redis_conn.h"

/* Looked at over windows of this many seconds... */
#define OFFLOAD_EXPIRY_WINDOW_S    10.0

/* ...and said when an expiry cycle ran to its time limit this many times
 * in one, on a Redis below OFFLOAD_EXPIRY_HZ... */
#define OFFLOAD_EXPIRY_CAPPED      10

/* ...at most once in this many seconds. */
#define OFFLOAD_EXPIRY_WARN_S      600.0

/* The hz from which one expiry cycle takes at most 2.5 ms. */
#define OFFLOAD_EXPIRY_HZ          100

/* One Redis' expiry cycles, as a link of the node reads them. */
typedef struct {
    const char  *name;          /* the link's, for the log */
    long long    window_capped; /* expired_time_cap_reached_count at
                                   the window's start */
    double       window_start;  /* 0: no reading yet */
    double       warned;        /* when last said; 0: never */
    double       now;           /* when last asked */
    unsigned     refused:1;     /* INFO refused: not asked again */
} offload_expiry_t;

/* Asks rc's Redis (at a heartbeat, at time now) for its expiry cycles and
 * hz, and warns, naming the Redis as ex->name, when its cycles ran to
 * their time limit OFFLOAD_EXPIRY_CAPPED times in a window. */
void offload_expiry_check(offload_expiry_t *ex, offload_redis_conn_t *rc,
    double now);

#endif /* OFFLOAD_EXPIRY_H */
