/*
 * registry.h -- the node registry entry the supervisor keeps in Redis:
 * offload:node:<name> (JSON, with a TTL) and membership in offload:nodes.
 */

#ifndef OFFLOAD_REGISTRY_H
#define OFFLOAD_REGISTRY_H

#include <stdint.h>

#include <ev.h>

#include "redis_conn.h"

struct offload_supervisor_s;

typedef struct offload_registry_s  offload_registry_t;

typedef void (*offload_registry_done_pt)(offload_registry_t *reg);

struct offload_registry_s {
    struct offload_supervisor_s  *sup;
    offload_redis_conn_t          conn;
    ev_timer                      heartbeat;
    char                          key[OFFLOAD_KEY_MAX];
    char                          runs_key[OFFLOAD_KEY_MAX];
    char                          drain_key[OFFLOAD_KEY_MAX];
    char                          nkeys[16];     /* of the stats EVAL */
    offload_registry_done_pt      on_removed;
};

void offload_registry_start(offload_registry_t *reg,
    struct offload_supervisor_s *sup);

/* Announces the node now, not at the next heartbeat (a pool changed). */
void offload_registry_update(offload_registry_t *reg);

/* Deletes the node's key and set member, then calls done (also when Redis
 * is not reachable: there is nothing to delete then). */
void offload_registry_remove(offload_registry_t *reg,
    offload_registry_done_pt done);

/* Stops the heartbeat and closes the connection. */
void offload_registry_stop(offload_registry_t *reg);

/* In a forked worker: let go of the parent's connection and timer. */
void offload_registry_forget(offload_registry_t *reg);

/* The registry document (docs/PROTOCOL.md), as a malloc'ed string. */
char *offload_registry_json(const struct offload_supervisor_s *sup,
    int64_t now_ms);

#endif /* OFFLOAD_REGISTRY_H */
