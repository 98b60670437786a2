/*
 * eviction.h -- whether a Redis the node uses may evict keys, said in the
 * log when the node connects to it.
 */

#ifndef OFFLOAD_EVICTION_H
#define OFFLOAD_EVICTION_H

#include "redis_conn.h"

/* Asks rc's Redis (just connected) for its maxmemory-policy and warns,
 * naming the Redis as name, when it is not noeviction. */
void offload_eviction_check(offload_redis_conn_t *rc, const char *name);

#endif /* OFFLOAD_EVICTION_H */
