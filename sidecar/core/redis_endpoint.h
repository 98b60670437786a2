/*
 * redis_endpoint.h -- where one Redis is and how to log in to it: what a
 * connection (redis_conn.c) needs, apart from the rest of the
 * configuration.  The sidecar's top-level redis directives make one; a
 * queue block may make its own (sharding by queue).
 */

#ifndef OFFLOAD_REDIS_ENDPOINT_H
#define OFFLOAD_REDIS_ENDPOINT_H

#include "offload_proto.h"

typedef struct {
    offload_addr_t  addr;
    char           *user;           /* ACL user; NULL: "default" */
    char           *password;       /* NULL: no AUTH */
    int             db;
    int             timeout_ms;     /* connect, and each command beyond
                                       its blocking time */
} offload_redis_endpoint_t;

#endif /* OFFLOAD_REDIS_ENDPOINT_H */
