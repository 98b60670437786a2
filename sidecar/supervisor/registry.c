/*
 * registry.c -- announces this node in Redis: every heartbeat the supervisor
 * SETs offload:{ctl}:node:<name> to a JSON document (its pid, start time, each
 * pool's state and restart count and the pid of every worker slot) with a
 * TTL of max(5 s, 3 heartbeats), and SADDs the name to offload:{ctl}:nodes.  A
 * node that stops heartbeating disappears when its key expires; a clean
 * shutdown removes it at once.  Along with it, offload:{ctl}:node:<name>:runs
 * holds each pool's run-time window as fine buckets, so that the status
 * can take the quantiles of a queue several nodes serve (its own key:
 * the document, which every status answer carries, stays small).
 *
 * Queues may live on different Redis servers (a queue's own "redis"): the
 * supervisor keeps one link per distinct one and does all of the above on
 * each, the document there listing the queues that live there, so that
 * whoever reads one Redis (nginx, offloadctl) sees the node serve them.
 *
 * A Redis Cluster is one keyspace on several masters: a link per queue
 * slot, to its master, for the queue's own work (its stats here, claims,
 * retries), and one to the control slot's master (the control shard) for
 * the node-level keys: ONE document there lists all the node's queues of
 * that cluster, and the drain flag and events are there (the cancel lists
 * are per queue, in each queue's slot: cancel.c).  A
 * "control" link is one that holds node-level keys: any link to a plain
 * Redis or a Sentinel master, a cluster's to the control slot.
 */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "clock.h"
#include "eviction.h"
#include "log.h"
#include "node_lease.h"
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
 * it runs and for how long, its process's RSS and CPU, its history.  A
 * slot a reload has not rolled onto yet shows the process of the previous
 * configuration that still serves it ("retiring"), not "down". */
