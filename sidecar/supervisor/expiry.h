/*
 * expiry.h -- whether a Redis the node uses holds every command up while
 * it deletes expired keys, said in the log.
 */

#ifndef OFFLOAD_EXPIRY_H
#define OFFLOAD_EXPIRY_H

#include <ev.h>

#include "redis_conn.h"

/* Said when Redis' expiry cycles ran to their time limit this many
 * times... */
#define OFFLOAD_EXPIRY_CAPPED      10

/* ...and expiring took this many ms (1% of Redis' time)... */
#define OFFLOAD_EXPIRY_MS          100

/* ...within this many seconds, on a Redis below OFFLOAD_EXPIRY_HZ... */
#define OFFLOAD_EXPIRY_WINDOW_S    10.0

/* ...and at most once in this many seconds. */
#define OFFLOAD_EXPIRY_WARN_S      600.0

/* Held back, said at debug at most once in this many seconds. */
#define OFFLOAD_EXPIRY_DEBUG_S     2.0

/* The hz from which one expiry cycle takes at most 2.5 ms (with Redis'
 * default active-expire-effort). */
#define OFFLOAD_EXPIRY_HZ          100

/* Readings kept, at most one every OFFLOAD_EXPIRY_WINDOW_S / 11 s: a
 * window's worth and one more. */
#define OFFLOAD_EXPIRY_READINGS    12

typedef struct {
    ev_tstamp    at;
    long long    capped;        /* expired_time_cap_reached_count */
    long long    cpu_ms;        /* expire_cycle_cpu_milliseconds */
} offload_expiry_reading_t;

/* One Redis' expiry cycles, as a link of the node reads them. */
typedef struct {
    const char                *name;      /* the link's, for the log */
    struct ev_loop            *loop;
    offload_expiry_reading_t   readings[OFFLOAD_EXPIRY_READINGS];
    unsigned                   nreadings; /* the newest is
                                             readings[nreadings - 1] */
    ev_tstamp                  warned;    /* when last said; 0: never */
    ev_tstamp                  held;      /* when last held back, said at
                                             debug; 0: never */
    unsigned                   refused:1; /* INFO refused for good, or
                                             without the counts: not
                                             asked again on this
                                             connection */
} offload_expiry_t;

/* A link's, named name (for the log), its loop's clock read. */
void offload_expiry_init(offload_expiry_t *ex, const char *name,
    struct ev_loop *loop);

/* Asks rc's Redis (at a heartbeat) for its expiry cycles and hz, and
 * warns, naming the Redis as ex->name, when its cycles ran to their time
 * limit OFFLOAD_EXPIRY_CAPPED times and took OFFLOAD_EXPIRY_MS within
 * OFFLOAD_EXPIRY_WINDOW_S. */
void offload_expiry_check(offload_expiry_t *ex, offload_redis_conn_t *rc);

/* A new connection: maybe another server (a failover), whose counts start
 * elsewhere, and maybe one that takes INFO. */
void offload_expiry_reset(offload_expiry_t *ex);

#endif /* OFFLOAD_EXPIRY_H */
