
/*
 * ngx_http_offload_cluster.c -- offload_redis cluster://host:port,...: a
 * Redis Cluster (sync and async jobs, the jobs endpoint, status,
 * admission).
 *
 * This file owns the slot map of a cluster peer.  Each worker asks the
 * seeds in turn, on a link of its own (the link's connect timeout and
 * watchdog are each one's deadline), CLUSTER SLOTS; every master the answer
 * names becomes an ordinary peer of its own (command, subscriber and bulk
 * links), made on first sight; one a later map no longer names is stopped
 * once no request points at it, and its peer reused for the next master
 * first seen (a dead master is not tried forever).  A request then takes
 * the master of its queue's slot (offload_key_slot() of the queue, the hash
 * tag of every per-queue key); the node registry, status and admission
 * reads go to the master of the control slot, offload_key_slot("ctl").
 * Until a map is known a request is answered 503 redis_unavailable with
 * Retry-After.
 *
 * A map that contradicts a MOVED just followed (its seed is behind) does
 * not take the slot back: the next seed is asked, a few times at most.
 *
 * The map is asked again on a MOVED reply to any command, when a
 * master's connection is lost or cannot be made (those at most once per
 * NGX_HTTP_OFFLOAD_REMAP_RETRY, see _refresh()), and every
 * NGX_HTTP_OFFLOAD_REMAP_RETRY while a master it names stays down (its
 * replica is promoted a node timeout after it died).  A job's XADD answered
 * MOVED was not run: it is sent again to the master named (the map takes
 * that slot at once); ASK: ASKING and the XADD on the node named, the map
 * unchanged; at most NGX_HTTP_OFFLOAD_REDIRECTS of those per job.  A big
 * body's EXISTS answered MOVED goes to the master named the same way (ASK:
 * 503, its slices on the bulk link could not follow); a result's look
 * answered MOVED or ASK too, with a budget of its own.  A big body's
 * slices already written on the old master are not: 503, the job was not
 * added.  A job read (GET/DELETE /jobs/<id>, on the master of the id's
 * slot tag) answered MOVED or ASK goes to the node named the same way
 * (ngx_http_offload_cluster_moved()).
 * TRYAGAIN and CLUSTERDOWN (a slot in migration, a cluster without a
 * quorum) answer 503 with Retry-After: nothing was added.
 *
 * The masters' peers share one pending table (the cluster peer's): a
 * result heard on any subscriber finds its request.  A job's looks at its
 * result key (recovery, a big result's read, the last look at the
 * deadline) go to the master the map names for its queue at that moment,
 * not to the one it was sent to, which may have died since.
 *
 * Replies: a queue's jobs name its sharded channel, offload:{<queue>}:
 * reply:<nonce> (SPUBLISHed by the sidecar, kept on the queue's shard),
 * once its master's subscriber confirmed SSUBSCRIBE to it; before (the
 * first job of a queue accepted asks for it), they name this worker's
 * channel, classic PUBLISH, which Redis Cluster forwards to every node:
 * each master's subscriber hears those, and the table drops the copies of
 * a request already answered.  hiredis 0.14 knows no sharded pub/sub: it
 * hands a subscribed context's push to the callback of a channel it saw
 * SUBSCRIBEd, so each sharded channel is SUBSCRIBEd too (the same name; a
 * sidecar that PUBLISHes to it is heard as well).  A slot that leaves a
 * master ends its sharded subscriptions there (sunsubscribe): the map is
 * asked again, the channel subscribed on the new master, and once it
 * confirms, the jobs of that queue look at their result keys (what was
 * published meanwhile went unheard).
 */


#include "ngx_http_offload_module.h"
#include "offload_slot.h"


/* a map that still gives a master the slot it said left (the seed did not
 * apply the move yet) is asked again after this, at most STALE times; one
 * that contradicts a MOVED, after this times the maps in a row that did */
#define NGX_HTTP_OFFLOAD_STALE_DELAY    100
#define NGX_HTTP_OFFLOAD_STALE          20


struct ngx_http_offload_cluster_s {
    offload_addr_t               *seeds;
    ngx_uint_t                    nseeds;

    /* per worker process */
    ngx_http_offload_peer_t      *peer;        /* the cluster's own */
    ngx_http_offload_link_t       query;       /* asks seeds[asked] */
    ngx_uint_t                    asked;
    ngx_uint_t                    tried;       /* seeds, this round */
    ngx_uint_t                    failed;      /* rounds, in a row */
    ngx_array_t                   masters;     /* ngx_http_offload_peer_t * */
    ngx_event_t                   retry;       /* no seed answered */
    ngx_event_t                   sweep;       /* retire unused masters */
    ngx_event_t                   count;       /* wait_replicas=all: the
                                                  map again, for its
                                                  replicas */
    uint16_t                     *slot;        /* a master's index + 1 */
    ngx_uint_t                    stale;       /* maps in a row that gave
                                                  a slot back to a master
                                                  it left */
    ngx_uint_t                    moved_slot;  /* + 1: of a MOVED followed,
                                                  until a map agrees */
    ngx_uint_t                    moved_to;    /* its master's index + 1 */
    ngx_uint_t                    contradicted;  /* maps in a row that did
                                                    not */
    ngx_msec_t                    unmapped;    /* when a slot without
                                                  a master last asked for
                                                  a round */
    ngx_msec_t                    begun;       /* the last round, 0 for
                                                  none yet */
    unsigned                      asking:1;    /* a round is on */
    unsigned                      again:1;     /* asked for meanwhile */
    unsigned                      counting:1;  /* a round of the count
                                                  timer's */
};


static ngx_http_offload_peer_t *ngx_http_offload_cluster_owner(
    ngx_http_offload_cluster_t *cl, u_char *key, size_t len);
static void ngx_http_offload_cluster_round(ngx_http_offload_cluster_t *cl);
static void ngx_http_offload_cluster_count(ngx_event_t *ev);
static void ngx_http_offload_cluster_replicas(ngx_http_offload_cluster_t *cl,
    ngx_uint_t m, ngx_uint_t n);
static void ngx_http_offload_cluster_query_up(ngx_http_offload_link_t *link);
static void ngx_http_offload_cluster_query_down(
    ngx_http_offload_link_t *link);
static void ngx_http_offload_cluster_question(ngx_http_offload_link_t *link);
static void ngx_http_offload_cluster_answer(redisAsyncContext *ac, void *r,
    void *privdata);
static ngx_uint_t ngx_http_offload_cluster_contradicts(
    ngx_http_offload_cluster_t *cl, ngx_http_offload_link_t *link);
static ngx_uint_t ngx_http_offload_cluster_down(
    ngx_http_offload_cluster_t *cl);
static ngx_int_t ngx_http_offload_cluster_map(ngx_http_offload_cluster_t *cl,
    redisReply *reply, offload_addr_t *asked);
