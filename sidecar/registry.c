/*
 * registry.c -- announces this node in Redis: every heartbeat the supervisor
 * SETs offload:node:<name> to a JSON document (its pid, start time, each
 * pool's state and restart count and the pid of every worker slot) with a
 * TTL of max(5 s, 3 heartbeats), and SADDs the name to offload:nodes.  A
 * node that stops heartbeating disappears when its key expires; a clean
 * shutdown removes it at once.
 */

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <jansson.h>

#include "clock.h"
#include "log.h"
#include "registry.h"
#include "supervisor.h"


/* A worker as its scoreboard slot shows it: state, the job it runs and
 * for how long, what its process has done. */
static json_t *
worker_json(const offload_slot_t *slot, int64_t now_us)
{
    json_t                   *w;
    offload_sb_state_e        state;
    const offload_sb_slot_t  *sb = slot->sb;

    if (slot->pid == 0) {
        return json_pack("{s:i,s:n,s:s}", "slot", slot->index, "pid",
                         "state", "down");
    }

    state = offload_sb_state(sb);
    w = json_pack("{s:i,s:i,s:s,s:I,s:I}", "slot", slot->index, "pid",
                  (int) slot->pid, "state", offload_sb_state_name(state),
                  "jobs_ok", (json_int_t) sb->jobs_ok, "jobs_failed",
                  (json_int_t) sb->jobs_failed);

    if (w != NULL && state == OFFLOAD_SB_BUSY) {
        json_object_set_new(w, "job", json_string(sb->job_id));
        json_object_set_new(w, "job_ms",
                            json_integer((now_us - sb->job_start_us) / 1000));
    }

    return w;
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
    doc = json_pack("{s:i,s:s,s:I,s:I,s:I,s:o}",
                    "v", OFFLOAD_PROTO_VERSION,
                    "node", sup->conf->node_name,
                    "pid", (json_int_t) getpid(),
                    "started", (json_int_t) sup->started_ms,
                    "heartbeat", (json_int_t) now_ms,
                    "queues", queues);
    if (doc == NULL) {
        return NULL;
    }

    for (p = 0; p < sup->npools; p++) {
        pool = &sup->pools[p];
        workers = json_array();

        if (json_object_set_new(queues, pool->queue->name,
                                json_pack("{s:s,s:s,s:I,s:o}",
                                          "handler",
                                          pool->queue->handler->name,
                                          "state",
                                          pool->failed ? "failed" : "ok",
                                          "restarts",
                                          (json_int_t) pool->restarts,
                                          "workers", workers))
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

    text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
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
    char                  *json;
    redisAsyncContext     *ac = reg->conn.ac;
    offload_supervisor_t  *sup = reg->sup;

    if (!reg->conn.ready) {
        return;
    }

    json = offload_registry_json(sup, offload_wall_ms());
    if (json == NULL) {
        log_error("registry: out of memory");
        return;
    }

    ttl = (3 * sup->conf->heartbeat_ms + 999) / 1000;
    if (ttl < 5) {
        ttl = 5;
    }

    if (redisAsyncCommand(ac, reply_cb, NULL, "SET %s %s EX %d", reg->key,
                          json, ttl)
        != REDIS_OK
        || redisAsyncCommand(ac, reply_cb, NULL, "SADD %s %s",
                             OFFLOAD_NODES_KEY, sup->conf->node_name)
           != REDIS_OK)
    {
        log_warn("registry: cannot send the heartbeat");
    }

    free(json);
}


void
offload_registry_update(offload_registry_t *reg)
{
    announce(reg);
}


static void
heartbeat_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) loop;
    (void) revents;

    announce(w->data);
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
    redisAsyncContext  *ac = reg->conn.ac;

    ev_timer_stop(reg->sup->loop, &reg->heartbeat);
    reg->on_removed = done;

    if (!reg->conn.ready
        || redisAsyncCommand(ac, reply_cb, NULL, "DEL %s", reg->key)
           != REDIS_OK
        || redisAsyncCommand(ac, removed_cb, reg, "SREM %s %s",
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
