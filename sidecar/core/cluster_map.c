/*
 * cluster_map.c -- the slot map of a Redis Cluster (cluster_map.h): the
 * master of a slot in a CLUSTER SLOTS answer, asked of the seeds in turn
 * for offloadctl and liboffload (blocking, with redis_ask.c, as
 * sentinel_sync.c asks sentinels), and what a redirection looks like (and
 * where a MOVED points).  There is no map kept between connects here: a
 * sidecar connection serves one slot and asks again on every connect,
 * which every MOVED, lost connection or refused connect leads to
 * (liboffload remembers the masters it was told of).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_map.h"
#include "redis_ask.h"


/* [start, end, [host, port, id...], replicas...] */
int
offload_cluster_slot_master(const redisReply *reply, int slot,
    const char *seed_host, offload_addr_t *master)
{
    size_t             i;
    long               port;
    const char        *host;
    const redisReply  *range, *node;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        return -1;
    }

    for (i = 0; i < reply->elements; i++) {
        range = reply->element[i];

        if (range->type != REDIS_REPLY_ARRAY || range->elements < 3
            || range->element[0]->type != REDIS_REPLY_INTEGER
            || range->element[1]->type != REDIS_REPLY_INTEGER
            || slot < range->element[0]->integer
            || slot > range->element[1]->integer)
        {
            continue;
        }

        node = range->element[2];
        if (node->type != REDIS_REPLY_ARRAY || node->elements < 2
            || (node->element[0]->type != REDIS_REPLY_STRING
                && node->element[0]->type != REDIS_REPLY_NIL)
            || node->element[1]->type != REDIS_REPLY_INTEGER)
        {
            return -1;
        }

        /* nil: cluster-preferred-endpoint-type unknown-endpoint */
        host = node->element[0]->type == REDIS_REPLY_NIL
               ? "" : node->element[0]->str;
        if (host[0] == '\0' || strcmp(host, "?") == 0) {
            host = seed_host;
        }

        port = (long) node->element[1]->integer;
        if (port <= 0 || port > 65535
            || strlen(host) >= sizeof(master->host))
        {
            return -1;
        }

        memset(master, 0, sizeof(*master));
        memcpy(master->host, host, strlen(host));
        master->port = (int) port;
        return 0;
    }

    return -1;
}


int
offload_cluster_redirected(const char *error)
{
    return strncmp(error, "MOVED ", 6) == 0
           || strncmp(error, "ASK ", 4) == 0
           || strncmp(error, "TRYAGAIN", 8) == 0
           || strncmp(error, "CLUSTERDOWN", 11) == 0;
}


int
offload_cluster_moved_to(const char *error, int slot,
    const char *before_host, offload_addr_t *to)
{
    char        *end;
    long         n, port;
    size_t       hlen;
    const char  *host, *colon;

    if (strncmp(error, "MOVED ", 6) != 0) {
        return -1;
    }

    n = strtol(error + 6, &end, 10);
    if (n != slot || *end != ' ') {
        return -1;
    }

    host = end + 1;
    colon = strrchr(host, ':');
    if (colon == NULL) {
        return -1;
    }

    port = strtol(colon + 1, &end, 10);
    hlen = (size_t) (colon - host);
    if (hlen == 0) {
        host = before_host;
        hlen = strlen(before_host);
    }

    if (port <= 0 || port > 65535 || *end != '\0'
        || hlen >= sizeof(to->host))
    {
        return -1;
    }

    memset(to, 0, sizeof(*to));
    memcpy(to->host, host, hlen);
    to->port = (int) port;
    return 0;
}


/* What one seed names as the master of ep->slot: 0 with *master set, or
 * -1 with why in err. */
static int
ask_seed(const offload_redis_endpoint_t *ep, const offload_addr_t *s,
    int connect_ms, int command_ms, offload_addr_t *master, char *err,
    size_t errlen)
{
    int          rc = -1;
    redisReply  *reply;

    reply = offload_redis_ask(s, "cluster seed", ep->user, ep->password,
                              "redis_user/password", connect_ms, command_ms,
                              err, errlen, "CLUSTER SLOTS");
    if (reply == NULL) {
        return -1;
    }

    if (offload_cluster_slot_master(reply, ep->slot, s->host, master) == 0) {
        rc = 0;

    } else {
        snprintf(err, errlen, "cluster seed %s:%d names no master of slot "
                 "%d: %s", s->host, s->port, ep->slot,
                 reply->type == REDIS_REPLY_ERROR ? reply->str
                 : "not in its slot map");
    }

    freeReplyObject(reply);
    return rc;
}


int
offload_cluster_find_master(offload_redis_endpoint_t *ep, int connect_ms,
    int command_ms, char *err, size_t errlen)
{
    int             i;
    char            why[256], name[512];
    offload_addr_t  master;

    snprintf(why, sizeof(why), "no seed");

    for (i = 0; i < ep->nseeds; i++) {
        if (ask_seed(ep, &ep->seeds[i], connect_ms, command_ms, &master, why,
                     sizeof(why))
            == 0)
        {
            ep->addr = master;
            return 0;
        }
    }

    snprintf(err, errlen, "no seed of %s names a master (the last: %s)",
             offload_redis_endpoint_name(ep, name, sizeof(name)), why);
    return -1;
}