static json_t *
worker_json(const offload_slot_t *slot, int64_t now_us)
{
    json_t                      *w;
    offload_sb_state_e           state;
    offload_slot_counts_t        c;
    const offload_slot_t        *proc, *twin;
    const offload_sb_slot_t     *sb;
    const offload_slot_stats_t  *st;

    offload_stats_slot_counts(slot, &c);

    proc = slot;
    if (slot->pid == 0 && !slot->pool->retired) {
        twin = offload_slot_twin(slot->pool->sup, slot);
        if (twin != NULL && twin->pid != 0) {
            proc = twin;
        }
    }

    /* the process's figures; the slot's history (a reload moved it from
     * the twin to the slot already) */
    sb = proc->sb;
    st = &proc->stats;

    w = json_pack("{s:s,s:i,s:I,s:I,s:I,s:I,s:I,s:I,s:s}",
                  "queue", slot->pool->queue->name,
                  "slot", slot->index,
                  "jobs_ok", (json_int_t) c.ok,
                  "jobs_failed", (json_int_t) c.failed,
                  "jobs_crashed", (json_int_t) c.crashed,
                  "jobs_cancelled", (json_int_t) c.cancelled,
                  "jobs_expired", (json_int_t) c.expired,
                  "restarts", (json_int_t) slot->stats.restarts,
                  "last_exit", slot->stats.last_exit);
    if (w == NULL) {
        return NULL;
    }

    if (proc->pid == 0) {
        json_object_set_new(w, "pid", json_null());
        json_object_set_new(w, "state", json_string("down"));
        return w;
    }

    if (proc != slot) {
        json_object_set_new(w, "retiring", json_true());
    }

    state = offload_sb_state(sb);
    json_object_set_new(w, "pid", json_integer(proc->pid));
    json_object_set_new(w, "state",
                        json_string(offload_sb_state_name(state)));
    json_object_set_new(w, "rss", json_integer(st->rss));
    json_object_set_new(w, "fds", json_integer(sb->fds));
    json_object_set_new(w, "held", json_integer(st->held));
    json_object_set_new(w, "cpu_user", json_real(round1(st->cpu_user)));
    json_object_set_new(w, "cpu_sys", json_real(round1(st->cpu_sys)));
    json_object_set_new(w, "uptime_ms",
                        json_integer((now_us - proc->started_us) / 1000));

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
    json_t                      *q, *metrics;
    uint64_t                     retries = 0, refused;
    offload_slot_counts_t        c;
    const offload_pool_stats_t  *ps = &pool->stats;

    for (i = 0; i < pool->nslots; i++) {
        offload_stats_slot_counts(&pool->slots[i], &c);
        retries += c.retried;
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

    metrics = offload_hm_json(pool->metrics);
    if (metrics != NULL) {
        json_object_set_new(q, "handler_metrics", metrics);
    }

    refused = __atomic_load_n(&pool->metrics->refused, __ATOMIC_RELAXED);
    if (refused > 0) {
        json_object_set_new(q, "handler_metrics_refused",
                            json_integer((json_int_t) refused));
    }

    return q;
}


char *
offload_registry_json(const offload_supervisor_t *sup,
    const offload_redis_endpoint_t *ep, int64_t now_ms,
    const offload_redis_clock_t *clock)
{
    int                    i;
    char                  *text;
    size_t                 p;
    json_t                *doc, *queues, *workers;
    int64_t                now_us = offload_mono_us();
    const offload_pool_t  *pool;

    queues = json_object();
    doc = json_pack("{s:i,s:s,s:I,s:I,s:I,s:o,s:I,s:b,s:o}",
                    "v", OFFLOAD_PROTO_VERSION,
                    "node", sup->conf->node_name,
                    "pid", (json_int_t) getpid(),
                    "started",
                    (json_int_t) (now_ms - (now_us - sup->started_us) / 1000),
                    "heartbeat", (json_int_t) now_ms,
                    "clock_offset_ms", clock->known
                                       ? json_integer(clock->offset_ms)
                                       : json_null(),
                    "log_lines_lost", (json_int_t) offload_log_lost_total(),
                    "drained", sup->drained,
                    "queues", queues);
    if (doc == NULL) {
        return NULL;
    }

    for (p = 0; p < sup->npools; p++) {
        pool = &sup->pools[p];
        if (ep != NULL
            && !offload_redis_endpoint_same_keys(ep, &pool->queue->redis))
        {
            continue;
        }

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
 * each pool's run-time window that counted something, of the pools whose
 * queue lives on ep's keyspace. */
static char *
runs_json(const offload_supervisor_t *sup, const offload_redis_endpoint_t *ep)
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
        if (!offload_redis_endpoint_same_keys(ep,
                                              &sup->pools[p].queue->redis))
        {
            continue;
        }

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


/* An answer to what the registry sends every heartbeat: while Redis
 * refuses it, it refuses it at every heartbeat (offload_log_refused()).
 * Returns 1 for a refusal. */
static int
refused(offload_link_t *link, unsigned long *count, const char *what,
    redisReply *reply)
{
    return offload_log_refused(count, link->name, what,
                               reply->type == REDIS_REPLY_ERROR
                               ? reply->str : NULL);
}


static void
written_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    offload_link_t  *link = privdata;

    (void) ac;

    if (r != NULL) {                    /* NULL: disconnected */
        (void) refused(link, &link->refused, "heartbeat", r);
    }
}


static int
on_link(const offload_link_t *link, const offload_pool_t *pool)
{
    return offload_redis_endpoint_same(&link->ep, &pool->queue->redis);
}


/* The node document's lifetime, and the lease's: a few heartbeats. */
static int
doc_ttl_s(const offload_supervisor_t *sup)
{
    int  ttl = (3 * sup->conf->heartbeat_ms + 999) / 1000;

    return ttl < 5 ? 5 : ttl;
}


/* Stamps the link's queues served now (OFFLOAD_QUEUES_KEY), by Redis'
 * clock: the queues that outlive their last node in status and metrics.
 * The script also forgets the stamps too old to be read. */
static void
served(offload_link_t *link)
{
    char                   now[24];
    size_t                 p, n = 4;
    const char           **argv;
    offload_supervisor_t  *sup = link->reg->sup;

    argv = calloc(5 + sup->npools, sizeof(char *));
    if (argv == NULL) {
        return;
    }

    snprintf(now, sizeof(now), "%lld",
             (long long) offload_redis_clock_ms(&link->conn));
    argv[0] = "EVAL";
    argv[1] = offload_queues_stamp_script;
    argv[2] = "1";
    argv[3] = OFFLOAD_QUEUES_KEY;
    argv[n++] = now;

    for (p = 0; p < sup->npools; p++) {
        if (on_link(link, &sup->pools[p])) {
            argv[n++] = sup->pools[p].queue->name;
        }
    }

    if (n > 5
        && offload_redis_command_argv(&link->conn, written_cb, link, (int) n,
                                      argv, NULL)
           != REDIS_OK)
    {
        log_warn("%s: cannot stamp its queues served", link->name);
    }

    free(argv);
}


static void
announce(offload_link_t *link)
{
    int                    ttl;
    char                  *json, *runs;
    offload_registry_t    *reg = link->reg;
    offload_supervisor_t  *sup = reg->sup;

    if (!link->control || !link->conn.ready || !sup->leased || reg->leaving)
    {
        return;
    }

    /* stamped by Redis' clock, as readers on other hosts read it */
    json = offload_registry_json(sup, &link->ep,
                                 offload_redis_clock_ms(&link->conn),
                                 &link->conn.clock);
    runs = runs_json(sup, &link->ep);
    if (json == NULL || runs == NULL) {
        log_error("registry: out of memory");
        free(json);
        free(runs);
        return;
    }

    ttl = doc_ttl_s(sup);

    if (offload_redis_command(&link->conn, written_cb, link,
                              "SET %s %s EX %d", reg->runs_key, runs, ttl)
        != REDIS_OK
        || offload_redis_command(&link->conn, written_cb, link,
                                 "SET %s %s EX %d", reg->key, json, ttl)
           != REDIS_OK
        || offload_redis_command(&link->conn, written_cb, link, "SADD %s %s",
                                 OFFLOAD_NODES_KEY, sup->conf->node_name)
           != REDIS_OK)
    {
        log_warn("%s: cannot send the heartbeat", link->name);
    }

    free(json);
    free(runs);

    served(link);
}


/* The node is drained when any of its Redis servers says so (offloadctl
 * drain sets the flag on every one it reads). */
static void
drain_known(offload_link_t *link, redisReply *reply)
{
    size_t               l;
    int                  drained = 0;
    offload_registry_t  *reg = link->reg;

    if (reply->type == REDIS_REPLY_ERROR) {
        return;
    }

    link->drained = reply->type == REDIS_REPLY_STRING;

    /* the flag lives while its node does: a week after the node was last
     * seen (gone for good, renamed), it is forgotten */
    if (link->drained) {
        offload_redis_command(&link->conn, NULL, NULL, "EXPIRE %s %d",
                              reg->drain_key, OFFLOAD_DRAIN_TTL_S);
    }

    for (l = 0; l < reg->nlinks; l++) {
        drained |= reg->links[l].drained;
    }

    offload_supervisor_drain(reg->sup, drained);
}


static void
drain_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    (void) ac;

    if (r != NULL) {
        drain_known(privdata, r);
    }
}


/* The link whose Redis holds the node's name lease: the first that keeps
 * node-level keys (offload_registry_main()'s).  One lease, not one per
 * Redis: two sidecars holding one each would both wait for ever. */
static offload_link_t *
lease_link(offload_registry_t *reg)
{
    size_t  l;

    for (l = 0; l < reg->nlinks; l++) {
        if (reg->links[l].control) {
            return &reg->links[l];
        }
    }

    return NULL;
}


/* The node's workers read once it holds its name, and once they know
 * whether it is drained: a node restarted drained (a rolling restart's
 * drain, restart, resume) took up to prefetch jobs a worker before its
 * first heartbeat read the flag.  So a new grant waits for the flag,
 * read after the lease's answer on the same link: an error reading it
 * (a refused key) grants all the same, a lost link does not. */
static void
granted(offload_link_t *link)
{
    size_t               l;
    offload_registry_t  *reg = link->reg;

    if (reg->sup->leased || reg->leaving) {
        return;
    }

    offload_supervisor_lease(reg->sup, 1);

    for (l = 0; l < reg->nlinks; l++) {
        announce(&reg->links[l]);
    }
}


static void
drain_then_grant_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    offload_link_t  *link = privdata;

    (void) ac;

    if (r == NULL) {
        link->reg->granting = 0;        /* disconnected: asked again */
        return;
    }

    drain_known(link, r);

    /* not if an answer since says the lease is lost */
    if (link->reg->granting) {
        link->reg->granting = 0;
        granted(link);
    }
}


