/*
 * registry_test.c -- the node registry document has exactly the shape
 * docs/PROTOCOL.md gives it: the members of the node, of each queue and of
 * each worker, and the values the supervisor's state implies.
 */

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "clock.h"
#include "handlers.h"
#include "supervisor.h"
#include "tap.h"


/* Whether obj has exactly the members named in keys (space-separated). */
static int
has_members(json_t *obj, const char *keys)
{
    char        buf[512], *k, *save;
    size_t      n = 0;

    snprintf(buf, sizeof(buf), "%s", keys);

    for (k = strtok_r(buf, " ", &save); k; k = strtok_r(NULL, " ", &save)) {
        if (json_object_get(obj, k) == NULL) {
            printf("#   missing member %s\n", k);
            return 0;
        }
        n++;
    }

    if (n != json_object_size(obj)) {
        printf("#   %zu members, expected %zu\n", json_object_size(obj), n);
        return 0;
    }

    return 1;
}


static json_t *
document(offload_supervisor_t *sup)
{
    char                   *text;
    json_t                 *doc;
    json_error_t            jerr;
    offload_redis_clock_t   clock = { .offset_ms = -60000, .known = 1 };

    text = offload_registry_json(sup, NULL, 1700000001234LL, &clock);
    doc = json_loads(text, 0, &jerr);
    free(text);
    return doc;
}


#define NODE_MEMBERS   "v node pid started heartbeat clock_offset_ms "         \
                       "log_lines_lost drained queues"
#define QUEUE_MEMBERS  "handler state restarts retries jobs_per_s workers "  \
                       "run_p50_ms run_p99_ms backlog pending oldest_ms dead " \
                       "retrying"
#define DOWN_MEMBERS   "queue slot jobs_ok jobs_failed jobs_crashed "        \
                       "jobs_cancelled jobs_expired restarts last_exit pid "  \
                       "state"
#define LIVE_MEMBERS   DOWN_MEMBERS " rss fds held cpu_user cpu_sys uptime_ms"


int
main(void)
{
    json_t                *doc, *q, *w0, *w1;
    offload_conf_t         conf;
    offload_slot_t         slots[2];
    offload_sb_slot_t      sb[2];
    offload_pool_t         pool;
    offload_conf_queue_t   queue;
    offload_supervisor_t   sup;

    memset(&conf, 0, sizeof(conf));
    memset(&queue, 0, sizeof(queue));
    memset(&sup, 0, sizeof(sup));
    memset(slots, 0, sizeof(slots));
    memset(sb, 0, sizeof(sb));
    memset(&pool, 0, sizeof(pool));

    strcpy(conf.node_name, "alpha");
    conf.heartbeat_ms = 1000;
    strcpy(queue.name, "sha256");
    queue.handler = offload_builtin_find("sha256");
    queue.workers = 2;
    conf.queues = &queue;
    conf.nqueues = 1;

    pool.sup = &sup;
    pool.queue = &queue;
    pool.slots = slots;
    pool.nslots = 2;
    pool.metrics = offload_hm_map();    /* as offload_pools_new() does */
    offload_stats_pool_init(&pool.stats);
    slots[0].pool = &pool;
    slots[0].pid = 4242;
    slots[0].sb = &sb[0];
    slots[0].started_us = offload_mono_us();
    slots[0].stats.restarts = 2;
    slots[0].stats.jobs.ok = 10;          /* of its earlier processes */
    slots[0].stats.rss = 1 << 20;
    strcpy(slots[0].stats.last_exit, "signal: killed by SIGSEGV");
    slots[1].pool = &pool;
    slots[1].index = 1;
    slots[1].pid = 0;                   /* being restarted */
    slots[1].sb = &sb[1];
    offload_sb_set_state(&sb[0], OFFLOAD_SB_IDLE);
    sb[0].jobs_ok = 3;
    sb[0].jobs_failed = 1;

    sup.conf = &conf;
    sup.pools = &pool;
    sup.npools = 1;
    sup.started_us = offload_mono_us() - 1234000;

    doc = document(&sup);
    ok(doc != NULL, "the document is JSON");
    ok(has_members(doc, NODE_MEMBERS), "node members");
    ok(json_integer_value(json_object_get(doc, "pid")) == getpid()
       && json_integer_value(json_object_get(doc, "heartbeat"))
          == 1700000001234LL
       && json_integer_value(json_object_get(doc, "clock_offset_ms"))
          == -60000
       && llabs(json_integer_value(json_object_get(doc, "started"))
                - 1700000000000LL) < 1000
       && json_integer_value(json_object_get(doc, "log_lines_lost")) == 0
       && json_is_false(json_object_get(doc, "drained")), "node values");

    q = json_object_get(json_object_get(doc, "queues"), "sha256");
    ok(has_members(q, QUEUE_MEMBERS), "queue members");
    is_str(json_string_value(json_object_get(q, "state")), "ok",
           "pool state ok");
    ok(json_is_null(json_object_get(q, "backlog"))
       && json_is_null(json_object_get(q, "retrying"))
       && json_is_null(json_object_get(q, "run_p50_ms")),
       "figures not known yet are null");

    w0 = json_array_get(json_object_get(q, "workers"), 0);
    w1 = json_array_get(json_object_get(q, "workers"), 1);
    ok(has_members(w0, LIVE_MEMBERS), "live worker members");
    ok(json_integer_value(json_object_get(w0, "jobs_ok")) == 13
       && json_integer_value(json_object_get(w0, "jobs_failed")) == 1
       && json_integer_value(json_object_get(w0, "restarts")) == 2
       && json_integer_value(json_object_get(w0, "rss")) == 1 << 20,
       "the slot's totals add its earlier processes");
    is_str(json_string_value(json_object_get(w0, "state")), "idle",
           "live worker state");
    is_str(json_string_value(json_object_get(w0, "last_exit")),
           "signal: killed by SIGSEGV", "last exit");
    ok(has_members(w1, DOWN_MEMBERS), "down worker members");
    ok(json_is_null(json_object_get(w1, "pid")), "down worker: pid null");
    is_str(json_string_value(json_object_get(w1, "state")), "down",
           "down worker state");
    json_decref(doc);

    pool.failed = 1;
    pool.restarts = 6;
    sup.drained = 1;
    doc = document(&sup);
    q = json_object_get(json_object_get(doc, "queues"), "sha256");
    is_str(json_string_value(json_object_get(q, "state")), "failed",
           "pool state failed");
    ok(json_integer_value(json_object_get(q, "restarts")) == 6,
       "pool restarts");
    ok(json_is_true(json_object_get(doc, "drained")), "node drained");
    json_decref(doc);
    offload_hm_unmap(pool.metrics);

    return done_testing();
}
