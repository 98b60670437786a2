/*
 * cluster_map_test.c -- reading a Redis Cluster's answers
 * (sidecar/core/cluster_map.c), printed as TAP: the master of a slot in a
 * CLUSTER SLOTS reply (an announced host "", "?" or nil is the seed's),
 * and the master a MOVED error names.
 */

#include <string.h>

#include "cluster_map.h"
#include "tap.h"


/* One slot range [start, end, [host, port, id]] with host a string, or
 * nil when host is NULL. */
static redisReply *
slot_map(const char *host)
{
    static redisReply   r, range, node, start, end, h, port, id;
    static redisReply  *ranges[1], *parts[3], *fields[3];

    memset(&h, 0, sizeof(h));
    h.type = host != NULL ? REDIS_REPLY_STRING : REDIS_REPLY_NIL;
    h.str = (char *) host;
    h.len = host != NULL ? strlen(host) : 0;

    start.type = REDIS_REPLY_INTEGER;
    start.integer = 0;
    end.type = REDIS_REPLY_INTEGER;
    end.integer = 5460;
    port.type = REDIS_REPLY_INTEGER;
    port.integer = 7001;
    id.type = REDIS_REPLY_STRING;
    id.str = (char *) "id";
    id.len = 2;

    fields[0] = &h;
    fields[1] = &port;
    fields[2] = &id;
    node.type = REDIS_REPLY_ARRAY;
    node.elements = 3;
    node.element = fields;

    parts[0] = &start;
    parts[1] = &end;
    parts[2] = &node;
    range.type = REDIS_REPLY_ARRAY;
    range.elements = 3;
    range.element = parts;

    ranges[0] = &range;
    r.type = REDIS_REPLY_ARRAY;
    r.elements = 1;
    r.element = ranges;
    return &r;
}


int
main(void)
{
    offload_addr_t  a;

    ok(offload_cluster_slot_master(slot_map("10.0.0.2"), 42, "seed", &a) == 0
       && strcmp(a.host, "10.0.0.2") == 0 && a.port == 7001,
       "a slot's master, as announced");
    ok(offload_cluster_slot_master(slot_map(""), 42, "seed", &a) == 0
       && strcmp(a.host, "seed") == 0, "\"\": the seed's host");
    ok(offload_cluster_slot_master(slot_map("?"), 42, "seed", &a) == 0
       && strcmp(a.host, "seed") == 0, "\"?\": the seed's host");
    ok(offload_cluster_slot_master(slot_map(NULL), 42, "seed", &a) == 0
       && strcmp(a.host, "seed") == 0 && a.port == 7001,
       "nil (unknown-endpoint): the seed's host");
    ok(offload_cluster_slot_master(slot_map("h"), 6000, "seed", &a) == -1,
       "a slot outside the map: none");

    ok(offload_cluster_moved_to("MOVED 42 10.0.0.3:7002", 42, "before", &a)
       == 0 && strcmp(a.host, "10.0.0.3") == 0 && a.port == 7002,
       "MOVED names host:port");
    ok(offload_cluster_moved_to("MOVED 42 :7002", 42, "before", &a) == 0
       && strcmp(a.host, "before") == 0 && a.port == 7002,
       "MOVED with an empty host: the node's that answered");
    ok(offload_cluster_moved_to("MOVED 42 ::1:7002", 42, "before", &a) == 0
       && strcmp(a.host, "::1") == 0 && a.port == 7002,
       "MOVED with an IPv6 host");
    ok(offload_cluster_moved_to("MOVED 43 10.0.0.3:7002", 42, "b", &a) == -1,
       "MOVED of another slot: not followed");
    ok(offload_cluster_moved_to("ASK 42 10.0.0.3:7002", 42, "b", &a) == -1,
       "ASK is not a move");
    ok(offload_cluster_moved_to("MOVED 42 10.0.0.3:x", 42, "b", &a) == -1
       && offload_cluster_moved_to("MOVED 42 10.0.0.3", 42, "b", &a) == -1
       && offload_cluster_moved_to("MOVED 42 h:70000", 42, "b", &a) == -1,
       "MOVED without a usable port: -1");

    return done_testing();
}