static void
leased(void *data, int held)
{
    offload_link_t      *link = data;
    offload_registry_t  *reg = link->reg;

    if (held == 0) {
        reg->granting = 0;              /* a grant on its way is off */
    }

    if (held == -1 || reg->sup->leased == held) {
        return;                         /* no answer, or as it was */
    }

    if (!held) {
        offload_supervisor_lease(reg->sup, 0);
        return;
    }

    if (reg->granting) {
        return;                         /* its drain flag asked already */
    }

    if (offload_redis_command(&link->conn, drain_then_grant_cb, link,
                              "GET %s", reg->drain_key)
        != REDIS_OK)
    {
        log_warn("%s: cannot read the drain flag", link->name);
        return;
    }

    reg->granting = 1;
}


static void
keep_lease(offload_link_t *link)
{
    if (!link->reg->leaving && link == lease_link(link->reg)
        && offload_lease_keep(&link->conn, link->reg->lease_key,
                              1000 * doc_ttl_s(link->reg->sup), link->name,
                              leased, link)
           != 0)
    {
        log_warn("%s: cannot ask for the node_name lease", link->name);
    }
}


void
offload_registry_update(offload_registry_t *reg)
{
    size_t  l;

    for (l = 0; l < reg->nlinks; l++) {
        announce(&reg->links[l]);
    }
}


