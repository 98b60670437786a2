
/*
 * ngx_http_offload_clock.c -- jobs' submit times and deadlines, stamped by
 * Redis' clock.
 *
 * A job's deadline is stamped here and judged by a worker on another host;
 * on the hosts' own clocks, an nginx behind a worker's host by more than
 * offload_timeout would have every job it sends expire unrun, its
 * clients answered 504 at once.  Every side reads Redis' clock instead
 * (the sidecar's redis_clock.c says why): each worker process asks each
 * peer's Redis for its TIME at every ping (NGX_HTTP_OFFLOAD_PING_INTERVAL)
 * on the command link, and stamps a job by ngx_current_msec (a monotonic
 * clock) plus how far Redis' clock was ahead of it, measured last: a step
 * of the wall clock between two pings moves no deadline.  The answer is
 * taken against the middle of the round trip: one slower than
 * NGX_HTTP_OFFLOAD_CLOCK_RTT_MAX is not used.  How far Redis' clock is from
 * the wall clock is what is said: a disagreement of a second or more once
 * at warn, its end at notice; a TIME refused (an ACL) once at warn, the
 * last measure or, without one, the wall clock used.
 */


#include "ngx_http_offload_module.h"
#include "offload_redis_time.h"


#define NGX_HTTP_OFFLOAD_CLOCK_RTT_MAX  250       /* ms */
#define NGX_HTTP_OFFLOAD_CLOCK_WARN     1000      /* ms apart: said */
#define NGX_HTTP_OFFLOAD_CLOCK_AGREE    500       /* ms apart: agree again */


static void ngx_http_offload_clock_done(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_http_offload_clock_said(ngx_http_offload_peer_t *peer,
    ngx_log_t *log);


static int64_t
ngx_http_offload_clock_wall(void)
{
    ngx_time_t  *tp;

    tp = ngx_timeofday();

    return (int64_t) tp->sec * 1000 + tp->msec;
}


/* a cluster's master revived may be another host: nothing is known */

void
ngx_http_offload_clock_start(ngx_http_offload_peer_t *peer)
{
    peer->clock_offset = 0;
    peer->clock_known = 0;
    peer->clock_asking = 0;
    peer->clock_warned = 0;
    peer->clock_refused = 0;
}


void
ngx_http_offload_clock_ask(ngx_http_offload_peer_t *peer)
{
    static const char    *argv[] = { "TIME" };
    static const size_t   argvlen[] = { sizeof("TIME") - 1 };

    if (peer->clock_asking || !peer->command.up) {
        return;
    }

    if (ngx_http_offload_link_send(&peer->command,
                                   ngx_http_offload_clock_done, peer, 1,
                                   argv, argvlen)
        == NGX_OK)
    {
        peer->clock_asking = 1;
        peer->clock_sent = ngx_current_msec;
        peer->clock_sent_wall = ngx_http_offload_clock_wall();
    }
}


int64_t
ngx_http_offload_clock_now(ngx_http_offload_peer_t *peer)
{
    if (!peer->clock_known) {
        return ngx_http_offload_clock_wall();
    }

    return (int64_t) ngx_current_msec + peer->clock_base;
}


static void
ngx_http_offload_clock_done(redisAsyncContext *ac, void *r, void *privdata)
{
    int64_t                   redis_us, redis_ms;
    ngx_msec_int_t            rtt;
    redisReply               *reply = r;
    ngx_http_offload_link_t  *link;
    ngx_http_offload_peer_t  *peer = privdata;

    link = ngx_http_offload_link_replied(ac, reply);
    rtt = (ngx_msec_int_t) (ngx_current_msec - peer->clock_sent);
    peer->clock_asking = 0;

    if (reply == NULL) {
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        /* not a passing refusal (BUSY, LOADING): an ACL without +time */
        if (!peer->clock_refused
            && ngx_strncmp(reply->str, "NOPERM", 6) == 0)
        {
            peer->clock_refused = 1;
            ngx_log_error(NGX_LOG_WARN, link->log, 0,
                          "offload: redis %V refused TIME (%s): jobs are "
                          "stamped by its last measure of Redis' clock or, "
                          "without one, by this host's, which must agree "
                          "with the sidecars' hosts'", &peer->name,
                          reply->str);
        }
        return;
    }

    redis_us = offload_redis_time_us(reply);

    if (redis_us < 0 || rtt > NGX_HTTP_OFFLOAD_CLOCK_RTT_MAX) {
        return;
    }

    redis_ms = redis_us / 1000;

    peer->clock_refused = 0;
    peer->clock_known = 1;
    peer->clock_base = redis_ms - (int64_t) peer->clock_sent - rtt / 2;
    peer->clock_offset = redis_ms - peer->clock_sent_wall - rtt / 2;

    ngx_http_offload_clock_said(peer, link->log);
}


static void
ngx_http_offload_clock_said(ngx_http_offload_peer_t *peer, ngx_log_t *log)
{
    int64_t  apart;

    apart = peer->clock_offset < 0 ? -peer->clock_offset
                                   : peer->clock_offset;

    if (!peer->clock_warned && apart >= NGX_HTTP_OFFLOAD_CLOCK_WARN) {
        peer->clock_warned = 1;
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "offload: redis %V: this host's clock is %L.%03L s "
                      "%s Redis': jobs are stamped by Redis' (is NTP "
                      "running on both hosts?)", &peer->name,
                      apart / 1000, apart % 1000,
                      peer->clock_offset > 0 ? "behind" : "ahead of");

    } else if (peer->clock_warned && apart < NGX_HTTP_OFFLOAD_CLOCK_AGREE) {
        peer->clock_warned = 0;
        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "offload: redis %V: this host's clock agrees with "
                      "Redis' again (%L ms apart)", &peer->name,
                      peer->clock_offset);
    }
}