static ngx_int_t ngx_http_offload_cluster_node(redisReply *node,
    offload_addr_t *asked, offload_addr_t *addr);
static ngx_int_t ngx_http_offload_cluster_master(
    ngx_http_offload_cluster_t *cl, offload_addr_t *addr);
static void ngx_http_offload_cluster_retry(ngx_event_t *ev);
static void ngx_http_offload_cluster_retire(ngx_http_offload_cluster_t *cl);
static ngx_uint_t ngx_http_offload_cluster_busy(
    ngx_http_offload_cluster_t *cl, ngx_http_offload_peer_t *peer);
static void ngx_http_offload_cluster_sweep(ngx_event_t *ev);
static void ngx_http_offload_cluster_revive(ngx_http_offload_cluster_t *cl,
    ngx_http_offload_peer_t *peer, offload_addr_t *addr);
static ngx_int_t ngx_http_offload_cluster_target(ngx_str_t *err,
    offload_addr_t *answered, ngx_uint_t *slot, offload_addr_t *addr);
static void ngx_http_offload_cluster_rehome(ngx_http_offload_cluster_t *cl);
static ngx_http_offload_shard_t *ngx_http_offload_shard_find(
    ngx_http_offload_peer_t *peer, u_char *queue, size_t len);
static ngx_http_offload_shard_t *ngx_http_offload_shard_add(
    ngx_http_offload_peer_t *peer, u_char *queue, size_t len);
static void ngx_http_offload_shard_subscribe(ngx_http_offload_peer_t *peer,
    ngx_http_offload_shard_t *sh);
static size_t ngx_http_offload_shard_channel(u_char *buf, u_char *queue,
    size_t len);


/* cluster://host[:port][,host[:port]...]: the seeds, resolved now */

ngx_http_offload_cluster_t *
ngx_http_offload_cluster_parse(ngx_conf_t *cf, ngx_str_t *url)
{
    ngx_int_t                    rc;
    ngx_http_offload_cluster_t  *cl;

    cl = ngx_pcalloc(cf->pool, sizeof(ngx_http_offload_cluster_t));
    if (cl == NULL) {
        return NULL;
    }

    rc = ngx_http_offload_addrs_parse(cf,
                                      url->data + sizeof("cluster://") - 1,
                                      url->data + url->len, 6379, &cl->seeds,
                                      &cl->nseeds);
    if (rc == NGX_OK) {
        return cl;
    }

    if (rc == NGX_DECLINED) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid cluster address \"%V\" in "
                           "\"offload_redis\" directive, expected "
                           "cluster://host:port[,host:port...]", url);
    }

    return NULL;
}


/* from the cluster peer's ngx_http_offload_peer_start() */

void
ngx_http_offload_cluster_start(ngx_http_offload_peer_t *peer, ngx_log_t *log)
{
    ngx_http_offload_cluster_t  *cl;

    cl = peer->cluster;
    cl->peer = peer;

    cl->slot = ngx_pcalloc(ngx_cycle->pool,
                           OFFLOAD_SLOTS * sizeof(uint16_t));

    if (cl->slot == NULL
        || ngx_array_init(&cl->masters, ngx_cycle->pool, 4,
                          sizeof(ngx_http_offload_peer_t *))
           != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ALERT, log, 0,
                      "offload: redis %V: out of memory", &peer->name);
        return;
    }

    ngx_http_offload_link_init(&cl->query, peer, "cluster query",
                               ngx_http_offload_cluster_query_up, log);
    cl->query.on_down = ngx_http_offload_cluster_query_down;
    cl->asked = ngx_random() % cl->nseeds;
    cl->query.addr = &cl->seeds[cl->asked];

    cl->retry.handler = ngx_http_offload_cluster_retry;
    cl->retry.data = cl;
    cl->retry.log = log;
    cl->retry.cancelable = 1;

    cl->sweep.handler = ngx_http_offload_cluster_sweep;
    cl->sweep.data = cl;
    cl->sweep.log = log;
    cl->sweep.cancelable = 1;

    cl->count.handler = ngx_http_offload_cluster_count;
    cl->count.data = cl;
    cl->count.log = log;
    cl->count.cancelable = 1;

    if (peer->wait_replicas == NGX_HTTP_OFFLOAD_WAIT_ALL) {
        ngx_add_timer(&cl->count, NGX_HTTP_OFFLOAD_COUNT_INTERVAL);
    }

    ngx_http_offload_cluster_round(cl);
}


void
ngx_http_offload_cluster_stop(ngx_http_offload_peer_t *peer)
{
    ngx_uint_t                   i;
    ngx_http_offload_peer_t    **m;
    ngx_http_offload_cluster_t  *cl;

    cl = peer->cluster;

    if (cl->retry.timer_set) {
        ngx_del_timer(&cl->retry);
    }

    if (cl->sweep.timer_set) {
        ngx_del_timer(&cl->sweep);
    }

    if (cl->count.timer_set) {
        ngx_del_timer(&cl->count);
    }

    ngx_http_offload_link_close(&cl->query);

    m = cl->masters.elts;

    for (i = 0; i < cl->masters.nelts; i++) {
        if (!m[i]->retired) {
            ngx_http_offload_peer_stop(m[i]);
        }
    }
}


/*
 * The peer a queue's commands go to: a plain peer itself; a cluster's, the
 * master of the queue's slot, or NULL while none is known (a round of
 * questions is then on its way, or was less than
 * NGX_HTTP_OFFLOAD_REMAP_RETRY ago: a GET /jobs/<id> names any slot it
 * likes, and a stream of them for a slot nobody serves must not keep the
 * seeds answering CLUSTER SLOTS back to back; a MOVED asks at once, if
 * the last round began that long ago).
 */

ngx_http_offload_peer_t *
ngx_http_offload_cluster_peer(ngx_http_offload_peer_t *peer, u_char *key,
    size_t len)
{
    ngx_http_offload_peer_t     *master;
    ngx_http_offload_cluster_t  *cl;

    cl = peer->cluster;

    if (cl == NULL) {
        return peer;
    }

    master = ngx_http_offload_cluster_owner(cl, key, len);

    if (master == NULL
        && (cl->unmapped == 0
            || ngx_current_msec - cl->unmapped
               >= NGX_HTTP_OFFLOAD_REMAP_RETRY))
    {
        cl->unmapped = ngx_current_msec;
        ngx_http_offload_cluster_refresh(peer);
    }

    return master;
}


/*
 * A submitted job's master again, from the map, before a look at its
 * result (a recovery look, a big result's read, the last look): the master
 * it was sent to may have died, its replica promoted, or lost the queue's
 * slot since.  The masters share the pending table: the request stays
 * where it is in it.  Not while a big read is under way on the old one's
 * bulk link (its slices are queued there).
 */

