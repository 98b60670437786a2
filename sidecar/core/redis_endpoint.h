/*
 * redis_endpoint.h -- where one Redis is and how to log in to it: what a
 * connection (redis_conn.c) needs, apart from the rest of the
 * configuration.  The sidecar's top-level redis directives make one; a
 * queue block may make its own (sharding by queue).
 *
 * A Redis Cluster endpoint (cluster://) names seeds, asked for the slot
 * map before every connect, and the key slot the connection serves: its
 * queue's (offload_key_slot() of the queue name, the hash tag of all its
 * keys), or the control slot (that of "ctl", the node-level keys' tag).
 * The connection goes to the master of that slot.
 */

#ifndef OFFLOAD_REDIS_ENDPOINT_H
#define OFFLOAD_REDIS_ENDPOINT_H

#include "offload_proto.h"

#define OFFLOAD_SENTINELS_MAX    8
#define OFFLOAD_MASTER_NAME_MAX  64
#define OFFLOAD_SENTINEL_PORT    26379
#define OFFLOAD_SEEDS_MAX        16
#define OFFLOAD_REDIS_PORT       6379

typedef struct {
    offload_addr_t  addr;           /* the Redis, unless sentinels */
    /* Redis Sentinel: the master is whatever the sentinels name, asked
     * before every connect (redis_conn.c). */
    offload_addr_t  sentinels[OFFLOAD_SENTINELS_MAX];
    int             nsentinels;     /* 0: no Sentinel, addr is the Redis */
    char            master[OFFLOAD_MASTER_NAME_MAX + 1];
    char           *sentinel_user;  /* the sentinels' own login, as */
    char           *sentinel_password;  /* user and password below */
    /* Redis Cluster: the master of slot is whatever CLUSTER SLOTS of a
     * seed says, asked before every connect (redis_conn.c). */
    offload_addr_t  seeds[OFFLOAD_SEEDS_MAX];
    int             nseeds;         /* 0: no cluster */
    int             slot;           /* with seeds: the key slot served */
    char           *user;           /* ACL user; NULL: "default" */
    char           *password;       /* NULL: no AUTH */
    int             db;
    int             timeout_ms;     /* connect, and each command beyond
                                       its blocking time */
    int             wait_replicas;  /* WAIT for this many replicas after
                                       a job's completion; 0: no WAIT;
                                       OFFLOAD_WAIT_ALL: every one */
} offload_redis_endpoint_t;

#define OFFLOAD_WAIT_ALL           (-1)

/* Sets ep's Redis from "host:port", "[ipv6]:port", "unix:/path",
 * "sentinel://host[:port][,host[:port]...]/<master name>" (a sentinel's
 * port defaults to 26379) or "cluster://host[:port][,host[:port]...]" (a
 * seed's port defaults to 6379; slot is then the control slot).  Returns
 * 0, or -1 with a message in err. */
int offload_redis_endpoint_parse(offload_redis_endpoint_t *ep,
    const char *text, char *err, size_t errlen);

/* Whether a and b are the same Redis database with the same login: the
 * same keys, so one connection serves both (timeouts not compared); of a
 * cluster, the same slot too (a connection goes to one master). */
int offload_redis_endpoint_same(const offload_redis_endpoint_t *a,
    const offload_redis_endpoint_t *b);

/* As offload_redis_endpoint_same(), but whatever the slots: the same
 * keyspace, a cluster's whole. */
int offload_redis_endpoint_same_keys(const offload_redis_endpoint_t *a,
    const offload_redis_endpoint_t *b);

/* Whether a's and b's seed lists differ but share a seed: two lists for
 * one cluster, which would make two control links (each writing the
 * node document).  Refused at configuration time. */
int offload_redis_seeds_overlap(const offload_redis_endpoint_t *a,
    const offload_redis_endpoint_t *b);

/* The slot of the node-level keys (the "{ctl}" hash tag): with a cluster,
 * where the node registry, events, crash reports, drain flags and cancel
 * lists live (the control shard). */
int offload_redis_control_slot(void);

/* Whether ep is where its keyspace's node-level keys live: any plain or
 * Sentinel endpoint, a cluster's of the control slot. */
int offload_redis_endpoint_is_control(const offload_redis_endpoint_t *ep);

/* A copy of src that owns its strings; 0, or -1 when out of memory
 * (nothing then to free).  offload_redis_endpoint_free() frees one. */
int offload_redis_endpoint_copy(offload_redis_endpoint_t *dst,
    const offload_redis_endpoint_t *src);
void offload_redis_endpoint_free(offload_redis_endpoint_t *ep);

/* "host:port" (or "unix:/path", "host:port/db" when db is not 0,
 * "cluster://seeds#slot"), for log lines and messages; returns buf. */
char *offload_redis_endpoint_name(const offload_redis_endpoint_t *ep,
    char *buf, size_t size);

#endif /* OFFLOAD_REDIS_ENDPOINT_H */
