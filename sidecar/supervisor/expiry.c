/*
 * expiry.c -- says when a Redis the node uses holds every command up while
 * it deletes expired keys.
 *
 * Each job's result is a key that expires result_ttl after the job ends,
 * so a server that has run longer than that expires keys at its job rate.
 * Redis deletes expired keys in a cycle it runs hz times a second and lets
 * one cycle take a quarter of the time between two: 25 ms at its default
 * hz 10, every client of that Redis waiting meanwhile (echo at 20,000
 * jobs/s: p99 24 ms instead of 3.5, docs/OPERATIONS.md).  Nothing fails,
 * everything is slower: so at each heartbeat the node reads how often a
 * cycle ran to its limit (INFO stats, expired_time_cap_reached_count) and
 * the hz (INFO server), and warns when that happened
 * OFFLOAD_EXPIRY_CAPPED times in a window on a Redis below
 * OFFLOAD_EXPIRY_HZ.  A user whose ACL has no +info is not asked again.
 */

#include <stdlib.h>

#include "expiry.h"
#include "log.h"
#include "redis_info.h"


static void
info_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    int                hz;
    char               buf[32];
    long long          capped;
    redisReply        *reply = r;
    offload_expiry_t  *ex = privdata;

    (void) ac;

    if (reply == NULL) {
        return;                 /* the link went; ex may be gone with it */
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        log_debug("%s: INFO refused (%s): expiry cycles not checked",
                  ex->name, reply->str);
        ex->refused = 1;
        return;
    }

    if (reply->type != REDIS_REPLY_STRING
        || offload_redis_info_field(reply->str, "hz", buf, sizeof(buf)) != 0)
    {
        return;
    }

    hz = atoi(buf);

    if (offload_redis_info_field(reply->str, "expired_time_cap_reached_count",
                                 buf, sizeof(buf))
        != 0)
    {
        return;
    }

    capped = strtoll(buf, NULL, 10);

    /* a new window at the first reading, after a window's length, and
     * when the count went back (CONFIG RESETSTAT, a restarted Redis) */

    if (ex->window_start == 0
        || capped < ex->window_capped
        || ex->now - ex->window_start >= OFFLOAD_EXPIRY_WINDOW_S)
    {
        ex->window_start = ex->now;
        ex->window_capped = capped;
    }

    if (hz <= 0 || hz >= OFFLOAD_EXPIRY_HZ
        || capped - ex->window_capped < OFFLOAD_EXPIRY_CAPPED
        || (ex->warned != 0 && ex->now - ex->warned < OFFLOAD_EXPIRY_WARN_S))
    {
        return;
    }

    log_warn("%s: redis held every command up while deleting expired keys, "
             "%lld times in %.0f s, up to %d ms each (hz %d); each job's "
             "result is a key that expires: set hz %d in its configuration "
             "(docs/OPERATIONS.md)", ex->name, capped - ex->window_capped,
             ex->now - ex->window_start, 250 / hz, hz, OFFLOAD_EXPIRY_HZ);

    ex->warned = ex->now;
    ex->window_start = ex->now;
    ex->window_capped = capped;
}


void
offload_expiry_check(offload_expiry_t *ex, offload_redis_conn_t *rc,
    double now)
{
    if (ex->refused) {
        return;
    }

    ex->now = now;
    (void) offload_redis_command(rc, info_cb, ex, "INFO server stats");
}