void
ngx_http_offload_cluster_repeer(ngx_http_offload_ctx_t *ctx)
{
    ngx_http_offload_peer_t  *master;

    if (ctx->peer->parent == NULL || ctx->result.key.len) {
        return;
    }

    master = ngx_http_offload_cluster_owner(ctx->peer->parent->cluster,
                                            ctx->queue.data, ctx->queue.len);

    if (master != NULL && master != ctx->peer) {
        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log, 0,
                       "offload: job of queue \"%V\" now on %V",
                       &ctx->queue, &master->name);
        ctx->peer = master;
        ctx->asked = 0;
    }
}


/* the master of key's slot as the map says, NULL for none */

static ngx_http_offload_peer_t *
ngx_http_offload_cluster_owner(ngx_http_offload_cluster_t *cl, u_char *key,
    size_t len)
{
    uint16_t                   i;
    ngx_http_offload_peer_t  **m;

    i = cl->slot ? cl->slot[offload_key_slot((char *) key, len)] : 0;

    if (i == 0) {
        return NULL;
    }

    m = cl->masters.elts;

    return m[i - 1];
}


/* The command link of the control shard, where the node registry is; NULL
 * while its master is not known. */

ngx_http_offload_link_t *
ngx_http_offload_control_link(ngx_http_offload_peer_t *peer)
{
    peer = ngx_http_offload_cluster_peer(peer, (u_char *) OFFLOAD_CTL_TAG,
                                         sizeof(OFFLOAD_CTL_TAG) - 1);

    return peer ? &peer->command : NULL;
}


/*
 * A round of questions asked for from outside (a MOVED, TRYAGAIN or
 * CLUSTERDOWN, a slot that left, a master down), at most one per
 * NGX_HTTP_OFFLOAD_REMAP_RETRY: under a steady stream of those (two nodes
 * that disagree about a slot) each worker would otherwise ask the seeds
 * back to back, one round per round trip.  The first after a quiet spell
 * goes at once; one asked for sooner after the last round began goes
 * when that much has passed (the retry timer, unless it is due sooner).
 */

void
ngx_http_offload_cluster_refresh(ngx_http_offload_peer_t *peer)
{
    ngx_msec_t                   since, wait;
    ngx_http_offload_cluster_t  *cl;

    cl = peer->cluster;

    /* not after a start that failed (out of memory): no query link */

    if (cl == NULL || cl->query.peer == NULL) {
        return;
    }

    since = ngx_current_msec - cl->begun;

    if (cl->begun == 0 || since >= NGX_HTTP_OFFLOAD_REMAP_RETRY) {
        ngx_http_offload_cluster_round(cl);
        return;
    }

    wait = NGX_HTTP_OFFLOAD_REMAP_RETRY - since;

    if (!cl->retry.timer_set
        || (ngx_msec_int_t) (cl->retry.timer.key - ngx_current_msec - wait)
           > 0)
    {
        ngx_add_timer(&cl->retry, wait);
    }
}


static void
ngx_http_offload_cluster_round(ngx_http_offload_cluster_t *cl)
{
    if (cl->asking) {
        cl->again = 1;
        return;
    }

    if (cl->retry.timer_set) {
        ngx_del_timer(&cl->retry);
    }

    cl->asking = 1;
    cl->again = 0;
    cl->tried = 0;
    cl->begun = ngx_current_msec;

    ngx_http_offload_link_begin(&cl->query,
                                ngx_http_offload_cluster_question);
}


static void
ngx_http_offload_cluster_query_up(ngx_http_offload_link_t *link)
{
    if (link->peer->cluster->asking) {
        ngx_http_offload_cluster_question(link);
    }
}


static void
ngx_http_offload_cluster_question(ngx_http_offload_link_t *link)
{
    const char  *argv[2];
    size_t       argvlen[2];

    argv[0] = "CLUSTER";
    argvlen[0] = 7;
    argv[1] = "SLOTS";
    argvlen[1] = 5;

    /* maybe inside the connect callback, where freeing the context is
     * unsafe: if the question cannot be sent, the watchdog drops it */

    if (ngx_http_offload_link_send(link, ngx_http_offload_cluster_answer,
                                   NULL, 2, argv, argvlen)
        != NGX_OK)
    {
        ngx_add_timer(&link->watchdog, 1);
    }
}


/* the query connection is gone or was never made: the next seed (the
 * rotation is the sentinels' too, ngx_http_offload_link_rotate()) */

static void
ngx_http_offload_cluster_query_down(ngx_http_offload_link_t *link)
{
    ngx_uint_t                   level;
    ngx_msec_t                   delay;
    ngx_http_offload_cluster_t  *cl;

    cl = link->peer->cluster;

    if (ngx_http_offload_link_rotate(link, cl->seeds, cl->nseeds, &cl->asked,
                                     &cl->tried, cl->asking)
        == NGX_DONE)
    {
        cl->asking = 0;
        cl->counting = 0;

        /* the backoff of a connection; the first failure in a row is
         * worth a warning, the retries are not */

        delay = offload_reconnect_delay_ms(cl->failed, ngx_random());
        level = cl->failed++ ? NGX_LOG_INFO : NGX_LOG_WARN;

        ngx_log_error(level, link->log, 0,
                      "offload: redis %V: no seed answered CLUSTER SLOTS, "
                      "asking again in %M ms", &link->peer->name, delay);

        ngx_add_timer(&cl->retry, delay);
    }
}


static void
ngx_http_offload_cluster_retry(ngx_event_t *ev)
{
    ngx_http_offload_cluster_round(ev->data);
}


static void
ngx_http_offload_cluster_answer(redisAsyncContext *ac, void *r,
    void *privdata)
{
    ngx_uint_t                   contradicts, level;
    redisReply                  *reply = r;
    ngx_http_offload_link_t     *link;
    ngx_http_offload_cluster_t  *cl;

    link = ngx_http_offload_link_replied(ac, reply);
    cl = link->peer->cluster;

    if (reply == NULL || !cl->asking) {
        return;                 /* the query's on_down goes on */
    }

    if (ngx_http_offload_cluster_map(cl, reply, link->addr) != NGX_OK) {

        /* as for the round: its seeds' refusals are worth a warning in
         * the first failed round in a row, not in its retries */
        level = cl->failed ? NGX_LOG_INFO : NGX_LOG_WARN;

        ngx_log_error(level, link->log, 0,
                      "offload: redis %V: seed %s:%d gave no usable slot "
                      "map%s%s, asking the next one", &link->peer->name,
                      link->addr->host, link->addr->port,
                      reply->type == REDIS_REPLY_ERROR ? ": " : "",
                      reply->type == REDIS_REPLY_ERROR ? reply->str : "");
        ngx_http_offload_link_drop(link);
        return;
    }

    /* wait_replicas=all asks every second: those rounds log at debug */

    level = cl->counting ? NGX_LOG_DEBUG : NGX_LOG_INFO;

    ngx_log_error(level, link->log, 0,
                  "offload: redis %V: slot map from %s:%d, %ui masters "
                  "known", &link->peer->name, link->addr->host,
                  link->addr->port, cl->masters.nelts);

    cl->asking = 0;
    cl->counting = 0;
    cl->failed = 0;

    contradicts = ngx_http_offload_cluster_contradicts(cl, link);

    ngx_http_offload_cluster_rehome(cl);
    ngx_http_offload_cluster_retire(cl);

    /* a seed behind a MOVED: the next one is asked, a little later each
     * time (the link is made again from the timer, not from inside this
     * callback) */

    if (contradicts) {
        ngx_http_offload_link_drop(link);

        if (cl->retry.timer_set) {
            ngx_del_timer(&cl->retry);
        }

        ngx_add_timer(&cl->retry,
                      NGX_HTTP_OFFLOAD_STALE_DELAY * cl->contradicted);
        return;
    }

    if (cl->again) {
        ngx_http_offload_cluster_round(cl);
        return;
    }

    /* a master the map names is down (its connection waits for its
     * backoff): the map is asked again soon, until a replica promoted in
     * its place is named */

    if (ngx_http_offload_cluster_down(cl) && !cl->retry.timer_set) {
        ngx_add_timer(&cl->retry, NGX_HTTP_OFFLOAD_REMAP_RETRY);
    }
}


