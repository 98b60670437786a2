/*
 * node_lease.h -- one sidecar at a time under a node_name: the lease it
 * holds in each Redis that keeps its node-level keys.
 */

#ifndef OFFLOAD_NODE_LEASE_H
#define OFFLOAD_NODE_LEASE_H

#include "redis_conn.h"

/* held: 1 when this process holds the lease (taken or kept), 0 when
 * another live sidecar does, -1 when Redis did not say (the connection
 * went, a refusal: nothing changes). */
typedef void (*offload_lease_pt)(void *data, int held);

/* Takes or keeps the lease key for ttl_ms on rc; done(data, held) once
 * Redis answered.  Returns 0, or -1 when nothing could be sent. */
int offload_lease_keep(offload_redis_conn_t *rc, const char *key, int ttl_ms,
    const char *name, offload_lease_pt done, void *data);

/* A clean stop: gives the lease up and removes the node's document, its
 * runs and its name from the set of nodes, if this process still holds
 * the lease (another may have taken it meanwhile: its document stays).
 * done(data) once Redis answered.  Returns 0, or -1 when nothing could be
 * sent. */
int offload_lease_release(offload_redis_conn_t *rc, const char *key,
    const char *doc_key, const char *runs_key, const char *nodes_key,
    const char *name, redisCallbackFn *done, void *data);

#endif /* OFFLOAD_NODE_LEASE_H */
