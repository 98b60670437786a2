/*
 * sentinel_sync.c -- asking sentinels for their master, blocking
 * (sentinel_sync.h): offloadctl once at start, liboffload before each
 * connection it makes.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis_ask.h"
#include "sentinel_sync.h"


/* What one sentinel names as the master: 0 with *master set, or -1 with
 * why in err. */
static int
ask_sentinel(const offload_redis_endpoint_t *ep, const offload_addr_t *s,
    int connect_ms, int command_ms, offload_addr_t *master, char *err,
    size_t errlen)
{
    int          rc = -1;
    long         port;
    redisReply  *reply;

    reply = offload_redis_ask(s, "sentinel", ep->sentinel_user,
                              ep->sentinel_password,
                              "sentinel_user/sentinel_password", connect_ms,
                              command_ms, err, errlen,
                              "SENTINEL get-master-addr-by-name %s",
                              ep->master);
    if (reply == NULL) {
        return -1;
    }

    if (reply->type == REDIS_REPLY_ARRAY
        && reply->elements == 2
        && reply->element[0]->type == REDIS_REPLY_STRING
        && reply->element[0]->len < sizeof(master->host)
        && reply->element[1]->type == REDIS_REPLY_STRING
        && (port = strtol(reply->element[1]->str, NULL, 10)) > 0
        && port <= 65535)
    {
        memset(master, 0, sizeof(*master));
        memcpy(master->host, reply->element[0]->str,
               reply->element[0]->len);
        master->port = (int) port;
        rc = 0;

    } else {
        snprintf(err, errlen, "sentinel %s:%d names no master \"%s\": %s",
                 s->host, s->port, ep->master,
                 reply->type == REDIS_REPLY_ERROR ? reply->str
                 : reply->type == REDIS_REPLY_NIL ? "unknown to it"
                 : "unexpected reply");
    }

    freeReplyObject(reply);
    return rc;
}


int
offload_sentinel_find_master(offload_redis_endpoint_t *ep, int connect_ms,
    int command_ms, offload_master_check_pt check, void *data, char *err,
    size_t errlen)
{
    int             i;
    char            why[256], name[512];
    offload_addr_t  master;

    snprintf(why, sizeof(why), "no sentinel");

    for (i = 0; i < ep->nsentinels; i++) {
        if (ask_sentinel(ep, &ep->sentinels[i], connect_ms, command_ms,
                         &master, why, sizeof(why))
            != 0)
        {
            continue;
        }

        if (check == NULL || check(&master, data, why, sizeof(why)) == 0) {
            ep->addr = master;
            return 0;
        }
    }

    snprintf(err, errlen, "no sentinel of %s names a usable master (the "
             "last: %s)", offload_redis_endpoint_name(ep, name,
                                                       sizeof(name)),
             why);
    return -1;
}