static void
queue_stats_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    size_t                 p, e = 0;
    redisReply            *reply = r;
    offload_link_t        *link = privdata;
    offload_supervisor_t  *sup = link->reg->sup;

    (void) ac;

    if (reply == NULL) {
        return;                         /* disconnected */
    }

    if (!refused(link, &link->stats_refused, "queue stats read", reply)
        && reply->type == REDIS_REPLY_ARRAY)
    {
        for (p = 0; p < sup->npools && e < reply->elements; p++) {
            if (on_link(link, &sup->pools[p])) {
                offload_stats_set_queue(&sup->pools[p], reply->element[e++]);
            }
        }
    }

    announce(link);
}


/* Whether a worker of the pool has started (its init over): its queue's
 * stream is made again if it went (offload_queue_stats_script), and only
 * then, or a queue whose workers cannot start would take jobs nobody runs
 * rather than be unknown (404). */
static int
serving(const offload_pool_t *pool)
{
    int  i;

    if (pool->failed) {
        return 0;
    }

    for (i = 0; i < pool->nslots; i++) {
        if (pool->slots[i].pid != 0
            && offload_sb_init_done(pool->slots[i].sb))
        {
            return 1;
        }
    }

    return 0;
}


/* Each worker reads its queue's Redis' clock by the base its link
 * measured last (redis_clock.c): handed at each measure (every connect
 * and heartbeat), and to a worker as it starts (spawn()). */
static void
hand_clock_bases(offload_supervisor_t *sup)
{
    int              i;
    size_t           p;
    int64_t          base;
    offload_pool_t  *pool;

    for (p = 0; p < sup->npools; p++) {
        pool = &sup->pools[p];
        base = offload_pool_clock_base(pool);

        for (i = 0; i < pool->nslots; i++) {
            offload_sb_set_clock_base(pool->slots[i].sb, base);
        }
    }
}