/*
 * Whether the new map contradicts a MOVED followed since the last map
 * that agreed: its seed has not applied the move yet.  The MOVED's master
 * keeps the slot, and the caller asks the next seed (a few times in a
 * row at most, then the seeds' word is taken).
 */

static ngx_uint_t
ngx_http_offload_cluster_contradicts(ngx_http_offload_cluster_t *cl,
    ngx_http_offload_link_t *link)
{
    ngx_uint_t                 s;
    ngx_http_offload_peer_t  **m;

    if (cl->moved_slot == 0) {
        return 0;
    }

    s = cl->moved_slot - 1;

    if (cl->slot[s] == cl->moved_to
        || cl->contradicted == NGX_HTTP_OFFLOAD_STALE)
    {
        cl->moved_slot = 0;
        cl->contradicted = 0;
        return 0;
    }

    m = cl->masters.elts;
    cl->contradicted++;
    cl->slot[s] = (uint16_t) cl->moved_to;

    ngx_log_error(NGX_LOG_INFO, link->log, 0,
                  "offload: redis %V: seed %s:%d gave slot %ui to another "
                  "master than MOVED did (%V): asking the next seed",
                  &link->peer->name, link->addr->host, link->addr->port,
                  s, &m[cl->moved_to - 1]->name);

    return 1;
}


/* whether a master the map names has its command connection down */

static ngx_uint_t
ngx_http_offload_cluster_down(ngx_http_offload_cluster_t *cl)
{
    ngx_uint_t                 i, s;
    ngx_http_offload_peer_t  **m;

    m = cl->masters.elts;

    for (i = 0; i < cl->masters.nelts; i++) {
        if (m[i]->command.ac != NULL) {
            continue;           /* up, or connecting */
        }

        for (s = 0; s < OFFLOAD_SLOTS; s++) {
            if (cl->slot[s] == i + 1) {
                return 1;
            }
        }
    }

    return 0;
}


/*
 * A master the map no longer names (dead and replaced, or all its slots
 * moved) keeps its links while a request points at it (its reply may come
 * there yet); once none does, they are stopped and its peer is kept for
 * the next master first seen.  A link of such a master that fails asks
 * for no map: it tries the retirement again, outside of hiredis' callback.
 */

static void
ngx_http_offload_cluster_retire(ngx_http_offload_cluster_t *cl)
{
    ngx_uint_t                 i, s;
    ngx_http_offload_peer_t  **m;

    m = cl->masters.elts;

    for (i = 0; i < cl->masters.nelts; i++) {
        m[i]->named = 0;
    }

    for (s = 0; s < OFFLOAD_SLOTS; s++) {
        if (cl->slot[s]) {
            m[cl->slot[s] - 1]->named = 1;
        }
    }

    for (i = 0; i < cl->masters.nelts; i++) {
        if (m[i]->named || m[i]->retired
            || ngx_http_offload_cluster_busy(cl, m[i]))
        {
            continue;
        }

        ngx_log_error(NGX_LOG_NOTICE, cl->query.log, 0,
                      "offload: redis %V: master %V left the map, "
                      "closing its connections", &cl->peer->name,
                      &m[i]->name);

        m[i]->retired = 1;
        m[i]->nshards = 0;
        ngx_http_offload_peer_stop(m[i]);
    }
}


/* whether a request points at a master */

static ngx_uint_t
ngx_http_offload_cluster_busy(ngx_http_offload_cluster_t *cl,
    ngx_http_offload_peer_t *peer)
{
    ngx_rbtree_t       *pending;
    ngx_rbtree_node_t  *node;

    pending = &cl->peer->pending;

    if (pending->root == pending->sentinel) {
        return 0;
    }

    for (node = ngx_rbtree_min(pending->root, pending->sentinel);
         node;
         node = ngx_rbtree_next(pending, node))
    {
        if (((ngx_http_offload_ctx_t *) node)->peer == peer) {
            return 1;
        }
    }

    return 0;
}


/* A master's connection gone or not made: one the map names may have been
 * replaced, the map tells; one it no longer names is retired once unused
 * (which does not wait for a map that may never come). */

void
ngx_http_offload_cluster_lost(ngx_http_offload_peer_t *peer)
{
    ngx_http_offload_cluster_t  *cl;

    cl = peer->parent->cluster;

    if (peer->named) {
        ngx_http_offload_cluster_round(cl);
        return;
    }

    if (!cl->sweep.timer_set) {
        ngx_add_timer(&cl->sweep, 1);
    }
}


static void
ngx_http_offload_cluster_sweep(ngx_event_t *ev)
{
    ngx_http_offload_cluster_retire(ev->data);
}


/* wait_replicas=all: a replica failed or added changes the map's count
 * (not while a round is on or due: a retry keeps its backoff) */

static void
ngx_http_offload_cluster_count(ngx_event_t *ev)
{
    ngx_http_offload_cluster_t  *cl = ev->data;

    if (!cl->asking && !cl->retry.timer_set) {
        cl->counting = 1;
        ngx_http_offload_cluster_round(cl);
    }

    ngx_add_timer(ev, NGX_HTTP_OFFLOAD_COUNT_INTERVAL);
}


/*
 * CLUSTER SLOTS: [[first, last, [host, port, id...], replicas...], ...].
 * The whole answer is checked before the map changes; a slot no range
 * names has no master (its requests are 503 until a map names one).  The
 * replicas listed (Redis leaves out those failed or never synced) are
 * what wait_replicas=all waits for on that master.
 */

