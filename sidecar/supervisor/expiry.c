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
 * everything is slower.  So at each heartbeat the node reads how often a
 * cycle ran to its limit and how long expiring took (INFO stats) and the
 * hz (INFO server), keeps a reading about a second, and warns when in
 * the last OFFLOAD_EXPIRY_WINDOW_S the cycles ran to their limit
 * OFFLOAD_EXPIRY_CAPPED times and took OFFLOAD_EXPIRY_MS, on a Redis below
 * OFFLOAD_EXPIRY_HZ.  (The count also has the short cycles Redis runs
 * between two turns of its loop, 1 ms at most: hence the time too.)
 */

#include <stdlib.h>
#include <string.h>

#include "expiry.h"
#include "log.h"
#include "offload_proto.h"
#include "redis_info.h"


static int
info_number(const char *info, const char *field, long long *n)
{
    char  buf[32];

    if (offload_redis_info_field(info, field, buf, sizeof(buf)) != 0) {
        return -1;
    }

    *n = strtoll(buf, NULL, 10);
    return 0;
}


/* The newest reading a window or more before now: what the window is
 * counted from; the oldest one when none is that old yet.  NULL when there
 * is none. */
static const offload_expiry_reading_t *
window_start(const offload_expiry_t *ex, ev_tstamp now)
{
    unsigned  i;

    for (i = ex->nreadings; i > 0; i--) {
        if (now - ex->readings[i - 1].at >= OFFLOAD_EXPIRY_WINDOW_S) {
            return &ex->readings[i - 1];
        }
    }

    return ex->nreadings ? &ex->readings[0] : NULL;
}


/* Whether Redis' expiry held every command up enough since from: its
 * cycles at their limit OFFLOAD_EXPIRY_CAPPED times and OFFLOAD_EXPIRY_MS
 * taken, in a window's time (over a longer span, with a heartbeat longer
 * than the window, at that rate). */
static int
held_up(const offload_expiry_reading_t *from, ev_tstamp now, long long capped,
    long long cpu_ms)
{
    double  scale = 1.0, span = now - from->at;

    if (span > OFFLOAD_EXPIRY_WINDOW_S + 1.0) {
        scale = OFFLOAD_EXPIRY_WINDOW_S / span;
    }

    return (capped - from->capped) * scale >= OFFLOAD_EXPIRY_CAPPED
           && (cpu_ms - from->cpu_ms) * scale >= OFFLOAD_EXPIRY_MS;
}


static void
keep(offload_expiry_t *ex, ev_tstamp now, long long capped, long long cpu_ms)
{
    offload_expiry_reading_t  *r;

    if (ex->nreadings
        && now - ex->readings[ex->nreadings - 1].at
           < OFFLOAD_EXPIRY_WINDOW_S / (OFFLOAD_EXPIRY_READINGS - 1))
    {
        return;
    }

    if (ex->nreadings == OFFLOAD_EXPIRY_READINGS) {
        memmove(&ex->readings[0], &ex->readings[1],
                (OFFLOAD_EXPIRY_READINGS - 1) * sizeof(ex->readings[0]));
        ex->nreadings--;
    }

    r = &ex->readings[ex->nreadings++];
    r->at = now;
    r->capped = capped;
    r->cpu_ms = cpu_ms;
}


static void
info_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    long long                        hz, capped, cpu_ms;
    ev_tstamp                        now, span;
    redisReply                      *reply = r;
    offload_expiry_t                *ex = privdata;
    const offload_expiry_reading_t  *from, *last;

    (void) ac;

    if (reply == NULL) {
        return;                 /* the link went; ex may be gone with it */
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        if (!offload_refusal_passes(reply->str)) {
            log_info("%s: INFO refused (%s): its expiry cycles are not "
                     "looked at", ex->name, reply->str);
            ex->refused = 1;
        }
        return;
    }

    if (reply->type != REDIS_REPLY_STRING) {
        return;
    }

    if (info_number(reply->str, "hz", &hz) != 0
        || info_number(reply->str, "expired_time_cap_reached_count", &capped)
           != 0
        || info_number(reply->str, "expire_cycle_cpu_milliseconds", &cpu_ms)
           != 0)
    {
        log_info("%s: INFO has no hz or expiry counts: its expiry cycles are "
                 "not looked at", ex->name);
        ex->refused = 1;
        return;
    }

    now = ev_now(ex->loop);

    /* counts that went back (CONFIG RESETSTAT, a restarted Redis) or a
     * clock that did: the readings start again */

    last = ex->nreadings ? &ex->readings[ex->nreadings - 1] : NULL;

    if (last != NULL
        && (capped < last->capped || cpu_ms < last->cpu_ms || now < last->at))
    {
        ex->nreadings = 0;
    }

    from = window_start(ex, now);

    if (from != NULL && held_up(from, now, capped, cpu_ms)) {
        span = now - from->at;

        if (hz > 0 && hz < OFFLOAD_EXPIRY_HZ
            && (ex->warned == 0 || now - ex->warned >= OFFLOAD_EXPIRY_WARN_S))
        {
            log_warn("%s: redis held every command up while deleting "
                     "expired keys: %lld ms of %.1f s, its expiry cycles "
                     "running to their time limit %lld times (up to %lld ms "
                     "each at hz %lld); each job's result is a key that "
                     "expires: set hz %d in its configuration "
                     "(docs/OPERATIONS.md)", ex->name, cpu_ms - from->cpu_ms,
                     span, capped - from->capped, 250 / hz, hz,
                     OFFLOAD_EXPIRY_HZ);
            ex->warned = now;

        } else if (ex->held == 0 || now - ex->held >= OFFLOAD_EXPIRY_DEBUG_S) {
            if (hz > 0 && hz < OFFLOAD_EXPIRY_HZ) {
                log_debug("%s: expiry cycles ran to their limit %lld times "
                          "in %.1f s, not said again: said %.0f s ago",
                          ex->name, capped - from->capped, span,
                          now - ex->warned);
            } else {
                log_debug("%s: expiry cycles ran to their limit %lld times "
                          "in %.1f s, not said at hz %lld", ex->name,
                          capped - from->capped, span, hz);
            }
            ex->held = now;
        }
    }

    keep(ex, now, capped, cpu_ms);
}


void
offload_expiry_init(offload_expiry_t *ex, const char *name,
    struct ev_loop *loop)
{
    memset(ex, 0, sizeof(*ex));
    ex->name = name;
    ex->loop = loop;
}


void
offload_expiry_check(offload_expiry_t *ex, offload_redis_conn_t *rc)
{
    if (ex->refused) {
        return;
    }

    (void) offload_redis_command(rc, info_cb, ex, "INFO server stats");
}


void
offload_expiry_reset(offload_expiry_t *ex)
{
    ex->nreadings = 0;
    ex->refused = 0;
}
