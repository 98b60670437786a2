/*
 * eviction.c -- says when a Redis the node uses may evict keys.
 *
 * Queued jobs, their bodies, records and results are keys: a Redis whose
 * maxmemory-policy evicts (allkeys-*, volatile-*) drops them under memory
 * pressure, an error to nobody, and jobs that were accepted vanish: a
 * stream evicted takes every job queued in it.  offload needs noeviction
 * (docs/OPERATIONS.md): a full Redis then refuses writes, which every
 * side answers (503, completions kept and sent again).  As Sidekiq and
 * BullMQ do, the node looks at each connect of its registry link to a
 * Redis (INFO: CONFIG GET is often not allowed) and warns; it runs all
 * the same.  A user whose ACL has no +info is not asked.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eviction.h"
#include "log.h"
#include "redis_info.h"


static void
info_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    char         policy[64], limit[32];
    char        *name = privdata;
    redisReply  *reply = r;

    (void) ac;

    if (reply != NULL && reply->type == REDIS_REPLY_STRING
        && offload_redis_info_field(reply->str, "maxmemory_policy", policy,
                                    sizeof(policy))
           == 0
        && strcmp(policy, "noeviction") != 0)
    {
        if (offload_redis_info_field(reply->str, "maxmemory", limit,
                                     sizeof(limit))
            != 0)
        {
            strcpy(limit, "?");
        }

        log_warn("%s: redis evicts keys (maxmemory-policy %s, maxmemory %s): "
                 "under memory pressure queued jobs, their records and "
                 "results vanish without an error; set maxmemory-policy "
                 "noeviction", name, policy, limit);

    } else if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
        log_debug("%s: INFO memory refused (%s): eviction policy not "
                  "checked", name, reply->str);
    }

    free(name);
}


void
offload_eviction_check(offload_redis_conn_t *rc, const char *name)
{
    char  *copy = strdup(name);

    if (copy == NULL
        || offload_redis_command(rc, info_cb, copy, "INFO memory")
           != REDIS_OK)
    {
        free(copy);
    }
}
