/*
 * sidecar_conf.c -- libFuzzer harness of offload_conf_parse(), the
 * sidecar's config file parser (the part of offload_conf_load() after the
 * file is read), with its tokenizer, time and size parsers, and the redis
 * address parser it shares with the module.
 *
 * A file the parser accepts must give a configuration inside the limits
 * conf.h states; a file it rejects must give a "file:line: message" and
 * leave nothing allocated (LeakSanitizer sees the rest).
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "conf.h"


static void
check_addr(const offload_addr_t *a)
{
    check(a->is_unix ? a->host[0] == '/'
                     : a->host[0] != '\0' && a->port >= 1 && a->port <= 65535,
          "redis address");
}


/* The top level's Redis and each queue's: an address, or sentinels and a
 * master name (and the sentinels' login, complete), or a cluster's seeds
 * and a slot, with db 0 (wait_replicas, checked below, as with any). */
static void
check_endpoint(const offload_redis_endpoint_t *ep)
{
    int  i;

    check(ep->nsentinels >= 0 && ep->nsentinels <= OFFLOAD_SENTINELS_MAX,
          "sentinels");
    check(ep->nseeds >= 0 && ep->nseeds <= OFFLOAD_SEEDS_MAX
          && (ep->nseeds == 0 || ep->nsentinels == 0), "cluster seeds");
    if (ep->nsentinels == 0 && ep->nseeds == 0) {
        check_addr(&ep->addr);
    }
    for (i = 0; i < ep->nsentinels; i++) {
        check_addr(&ep->sentinels[i]);
    }
    for (i = 0; i < ep->nseeds; i++) {
        check_addr(&ep->seeds[i]);
    }
    check(ep->nseeds == 0
          || (ep->slot >= 0 && ep->slot <= 16383 && ep->db == 0),
          "cluster slot, db");
    check(ep->nsentinels == 0 || ep->master[0] != '\0', "master name");
    check(ep->password == NULL || ep->password[0] != '\0', "password");
    check(ep->sentinel_password == NULL || ep->sentinel_password[0] != '\0',
          "sentinel_password");
    check(ep->sentinel_user == NULL || ep->sentinel_password != NULL,
          "sentinel_user without sentinel_password");
    check(ep->db >= 0 && ep->db <= 65535, "db");
    check((ep->wait_replicas >= 0
           && ep->wait_replicas <= OFFLOAD_WAIT_REPLICAS_MAX)
          || ep->wait_replicas == OFFLOAD_WAIT_ALL, "wait_replicas");
}


static void
check_queue(const offload_conf_queue_t *q)
{
    check_endpoint(&q->redis);
    check(offload_queue_name_valid(q->name, strlen(q->name)), "queue name");
    check(q->handler_name[0] != '\0', "handler");
    check(q->workers >= 1 && q->workers <= OFFLOAD_WORKERS_MAX, "workers");
    check(q->prefetch >= 1 && q->prefetch <= OFFLOAD_PREFETCH_MAX,
          "prefetch");
    check(q->max_restarts >= 0 && q->max_restarts <= OFFLOAD_RESTARTS_MAX,
          "max_restarts");
    check(q->restart_period_ms >= 10 && q->restart_cooldown_ms >= 0,
          "restart times");
    check(q->backoff_min_ms >= 1 && q->backoff_min_ms <= q->backoff_max_ms,
          "backoff");
    check(q->max_attempts >= 1 && q->max_attempts <= OFFLOAD_ATTEMPTS_MAX,
          "max_attempts");
    check(q->timeout_ms >= 0, "timeout");
    check(q->memory_limit == 0 || q->memory_limit >= 1024 * 1024,
          "memory_limit");
    check(q->max_jobs >= 0 && q->nice >= 0 && q->nice <= 19,
          "max_jobs, nice");
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char             err[OFFLOAD_CONF_ERR_MAX];
    size_t           i;
    offload_conf_t   conf;

    memset(err, 'x', sizeof(err));

    if (offload_conf_parse(&conf, "fuzz.conf", (const char *) data, size,
                           err, sizeof(err))
        != 0)
    {
        check(memchr(err, '\0', sizeof(err)) != NULL
              && strncmp(err, "fuzz.conf:", 10) == 0, "error message");
        return 0;
    }

    check(conf.nqueues >= 1 && conf.queues != NULL, "queues");
    check_endpoint(&conf.redis);
    check(offload_queue_name_valid(conf.node_name, strlen(conf.node_name)),
          "node name");
    check(conf.log_target != NULL && conf.log_target[0] != '\0',
          "log target");
    check(conf.heartbeat_ms >= 10 && conf.result_ttl_s >= 1
          && conf.shutdown_timeout_ms >= 0 && conf.claim_idle_ms >= 100,
          "main times");

    for (i = 0; i < conf.nqueues; i++) {
        check_queue(&conf.queues[i]);
    }

    offload_conf_free(&conf);
    return 0;
}