static ngx_int_t
ngx_http_offload_cluster_map(ngx_http_offload_cluster_t *cl,
    redisReply *reply, offload_addr_t *asked)
{
    ngx_int_t        m;
    long long        first, last, s;
    ngx_uint_t       i, level;
    redisReply      *range, *node, *host;
    offload_addr_t   addr;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements == 0) {
        return NGX_ERROR;
    }

    level = cl->failed ? NGX_LOG_INFO : NGX_LOG_WARN;

    for (i = 0; i < reply->elements; i++) {
        range = reply->element[i];

        if (range->type != REDIS_REPLY_ARRAY || range->elements < 3
            || range->element[0]->type != REDIS_REPLY_INTEGER
            || range->element[1]->type != REDIS_REPLY_INTEGER
            || range->element[0]->integer < 0
            || range->element[0]->integer > range->element[1]->integer
            || range->element[1]->integer >= OFFLOAD_SLOTS)
        {
            ngx_log_error(level, cl->query.log, 0,
                          "offload: redis %V: slot range %ui of CLUSTER "
                          "SLOTS is malformed", &cl->peer->name, i);
            return NGX_ERROR;
        }

        if (ngx_http_offload_cluster_node(range->element[2], asked, &addr)
            != NGX_OK)
        {
            node = range->element[2];
            host = (node->type == REDIS_REPLY_ARRAY && node->elements >= 2
                    && node->element[0]->type == REDIS_REPLY_STRING)
                   ? node->element[0] : NULL;

            ngx_log_error(level, cl->query.log, 0,
                          "offload: redis %V: CLUSTER SLOTS names the "
                          "master of slots %L-%L \"%*s\"%s, which is not a "
                          "numeric address: only numeric addresses are "
                          "used (cluster-preferred-endpoint-type ip)",
                          &cl->peer->name, range->element[0]->integer,
                          range->element[1]->integer,
                          host ? host->len : 0, host ? host->str : "",
                          host ? "" : " (malformed)");
            return NGX_ERROR;
        }
    }

    ngx_memzero(cl->slot, OFFLOAD_SLOTS * sizeof(uint16_t));

    for (i = 0; i < reply->elements; i++) {
        range = reply->element[i];

        (void) ngx_http_offload_cluster_node(range->element[2], asked, &addr);

        m = ngx_http_offload_cluster_master(cl, &addr);
        if (m == NGX_ERROR) {
            return NGX_ERROR;
        }

        ngx_http_offload_cluster_replicas(cl, m, range->elements - 3);

        first = range->element[0]->integer;
        last = range->element[1]->integer;

        for (s = first; s <= last; s++) {
            cl->slot[s] = (uint16_t) (m + 1);
        }
    }

    return NGX_OK;
}


/* wait_replicas=all: master m's replicas, n in the map */

static void
ngx_http_offload_cluster_replicas(ngx_http_offload_cluster_t *cl,
    ngx_uint_t m, ngx_uint_t n)
{
    ngx_http_offload_peer_t  *peer;

    peer = ((ngx_http_offload_peer_t **) cl->masters.elts)[m];

    if (peer->wait_replicas == NGX_HTTP_OFFLOAD_WAIT_ALL
        && (peer->replicas != n || !peer->counted))
    {
        ngx_log_error(NGX_LOG_NOTICE, cl->query.log, 0,
                      "offload: redis %V: wait_replicas=all: master %V "
                      "has %ui replicas in the slot map", &cl->peer->name,
                      &peer->name, n);
    }

    peer->replicas = n;
    peer->counted = 1;
}


/*
 * [host, port, ...]: only an address is used, never a host name, which
 * hiredis would resolve with a blocking getaddrinfo() in the worker.  An
 * empty or nil host is the node asked (a node that does not know its own,
 * cluster-preferred-endpoint-type unknown-endpoint), as the sidecar's.
 */

static ngx_int_t
ngx_http_offload_cluster_node(redisReply *node, offload_addr_t *asked,
    offload_addr_t *addr)
{
    u_char       buf[sizeof(struct in6_addr)];
    redisReply  *host, *port;

    if (node->type != REDIS_REPLY_ARRAY || node->elements < 2
        || (node->element[0]->type != REDIS_REPLY_STRING
            && node->element[0]->type != REDIS_REPLY_NIL)
        || node->element[1]->type != REDIS_REPLY_INTEGER
        || node->element[1]->integer < 1
        || node->element[1]->integer > 65535)
    {
        return NGX_ERROR;
    }

    host = node->element[0];
    port = node->element[1];

    ngx_memzero(addr, sizeof(offload_addr_t));

    if (host->type == REDIS_REPLY_NIL || host->len == 0) {
        ngx_memcpy(addr->host, asked->host, sizeof(addr->host));

    } else if (host->len < sizeof(addr->host)
               && (inet_pton(AF_INET, host->str, buf) == 1
                   || inet_pton(AF_INET6, host->str, buf) == 1))
    {
        ngx_memcpy(addr->host, host->str, host->len + 1);

    } else {
        return NGX_ERROR;
    }

    addr->port = (int) port->integer;

    return NGX_OK;
}


/* The index of the master at addr, its peer made and started on first
 * sight: the cluster's login, the cluster's pending table. */

static ngx_int_t
ngx_http_offload_cluster_master(ngx_http_offload_cluster_t *cl,
    offload_addr_t *addr)
{
    u_char                    *p;
    ngx_int_t                  reuse;
    ngx_uint_t                 i;
    ngx_http_offload_peer_t   *peer, **m;

    m = cl->masters.elts;
    reuse = NGX_ERROR;

    for (i = 0; i < cl->masters.nelts; i++) {
        if (m[i]->addr.port == addr->port
            && ngx_strcmp(m[i]->addr.host, addr->host) == 0)
        {
            if (m[i]->retired) {
                ngx_http_offload_cluster_revive(cl, m[i], addr);
            }

            return i;
        }

        if (reuse == NGX_ERROR && m[i]->retired) {
            reuse = i;
        }
    }

    if (reuse != NGX_ERROR) {
        ngx_http_offload_cluster_revive(cl, m[reuse], addr);
        return reuse;
    }

    if (cl->masters.nelts >= 0xffff) {
        return NGX_ERROR;
    }

    peer = ngx_pcalloc(ngx_cycle->pool, sizeof(ngx_http_offload_peer_t));
    p = ngx_pnalloc(ngx_cycle->pool, sizeof(addr->host) + NGX_INT_T_LEN + 3);

    if (peer == NULL || p == NULL) {
        return NGX_ERROR;
    }

    peer->shards = ngx_palloc(ngx_cycle->pool,
                              NGX_HTTP_OFFLOAD_SHARDS
                              * sizeof(ngx_http_offload_shard_t));
    if (peer->shards == NULL) {
        return NGX_ERROR;
    }

    /* last: a failure above leaves no element without a peer */

    m = ngx_array_push(&cl->masters);
    if (m == NULL) {
        return NGX_ERROR;
    }

    *m = peer;

    peer->name.data = p;
    peer->name.len = offload_addr_format(addr, (char *) p,
                                         sizeof(addr->host)
                                         + NGX_INT_T_LEN + 3);
    peer->addr = *addr;
    peer->user = cl->peer->user;
    peer->password = cl->peer->password;
    peer->parent = cl->peer;
    peer->used = 1;
    peer->jobs = cl->peer->jobs;        /* offload:jobs:done, long polls */
    peer->named = 1;
    peer->admission = cl->peer->admission;
    peer->wait_replicas = cl->peer->wait_replicas;   /* on its own link */
    peer->wait_timeout = cl->peer->wait_timeout;

    ngx_log_error(NGX_LOG_NOTICE, cl->query.log, 0,
                  "offload: redis %V: master %V", &cl->peer->name,
                  &peer->name);

    ngx_http_offload_peer_start(peer, cl->query.log);

    return cl->masters.nelts - 1;
}


