/*
 * redis_clock.c -- reads deadlines, retries' due times and queue times by
 * one clock, Redis', whatever this host's says.
 *
 * A job's deadline is stamped by nginx and judged by a worker, a retry's
 * due time by one node and moved by another: on their hosts' own clocks,
 * a host ahead of the others by more than a job's timeout expires every
 * job it takes, unrun, and looks healthy doing it.  Redis is the one
 * server every side talks to, and its scripts already read its TIME: so
 * every side measures how far Redis' clock is from its own, and reads
 * Redis' (as Oban reads the database's).  The supervisor asks at every
 * connect and heartbeat of its links and hands each worker its queue's
 * measure (in the worker's scoreboard slot); nginx asks at every ping.
 *
 * Redis' answer is taken against the middle of the TIME's round trip: off
 * by at most half the round trip, so an answer that took longer than
 * OFFLOAD_CLOCK_RTT_MAX_US is not used.  Redis' clock is then read as the
 * monotonic clock plus what it was ahead of it (the base): a step of this
 * host's wall clock (NTP, a VM resumed) between two measures moves no
 * deadline.  How far it is from the wall clock (the offset) is what is
 * said: a disagreement of a second or more is logged once, at warn, and
 * its end at notice.
 */

#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "offload_redis_time.h"
#include "redis_clock.h"
#include "redis_conn.h"

/* Longer, and the middle of the round trip says too little. */
#define OFFLOAD_CLOCK_RTT_MAX_US  250000

/* Below this again, the clocks are said to agree again. */
#define OFFLOAD_CLOCK_AGREE_MS    (OFFLOAD_CLOCK_WARN_MS / 2)


static void
said(offload_redis_conn_t *rc)
{
    int64_t                 off = rc->clock.offset_ms;
    offload_redis_clock_t  *c = &rc->clock;

    if (!c->warned && llabs(off) >= OFFLOAD_CLOCK_WARN_MS) {
        c->warned = 1;
        log_warn("%s: this host's clock is %.3f s %s Redis': deadlines, "
                 "retries and queue times are read by Redis' (is NTP "
                 "running on both hosts?)", rc->name, llabs(off) / 1000.0,
                 off > 0 ? "behind" : "ahead of");

    } else if (c->warned && llabs(off) < OFFLOAD_CLOCK_AGREE_MS) {
        c->warned = 0;
        log_notice("%s: this host's clock agrees with Redis' again (%lld "
                   "ms apart)", rc->name, (long long) off);
    }
}


static void
time_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    int64_t                rtt_us, redis_us, sent_us;
    redisReply            *reply = r;
    offload_redis_conn_t  *rc = privdata;

    (void) ac;

    sent_us = rc->clock.sent_mono_us;
    rtt_us = offload_mono_us() - sent_us;
    redis_us = offload_redis_time_us(reply);
    rc->clock.sent_mono_us = 0;

    /* not a passing refusal (BUSY, LOADING): an ACL without +time */
    if (reply != NULL && reply->type == REDIS_REPLY_ERROR
        && strncmp(reply->str, "NOPERM", 6) == 0 && !rc->clock.refused)
    {
        rc->clock.refused = 1;
        log_warn("%s: Redis refused TIME (%s): deadlines and retries are "
                 "read by the last measure of Redis' clock or, without one, "
                 "by this host's, which must agree with the other hosts'",
                 rc->name, reply->str);
    }

    if (redis_us < 0 || rtt_us > OFFLOAD_CLOCK_RTT_MAX_US) {
        return;
    }

    rc->clock.base_ms = (redis_us - sent_us - rtt_us / 2) / 1000;
    rc->clock.offset_ms = (redis_us - rc->clock.sent_wall_us - rtt_us / 2)
                          / 1000;
    rc->clock.known = 1;
    rc->clock.refused = 0;
    said(rc);

    if (rc->clock.measured != NULL) {
        rc->clock.measured(rc);
    }
}


void
offload_redis_clock_ask(offload_redis_conn_t *rc,
    offload_redis_clock_pt measured)
{
    if (rc->clock.sent_mono_us != 0 || !rc->ready) {
        return;
    }

    rc->clock.measured = measured;
    rc->clock.sent_mono_us = offload_mono_us();
    rc->clock.sent_wall_us = offload_wall_us();

    if (offload_redis_command(rc, time_cb, rc, "TIME") != REDIS_OK) {
        rc->clock.sent_mono_us = 0;
    }
}


int64_t
offload_redis_clock_ms(const offload_redis_conn_t *rc)
{
    return offload_redis_us_from(offload_redis_clock_base(rc)) / 1000;
}


int64_t
offload_redis_clock_base(const offload_redis_conn_t *rc)
{
    return rc->clock.known ? rc->clock.base_ms : OFFLOAD_CLOCK_UNKNOWN;
}


int64_t
offload_redis_us_from(int64_t base_ms)
{
    if (base_ms == OFFLOAD_CLOCK_UNKNOWN) {
        return offload_wall_us();
    }

    return offload_mono_us() + base_ms * 1000;
}
