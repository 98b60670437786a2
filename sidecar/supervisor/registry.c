/*
 * registry.c -- announces this node in Redis: every heartbeat the supervisor
 * SETs offload:node:<name> to a JSON document (its pid, start time, each
 * pool's state and restart count and the pid of every worker slot) with a
 * TTL of max(5 s, 3 heartbeats), and SADDs the name to offload:nodes.  A
 * node that stops heartbeating disappears when its key expires; a clean
 * shutdown removes it at once.  Along with it, offload:node:<name>:runs
 * holds each pool's run-time window as fine buckets, so that the status
 * can take the quantiles of a queue several nodes serve (its own key:
 * the document, which every status answer carries, stays small).
 */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <jansson.h>

#include "clock.h"
#include "log.h"
#include "registry.h"
#include "supervisor.h"


static double
round1(double x)
{
    return round(x * 10) / 10;
}


static json_t *
count_or_null(long long n)
{
    return n < 0 ? json_null() : json_integer(n);
}


/* A quantile in us as ms with three decimals, or null (no jobs). */
static json_t *
ms_or_null(int64_t us)
{
    return us < 0 ? json_null() : json_real(us / 1000.0);
}


/* A worker as its scoreboard slot and its stats show it: state, the job
 * it runs and for how long, its process's RSS and CPU, its history. */
static json_t *
worker_json(const offload_slot_t *slot, int64_t now_us)
{
    json_t                      *w;
    offload_sb_state_e           state;
    const offload_sb_slot_t     *sb = slot->sb;
    const offload_slot_stats_t  *st = &slot->stats;

    w = json_pack("{s:s,s:i,s:I,s:I,s:I,s:I,s:I,s:s}",
                  "queue", slot->pool->queue->name,
                  "slot", slot->index,
                  "jobs_ok", (json_int_t) (st->jobs_ok + sb->jobs_ok),
                  "jobs_failed",
                  (json_int_t) (st->jobs_failed + sb->jobs_failed),
                  "jobs_crashed", (json_int_t) st->jobs_crashed,
                  "jobs_cancelled",
                  (json_int_t) (st->jobs_cancelled + sb->jobs_cancelled),
                  "restarts", (json_int_t) st->restarts,
                  "last_exit", st->last_exit);
    if (w == NULL) {
        return NULL;
    }

    if (slot->pid == 0) {
        json_object_set_new(w, "pid", json_null());
        json_object_set_new(w, "state", json_string("down"));
        return w;
    }

    state = offload_sb_state(sb);
    json_object_set_new(w, "pid", json_integer(slot->pid));
    json_object_set_new(w, "state",
                        json_string(offload_sb_state_name(state)));
    json_object_set_new(w, "rss", json_integer(st->rss));
    json_object_set_new(w, "held", json_integer(st->held));
    json_object_set_new(w, "cpu_user", json_real(round1(st->cpu_user)));
    json_object_set_new(w, "cpu_sys", json_real(round1(st->cpu_sys)));
    json_object_set_new(w, "uptime_ms",
                        json_integer((now_us - slot->started_us) / 1000));

    if (sb->child_pid > 0) {            /* an exec handler's process */
        json_object_set_new(w, "handler_pid", json_integer(sb->child_pid));
    }

    if (state == OFFLOAD_SB_BUSY) {
        json_object_set_new(w, "job", json_string(sb->job_id));
        json_object_set_new(w, "job_ms",
                            json_integer((now_us - sb->job_start_us) / 1000));
    }

    return w;
}


static const char *
pool_state(const offload_pool_t *pool)
{
    int  i;

    if (pool->failed) {
        return "failed";
    }

    for (i = 0; i < pool->nslots; i++) {
        if (ev_is_active(&pool->slots[i].restart)) {
            return "cooling";           /* a worker waits out its backoff */
        }
    }

    return "ok";
}


/* A queue: its pool's state and figures, then the Redis side's (null until
 * the first stats reply). */
static json_t *
queue_json(const offload_pool_t *pool, int heartbeat_ms, json_t *workers)
{
    int                          i;
    json_t                      *q;
    uint64_t                     retries = 0;
    const offload_slot_t        *slot;
    const offload_pool_stats_t  *ps = &pool->stats;

    for (i = 0; i < pool->nslots; i++) {
        slot = &pool->slots[i];
        retries += slot->stats.jobs_retried + slot->sb->jobs_retried;
    }

    q = json_pack("{s:s,s:s,s:I,s:I,s:f,s:o}",
                  "handler", pool->queue->handler->name,
                  "state", pool_state(pool),
                  "restarts", (json_int_t) pool->restarts,
                  "retries", (json_int_t) retries,
                  "jobs_per_s",
                  round1(offload_stats_jobs_per_s(pool, heartbeat_ms)),
                  "workers", workers);
    if (q == NULL) {
        return NULL;
    }

    json_object_set_new(q, "run_p50_ms",
                        ms_or_null(offload_stats_run_quantile(pool, 0.5)));
    json_object_set_new(q, "run_p99_ms",
                        ms_or_null(offload_stats_run_quantile(pool, 0.99)));
    json_object_set_new(q, "backlog", count_or_null(ps->backlog));
    json_object_set_new(q, "pending", count_or_null(ps->pending));
    json_object_set_new(q, "oldest_ms", count_or_null(ps->oldest_ms));
    json_object_set_new(q, "dead", count_or_null(ps->dead));
    json_object_set_new(q, "retrying", count_or_null(ps->retrying));

    return q;
}