/* a retired master's peer started again, for addr (its own or another's) */

static void
ngx_http_offload_cluster_revive(ngx_http_offload_cluster_t *cl,
    ngx_http_offload_peer_t *peer, offload_addr_t *addr)
{
    peer->addr = *addr;
    peer->name.len = offload_addr_format(addr, (char *) peer->name.data,
                                         sizeof(addr->host)
                                         + NGX_INT_T_LEN + 3);
    peer->retired = 0;
    peer->named = 1;
    peer->nshards = 0;
    peer->command.exiting = 0;
    peer->subscriber.exiting = 0;
    peer->bulk.exiting = 0;

    ngx_log_error(NGX_LOG_NOTICE, cl->query.log, 0,
                  "offload: redis %V: master %V", &cl->peer->name,
                  &peer->name);

    ngx_http_offload_peer_start(peer, cl->query.log);
}


/*
 * A job's XADD (or admission script) refused with a cluster's redirection:
 * NGX_OK when it was sent again or the request answered, NGX_DECLINED for
 * an error of another kind, or a job that is not sent again (a big body's,
 * which went into its body key on the old master).
 */

ngx_int_t
ngx_http_offload_cluster_redirect(ngx_http_offload_ctx_t *ctx,
    redisReply *reply)
{
    if (ctx->peer->parent == NULL) {
        return NGX_DECLINED;
    }

    if ((reply->len >= 8 && ngx_strncmp(reply->str, "TRYAGAIN", 8) == 0)
        || (reply->len >= 11
            && ngx_strncmp(reply->str, "CLUSTERDOWN", 11) == 0))
    {
        ngx_log_error(NGX_LOG_WARN, ctx->request->connection->log, 0,
                      "offload: XADD to queue \"%V\" on %V: %s",
                      &ctx->queue, &ctx->peer->name, reply->str);

        ngx_http_offload_cluster_refresh(ctx->peer->parent);

        if (ctx->body_key.len) {
            ngx_http_offload_body_delete(ctx);
        }

        ctx->retry_after = 1;
        ngx_http_offload_answer_error(ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                      "redis_unavailable",
                                      "the redis cluster is moving the "
                                      "queue or is down: try again");
        return NGX_OK;
    }

    if (ctx->body_key.len
        || ngx_http_offload_cluster_follow(ctx, reply, 0) != NGX_OK)
    {
        return NGX_DECLINED;
    }

    if (ngx_http_offload_xadd(ctx) == NGX_OK) {
        return NGX_OK;
    }

    ngx_http_offload_answer_error(ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                  "redis_unavailable",
                                  "redis is not reachable");
    return NGX_OK;
}


/*
 * A command of a request answered MOVED or ASK by a cluster's master: the
 * request goes to the node named, where the caller sends the command again
 * on its command link.  MOVED: the slot is that master's from now on (the
 * refresh its reply started confirms it); ASK: ASKING is sent there first,
 * and only this command goes there.  NGX_DECLINED for another reply, or
 * past NGX_HTTP_OFFLOAD_REDIRECTS of a request's job (its XADD, a big
 * body's EXISTS) or, with look, of its result looks (a budget of their
 * own: a job whose XADD was redirected can follow its last look too).
 */

ngx_int_t
ngx_http_offload_cluster_follow(ngx_http_offload_ctx_t *ctx,
    redisReply *reply, ngx_uint_t look)
{
    ngx_uint_t                ask, used;
    ngx_http_offload_peer_t  *master;

    used = look ? ctx->look_redirects : ctx->redirects;

    if (used == NGX_HTTP_OFFLOAD_REDIRECTS
        || reply->type != REDIS_REPLY_ERROR)
    {
        return NGX_DECLINED;
    }

    ask = (reply->len > 4 && ngx_strncmp(reply->str, "ASK ", 4) == 0);

    master = ngx_http_offload_cluster_moved(ctx->peer, reply, ask);
    if (master == NULL
        || (ask && ngx_http_offload_cluster_asking(master) != NGX_OK))
    {
        return NGX_DECLINED;
    }

    if (look) {
        ctx->look_redirects++;

    } else {
        ctx->redirects++;
    }

    ngx_log_error(NGX_LOG_INFO, ctx->request->connection->log, 0,
                  "offload: job %*s: %s, sent to %V",
                  (size_t) OFFLOAD_JOB_ID_LEN, ctx->id, reply->str,
                  &master->name);

    ctx->peer = master;
    ctx->asked = ask;

    return NGX_OK;
}


/*
 * The job's XADD (its script) sent again on ctx->peer after NOSCRIPT.  A
 * node an ASK named takes the command only after ASKING, which covers the
 * next command alone: without it again, the node would answer MOVED back
 * to the old master, and ASK, NOSCRIPT, MOVED, ASK spend the redirects of
 * every job while the slot moves.
 */