static void
clock_measured(offload_redis_conn_t *rc)
{
    offload_link_t  *link = rc->data;

    hand_clock_bases(link->reg->sup);
}


/* One link's heartbeat: read the drain flag, ask Redis about the queues
 * that live there, then announce (when the answer is in). */
static void
heartbeat_link(offload_link_t *link)
{
    size_t                 p, n, k, i;
    const char           **argv;
    offload_supervisor_t  *sup = link->reg->sup;

    if (!link->conn.ready || link->reg->leaving) {
        return;
    }

    offload_redis_clock_ask(&link->conn, clock_measured);
    offload_expiry_check(&link->expiry, &link->conn);
    keep_lease(link);

    if (link->control
        && offload_redis_command(&link->conn, drain_cb, link, "GET %s",
                                 link->reg->drain_key)
           != REDIS_OK)
    {
        log_warn("%s: cannot read the drain flag", link->name);
    }

    for (p = 0, k = 0; p < sup->npools; p++) {
        k += on_link(link, &sup->pools[p]);
    }

    if (k == 0) {
        announce(link);
        return;
    }

    /* EVAL script numkeys (stream dead retry)... group served... */
    n = 3 + 3 * k + 1 + k;
    argv = calloc(n, sizeof(char *));
    if (argv == NULL) {
        announce(link);
        return;
    }

    argv[0] = "EVAL";
    argv[1] = offload_queue_stats_script;
    snprintf(link->nkeys, sizeof(link->nkeys), "%zu", 3 * k);
    argv[2] = link->nkeys;
    argv[3 + 3 * k] = OFFLOAD_GROUP;
    for (p = 0, i = 0; p < sup->npools; p++) {
        if (on_link(link, &sup->pools[p])) {
            argv[3 + 3 * i] = sup->pools[p].stream_key;
            argv[4 + 3 * i] = sup->pools[p].dead_key;
            argv[5 + 3 * i] = sup->pools[p].retry_key;
            argv[4 + 3 * k + i] = serving(&sup->pools[p]) ? "1" : "0";
            i++;
        }
    }

    if (offload_redis_command_argv(&link->conn, queue_stats_cb, link, (int) n,
                                   argv, NULL)
        != REDIS_OK)
    {
        announce(link);
    }

    free(argv);
}


/* Every heartbeat: sample the workers, then each link's round. */
static void
heartbeat_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    size_t               l;
    offload_registry_t  *reg = w->data;

    (void) loop;
    (void) revents;

    offload_stats_tick(reg->sup);

    for (l = 0; l < reg->nlinks; l++) {
        heartbeat_link(&reg->links[l]);
    }
}


static void
connected(offload_redis_conn_t *rc)
{
    offload_link_t  *link = rc->data;

    offload_redis_clock_ask(rc, clock_measured);
    offload_eviction_check(rc, link->name);
    offload_expiry_reset(&link->expiry);
    keep_lease(link);
}


/* A link for ep unless one exists.  Returns 0 or -1 (out of memory). */
static int
add_link(offload_registry_t *reg, const offload_redis_endpoint_t *ep)
{
    char             addr[280];
    offload_link_t  *link;

    for (link = reg->links; link < reg->links + reg->nlinks; link++) {
        if (offload_redis_endpoint_same(&link->ep, ep)) {
            return 0;
        }
    }

    link = &reg->links[reg->nlinks];
    memset(link, 0, sizeof(*link));

    if (offload_redis_endpoint_copy(&link->ep, ep) != 0) {
        return -1;
    }

    link->reg = reg;
    link->control = offload_redis_endpoint_is_control(ep);
    snprintf(link->name, sizeof(link->name), "registry %s",
             offload_redis_endpoint_name(ep, addr, sizeof(addr)));
    offload_expiry_init(&link->expiry, link->name, reg->sup->loop);
    reg->nlinks++;
    return 0;
}


