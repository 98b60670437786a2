/*
 * registry.h -- the node registry entry the supervisor keeps in Redis:
 * offload:{ctl}:node:<name> (JSON, with a TTL) and membership in
 * offload:{ctl}:nodes; and the supervisor's connections to Redis, one per
 * distinct Redis its queues use (a queue may name its own: sharding by
 * queue).
 */

#ifndef OFFLOAD_REGISTRY_H
#define OFFLOAD_REGISTRY_H

#include <stdint.h>

#include <ev.h>

#include "conf.h"
#include "expiry.h"
#include "redis_conn.h"

struct offload_supervisor_s;

typedef struct offload_registry_s  offload_registry_t;

typedef void (*offload_registry_done_pt)(offload_registry_t *reg);

/* One Redis and the supervisor's connection to it.  All the supervisor's
 * work for a queue (claims, reclaims, retries, cancels, its stats) goes
 * over its queue's link; the node document there lists the queues that
 * live there. */
typedef struct {
    offload_registry_t        *reg;
    offload_redis_conn_t       conn;
    offload_redis_endpoint_t   ep;          /* a copy: outlives a reload's
                                               configuration */
    char                       name[300];   /* "registry <address>" */
    char                       nkeys[16];   /* of the stats EVAL */
    int                        drained;     /* its drain flag, last read */
    unsigned long              refused;     /* heartbeat writes refused
                                               since Redis began refusing
                                               them; 0: it takes them */
    unsigned long              stats_refused;  /* queue stats reads, the
                                                  same */
    int                        control;     /* holds the node-level keys
                                               (registry.c) */
    offload_expiry_t           expiry;      /* its Redis' expiry cycles */
} offload_link_t;

struct offload_registry_s {
    struct offload_supervisor_s  *sup;
    offload_link_t               *links;    /* in the order of the queues */
    size_t                        nlinks;
    ev_timer                      heartbeat;
    char                          key[OFFLOAD_KEY_MAX];
    char                          runs_key[OFFLOAD_KEY_MAX];
    char                          drain_key[OFFLOAD_KEY_MAX];
    char                          lease_key[OFFLOAD_KEY_MAX];
    offload_registry_done_pt      on_removed;
    size_t                        removing;  /* links yet to answer */
    unsigned                      leaving:1; /* removed: written no more */
    unsigned                      granting:1;  /* a lease held, its drain
                                                  flag asked before the
                                                  grant */
};

/* Connects to every distinct Redis of sup's queues.  Returns 0, or -1 when
 * out of memory. */
int offload_registry_start(offload_registry_t *reg,
    struct offload_supervisor_s *sup);

/* The connection to ep's Redis (a queue's); the first link's when the node
 * has none to it (a reload refuses a new Redis: not met). */
offload_redis_conn_t *offload_registry_conn(offload_registry_t *reg,
    const offload_redis_endpoint_t *ep);

/* Where the node-level keys of ep's keyspace are (events, crash reports):
 * ep's own connection, or with a cluster its control shard's. */
offload_redis_conn_t *offload_registry_node_conn(offload_registry_t *reg,
    const offload_redis_endpoint_t *ep);

/* Where node-wide events go: the first queue's Redis (its control shard,
 * with a cluster). */
offload_redis_conn_t *offload_registry_main(offload_registry_t *reg);

/* Why conf cannot be loaded by a reload (a queue on a Redis the node has
 * no connection to), or NULL.  offload_registry_reconf() takes a loaded
 * one's redis_timeout. */
const char *offload_registry_refusal(offload_registry_t *reg,
    const offload_conf_t *conf);
void offload_registry_reconf(offload_registry_t *reg,
    const offload_conf_t *conf);

/* Announces the node now, not at the next heartbeat (a pool changed). */
void offload_registry_update(offload_registry_t *reg);

/* Deletes the node's key and set member, then calls done (also when Redis
 * is not reachable: there is nothing to delete then). */
void offload_registry_remove(offload_registry_t *reg,
    offload_registry_done_pt done);

/* Stops the heartbeat and closes the connections (from inside one of
 * their callbacks too: the links stay allocated). */
void offload_registry_stop(offload_registry_t *reg);

/* Frees the links, once the loop no longer runs. */
void offload_registry_free(offload_registry_t *reg);

/* In a forked worker: let go of the parent's connections and timer. */
void offload_registry_forget(offload_registry_t *reg);

/* The registry document (docs/PROTOCOL.md) listing the queues on ep's
 * Redis (NULL: all), stamped now_ms (its start too, by the node's uptime),
 * with that Redis' clock offset (redis_clock.h; null until measured), as a
 * malloc'ed string. */
char *offload_registry_json(const struct offload_supervisor_s *sup,
    const offload_redis_endpoint_t *ep, int64_t now_ms,
    const offload_redis_clock_t *clock);

#endif /* OFFLOAD_REGISTRY_H */