ngx_int_t
ngx_http_offload_cluster_resend(ngx_http_offload_ctx_t *ctx)
{
    if (ctx->asked && ngx_http_offload_cluster_asking(ctx->peer) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_offload_xadd(ctx);
}


/*
 * The master a command of peer (a cluster's master) answered MOVED (or,
 * with ask, ASK) names, NULL for another reply.  MOVED: the slot is that
 * master's from now on (the refresh its reply started confirms it); ASK:
 * only this command goes there.
 */

ngx_http_offload_peer_t *
ngx_http_offload_cluster_moved(ngx_http_offload_peer_t *peer,
    redisReply *reply, ngx_uint_t ask)
{
    ngx_int_t                    m;
    ngx_str_t                    err;
    ngx_uint_t                   slot;
    offload_addr_t               addr;
    ngx_http_offload_peer_t    **masters;
    ngx_http_offload_cluster_t  *cl;

    if (peer->parent == NULL || reply->type != REDIS_REPLY_ERROR) {
        return NULL;
    }

    err.data = (u_char *) reply->str;
    err.len = reply->len;

    if (!(ask ? err.len > 4 && ngx_strncmp(err.data, "ASK ", 4) == 0
              : err.len > 6 && ngx_strncmp(err.data, "MOVED ", 6) == 0)
        || ngx_http_offload_cluster_target(&err, &peer->addr, &slot, &addr)
           != NGX_OK)
    {
        return NULL;
    }

    cl = peer->parent->cluster;

    m = ngx_http_offload_cluster_master(cl, &addr);
    if (m == NGX_ERROR) {
        return NULL;
    }

    masters = cl->masters.elts;

    if (!ask) {
        cl->slot[slot] = (uint16_t) (m + 1);
        masters[m]->named = 1;
        cl->moved_slot = slot + 1;
        cl->moved_to = m + 1;
    }

    return masters[m];
}


/* ASKING before a command of an ASK redirection, on master's command link */

ngx_int_t
ngx_http_offload_cluster_asking(ngx_http_offload_peer_t *master)
{
    const char  *argv[1];
    size_t       argvlen[1];

    argv[0] = "ASKING";
    argvlen[0] = 6;

    return ngx_http_offload_link_send(&master->command,
                                      ngx_http_offload_link_logged,
                                      "ASKING", 1, argv, argvlen);
}


/* "MOVED <slot> <host>:<port>" or "ASK ...": the slot and the node; an
 * IPv6 host comes bare ("::1:7001"): the port is after the last ':'; an
 * empty host (":7001", a node that does not know its address) is the
 * host of the node that answered, as the sidecar's */

static ngx_int_t
ngx_http_offload_cluster_target(ngx_str_t *err, offload_addr_t *answered,
    ngx_uint_t *slot, offload_addr_t *addr)
{
    u_char     *p, *s, *last, *colon;
    ngx_int_t   n, port;
    u_char      buf[sizeof(struct in6_addr)];

    last = err->data + err->len;

    s = ngx_strlchr(err->data, last, ' ');
    if (s == NULL) {
        return NGX_ERROR;
    }

    s++;
    p = ngx_strlchr(s, last, ' ');
    if (p == NULL) {
        return NGX_ERROR;
    }

    n = ngx_atoi(s, p - s);
    if (n == NGX_ERROR || n >= OFFLOAD_SLOTS) {
        return NGX_ERROR;
    }

    *slot = n;
    p++;

    colon = NULL;

    for (s = p; s < last; s++) {
        if (*s == ':') {
            colon = s;
        }
    }

    if (colon == NULL) {
        return NGX_ERROR;
    }

    port = ngx_atoi(colon + 1, last - colon - 1);

    if (colon - p > 2 && *p == '[' && colon[-1] == ']') {
        p++;                    /* "[::1]:7001" */
        s = colon - 1;

    } else {
        s = colon;
    }

    ngx_memzero(addr, sizeof(offload_addr_t));

    if (port < 1 || port > 65535 || (size_t) (s - p) >= sizeof(addr->host)) {
        return NGX_ERROR;
    }

    if (s == p) {
        ngx_memcpy(addr->host, answered->host, sizeof(addr->host));

    } else {
        ngx_memcpy(addr->host, p, s - p);
    }

    addr->port = (int) port;

    if (inet_pton(AF_INET, addr->host, buf) != 1
        && inet_pton(AF_INET6, addr->host, buf) != 1)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}



/* any command of a master answered MOVED: the map is stale */

void
ngx_http_offload_cluster_error(ngx_http_offload_link_t *link,
    redisReply *reply)
{
    if (reply->len > 6 && ngx_strncmp(reply->str, "MOVED ", 6) == 0) {
        ngx_http_offload_cluster_refresh(link->peer->parent);
    }
}


/*
 * The reply channel of ctx's job, into reply (buf holds a sharded one):
 * its queue's sharded channel once ctx's master confirmed it, else this
 * worker's.
 */

void
ngx_http_offload_cluster_reply(ngx_http_offload_ctx_t *ctx, u_char *buf,
    offload_str_t *reply)
{
    ngx_http_offload_peer_t   *peer;
    ngx_http_offload_shard_t  *sh;

    reply->data = ngx_http_offload_worker.channel;
    reply->len = ngx_http_offload_worker.channel_len;

    peer = ctx->peer;

    if (peer->parent == NULL) {
        return;
    }

    sh = ngx_http_offload_shard_find(peer, ctx->queue.data, ctx->queue.len);

    if (sh != NULL && sh->generation == peer->subscriber.generation
        && peer->subscriber.subscribed)
    {
        reply->data = (char *) buf;
        reply->len = ngx_http_offload_shard_channel(buf, sh->queue, sh->len);
    }
}


/* a job accepted on a cluster's master: the first of its queue asks for
 * the queue's sharded channel on the master the map names for it (not on
 * a node an ASK sent the job to; a queue that exists: a name nobody
 * serves, answered 404, is never subscribed to) */

void
ngx_http_offload_cluster_submitted(ngx_http_offload_ctx_t *ctx)
{
    ngx_http_offload_peer_t   *owner;
    ngx_http_offload_shard_t  *sh;

    if (ctx->peer->parent == NULL) {
        return;
    }

    owner = ngx_http_offload_cluster_owner(ctx->peer->parent->cluster,
                                           ctx->queue.data, ctx->queue.len);

    if (owner == NULL
        || ngx_http_offload_shard_find(owner, ctx->queue.data,
                                       ctx->queue.len)
           != NULL)
    {
        return;
    }

    sh = ngx_http_offload_shard_add(owner, ctx->queue.data, ctx->queue.len);
    if (sh != NULL) {
        ngx_http_offload_shard_subscribe(owner, sh);
    }
}


/* the subscriber of a master made anew: its queues' sharded channels, of
 * the queues the map still gives it */

void
ngx_http_offload_cluster_resubscribe(ngx_http_offload_peer_t *peer)
{
    ngx_uint_t                 i;
    ngx_http_offload_shard_t  *sh;

    for (i = 0; i < peer->nshards; /* void */) {
        sh = &peer->shards[i];

        if (ngx_http_offload_cluster_owner(peer->parent->cluster, sh->queue,
                                           sh->len)
            != peer)
        {
            *sh = peer->shards[--peer->nshards];
            continue;
        }

        sh->generation = 0;
        sh->left = 0;
        ngx_http_offload_shard_subscribe(peer, sh);
        i++;
    }
}


/*
 * A new map: a queue whose slot moved is subscribed on its new master; one
 * whose subscription is not confirmed (its SSUBSCRIBE met a slot on the
 * move) is asked again.  A map that still gives a master a queue whose
 * slot it said left came from a seed that did not apply the move yet: the
 * map is asked again shortly, a few times; past that, the queue's jobs
 * look at their result keys (a look answered MOVED follows it).
 */

static void
ngx_http_offload_cluster_rehome(ngx_http_offload_cluster_t *cl)
{
    ngx_str_t                  queue;
    ngx_uint_t                 i, k, stale;
    ngx_http_offload_peer_t   *owner, **m;
    ngx_http_offload_shard_t  *sh, *to;

    m = cl->masters.elts;
    stale = 0;

    for (i = 0; i < cl->masters.nelts; i++) {
        for (k = 0; k < m[i]->nshards; /* void */) {
            sh = &m[i]->shards[k];
            owner = ngx_http_offload_cluster_owner(cl, sh->queue, sh->len);

            if (owner == m[i] && sh->left) {
                if (cl->stale < NGX_HTTP_OFFLOAD_STALE) {
                    stale = 1;

                } else {
                    ngx_log_error(NGX_LOG_WARN, cl->query.log, 0,
                                  "offload: redis %V: the map still gives "
                                  "%V the queue \"%*s\" whose slot left it",
                                  &cl->peer->name, &m[i]->name, sh->len,
                                  sh->queue);
                    queue.data = sh->queue;
                    queue.len = sh->len;
                    ngx_http_offload_recover_jobs(m[i], &queue);
                    sh->left = 0;
                }
            }

            if (owner == m[i] && !sh->left && sh->generation == 0) {
                ngx_http_offload_shard_subscribe(m[i], sh);
            }

            if (owner == NULL || owner == m[i]) {
                k++;
                continue;
            }

            if (ngx_http_offload_shard_find(owner, sh->queue, sh->len)
                == NULL)
            {
                to = ngx_http_offload_shard_add(owner, sh->queue, sh->len);
                if (to != NULL) {
                    ngx_http_offload_shard_subscribe(owner, to);
                }
            }

            *sh = m[i]->shards[--m[i]->nshards];
        }
    }

    if (!stale) {
        cl->stale = 0;
        return;
    }

    cl->stale++;

    if (cl->retry.timer_set) {
        ngx_del_timer(&cl->retry);
    }

    ngx_add_timer(&cl->retry, NGX_HTTP_OFFLOAD_STALE_DELAY);
}


/*
 * A master's subscriber: the confirmations of a sharded reply channel, and
 * its end there (the slot left that master).  NGX_DECLINED for what is not
 * about one (messages, this worker's channel).
 */

ngx_int_t
ngx_http_offload_cluster_message(ngx_http_offload_link_t *link,
    redisReply *kind, redisReply *channel)
{
    u_char                    *q, *end;
    ngx_str_t                  queue;
    ngx_http_offload_peer_t   *peer;
    ngx_http_offload_shard_t  *sh;

    /* offload:{<queue>}:reply:<nonce> */

    if (channel->type != REDIS_REPLY_STRING || channel->len < 9
        || ngx_strncmp(channel->str, "offload:{", 9) != 0
        || (kind->len == 7 && ngx_strncmp(kind->str, "message", 7) == 0)
        || (kind->len == 8 && ngx_strncmp(kind->str, "smessage", 8) == 0))
    {
        return NGX_DECLINED;
    }

    q = (u_char *) channel->str + 9;
    end = ngx_strlchr(q, (u_char *) channel->str + channel->len, '}');

    if (end == NULL) {
        return NGX_DECLINED;
    }

    queue.data = q;
    queue.len = end - q;
    peer = link->peer;

    sh = ngx_http_offload_shard_find(peer, queue.data, queue.len);

    if (sh != NULL && kind->len == 10
        && ngx_strncmp(kind->str, "ssubscribe", 10) == 0)
    {
        sh->generation = link->generation;

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, link->log, 0,
                       "offload: sharded replies of queue \"%V\"", &queue);

        ngx_http_offload_recover_jobs(peer, &queue);
        return NGX_OK;
    }

    if (kind->len == 12 && ngx_strncmp(kind->str, "sunsubscribe", 12) == 0) {
        ngx_log_error(NGX_LOG_INFO, link->log, 0,
                      "offload: redis %V: the slot of queue \"%V\" left, "
                      "asking for the map", &peer->name, &queue);

        if (sh != NULL) {
            sh->generation = 0;
            sh->left = 1;
        }

        ngx_http_offload_cluster_refresh(peer->parent);
    }

    /* "subscribe", the classic twin's: nothing to do */

    return NGX_OK;
}