int
offload_registry_start(offload_registry_t *reg, offload_supervisor_t *sup)
{
    size_t                    p, l;
    double                    every = sup->conf->heartbeat_ms / 1000.0;
    offload_redis_endpoint_t  ep;

    reg->sup = sup;
    snprintf(reg->key, sizeof(reg->key), OFFLOAD_NODE_FMT,
             sup->conf->node_name);
    snprintf(reg->runs_key, sizeof(reg->runs_key), OFFLOAD_NODE_RUNS_FMT,
             sup->conf->node_name);
    snprintf(reg->drain_key, sizeof(reg->drain_key), OFFLOAD_DRAIN_FMT,
             sup->conf->node_name);
    snprintf(reg->lease_key, sizeof(reg->lease_key), OFFLOAD_LEASE_FMT,
             sup->conf->node_name);

    /* at most one per queue and one per queue's control slot, at least
     * one (the top level's: a config has queues, but a link must exist
     * for node-wide events) */
    reg->links = calloc(2 * sup->npools + 1, sizeof(offload_link_t));
    if (reg->links == NULL) {
        return -1;
    }

    for (p = 0; p < sup->npools; p++) {
        ep = sup->pools[p].queue->redis;

        if (add_link(reg, &ep) != 0) {
            return -1;
        }

        ep.slot = offload_redis_control_slot();

        if (ep.nseeds > 0 && add_link(reg, &ep) != 0) {
            return -1;
        }
    }

    if (reg->nlinks == 0 && add_link(reg, &sup->conf->redis) != 0) {
        return -1;
    }

    for (l = 0; l < reg->nlinks; l++) {
        offload_redis_conn_init(&reg->links[l].conn, sup->loop,
                                &reg->links[l].ep, reg->links[l].name,
                                connected, NULL, &reg->links[l]);
    }

    ev_timer_init(&reg->heartbeat, heartbeat_cb, every, every);
    reg->heartbeat.data = reg;
    ev_timer_start(sup->loop, &reg->heartbeat);

    for (l = 0; l < reg->nlinks; l++) {
        offload_redis_conn_start(&reg->links[l].conn);
    }

    return 0;
}


offload_redis_conn_t *
offload_registry_conn(offload_registry_t *reg,
    const offload_redis_endpoint_t *ep)
{
    size_t  l;

    for (l = 0; l < reg->nlinks; l++) {
        if (offload_redis_endpoint_same(&reg->links[l].ep, ep)) {
            return &reg->links[l].conn;
        }
    }

    return &reg->links[0].conn;
}


offload_redis_conn_t *
offload_registry_node_conn(offload_registry_t *reg,
    const offload_redis_endpoint_t *ep)
{
    size_t  l;

    for (l = 0; l < reg->nlinks; l++) {
        if (reg->links[l].control
            && offload_redis_endpoint_same_keys(&reg->links[l].ep, ep))
        {
            return &reg->links[l].conn;
        }
    }

    return offload_registry_main(reg);
}


offload_redis_conn_t *
offload_registry_main(offload_registry_t *reg)
{
    size_t  l;

    for (l = 0; l < reg->nlinks; l++) {
        if (reg->links[l].control) {
            return &reg->links[l].conn;
        }
    }

    return &reg->links[0].conn;
}


const char *
offload_registry_refusal(offload_registry_t *reg, const offload_conf_t *conf)
{
    size_t                           q, l;
    static char                      why[OFFLOAD_QUEUE_NAME_MAX + 160];
    const offload_redis_endpoint_t  *ep;

    for (q = 0; q < conf->nqueues; q++) {
        for (l = 0; l < reg->nlinks; l++) {
            if (offload_redis_endpoint_same(&reg->links[l].ep,
                                            &conf->queues[q].redis))
            {
                break;
            }
        }

        ep = &conf->queues[q].redis;

        if (l == reg->nlinks && ep->nseeds > 0) {
            /* a link to its slot: its seeds or login are what changed */
            for (l = 0; l < reg->nlinks; l++) {
                if (reg->links[l].ep.nseeds > 0
                    && reg->links[l].ep.slot == ep->slot)
                {
                    break;
                }
            }

            snprintf(why, sizeof(why), l < reg->nlinks
                     ? "queue %s: its Redis Cluster seeds or login (redis, "
                       "redis_user, password) changed, which needs a restart"
                     : "a new queue on a Redis Cluster needs a restart "
                       "(queue %s: the node connects to its slot's master "
                       "at start)", conf->queues[q].name);
            return why;
        }

        if (l == reg->nlinks) {
            return "a queue's redis, redis_user, password, db or "
                   "sentinel_user/sentinel_password cannot name a Redis "
                   "the node does not use yet on reload";
        }
    }

    return NULL;
}


