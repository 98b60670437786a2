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

/* Gives the lease up, if this process holds it (a clean stop). */
void offload_lease_release(offload_redis_conn_t *rc, const char *key);

#endif /* OFFLOAD_NODE_LEASE_H */