static ngx_http_offload_shard_t *
ngx_http_offload_shard_find(ngx_http_offload_peer_t *peer, u_char *queue,
    size_t len)
{
    ngx_uint_t  i;

    for (i = 0; i < peer->nshards; i++) {
        if (peer->shards[i].len == len
            && ngx_memcmp(peer->shards[i].queue, queue, len) == 0)
        {
            return &peer->shards[i];
        }
    }

    return NULL;
}


/* NULL past NGX_HTTP_OFFLOAD_SHARDS queues: their replies stay classic */

static ngx_http_offload_shard_t *
ngx_http_offload_shard_add(ngx_http_offload_peer_t *peer, u_char *queue,
    size_t len)
{
    ngx_http_offload_shard_t  *sh;

    if (peer->nshards == NGX_HTTP_OFFLOAD_SHARDS
        || len > OFFLOAD_QUEUE_NAME_MAX)
    {
        return NULL;
    }

    sh = &peer->shards[peer->nshards++];

    ngx_memcpy(sh->queue, queue, len);
    sh->len = len;
    sh->generation = 0;
    sh->left = 0;

    return sh;
}


/*
 * SUBSCRIBE then SSUBSCRIBE, when the subscriber is up; else its
 * resubscribe does it.  hiredis 0.14 files a command it does not know
 * on a subscribed context (SSUBSCRIBE) in its sub.invalid list, which
 * only a reply that is not an array (an error) shifts; the confirmation,
 * an array, goes to the callback of the channel's SUBSCRIBE twin.  So
 * that list grows by one per SSUBSCRIBE until the subscriber reconnects
 * (the context is freed): one per queue, and per map that moves it or
 * finds it unconfirmed.
 */

static void
ngx_http_offload_shard_subscribe(ngx_http_offload_peer_t *peer,
    ngx_http_offload_shard_t *sh)
{
    u_char       buf[OFFLOAD_KEY_MAX];
    const char  *argv[2];
    size_t       argvlen[2];

    if (!peer->subscriber.up) {
        return;
    }

    argv[0] = "SUBSCRIBE";
    argvlen[0] = 9;
    argv[1] = (char *) buf;
    argvlen[1] = ngx_http_offload_shard_channel(buf, sh->queue, sh->len);

    if (ngx_http_offload_link_send(&peer->subscriber,
                                   ngx_http_offload_message, NULL,
                                   2, argv, argvlen)
        != NGX_OK)
    {
        return;
    }

    argv[0] = "SSUBSCRIBE";
    argvlen[0] = 10;

    (void) ngx_http_offload_link_send(&peer->subscriber,
                                      ngx_http_offload_message, NULL,
                                      2, argv, argvlen);
}


static size_t
ngx_http_offload_shard_channel(u_char *buf, u_char *queue, size_t len)
{
    return ngx_sprintf(buf, "offload:{%*s}:reply:%*s", len, queue,
                       (size_t) OFFLOAD_NONCE_LEN,
                       ngx_http_offload_worker.nonce)
           - buf;
}
