/*
 * events.h -- the node's notable events (crashes, restarts, pool failures,
 * reclaims, dead letters, reloads) in the capped stream offload:{ctl}:events,
 * where offloadctl and dashboards read them.
 */

#ifndef OFFLOAD_EVENTS_H
#define OFFLOAD_EVENTS_H

#include <jansson.h>

#include "redis_conn.h"

/* XADDs one event: fields type, node, queue (when not NULL) and report
 * (as compact JSON, when not NULL; the reference is consumed).  Fire and
 * forget: an event raised while Redis is away is only logged. */
void offload_event(offload_redis_conn_t *conn, const char *node,
    const char *type, const char *queue, json_t *report);

/* A "crash" event with its report (the reference is consumed, as above),
 * which also goes to the front of offload:{ctl}:crashes (OFFLOAD_CRASHES_MAX
 * kept). */
void offload_crash_event(offload_redis_conn_t *conn, const char *node,
    const char *queue, json_t *report);

#endif /* OFFLOAD_EVENTS_H */