char *
offload_registry_json(const offload_supervisor_t *sup, int64_t now_ms)
{
    int                    i;
    char                  *text;
    size_t                 p;
    json_t                *doc, *queues, *workers;
    int64_t                now_us = offload_mono_us();
    const offload_pool_t  *pool;

    queues = json_object();
    doc = json_pack("{s:i,s:s,s:I,s:I,s:I,s:b,s:o}",
                    "v", OFFLOAD_PROTO_VERSION,
                    "node", sup->conf->node_name,
                    "pid", (json_int_t) getpid(),
                    "started", (json_int_t) sup->started_ms,
                    "heartbeat", (json_int_t) now_ms,
                    "drained", sup->drained,
                    "queues", queues);
    if (doc == NULL) {
        return NULL;
    }

    for (p = 0; p < sup->npools; p++) {
        pool = &sup->pools[p];
        workers = json_array();

        if (json_object_set_new(queues, pool->queue->name,
                                queue_json(pool, sup->conf->heartbeat_ms,
                                           workers))
            != 0)
        {
            json_decref(doc);
            return NULL;
        }

        for (i = 0; i < pool->nslots; i++) {
            if (json_array_append_new(workers,
                                      worker_json(&pool->slots[i], now_us))
                != 0)
            {
                json_decref(doc);
                return NULL;
            }
        }
    }

    text = json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(6));
    json_decref(doc);
    return text;
}


/* {"<queue>": [[<bucket value, us>, <count>], ...], ...}: the buckets of
 * each pool's run-time window that counted something. */
static char *
runs_json(const offload_supervisor_t *sup)
{
    int                    b;
    char                  *text;
    size_t                 p;
    json_t                *runs, *buckets, *bucket;
    uint64_t               sum[OFFLOAD_HIST_FINE];

    runs = json_object();
    if (runs == NULL) {
        return NULL;
    }

    for (p = 0; p < sup->npools; p++) {
        offload_stats_run_counts(&sup->pools[p], sum);
        buckets = json_array();

        if (json_object_set_new(runs, sup->pools[p].queue->name, buckets)
            != 0)
        {
            json_decref(runs);
            return NULL;
        }

        for (b = 0; b < OFFLOAD_HIST_FINE; b++) {
            if (sum[b] == 0) {
                continue;
            }

            bucket = json_pack("[I,I]",
                               (json_int_t) offload_hist_fine_value(b),
                               (json_int_t) sum[b]);
            if (json_array_append_new(buckets, bucket) != 0) {
                json_decref(runs);
                return NULL;
            }
        }
    }

    text = json_dumps(runs, JSON_COMPACT);
    json_decref(runs);
    return text;
}


static void
reply_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply  *reply = r;

    (void) ac;
    (void) privdata;

    if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
        log_error("registry: redis error: %s", reply->str);
    }
}


static void
announce(offload_registry_t *reg)
{
    int                    ttl;
    char                  *json, *runs;
    offload_supervisor_t  *sup = reg->sup;

    if (!reg->conn.ready) {
        return;
    }

    json = offload_registry_json(sup, offload_wall_ms());
    runs = runs_json(sup);
    if (json == NULL || runs == NULL) {
        log_error("registry: out of memory");
        free(json);
        free(runs);
        return;
    }

    ttl = (3 * sup->conf->heartbeat_ms + 999) / 1000;
    if (ttl < 5) {
        ttl = 5;
    }

    if (offload_redis_command(&reg->conn, reply_cb, NULL, "SET %s %s EX %d",
                              reg->runs_key, runs, ttl)
        != REDIS_OK
        || offload_redis_command(&reg->conn, reply_cb, NULL,
                                 "SET %s %s EX %d", reg->key, json, ttl)
           != REDIS_OK
        || offload_redis_command(&reg->conn, reply_cb, NULL, "SADD %s %s",
                                 OFFLOAD_NODES_KEY, sup->conf->node_name)
           != REDIS_OK)
    {
        log_warn("registry: cannot send the heartbeat");
    }

    free(json);
    free(runs);
}


void
offload_registry_update(offload_registry_t *reg)
{
    announce(reg);
}


