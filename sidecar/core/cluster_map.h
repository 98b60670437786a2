/*
 * cluster_map.h -- which master of a Redis Cluster serves a key slot, from
 * the slot map CLUSTER SLOTS gives.  The sidecar's connections ask a seed
 * asynchronously before every connect (redis_conn.c) and look their slot
 * up here; offloadctl asks the seeds in turn, blocking, with
 * offload_cluster_find_master().
 */

#ifndef OFFLOAD_CLUSTER_MAP_H
#define OFFLOAD_CLUSTER_MAP_H

#include <stddef.h>

#include <hiredis/hiredis.h>

#include "redis_endpoint.h"

/* The master of slot in reply, a CLUSTER SLOTS answer of the node at
 * seed_host (the host a master announced as "", "?" or nil is the seed's,
 * as Redis means it).  Returns 0 with *master set, or -1 (the map has no
 * master for the slot, or the reply is not a slot map). */
int offload_cluster_slot_master(const redisReply *reply, int slot,
    const char *seed_host, offload_addr_t *master);

/* Asks ep's seeds in turn (connecting within connect_ms, each command
 * within command_ms, after AUTH with ep's login when it has a password)
 * for the slot map, and sets ep->addr to the master of ep->slot.  Returns
 * 0, or -1 with what the last seed said in err (never a password). */
int offload_cluster_find_master(offload_redis_endpoint_t *ep,
    int connect_ms, int command_ms, char *err, size_t errlen);

/* Whether an error reply says the command was not run here because of
 * the cluster: MOVED, ASK, TRYAGAIN or CLUSTERDOWN. */
int offload_cluster_redirected(const char *error);

/* The master an error "MOVED <slot> <host>:<port>" names for slot (an
 * empty host: before_host, the node that answered).  Returns 0 with *to
 * set, or -1 (another error, another slot, or no usable address). */
int offload_cluster_moved_to(const char *error, int slot,
    const char *before_host, offload_addr_t *to);

#endif /* OFFLOAD_CLUSTER_MAP_H */
