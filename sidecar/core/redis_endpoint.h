/*
 * redis_endpoint.h -- where one Redis is and how to log in to it: what a
 * connection (redis_conn.c) needs, apart from the rest of the
 * configuration.  The sidecar's top-level redis directives make one; a
 * queue block may make its own (sharding by queue).
 */

#ifndef OFFLOAD_REDIS_ENDPOINT_H
#define OFFLOAD_REDIS_ENDPOINT_H

#include "offload_proto.h"

#define OFFLOAD_SENTINELS_MAX    8
#define OFFLOAD_MASTER_NAME_MAX  64
#define OFFLOAD_SENTINEL_PORT    26379

typedef struct {
    offload_addr_t  addr;           /* the Redis, unless sentinels */
    /* Redis Sentinel: the master is whatever the sentinels name, asked
     * before every connect (redis_conn.c). */
    offload_addr_t  sentinels[OFFLOAD_SENTINELS_MAX];
    int             nsentinels;     /* 0: no Sentinel, addr is the Redis */
    char            master[OFFLOAD_MASTER_NAME_MAX + 1];
    char           *sentinel_user;  /* the sentinels' own login, as */
    char           *sentinel_password;  /* user and password below */
    char           *user;           /* ACL user; NULL: "default" */
    char           *password;       /* NULL: no AUTH */
    int             db;
    int             timeout_ms;     /* connect, and each command beyond
                                       its blocking time */
    int             wait_replicas;  /* WAIT for this many replicas after
                                       a job's completion; 0: no WAIT;
                                       OFFLOAD_WAIT_ALL: every one */
} offload_redis_endpoint_t;

#define OFFLOAD_WAIT_REPLICAS_MAX  16
#define OFFLOAD_WAIT_ALL           (-1)

/* Sets ep's Redis from "host:port", "[ipv6]:port", "unix:/path" or
 * "sentinel://host[:port][,host[:port]...]/<master name>" (a sentinel's
 * port defaults to 26379).  Returns 0, or -1 with a message in err. */
int offload_redis_endpoint_parse(offload_redis_endpoint_t *ep,
    const char *text, char *err, size_t errlen);

/* Whether a and b are the same Redis database with the same login: the
 * same keys, so one connection serves both (timeouts not compared). */
int offload_redis_endpoint_same(const offload_redis_endpoint_t *a,
    const offload_redis_endpoint_t *b);

/* A copy of src that owns its strings; 0, or -1 when out of memory
 * (nothing then to free).  offload_redis_endpoint_free() frees one. */
int offload_redis_endpoint_copy(offload_redis_endpoint_t *dst,
    const offload_redis_endpoint_t *src);
void offload_redis_endpoint_free(offload_redis_endpoint_t *ep);

/* "host:port" (or "unix:/path", "host:port/db" when db is not 0), for log
 * lines and messages; returns buf. */
char *offload_redis_endpoint_name(const offload_redis_endpoint_t *ep,
    char *buf, size_t size);

#endif /* OFFLOAD_REDIS_ENDPOINT_H */
