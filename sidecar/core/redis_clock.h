/*
 * redis_clock.h -- Redis' clock as a process of this host sees it: the
 * one clock deadlines, retries' due times and queue times are read by.
 */

#ifndef OFFLOAD_REDIS_CLOCK_H
#define OFFLOAD_REDIS_CLOCK_H

#include <stdint.h>

/* Beyond this, this host's clock is said to disagree with Redis'. */
#define OFFLOAD_CLOCK_WARN_MS     1000

/* A base not measured yet: this host's wall clock is read instead. */
#define OFFLOAD_CLOCK_UNKNOWN     INT64_MIN

struct offload_redis_conn_s;

typedef void (*offload_redis_clock_pt)(struct offload_redis_conn_s *rc);

/* One connection's Redis' clock, from TIME (redis_clock.c). */
typedef struct {
    int64_t                  base_ms;       /* Redis' clock less our
                                               monotonic one: what it is
                                               read by */
    int64_t                  offset_ms;     /* Redis' clock less our wall
                                               clock: what is said of it;
                                               0 until measured */
    int64_t                  sent_mono_us;  /* a TIME on its way: when it
                                               left, or 0 */
    int64_t                  sent_wall_us;
    offload_redis_clock_pt   measured;      /* told of each measure */
    int                      known;         /* base_ms and offset_ms were
                                               measured */
    int                      warned;        /* the disagreement is in the
                                               log */
    int                      refused;       /* TIME's refusal is in the
                                               log */
} offload_redis_clock_t;

/* Asks rc's Redis for its TIME, unless a TIME is on its way: its answer
 * sets rc's base and offset and calls measured (an answer slower than a
 * round trip can be trusted for is dropped), and a disagreement of
 * OFFLOAD_CLOCK_WARN_MS or more, and its end, is said in the log once, as
 * is TIME refused (NOPERM). */
void offload_redis_clock_ask(struct offload_redis_conn_s *rc,
    offload_redis_clock_pt measured);

/* Now, in ms since the epoch by rc's Redis: this host's monotonic clock
 * plus the base last measured, so that a step of the wall clock between
 * two measures changes nothing (the wall clock before any). */
int64_t offload_redis_clock_ms(const struct offload_redis_conn_s *rc);

/* rc's base, or OFFLOAD_CLOCK_UNKNOWN. */
int64_t offload_redis_clock_base(const struct offload_redis_conn_s *rc);

/* Now in us by a base kept elsewhere (a worker's, in its slot). */
int64_t offload_redis_us_from(int64_t base_ms);

#endif /* OFFLOAD_REDIS_CLOCK_H */