void
offload_registry_reconf(offload_registry_t *reg, const offload_conf_t *conf)
{
    size_t  l;

    for (l = 0; l < reg->nlinks; l++) {
        reg->links[l].ep.timeout_ms = conf->redis.timeout_ms;
    }

    /* the document's lifetime and jobs/s follow the new heartbeat: so
     * must its period, and the lease's lifetime at once (a longer
     * heartbeat would outlive the last one) */
    reg->heartbeat.repeat = conf->heartbeat_ms / 1000.0;
    ev_timer_again(reg->sup->loop, &reg->heartbeat);

    for (l = 0; l < reg->nlinks; l++) {
        if (reg->links[l].conn.ready) {
            keep_lease(&reg->links[l]);
        }
    }
}


static void
removed_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    offload_registry_t  *reg = privdata;

    reply_cb(ac, r, NULL);

    if (reg->removing > 0 && --reg->removing == 0 && reg->on_removed) {
        reg->on_removed(reg);
        reg->on_removed = NULL;
    }
}


void
offload_registry_remove(offload_registry_t *reg, offload_registry_done_pt done)
{
    size_t                 l;
    offload_redis_conn_t  *conn;

    /* a heartbeat's answers still on their way would write the node's
     * document again, for its lifetime, after its removal: nginx would
     * take jobs for a node that is gone */
    ev_timer_stop(reg->sup->loop, &reg->heartbeat);
    reg->leaving = 1;
    reg->on_removed = done;
    reg->removing = 1;              /* until every command is sent */

    /* the documents of another sidecar under this name stay */
    for (l = 0; reg->sup->leased && l < reg->nlinks; l++) {
        conn = &reg->links[l].conn;

        if (&reg->links[l] == lease_link(reg)) {
            /* with the lease, if it is still this process's */
            if (offload_lease_release(conn, reg->lease_key, reg->key,
                                      reg->runs_key, OFFLOAD_NODES_KEY,
                                      reg->sup->conf->node_name, removed_cb,
                                      reg)
                == 0)
            {
                reg->removing++;
            }

        } else if (reg->links[l].control && conn->ready
                   && offload_redis_command(conn, reply_cb, NULL,
                                            "DEL %s %s", reg->key,
                                            reg->runs_key)
                      == REDIS_OK
                   && offload_redis_command(conn, removed_cb, reg,
                                            "SREM %s %s", OFFLOAD_NODES_KEY,
                                            reg->sup->conf->node_name)
                      == REDIS_OK)
        {
            reg->removing++;
        }
    }

    removed_cb(NULL, NULL, reg);
}


void
offload_registry_stop(offload_registry_t *reg)
{
    size_t  l;

    reg->on_removed = NULL;
    ev_timer_stop(reg->sup->loop, &reg->heartbeat);

    for (l = 0; l < reg->nlinks; l++) {
        offload_redis_conn_stop(&reg->links[l].conn);
    }
}


void
offload_registry_free(offload_registry_t *reg)
{
    size_t  l;

    for (l = 0; l < reg->nlinks; l++) {
        offload_redis_endpoint_free(&reg->links[l].ep);
    }

    free(reg->links);
    reg->links = NULL;
    reg->nlinks = 0;
}


void
offload_registry_forget(offload_registry_t *reg)
{
    size_t  l;

    ev_timer_stop(reg->sup->loop, &reg->heartbeat);

    for (l = 0; l < reg->nlinks; l++) {
        offload_redis_conn_forget(&reg->links[l].conn);
    }
}