static void
queue_stats_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    size_t                 p;
    redisReply            *reply = r;
    offload_registry_t    *reg = privdata;
    offload_supervisor_t  *sup = reg->sup;

    (void) ac;

    if (reply == NULL) {
        return;                         /* disconnected */
    }

    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == sup->npools) {
        for (p = 0; p < sup->npools; p++) {
            offload_stats_set_queue(&sup->pools[p], reply->element[p]);
        }

    } else if (reply->type == REDIS_REPLY_ERROR) {
        log_error("registry: queue stats: %s", reply->str);
    }

    announce(reg);
}


static void
drain_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply          *reply = r;
    offload_registry_t  *reg = privdata;

    (void) ac;

    if (reply != NULL && reply->type != REDIS_REPLY_ERROR) {
        offload_supervisor_drain(reg->sup, reply->type == REDIS_REPLY_STRING);
    }
}


/* Every heartbeat: sample the workers, read the drain flag, ask Redis about
 * the queues, then announce (when the answer is in). */
static void
heartbeat_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    size_t                 p, n;
    const char           **argv;
    offload_registry_t    *reg = w->data;
    offload_supervisor_t  *sup = reg->sup;

    (void) loop;
    (void) revents;

    offload_stats_tick(sup);

    if (reg->conn.ready
        && offload_redis_command(&reg->conn, drain_cb, reg, "GET %s",
                                 reg->drain_key)
           != REDIS_OK)
    {
        log_warn("registry: cannot read the drain flag");
    }

    if (!reg->conn.ready || sup->npools == 0) {
        announce(reg);
        return;
    }

    /* EVAL script numkeys (stream dead retry)... group */
    n = 3 + 3 * sup->npools + 1;
    argv = calloc(n, sizeof(char *));
    if (argv == NULL) {
        announce(reg);
        return;
    }

    argv[0] = "EVAL";
    argv[1] = offload_queue_stats_script;
    snprintf(reg->nkeys, sizeof(reg->nkeys), "%zu", 3 * sup->npools);
    argv[2] = reg->nkeys;
    for (p = 0; p < sup->npools; p++) {
        argv[3 + 3 * p] = sup->pools[p].stream_key;
        argv[4 + 3 * p] = sup->pools[p].dead_key;
        argv[5 + 3 * p] = sup->pools[p].retry_key;
    }
    argv[n - 1] = OFFLOAD_GROUP;

    if (offload_redis_command_argv(&reg->conn, queue_stats_cb, reg, (int) n,
                                   argv, NULL)
        != REDIS_OK)
    {
        announce(reg);
    }

    free(argv);
}


static void
connected(offload_redis_conn_t *rc)
{
    announce(rc->data);
}


void
offload_registry_start(offload_registry_t *reg, offload_supervisor_t *sup)
{
    double  every = sup->conf->heartbeat_ms / 1000.0;

    reg->sup = sup;
    snprintf(reg->key, sizeof(reg->key), OFFLOAD_NODE_FMT,
             sup->conf->node_name);
    snprintf(reg->runs_key, sizeof(reg->runs_key), OFFLOAD_NODE_RUNS_FMT,
             sup->conf->node_name);
    snprintf(reg->drain_key, sizeof(reg->drain_key), OFFLOAD_DRAIN_FMT,
             sup->conf->node_name);

    offload_redis_conn_init(&reg->conn, sup->loop, sup->conf, "registry",
                            connected, NULL, reg);

    ev_timer_init(&reg->heartbeat, heartbeat_cb, every, every);
    reg->heartbeat.data = reg;
    ev_timer_start(sup->loop, &reg->heartbeat);

    offload_redis_conn_start(&reg->conn);
}


static void
removed_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    offload_registry_t  *reg = privdata;

    reply_cb(ac, r, NULL);

    if (reg->on_removed) {
        reg->on_removed(reg);
        reg->on_removed = NULL;
    }
}


void
offload_registry_remove(offload_registry_t *reg, offload_registry_done_pt done)
{
    ev_timer_stop(reg->sup->loop, &reg->heartbeat);
    reg->on_removed = done;

    if (!reg->conn.ready
        || offload_redis_command(&reg->conn, reply_cb, NULL, "DEL %s %s",
                                 reg->key, reg->runs_key)
           != REDIS_OK
        || offload_redis_command(&reg->conn, removed_cb, reg, "SREM %s %s",
                                 OFFLOAD_NODES_KEY, reg->sup->conf->node_name)
           != REDIS_OK)
    {
        reg->on_removed = NULL;
        done(reg);
    }
}


void
offload_registry_stop(offload_registry_t *reg)
{
    reg->on_removed = NULL;
    ev_timer_stop(reg->sup->loop, &reg->heartbeat);
    offload_redis_conn_stop(&reg->conn);
}


void
offload_registry_forget(offload_registry_t *reg)
{
    ev_timer_stop(reg->sup->loop, &reg->heartbeat);
    offload_redis_conn_forget(&reg->conn);
}
