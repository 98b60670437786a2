/*
 * ngx_http_offload_status.c -- offload_status (JSON) and offload_metrics
 * (Prometheus text): this nginx's metrics zone, plus every live sidecar
 * node's document from every Redis the configuration names
 * (offload_nodes_script).
 *
 * Watching must cost Redis nothing however many clients poll, so the
 * script's answer is cached in a shared zone (offload_status_cache), one
 * answer per Redis, refreshed at most once per interval (the sidecars'
 * heartbeat, 1 s) for the whole nginx instance:
 *
 *   - an answer younger than the interval is served as it is;
 *   - an older one is refreshed by the first reader (of any worker) that
 *     finds no refresh on its way: it marks the entry "asked" in the zone
 *     and sends the script (EVALSHA_RO on its worker's command link);
 *   - that reader, and any that finds the refresh on its way, gets the
 *     previous answer if it is at most three intervals old, and otherwise
 *     waits for the refresh to land: parked, looked at again when its own
 *     worker's reply lands or every NGX_HTTP_OFFLOAD_STATUS_POLL ms (a
 *     timer, no busy wait), for at most NGX_HTTP_OFFLOAD_STATUS_WAIT ms;
 *     then it is answered with what there is (that Redis "unavailable" if
 *     nothing);
 *   - each worker copies a new answer out of the zone once, at its first
 *     reader; answers are chains of buffers pointing into that copy, and
 *     the common ones (one Redis; the default JSON, the Prometheus text)
 *     one buffer of it rendered once, after this nginx's own figures;
 *   - to a client that takes gzip, those common answers are a gzip member
 *     of this nginx's figures, stored as they are, and that buffer,
 *     deflated once per copy (ngx_http_offload_gzip.c); with several Redis
 *     the default answers' Redis part is assembled into one buffer, kept
 *     and deflated once while the copies are the same;
 *   - with one Redis, each worker keeps its last common answer of each
 *     report whole and answers it again, without the zone's lock, while
 *     it is the same refresh and at most NGX_HTTP_OFFLOAD_STATUS_REUSE ms
 *     old (with several, only their Redis part is kept, as above);
 *   - a refresh that got no answer within NGX_HTTP_OFFLOAD_WATCHDOG ms
 *     may be taken over by the next reader; one that failed is not tried
 *     again within the interval.
 *
 * An answer is kept in the zone packed, one flat run of bytes that every
 * worker reads in place (ngx_http_offload_status_pack.c).
 *
 * The script answers everything unsorted ("cache" mode): sort and limit
 * are applied here, per request, so one read per interval serves every
 * argument set and both reports.  The flat workers list names each
 * worker's node, queue and slot, so the node documents are answered
 * without their queues' "workers" arrays (made once per refresh, at
 * _store()) unless ?full=1 asks for them: each worker once, not twice.
 *
 * An answer larger than the free room of the zone is not kept: the error
 * log says so, and until the zone is made larger that Redis reads as
 * "unavailable" (status_cache_full), still read only once per interval.
 *
 * The zone outlives reloads, and a reload may name other Redis servers:
 * the entries of those no reader looked at for three intervals are freed
 * when an entry or room for an answer is needed, and when every entry is
 * in use the one idle the longest is taken over (see _entry()).
 */



#include "ngx_http_offload_module.h"


#define NGX_HTTP_OFFLOAD_LIMIT_MAX    100000
#define NGX_HTTP_OFFLOAD_STATUS_WAIT  1000
#define NGX_HTTP_OFFLOAD_STATUS_POLL  10
#define NGX_HTTP_OFFLOAD_STATUS_ID    300
#define NGX_HTTP_OFFLOAD_STATUS_REUSE 100

/* what a reader got of one Redis */
#define NGX_HTTP_OFFLOAD_READ_WAITING  0
#define NGX_HTTP_OFFLOAD_READ_OK       1
#define NGX_HTTP_OFFLOAD_READ_NONE     2
#define NGX_HTTP_OFFLOAD_READ_FULL     3


/* One Redis's answer in the zone.  Times are ngx_current_msec (monotonic,
 * the same clock in every worker), 0 for never.  An id_len of 0 is a free
 * entry. */
typedef struct {
    u_char                        id[NGX_HTTP_OFFLOAD_STATUS_ID];
    size_t                        id_len;
    ngx_msec_t                    fetched;     /* data was read then */
    ngx_msec_t                    asked;       /* a refresh on its way */
    ngx_msec_t                    failed;      /* the last refresh failed */
    ngx_uint_t                    version;     /* bumped as a refresh ends */
    u_char                       *data;        /* packed, see _pack() */
    size_t                        len;
    unsigned                      full:1;      /* did not fit */
} ngx_http_offload_status_entry_t;


typedef struct {
    ngx_uint_t                    nentries;    /* ever used */
    ngx_http_offload_status_entry_t  entry[NGX_HTTP_OFFLOAD_STATUS_REDIS];
} ngx_http_offload_status_sh_t;


struct ngx_http_offload_status_cache_s {
    ngx_http_offload_status_sh_t *sh;
    ngx_slab_pool_t              *shpool;
    ngx_msec_t                    interval;
    ngx_uint_t                    prom;        /* an offload_metrics */
};


/*
 * This worker's copy of one Redis's answer, made once per refresh (not
 * per request: big allocations per request cost page faults).  Answers
 * point into it; a copy that a newer one replaced is freed by the last
 * request that answers from it.  With it, the Redis part of the common
 * answers, rendered at their first request (see _rendered()).
 */
typedef struct ngx_http_offload_status_copy_s {
    ngx_uint_t                    refs;        /* requests using it */
    ngx_msec_t                    fetched;     /* the entry's, copied */
    ngx_str_t                     json;        /* rendered, or NULL */
    ngx_str_t                     prom;
    ngx_http_offload_gzip_tail_t  json_gz;     /* json deflated */
    ngx_http_offload_gzip_tail_t  prom_gz;     /* prom deflated */
    unsigned                      retired:1;
    size_t                        len;
    u_char                        data[1];
} ngx_http_offload_status_copy_t;


/*
 * This worker's last default answer of one report, whole: answered again
 * while the Redis part is the same copy and the zone has no newer one, and
 * this nginx's part is less than NGX_HTTP_OFFLOAD_STATUS_REUSE ms old.
 * Asked flat out, rendering this nginx's figures, the zone's lock and the
 * gzip frame per request cost nginx up to three times what HTTP does (50
 * queues counted: 52 us per gzip'd status, 13 for a return 200); a tenth
 * of a second is well within what a dashboard (a poll a second) or a
 * scraper (15 s) can tell, and the nodes' figures are a heartbeat old
 * anyway.  A longer age would save no more: rendering ten times a second
 * is already nothing.  Requests answer from it as they do from a copy
 * (copying this nginx's part, up to hundreds of KB with many queues
 * counted, into each request's pool cost more than the rest of the answer):
 * one that a newer one replaced is freed by the last request using it.
 */
typedef struct {
    ngx_uint_t                    refs;        /* requests using it */
    ngx_http_offload_peer_t      *peer;        /* the only Redis */
    ngx_http_offload_status_copy_t  *copy;     /* its Redis part, */
    ngx_msec_t                    fetched;     /* of this refresh */
    ngx_msec_t                    made;
    ngx_str_t                     head;        /* this nginx's part */
    ngx_str_t                     frame;       /* gzip'd, or NULL */
    unsigned                      retired:1;
} ngx_http_offload_status_answer_t;


/*
 * The Redis part of the default answer of one report with several Redis
 * (or one not read), assembled from the reads' copies: kept in each worker
 * while the reads are the same copies, so that it is deflated once for as
 * long, as the rendered part of a copy is.  Freed by the last request that
 * answers from it once a newer one replaced it.
 */
typedef struct {
    ngx_uint_t                    refs;        /* requests using it */
    ngx_uint_t                    nreads;
    ngx_http_offload_status_copy_t  *copy[NGX_HTTP_OFFLOAD_STATUS_REDIS];
    ngx_msec_t                    fetched[NGX_HTTP_OFFLOAD_STATUS_REDIS];
    ngx_str_t                     text;
    ngx_http_offload_gzip_tail_t  gz;          /* text deflated */
    unsigned                      retired:1;
} ngx_http_offload_status_joined_t;


/* One worker of one answer, unpacked. */
typedef struct {
    int64_t                       key[NGX_HTTP_OFFLOAD_NSORT];
    ngx_uint_t                    redis;       /* tie-breaks: the Redis, */
    ngx_uint_t                    pos;         /* the script's order */
    u_char                       *text;        /* ",{...}" */
    size_t                        len;
} ngx_http_offload_status_worker_t;


/* What a request got of one Redis. */
typedef struct {
    ngx_http_offload_peer_t      *peer;
    ngx_uint_t                    state;       /* NGX_HTTP_OFFLOAD_READ_* */
    ngx_uint_t                    version;     /* the entry's, when asked */
    ngx_msec_t                    age;
    ngx_http_offload_status_copy_t  *copy;     /* held until the end */
    ngx_http_offload_status_packed_t  packed;  /* copy's, unpacked */
} ngx_http_offload_status_read_t;


/* An answer as a chain of buffers, most of them in the copies. */
typedef struct {
    ngx_pool_t                   *pool;
    ngx_chain_t                  *first;
    ngx_chain_t                 **last;
    off_t                         len;
} ngx_http_offload_status_out_t;


typedef struct {
    ngx_queue_t                   queue;       /* in the worker's waiters */
    ngx_http_request_t           *request;
    ngx_uint_t                    report;
    ngx_int_t                     sort;        /* -1: none */
    ngx_uint_t                    limit;       /* 0: none */
    ngx_uint_t                    full;        /* nodes with workers */
    ngx_msec_t                    deadline;
    ngx_uint_t                    nreads;
    ngx_uint_t                    waiting;
    ngx_http_offload_status_read_t  *read;
    ngx_str_t                    *rendered;    /* its end, or NULL */
    ngx_http_offload_gzip_tail_t *gz;          /* rendered deflated */
    ngx_http_offload_status_joined_t  *joined; /* rendered's, held */
    ngx_http_offload_status_answer_t  *kept;   /* the answer's, held */
    unsigned                      parked:1;
} ngx_http_offload_status_ctx_t;


static ngx_int_t ngx_http_offload_status_sort(ngx_http_request_t *r,
    ngx_int_t *sort);
static ngx_int_t ngx_http_offload_status_limit(ngx_http_request_t *r,
    ngx_uint_t *limit);
static ngx_int_t ngx_http_offload_status_full(ngx_http_request_t *r,
    ngx_uint_t *full);
static ngx_http_offload_status_entry_t *ngx_http_offload_status_entry(
    ngx_http_offload_status_cache_t *cache, ngx_http_offload_peer_t *peer);
static ngx_http_offload_status_entry_t *ngx_http_offload_status_sweep(
    ngx_http_offload_status_cache_t *cache,
    ngx_http_offload_status_entry_t *keep);
static ngx_int_t ngx_http_offload_status_look(
    ngx_http_offload_status_ctx_t *sctx, ngx_http_offload_status_read_t *rd);
static void ngx_http_offload_status_take(ngx_http_offload_status_ctx_t *sctx,
    ngx_http_offload_status_read_t *rd,
    ngx_http_offload_status_entry_t *e);
static void ngx_http_offload_status_retire(
    ngx_http_offload_status_copy_t *copy);
static void ngx_http_offload_status_release(void *data);
static void ngx_http_offload_status_joined_free(
    ngx_http_offload_status_joined_t *joined);
static void ngx_http_offload_status_answer_free(
    ngx_http_offload_status_answer_t *answer);
static ngx_int_t ngx_http_offload_status_query(
    ngx_http_offload_peer_t *peer);
static void ngx_http_offload_status_done(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_http_offload_status_store(ngx_http_offload_peer_t *peer,
    redisReply *reply);
static void ngx_http_offload_status_wake(void);
static void ngx_http_offload_status_poll(ngx_event_t *ev);
static void ngx_http_offload_status_cleanup(void *data);
static ngx_int_t ngx_http_offload_status_reuse(
    ngx_http_offload_status_ctx_t *sctx);
static ngx_int_t ngx_http_offload_status_send(
    ngx_http_offload_status_ctx_t *sctx);
static ngx_int_t ngx_http_offload_status_answer(
    ngx_http_offload_status_ctx_t *sctx, ngx_str_t *head, ngx_str_t *frame);
static ngx_int_t ngx_http_offload_status_send_out(
    ngx_http_offload_status_ctx_t *sctx, ngx_http_offload_status_out_t *out);


static ngx_str_t  ngx_http_offload_json_type = ngx_string("application/json");
static ngx_str_t  ngx_http_offload_prom_type =
    ngx_string("text/plain; version=0.0.4; charset=utf-8");

/* in the order of the script's sort keys */
static const char  *ngx_http_offload_sorts[NGX_HTTP_OFFLOAD_NSORT + 1] = {
    "memory", "cpu", "queue", "restarts", "jobs", NULL
};

/* the script's SHA1, hex, as EVALSHA takes it; made on first use */
static u_char  ngx_http_offload_nodes_sha[40];
static size_t  ngx_http_offload_nodes_sha_len;

/* this worker's parked readers, and the timer that looks at them */
static ngx_queue_t  ngx_http_offload_status_waiters;
static ngx_event_t  ngx_http_offload_status_timer;

static ngx_http_offload_status_cache_t  *ngx_http_offload_status_cache_of;
static ngx_uint_t                        ngx_http_offload_status_labels;

/* this worker's last default answers: JSON, Prometheus */
static ngx_http_offload_status_answer_t *ngx_http_offload_status_answers[2];
static ngx_http_offload_status_joined_t *ngx_http_offload_status_joins[2];


ngx_int_t
ngx_http_offload_status_handler(ngx_http_request_t *r)
{
    ngx_int_t                        rc, sort;
    ngx_uint_t                       i, limit, full;
    ngx_http_offload_peer_t        **peerp;
    ngx_http_offload_loc_conf_t     *olcf;
    ngx_http_offload_main_conf_t    *omcf;
    ngx_http_offload_status_ctx_t   *sctx;
    ngx_http_offload_status_read_t  *rd;
    ngx_pool_cleanup_t              *cln;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return ngx_http_offload_not_allowed(r, "GET, HEAD");
    }

    /* a body is discarded, never asked for (no "100 Continue") */
    r->expect_tested = 1;

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    olcf = ngx_http_get_module_loc_conf(r, ngx_http_offload_module);
    omcf = ngx_http_get_module_main_conf(r, ngx_http_offload_module);

    sort = -1;
    limit = 0;
    full = 0;

    if (olcf->report == NGX_HTTP_OFFLOAD_REPORT_JSON) {
        if (ngx_http_offload_status_sort(r, &sort) != NGX_OK) {
            return ngx_http_offload_send_error(r, NGX_HTTP_BAD_REQUEST,
                       "bad_sort", "sort must be one of memory, cpu, queue, "
                       "restarts, jobs");
        }

        if (ngx_http_offload_status_limit(r, &limit) != NGX_OK) {
            return ngx_http_offload_send_error(r, NGX_HTTP_BAD_REQUEST,
                       "bad_limit", "limit must be an integer from 1 to "
                       "100000");
        }

        if (ngx_http_offload_status_full(r, &full) != NGX_OK) {
            return ngx_http_offload_send_error(r, NGX_HTTP_BAD_REQUEST,
                       "bad_full", "full must be 0 or 1");
        }
    }

    sctx = ngx_pcalloc(r->pool, sizeof(ngx_http_offload_status_ctx_t));
    if (sctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    sctx->read = ngx_pcalloc(r->pool, omcf->peers.nelts
                                      * sizeof(ngx_http_offload_status_read_t));
    if (sctx->read == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_offload_status_release;
    cln->data = sctx;

    sctx->request = r;
    sctx->report = olcf->report;
    sctx->sort = sort;
    sctx->limit = limit;
    sctx->full = full;
    sctx->deadline = ngx_current_msec + NGX_HTTP_OFFLOAD_STATUS_WAIT;

    ngx_http_offload_status_cache_of = omcf->status_cache;

    /* every Redis that a location of this configuration uses; with more
     * than one, the Prometheus samples say which */

    peerp = omcf->peers.elts;
    ngx_http_offload_status_labels = 0;

    for (i = 0; i < omcf->peers.nelts; i++) {
        ngx_http_offload_status_labels += peerp[i]->used;
    }

    ngx_http_offload_status_labels = (ngx_http_offload_status_labels > 1);

    if (!ngx_http_offload_status_labels && sort < 0 && limit == 0 && !full) {
        rc = ngx_http_offload_status_reuse(sctx);

        if (rc != NGX_DECLINED) {
            return rc;
        }
    }

    for (i = 0; i < omcf->peers.nelts; i++) {
        if (!peerp[i]->used) {
            continue;
        }

        rd = &sctx->read[sctx->nreads++];
        rd->peer = peerp[i];

        if (ngx_http_offload_status_look(sctx, rd) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (rd->state == NGX_HTTP_OFFLOAD_READ_WAITING) {
            sctx->waiting++;
        }
    }

    if (sctx->waiting == 0) {
        return ngx_http_offload_status_send(sctx);
    }

    if (ngx_http_offload_status_waiters.next == NULL) {
        ngx_queue_init(&ngx_http_offload_status_waiters);
        ngx_http_offload_status_timer.handler = ngx_http_offload_status_poll;
        ngx_http_offload_status_timer.log = ngx_cycle->log;
        ngx_http_offload_status_timer.data = &ngx_http_offload_status_timer;
    }

    /* parked until its refreshes land or its deadline passes; a client that
     * leaves takes it out of the waiters */

    {
        ngx_http_cleanup_t  *cln;

        cln = ngx_http_cleanup_add(r, 0);
        if (cln == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        cln->handler = ngx_http_offload_status_cleanup;
        cln->data = sctx;
    }

    ngx_queue_insert_tail(&ngx_http_offload_status_waiters, &sctx->queue);
    sctx->parked = 1;

    if (!ngx_http_offload_status_timer.timer_set) {
        ngx_add_timer(&ngx_http_offload_status_timer,
                      NGX_HTTP_OFFLOAD_STATUS_POLL);
    }

    r->main->count++;
    r->read_event_handler = ngx_http_test_reading;
    r->write_event_handler = ngx_http_request_empty_handler;

    return NGX_DONE;
}


/* How long ago t was: the workers' clocks are the same monotonic clock,
 * each read at its own event loop turn, so another worker's t may be a few
 * ms ahead of this one's now: that is 0, not a wrapped huge age. */

static ngx_inline ngx_msec_t
ngx_http_offload_status_age(ngx_msec_t now, ngx_msec_t t)
{
    return (ngx_msec_int_t) (now - t) > 0 ? now - t : 0;
}


/* How long ago a reader last looked at an entry: any that found its answer
 * old asked for a refresh, which ended fetched or failed. */

static ngx_msec_t
ngx_http_offload_status_idle(ngx_http_offload_status_entry_t *e,
    ngx_msec_t now)
{
    ngx_msec_t  idle;

    idle = ngx_http_offload_status_age(now, e->fetched);
    idle = ngx_min(idle, ngx_http_offload_status_age(now, e->asked));

    return ngx_min(idle, ngx_http_offload_status_age(now, e->failed));
}


/*
 * One Redis for one reader: take the cached answer, or start a refresh,
 * or wait for the one on its way (rd->state stays WAITING).
 */

static ngx_int_t
ngx_http_offload_status_look(ngx_http_offload_status_ctx_t *sctx,
    ngx_http_offload_status_read_t *rd)
{
    ngx_msec_t                        now, interval;
    ngx_http_offload_peer_t          *peer;
    ngx_http_offload_status_cache_t  *cache;
    ngx_http_offload_status_entry_t  *e;

    cache = ngx_http_offload_status_cache_of;
    peer = rd->peer;
    now = ngx_current_msec;
    interval = cache->interval;

    ngx_shmtx_lock(&cache->shpool->mutex);

    e = ngx_http_offload_status_entry(cache, peer);

    if (e == NULL) {
        ngx_shmtx_unlock(&cache->shpool->mutex);
        rd->state = NGX_HTTP_OFFLOAD_READ_NONE;
        return NGX_OK;
    }

    if (e->fetched && ngx_http_offload_status_age(now, e->fetched)
                      < interval)
    {
        ngx_http_offload_status_take(sctx, rd, e);
        goto done;
    }

    if ((e->asked && ngx_http_offload_status_age(now, e->asked)
                     < NGX_HTTP_OFFLOAD_WATCHDOG)
        || (e->failed && ngx_http_offload_status_age(now, e->failed)
                         < interval))
    {
        /* a refresh on its way, or one that failed just now */

        if ((e->fetched && ngx_http_offload_status_age(now, e->fetched)
                           < 3 * interval)
            || !e->asked)
        {
            ngx_http_offload_status_take(sctx, rd, e);
            goto done;
        }

        rd->version = e->version;
        goto done;
    }

    /* this reader refreshes it */

    e->asked = now;
    rd->version = e->version;

    ngx_shmtx_unlock(&cache->shpool->mutex);

    if (ngx_http_offload_status_query(peer) == NGX_OK) {

        /* meanwhile, the previous answer if it is recent enough: the
         * refresh lands in the background */

        ngx_shmtx_lock(&cache->shpool->mutex);

        if (e->fetched && ngx_http_offload_status_age(now, e->fetched)
                          < 3 * interval)
        {
            ngx_http_offload_status_take(sctx, rd, e);
        }

        goto done;
    }

    ngx_shmtx_lock(&cache->shpool->mutex);

    if (e->asked == now) {
        e->asked = 0;
        e->failed = now;
        e->version++;
    }

    ngx_http_offload_status_take(sctx, rd, e);

done:

    ngx_shmtx_unlock(&cache->shpool->mutex);

    return NGX_OK;
}


/*
 * The entry of a peer's Redis, made on first use; NULL when the zone has
 * none left.  Under the zone's mutex.
 *
 * The zone outlives reloads, whose configurations may name other Redis
 * servers: when no entry is free, the stale ones are freed (see _sweep()),
 * and when none is, the one idle the longest is taken over.  So an entry
 * a peer found before may since be another Redis's: its id says.
 */

static ngx_http_offload_status_entry_t *
ngx_http_offload_status_entry(ngx_http_offload_status_cache_t *cache,
    ngx_http_offload_peer_t *peer)
{
    u_char                           *p, *id;
    size_t                            len;
    ngx_uint_t                        i;
    ngx_msec_t                        now, idle, longest;
    ngx_http_offload_status_sh_t     *sh;
    ngx_http_offload_status_entry_t  *e, *unused;
    u_char                            buf[NGX_HTTP_OFFLOAD_STATUS_ID];

    sh = cache->sh;

    /* the id is checked at every look (the entry may have been taken
     * over): made once */

    if (peer->status_id.data == NULL) {
        p = ngx_snprintf(buf, sizeof(buf), "%V/%ui/%V", &peer->name,
                         peer->db, &peer->user);

        len = p - buf;

        peer->status_id.data = ngx_pnalloc(ngx_cycle->pool, len);
        if (peer->status_id.data == NULL) {
            return NULL;
        }

        ngx_memcpy(peer->status_id.data, buf, len);
        peer->status_id.len = len;
    }

    id = peer->status_id.data;
    len = peer->status_id.len;

    if (peer->status_entry) {
        e = &sh->entry[peer->status_entry - 1];

        if (e->id_len == len && ngx_memcmp(e->id, id, len) == 0) {
            return e;
        }

        peer->status_entry = 0;
    }

    unused = NULL;

    for (i = 0; i < sh->nentries; i++) {
        e = &sh->entry[i];

        if (e->id_len == len && ngx_memcmp(e->id, id, len) == 0) {
            peer->status_entry = i + 1;
            return e;
        }

        if (e->id_len == 0 && unused == NULL) {
            unused = e;
        }
    }

    if (unused == NULL && sh->nentries < NGX_HTTP_OFFLOAD_STATUS_REDIS) {
        unused = &sh->entry[sh->nentries++];
    }

    if (unused == NULL) {
        unused = ngx_http_offload_status_sweep(cache, NULL);
    }

    if (unused == NULL) {

        /* every one is used: the one idle the longest, with no refresh on
         * its way (whose answer would land in another Redis's entry) */

        now = ngx_current_msec;
        longest = 0;

        for (i = 0; i < sh->nentries; i++) {
            e = &sh->entry[i];

            if (e->asked && ngx_http_offload_status_age(now, e->asked)
                            < NGX_HTTP_OFFLOAD_WATCHDOG)
            {
                continue;
            }

            idle = ngx_http_offload_status_idle(e, now);

            if (unused == NULL || idle > longest) {
                unused = e;
                longest = idle;
            }
        }

        if (unused == NULL) {
            return NULL;
        }

        if (unused->data) {
            ngx_slab_free_locked(cache->shpool, unused->data);
        }
    }

    ngx_memzero(unused, sizeof(ngx_http_offload_status_entry_t));
    unused->id_len = len;
    ngx_memcpy(unused->id, id, len);

    peer->status_entry = unused - sh->entry + 1;

    return unused;
}


/*
 * Frees the stale entries but keep: those no reader looked at for three
 * intervals (an answer that old is never served) and with no refresh on
 * its way, most likely of a Redis that a reload took out of the
 * configuration.  Returns the first one freed, or NULL.  Under the zone's
 * mutex.
 */

static ngx_http_offload_status_entry_t *
ngx_http_offload_status_sweep(ngx_http_offload_status_cache_t *cache,
    ngx_http_offload_status_entry_t *keep)
{
    ngx_uint_t                        i;
    ngx_msec_t                        now;
    ngx_http_offload_status_entry_t  *e, *first;

    now = ngx_current_msec;
    first = NULL;

    for (i = 0; i < cache->sh->nentries; i++) {
        e = &cache->sh->entry[i];

        if (e == keep || e->id_len == 0
            || ngx_http_offload_status_idle(e, now) < 3 * cache->interval
            || (e->asked && ngx_http_offload_status_age(now, e->asked)
                            < NGX_HTTP_OFFLOAD_WATCHDOG))
        {
            continue;
        }

        if (e->data) {
            ngx_slab_free_locked(cache->shpool, e->data);
        }

        ngx_memzero(e, sizeof(ngx_http_offload_status_entry_t));

        if (first == NULL) {
            first = e;
        }
    }

    return first;
}


/* What the entry holds, copied for the reader: an answer at most three
 * intervals old, or nothing.  Under the zone's mutex. */

static void
ngx_http_offload_status_take(ngx_http_offload_status_ctx_t *sctx,
    ngx_http_offload_status_read_t *rd, ngx_http_offload_status_entry_t *e)
{
    ngx_msec_t                       now;
    ngx_http_offload_status_copy_t  *copy, *fresh;

    now = ngx_current_msec;

    if (e->full && e->fetched) {
        rd->state = NGX_HTTP_OFFLOAD_READ_FULL;
        return;
    }

    rd->age = ngx_http_offload_status_age(now, e->fetched);

    if (e->data == NULL || e->fetched == 0
        || rd->age >= 3 * ngx_http_offload_status_cache_of->interval)
    {
        rd->state = NGX_HTTP_OFFLOAD_READ_NONE;
        return;
    }

    copy = rd->peer->status_copy;

    if (copy == NULL || copy->fetched != e->fetched) {
        fresh = ngx_alloc(offsetof(ngx_http_offload_status_copy_t, data)
                          + e->len, ngx_cycle->log);
        if (fresh == NULL) {
            rd->state = NGX_HTTP_OFFLOAD_READ_NONE;
            return;
        }

        fresh->refs = 0;
        fresh->fetched = e->fetched;
        fresh->retired = 0;
        ngx_str_null(&fresh->json);
        ngx_str_null(&fresh->prom);
        fresh->json_gz.data = NULL;
        fresh->prom_gz.data = NULL;
        fresh->len = e->len;
        ngx_memcpy(fresh->data, e->data, e->len);

        if (copy) {
            ngx_http_offload_status_retire(copy);
        }

        rd->peer->status_copy = copy = fresh;
    }

    copy->refs++;
    rd->copy = copy;
    rd->state = NGX_HTTP_OFFLOAD_READ_OK;
}


static void
ngx_http_offload_status_free(ngx_http_offload_status_copy_t *copy)
{
    if (copy->json.data) {
        ngx_free(copy->json.data);
    }

    if (copy->prom.data) {
        ngx_free(copy->prom.data);
    }

    ngx_http_offload_gzip_tail_free(&copy->json_gz);
    ngx_http_offload_gzip_tail_free(&copy->prom_gz);

    ngx_free(copy);
}


static void
ngx_http_offload_status_retire(ngx_http_offload_status_copy_t *copy)
{
    if (copy->refs == 0) {
        ngx_http_offload_status_free(copy);
        return;
    }

    copy->retired = 1;
}


/* the request's pool goes: its answer is sent, the copies may go */

static void
ngx_http_offload_status_release(void *data)
{
    ngx_http_offload_status_ctx_t  *sctx = data;

    ngx_uint_t                       i;
    ngx_http_offload_status_copy_t  *copy;

    for (i = 0; i < sctx->nreads; i++) {
        copy = sctx->read[i].copy;

        if (copy && --copy->refs == 0 && copy->retired) {
            ngx_http_offload_status_free(copy);
        }

        sctx->read[i].copy = NULL;
    }

    if (sctx->joined && --sctx->joined->refs == 0 && sctx->joined->retired) {
        ngx_http_offload_status_joined_free(sctx->joined);
    }

    sctx->joined = NULL;

    if (sctx->kept && --sctx->kept->refs == 0 && sctx->kept->retired) {
        ngx_http_offload_status_answer_free(sctx->kept);
    }

    sctx->kept = NULL;
}


static void
ngx_http_offload_status_answer_free(ngx_http_offload_status_answer_t *answer)
{
    if (answer->frame.data) {
        ngx_free(answer->frame.data);
    }

    ngx_free(answer);
}


static void
ngx_http_offload_status_joined_free(ngx_http_offload_status_joined_t *joined)
{
    ngx_http_offload_gzip_tail_free(&joined->gz);
    ngx_free(joined);
}


/*
 * EVALSHA_RO, or EVAL_RO with the script once Redis answered NOSCRIPT.
 * _RO (Redis 7): the script only reads, and a read-only ACL user
 * (%R~ on the registry keys) may run it; EVAL would need write access to
 * its KEYS as well.  The reply belongs to the peer, not to a request.
 */

static ngx_int_t
ngx_http_offload_status_query(ngx_http_offload_peer_t *peer)
{
    int                       argc;
    const char               *argv[13];
    size_t                    argvlen[13];
    ngx_http_offload_link_t  *link;

    /* the registry is on the control shard of a cluster */

    link = ngx_http_offload_control_link(peer);

    if (link == NULL || !link->up) {
        return NGX_DECLINED;
    }

    if (ngx_http_offload_nodes_sha_len == 0) {
        ngx_http_offload_nodes_sha_len = ngx_http_offload_script_sha(
                                             offload_nodes_script,
                                             ngx_http_offload_nodes_sha);
    }

    argc = 0;

    if (!peer->status_by_eval) {
        argv[argc] = "EVALSHA_RO";
        argvlen[argc++] = 10;
        argv[argc] = (char *) ngx_http_offload_nodes_sha;
        argvlen[argc++] = ngx_http_offload_nodes_sha_len;

    } else {
        argv[argc] = "EVAL_RO";
        argvlen[argc++] = 7;
        argv[argc] = offload_nodes_script;
        argvlen[argc++] = ngx_strlen(offload_nodes_script);
    }

    argv[argc] = "3";
    argvlen[argc++] = 1;
    argv[argc] = OFFLOAD_NODES_KEY;
    argvlen[argc++] = sizeof(OFFLOAD_NODES_KEY) - 1;
    argv[argc] = OFFLOAD_CRASHES_KEY;
    argvlen[argc++] = sizeof(OFFLOAD_CRASHES_KEY) - 1;
    argv[argc] = OFFLOAD_QUEUES_KEY;
    argvlen[argc++] = sizeof(OFFLOAD_QUEUES_KEY) - 1;
    argv[argc] = "cache";
    argvlen[argc++] = 5;
    argv[argc] = "";
    argvlen[argc++] = 0;
    argv[argc] = "";
    argvlen[argc++] = 0;
    argv[argc] = OFFLOAD_NODE_PREFIX;
    argvlen[argc++] = sizeof(OFFLOAD_NODE_PREFIX) - 1;
    argv[argc] = (char *) peer->name.data;
    argvlen[argc++] = peer->name.len;
    argv[argc] = ngx_http_offload_status_labels ? "1" : "0";
    argvlen[argc++] = 1;

    /* the Prometheus families only for an offload_metrics location */
    argv[argc] = ngx_http_offload_status_cache_of->prom ? "1" : "0";
    argvlen[argc++] = 1;

    return ngx_http_offload_link_send(link,
                                      ngx_http_offload_status_done, peer,
                                      argc, argv, argvlen);
}


static void
ngx_http_offload_status_done(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply               *reply = r;
    ngx_http_offload_peer_t  *peer = privdata;

    (void) ngx_http_offload_link_replied(ac, reply);

    if (reply != NULL && reply->type == REDIS_REPLY_ERROR
        && !peer->status_by_eval
        && ngx_strncmp(reply->str, "NOSCRIPT", 8) == 0)
    {
        peer->status_by_eval = 1;

        if (ngx_http_offload_status_query(peer) == NGX_OK) {
            return;
        }

        reply = NULL;
    }

    peer->status_by_eval = 0;

    if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "offload: redis %V: status script: %s",
                      &peer->name, reply->str);
    }

    ngx_http_offload_status_store(peer, reply);
    ngx_http_offload_status_wake();
}


/* A refresh ended: its answer into the zone (reply NULL or unusable: the
 * refresh failed, the previous answer stays). */

static void
ngx_http_offload_status_store(ngx_http_offload_peer_t *peer,
    redisReply *reply)
{
    size_t                            size, room;
    u_char                           *data;
    ngx_str_t                         lean;
    ngx_msec_t                        now;
    ngx_slab_pool_t                  *shpool;
    ngx_http_offload_status_cache_t  *cache;
    ngx_http_offload_status_entry_t  *e;

    cache = ngx_http_offload_status_cache_of;
    shpool = cache->shpool;
    now = ngx_current_msec;
    room = 0;
    ngx_str_null(&lean);

    if (reply != NULL && reply->type == REDIS_REPLY_ARRAY
        && reply->elements > 0
        && reply->element[0]->type == REDIS_REPLY_STRING)
    {
        lean.data = ngx_alloc(reply->element[0]->len + 1, ngx_cycle->log);
        if (lean.data == NULL) {
            reply = NULL;

        } else {
            lean.len = ngx_http_offload_status_lean(lean.data,
                           (u_char *) reply->element[0]->str,
                           reply->element[0]->len);
        }
    }

    size = ngx_http_offload_status_packed_size(reply, lean.len);

    if (reply != NULL && reply->type != REDIS_REPLY_ERROR && size == 0) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "offload: redis %V: the status script answered "
                      "something else than its \"cache\" array",
                      &peer->name);
    }

    ngx_shmtx_lock(&shpool->mutex);

    e = ngx_http_offload_status_entry(cache, peer);

    if (e == NULL) {
        ngx_shmtx_unlock(&shpool->mutex);
        goto done;
    }

    e->asked = 0;
    e->version++;

    if (size == 0) {
        e->failed = now;
        ngx_shmtx_unlock(&shpool->mutex);
        goto done;
    }

    /*
     * the previous answer makes room for this one; the entry points to the
     * new one only once it is packed whole: a worker that dies on the way
     * (nginx frees the mutex it held) leaves no answer, not half of one
     */

    if (e->data) {
        ngx_slab_free_locked(shpool, e->data);
        e->data = NULL;
        e->len = 0;
    }

    data = ngx_slab_alloc_locked(shpool, size);

    if (data == NULL && ngx_http_offload_status_sweep(cache, e) != NULL) {
        data = ngx_slab_alloc_locked(shpool, size);
    }

    if (data) {
        ngx_http_offload_status_pack(data, reply, &lean);

    } else {
        room = (shpool->end - shpool->start);
    }

    ngx_memory_barrier();

    e->len = data ? size : 0;
    e->data = data;
    e->full = (data == NULL);
    e->failed = 0;
    e->fetched = now;

    ngx_shmtx_unlock(&shpool->mutex);

    if (room) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "offload: redis %V: the status answer of %uz bytes "
                      "does not fit in offload_status_cache (%uz bytes, "
                      "shared by every Redis): make it larger",
                      &peer->name, size, room);
    }

done:

    if (lean.data) {
        ngx_free(lean.data);
    }
}


/* Looks at this worker's parked readers: a refresh landed, or a deadline
 * passed.  From a reply callback or the timer. */

static void
ngx_http_offload_status_wake(void)
{
    ngx_int_t                         rc;
    ngx_uint_t                        i;
    ngx_msec_t                        now;
    ngx_queue_t                      *q, *next;
    ngx_connection_t                 *c;
    ngx_http_request_t               *r;
    ngx_http_offload_status_ctx_t    *sctx;
    ngx_http_offload_status_read_t   *rd;
    ngx_http_offload_status_entry_t  *e;
    ngx_http_offload_status_cache_t  *cache;

    if (ngx_http_offload_status_waiters.next == NULL) {
        return;
    }

    cache = ngx_http_offload_status_cache_of;
    now = ngx_current_msec;

    for (q = ngx_queue_head(&ngx_http_offload_status_waiters);
         q != ngx_queue_sentinel(&ngx_http_offload_status_waiters);
         q = next)
    {
        next = ngx_queue_next(q);
        sctx = ngx_queue_data(q, ngx_http_offload_status_ctx_t, queue);

        ngx_shmtx_lock(&cache->shpool->mutex);

        for (i = 0; i < sctx->nreads; i++) {
            rd = &sctx->read[i];

            if (rd->state != NGX_HTTP_OFFLOAD_READ_WAITING) {
                continue;
            }

            e = ngx_http_offload_status_entry(cache, rd->peer);

            if (e == NULL) {
                rd->state = NGX_HTTP_OFFLOAD_READ_NONE;
                sctx->waiting--;

            } else if (e->version != rd->version
                || (ngx_msec_int_t) (now - sctx->deadline) >= 0)
            {
                ngx_http_offload_status_take(sctx, rd, e);
                sctx->waiting--;
            }
        }

        ngx_shmtx_unlock(&cache->shpool->mutex);

        if (sctx->waiting) {
            continue;
        }

        ngx_queue_remove(q);
        sctx->parked = 0;

        r = sctx->request;
        c = r->connection;

        rc = ngx_http_offload_status_send(sctx);

        ngx_http_finalize_request(r, rc);
        ngx_http_run_posted_requests(c);
    }

    if (!ngx_queue_empty(&ngx_http_offload_status_waiters)) {
        if (!ngx_http_offload_status_timer.timer_set) {
            ngx_add_timer(&ngx_http_offload_status_timer,
                          NGX_HTTP_OFFLOAD_STATUS_POLL);
        }

    } else if (ngx_http_offload_status_timer.timer_set) {
        ngx_del_timer(&ngx_http_offload_status_timer);
    }
}


static void
ngx_http_offload_status_poll(ngx_event_t *ev)
{
    ngx_http_offload_status_wake();
}


static void
ngx_http_offload_status_cleanup(void *data)
{
    ngx_http_offload_status_ctx_t  *sctx = data;

    if (sctx->parked) {
        ngx_queue_remove(&sctx->queue);
        sctx->parked = 0;
    }
}


/* ?sort=memory|cpu|queue|restarts|jobs; absent or empty is none (Redis,
 * node, queue, slot) */

static ngx_int_t
ngx_http_offload_status_sort(ngx_http_request_t *r, ngx_int_t *sort)
{
    ngx_str_t   s;
    ngx_uint_t  i;

    if (ngx_http_arg(r, (u_char *) "sort", 4, &s) != NGX_OK || s.len == 0) {
        return NGX_OK;
    }

    for (i = 0; ngx_http_offload_sorts[i]; i++) {
        if (s.len == ngx_strlen(ngx_http_offload_sorts[i])
            && ngx_strncmp(s.data, ngx_http_offload_sorts[i], s.len) == 0)
        {
            *sort = i;
            return NGX_OK;
        }
    }

    return NGX_ERROR;
}


/* ?limit=N, 1 to NGX_HTTP_OFFLOAD_LIMIT_MAX; absent is no limit */

static ngx_int_t
ngx_http_offload_status_limit(ngx_http_request_t *r, ngx_uint_t *limit)
{
    ngx_int_t  n;
    ngx_str_t  s;

    if (ngx_http_arg(r, (u_char *) "limit", 5, &s) != NGX_OK) {
        return NGX_OK;
    }

    n = ngx_atoi(s.data, s.len);

    if (n == NGX_ERROR || n < 1 || n > NGX_HTTP_OFFLOAD_LIMIT_MAX) {
        return NGX_ERROR;
    }

    *limit = n;

    return NGX_OK;
}


/* ?full=1: the node documents with their queues' workers; absent, empty
 * or 0 is without */

static ngx_int_t
ngx_http_offload_status_full(ngx_http_request_t *r, ngx_uint_t *full)
{
    ngx_str_t  s;

    if (ngx_http_arg(r, (u_char *) "full", 4, &s) != NGX_OK || s.len == 0) {
        return NGX_OK;
    }

    if (s.len != 1 || (s.data[0] != '0' && s.data[0] != '1')) {
        return NGX_ERROR;
    }

    *full = (s.data[0] == '1');

    return NGX_OK;
}


static ngx_int_t  ngx_http_offload_status_by;

static int ngx_libc_cdecl
ngx_http_offload_status_cmp(const void *one, const void *two)
{
    const ngx_http_offload_status_worker_t  *a = one, *b = two;

    if (ngx_http_offload_status_by >= 0
        && a->key[ngx_http_offload_status_by]
           != b->key[ngx_http_offload_status_by])
    {
        return a->key[ngx_http_offload_status_by]
               > b->key[ngx_http_offload_status_by] ? -1 : 1;
    }

    if (a->redis != b->redis) {
        return a->redis < b->redis ? -1 : 1;
    }

    return a->pos < b->pos ? -1 : (a->pos > b->pos);
}


/* The workers of every answer, sorted, in r->pool; NULL when none. */

static ngx_http_offload_status_worker_t *
ngx_http_offload_status_workers(ngx_http_offload_status_ctx_t *sctx,
    ngx_uint_t total)
{
    u_char                            *p;
    ngx_uint_t                         i, j;
    ngx_http_offload_status_read_t    *rd;
    ngx_http_offload_status_worker_t  *ws, *w;
    ngx_http_offload_status_record_t   rec;

    ws = ngx_palloc(sctx->request->pool,
                    total * sizeof(ngx_http_offload_status_worker_t));
    if (ws == NULL) {
        return NULL;
    }

    w = ws;

    for (i = 0; i < sctx->nreads; i++) {
        rd = &sctx->read[i];

        if (rd->state != NGX_HTTP_OFFLOAD_READ_OK) {
            continue;
        }

        p = rd->packed.records;

        for (j = 0; j < rd->packed.nworkers; j++) {
            ngx_memcpy(&rec, p, sizeof(rec));
            p += sizeof(rec);

            ngx_memcpy(w->key, rec.key, sizeof(w->key));
            w->redis = i;
            w->pos = j;
            w->text = rd->packed.text.data + rec.off;
            w->len = rec.len;
            w++;
        }
    }

    ngx_http_offload_status_by = sctx->sort;
    ngx_qsort(ws, total, sizeof(ngx_http_offload_status_worker_t),
              ngx_http_offload_status_cmp);

    return ws;
}


static ngx_int_t
ngx_http_offload_status_add(ngx_http_offload_status_out_t *out,
    u_char *data, size_t len)
{
    ngx_chain_t  *cl;

    if (len == 0) {
        return NGX_OK;
    }

    cl = ngx_http_offload_chain_of(out->pool, data, len);
    if (cl == NULL) {
        return NGX_ERROR;
    }

    *out->last = cl;
    out->last = &cl->next;
    out->len += len;

    return NGX_OK;
}


#define ngx_http_offload_status_add_text(out, text)                          \
    ngx_http_offload_status_add(out, (u_char *) text, sizeof(text) - 1)


/* one part of every answer, joined by commas */

static ngx_int_t
ngx_http_offload_status_join(ngx_http_offload_status_ctx_t *sctx,
    ngx_uint_t part, ngx_http_offload_status_out_t *out)
{
    ngx_str_t   *s;
    ngx_uint_t   i, first;

    first = 1;

    for (i = 0; i < sctx->nreads; i++) {
        s = &sctx->read[i].packed.part[part];

        if (sctx->read[i].state != NGX_HTTP_OFFLOAD_READ_OK || s->len == 0) {
            continue;
        }

        if ((!first && ngx_http_offload_status_add_text(out, ",") != NGX_OK)
            || ngx_http_offload_status_add(out, s->data, s->len) != NGX_OK)
        {
            return NGX_ERROR;
        }

        first = 0;
    }

    return NGX_OK;
}


/*
 * The workers, limited: in the script's order (by Redis, node, queue,
 * slot) whole runs of each answer's text, sorted one by one.  Each text
 * starts with a comma, skipped for the first.
 */

static ngx_int_t
ngx_http_offload_status_list(ngx_http_offload_status_ctx_t *sctx,
    ngx_uint_t total, ngx_http_offload_status_out_t *out)
{
    u_char                            *from, *to;
    ngx_uint_t                         i, n, skip, left;
    ngx_http_offload_status_read_t    *rd;
    ngx_http_offload_status_worker_t  *ws;
    ngx_http_offload_status_record_t   rec;

    left = sctx->limit ? ngx_min(sctx->limit, total) : total;
    skip = 1;

    if (sctx->sort < 0) {
        for (i = 0; i < sctx->nreads && left; i++) {
            rd = &sctx->read[i];

            if (rd->state != NGX_HTTP_OFFLOAD_READ_OK
                || rd->packed.nworkers == 0)
            {
                continue;
            }

            n = ngx_min(left, rd->packed.nworkers);
            left -= n;

            ngx_memcpy(&rec, rd->packed.records + (n - 1) * sizeof(rec),
                       sizeof(rec));

            from = rd->packed.text.data + skip;
            to = rd->packed.text.data + rec.off + rec.len;
            skip = 0;

            if (ngx_http_offload_status_add(out, from, to - from) != NGX_OK) {
                return NGX_ERROR;
            }
        }

        return NGX_OK;
    }

    ws = ngx_http_offload_status_workers(sctx, total);
    if (ws == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < left; i++) {
        if (ngx_http_offload_status_add(out, ws[i].text + skip,
                                        ws[i].len - skip)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        skip = 0;
    }

    return NGX_OK;
}


/*
 * The Redis part of the answers most clients ask for: one Redis read and,
 * for JSON, the default arguments (no sort, no limit, nodes without their
 * workers).  Rendered once per copy, by its first such request, and then
 * answered as one buffer: no assembly per request.  NULL for the others
 * (assembled from the copy's parts), or when memory is short.
 */

static ngx_str_t *
ngx_http_offload_status_rendered(ngx_http_offload_status_ctx_t *sctx)
{
    u_char                          *p, *at;
    size_t                           size;
    ngx_str_t                        s, text, *done, *part;
    ngx_uint_t                       f, json;
    ngx_http_offload_status_read_t  *rd;

    rd = &sctx->read[0];
    json = (sctx->report == NGX_HTTP_OFFLOAD_REPORT_JSON);

    if (sctx->nreads != 1 || rd->state != NGX_HTTP_OFFLOAD_READ_OK
        || (json && (sctx->sort >= 0 || sctx->limit || sctx->full)))
    {
        return NULL;
    }

    done = json ? &rd->copy->json : &rd->copy->prom;

    if (done->data) {
        return done;
    }

    if (json) {

        /* the workers' text without its leading comma */

        text = rd->packed.text;

        if (text.len) {
            text.data++;
            text.len--;
        }

        part = rd->packed.part;

        size = part[3].len + part[1].len + text.len + part[2].len
               + part[4].len + NGX_INT_T_LEN + 96;

        p = ngx_alloc(size, ngx_cycle->log);
        if (p == NULL) {
            return NULL;
        }

        done->data = p;
        done->len = ngx_snprintf(p, size, "%V],\"queues\":{%V},\"workers\":"
                                 "[%V],\"workers_total\":%ui,\"crashes\":"
                                 "[%V],\"malformed_nodes\":[%V]}",
                                 &part[3], &part[1], &text,
                                 rd->packed.nworkers, &part[2], &part[4])
                    - p;
        return done;
    }

    /* every family's header and samples, in turn */

    size = 1;
    at = rd->packed.fams;

    for (f = 0; f < 2 * rd->packed.nfams; f++) {
        at = ngx_http_offload_status_get(at, &s);
        size += s.len;
    }

    p = ngx_alloc(size, ngx_cycle->log);
    if (p == NULL) {
        return NULL;
    }

    done->data = p;
    at = rd->packed.fams;

    for (f = 0; f < 2 * rd->packed.nfams; f++) {
        at = ngx_http_offload_status_get(at, &s);
        p = ngx_cpymem(p, s.data, s.len);
    }

    done->len = p - done->data;

    return done;
}


/*
 * Adds the head of an answer (this nginx's own part, which the caller has
 * just written) and notes the pre-rendered Redis part, when there is one,
 * for _send() to keep and answer, plain or gzip'd: NGX_OK when the answer is
 * complete so, NGX_DECLINED when the caller is to assemble the Redis part
 * from the copies (then _join_rest()), NGX_ERROR.
 */

static ngx_int_t
ngx_http_offload_status_add_head(ngx_http_offload_status_ctx_t *sctx,
    ngx_http_offload_status_out_t *out, u_char *head, size_t len)
{
    ngx_http_offload_status_copy_t  *copy;

    if (ngx_http_offload_status_add(out, head, len) != NGX_OK) {
        return NGX_ERROR;
    }

    sctx->rendered = ngx_http_offload_status_rendered(sctx);

    if (sctx->rendered == NULL) {
        return NGX_DECLINED;
    }

    copy = sctx->read[0].copy;
    sctx->gz = (sctx->report == NGX_HTTP_OFFLOAD_REPORT_JSON)
               ? &copy->json_gz : &copy->prom_gz;

    return NGX_OK;
}


/*
 * The Redis part of an answer, just assembled after out's mark (at bytes):
 * left there, or, for the default arguments, taken out of out and answered
 * as the worker's joined part of these reads (see
 * ngx_http_offload_status_joined_t), made now if it has none.
 */

static ngx_int_t
ngx_http_offload_status_join_rest(ngx_http_offload_status_ctx_t *sctx,
    ngx_http_offload_status_out_t *out, ngx_chain_t **mark, off_t at)
{
    u_char                             *p;
    ngx_uint_t                          i;
    ngx_chain_t                        *cl;
    ngx_http_offload_status_copy_t     *copy;
    ngx_http_offload_status_joined_t   *joined, **kept;

    if (sctx->sort >= 0 || sctx->limit || sctx->full) {
        return NGX_OK;
    }

    kept = &ngx_http_offload_status_joins[sctx->report - 1];
    joined = *kept;

    if (joined && joined->nreads == sctx->nreads) {
        for (i = 0; i < sctx->nreads; i++) {
            copy = sctx->read[i].copy;

            if (joined->copy[i] != copy
                || (copy && joined->fetched[i] != copy->fetched))
            {
                break;
            }
        }

        if (i < sctx->nreads) {
            joined = NULL;
        }

    } else {
        joined = NULL;
    }

    if (joined == NULL) {
        joined = ngx_alloc(sizeof(ngx_http_offload_status_joined_t)
                           + (out->len - at), ngx_cycle->log);
        if (joined == NULL) {
            return NGX_ERROR;
        }

        joined->refs = 0;
        joined->retired = 0;
        joined->nreads = sctx->nreads;

        for (i = 0; i < sctx->nreads; i++) {
            copy = sctx->read[i].copy;
            joined->copy[i] = copy;
            joined->fetched[i] = copy ? copy->fetched : 0;
        }

        joined->text.data = (u_char *) &joined[1];
        p = joined->text.data;

        for (cl = *mark; cl; cl = cl->next) {
            p = ngx_cpymem(p, cl->buf->pos, cl->buf->last - cl->buf->pos);
        }

        joined->text.len = p - joined->text.data;
        joined->gz.data = NULL;

        if (*kept) {
            if ((*kept)->refs == 0) {
                ngx_http_offload_status_joined_free(*kept);

            } else {
                (*kept)->retired = 1;
            }
        }

        *kept = joined;
    }

    *mark = NULL;
    out->last = mark;
    out->len = at;

    joined->refs++;
    sctx->joined = joined;
    sctx->rendered = &joined->text;
    sctx->gz = &joined->gz;

    return NGX_OK;
}


static const char *
ngx_http_offload_status_state(ngx_http_offload_status_read_t *rd)
{
    switch (rd->state) {

    case NGX_HTTP_OFFLOAD_READ_OK:
        return "ok";

    case NGX_HTTP_OFFLOAD_READ_FULL:
        return "status_cache_full";

    default:
        return "unavailable";
    }
}


/*
 * JSON: {"nginx":{...},"redis":"ok"|"partial"|"unavailable","redises":[
 * {"redis":<name>,"state":...,"age_ms":n}],"nodes":[...],"queues":{...},
 * "workers":[...],"workers_total":n,"crashes":[...],
 * "malformed_nodes":[...]}.
 */

static ngx_int_t
ngx_http_offload_status_json(ngx_http_offload_status_ctx_t *sctx,
    ngx_http_offload_status_out_t *out, ngx_uint_t total)
{
    u_char                          *p, *last, *head, *tail;
    off_t                            marked;
    size_t                           size;
    ngx_int_t                        rc;
    ngx_uint_t                       i, ok;
    ngx_chain_t                    **mark;
    ngx_http_offload_status_read_t  *rd;
    ngx_http_offload_metrics_t      *m = ngx_http_offload_worker.metrics;

    ok = 0;
    size = ngx_http_offload_metrics_json_size(m) + 128;

    for (i = 0; i < sctx->nreads; i++) {
        ok += (sctx->read[i].state == NGX_HTTP_OFFLOAD_READ_OK);
        size += sctx->read[i].peer->name.len + 80;
    }

    head = ngx_pnalloc(out->pool, size);
    tail = ngx_pnalloc(out->pool, 64);

    if (head == NULL || tail == NULL) {
        return NGX_ERROR;
    }

    p = head;
    last = head + size;

    p = ngx_slprintf(p, last, "{\"nginx\":");
    p = ngx_http_offload_metrics_json(m, p, last);
    p = ngx_slprintf(p, last, ",\"redis\":\"%s\",\"redises\":[",
                     ok == sctx->nreads ? "ok"
                     : ok ? "partial" : "unavailable");

    for (i = 0; i < sctx->nreads; i++) {
        rd = &sctx->read[i];

        /* a peer's name is an address: nothing to escape */
        p = ngx_slprintf(p, last, "%s{\"redis\":\"%V\",\"state\":\"%s\"",
                         i ? "," : "", &rd->peer->name,
                         ngx_http_offload_status_state(rd));

        if (rd->state == NGX_HTTP_OFFLOAD_READ_OK) {
            p = ngx_slprintf(p, last, ",\"age_ms\":%M", rd->age);
        }

        p = ngx_slprintf(p, last, "}");
    }

    p = ngx_slprintf(p, last, "],\"nodes\":[");

    rc = ngx_http_offload_status_add_head(sctx, out, head, p - head);

    if (rc != NGX_DECLINED) {
        return rc;
    }

    mark = out->last;
    marked = out->len;

    if (ngx_http_offload_status_join(sctx, sctx->full ? 0 : 3, out) != NGX_OK
        || ngx_http_offload_status_add_text(out, "],\"queues\":{") != NGX_OK
        || ngx_http_offload_status_join(sctx, 1, out) != NGX_OK
        || ngx_http_offload_status_add_text(out, "},\"workers\":[")
           != NGX_OK
        || ngx_http_offload_status_list(sctx, total, out) != NGX_OK)
    {
        return NGX_ERROR;
    }

    p = ngx_slprintf(tail, tail + 64, "],\"workers_total\":%ui,"
                     "\"crashes\":[", total);

    if (ngx_http_offload_status_add(out, tail, p - tail) != NGX_OK
        || ngx_http_offload_status_join(sctx, 2, out) != NGX_OK
        || ngx_http_offload_status_add_text(out, "],\"malformed_nodes\":[")
           != NGX_OK
        || ngx_http_offload_status_join(sctx, 4, out) != NGX_OK
        || ngx_http_offload_status_add_text(out, "]}") != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_offload_status_join_rest(sctx, out, mark, marked);
}


/* Prometheus text: the zone's families, offload_redis_up, then each of
 * the script's families once, with the samples of every Redis. */

static ngx_int_t
ngx_http_offload_status_prom(ngx_http_offload_status_ctx_t *sctx,
    ngx_http_offload_status_out_t *out)
{
    u_char                          *p, *last, *head, **at;
    off_t                            marked;
    size_t                           size;
    ngx_int_t                        rc;
    ngx_str_t                        fam, samples;
    ngx_uint_t                       i, f, nfams, labels, headed;
    ngx_chain_t                    **mark;
    ngx_http_offload_status_read_t  *rd;
    ngx_http_offload_metrics_t      *m = ngx_http_offload_worker.metrics;

    labels = (sctx->nreads > 1);
    size = ngx_http_offload_metrics_prom_size(m) + 256;

    for (i = 0; i < sctx->nreads; i++) {
        size += sctx->read[i].peer->name.len + 64;
    }

    head = ngx_pnalloc(out->pool, size);
    at = ngx_palloc(out->pool, sctx->nreads * sizeof(u_char *));

    if (head == NULL || at == NULL) {
        return NGX_ERROR;
    }

    p = head;
    last = head + size;

    p = ngx_http_offload_metrics_prom(m, p, last);
    p = ngx_slprintf(p, last, "# HELP offload_redis_up Whether this nginx "
                     "read the nodes from Redis for this scrape.\n"
                     "# TYPE offload_redis_up gauge\n");

    nfams = NGX_MAX_UINT32_VALUE;

    for (i = 0; i < sctx->nreads; i++) {
        rd = &sctx->read[i];

        if (labels) {
            p = ngx_slprintf(p, last, "offload_redis_up{redis=\"%V\"} %d\n",
                             &rd->peer->name,
                             rd->state == NGX_HTTP_OFFLOAD_READ_OK);
        } else {
            p = ngx_slprintf(p, last, "offload_redis_up %d\n",
                             rd->state == NGX_HTTP_OFFLOAD_READ_OK);
        }

        at[i] = rd->packed.fams;

        if (rd->state == NGX_HTTP_OFFLOAD_READ_OK) {
            nfams = ngx_min(nfams, rd->packed.nfams);
        }
    }

    rc = ngx_http_offload_status_add_head(sctx, out, head, p - head);

    if (rc != NGX_DECLINED) {
        return rc;
    }

    mark = out->last;
    marked = out->len;

    for (f = 0; nfams != NGX_MAX_UINT32_VALUE && f < nfams; f++) {
        headed = 0;

        for (i = 0; i < sctx->nreads; i++) {
            rd = &sctx->read[i];

            if (rd->state != NGX_HTTP_OFFLOAD_READ_OK) {
                continue;
            }

            at[i] = ngx_http_offload_status_get(at[i], &fam);
            at[i] = ngx_http_offload_status_get(at[i], &samples);

            if ((!headed
                 && ngx_http_offload_status_add(out, fam.data, fam.len)
                    != NGX_OK)
                || ngx_http_offload_status_add(out, samples.data,
                                               samples.len)
                   != NGX_OK)
            {
                return NGX_ERROR;
            }

            headed = 1;
        }
    }

    return ngx_http_offload_status_join_rest(sctx, out, mark, marked);
}


/*
 * The default answer of sctx's report kept by _keep(), if it may be
 * answered again (see ngx_http_offload_status_answer_t): NGX_DECLINED when
 * not.  No lock: the zone's entry is only looked at for a newer refresh.
 */

static ngx_int_t
ngx_http_offload_status_reuse(ngx_http_offload_status_ctx_t *sctx)
{
    ngx_msec_t                         fetched;
    ngx_http_offload_peer_t           *peer;
    ngx_http_offload_status_copy_t    *copy;
    ngx_http_offload_status_read_t    *rd;
    ngx_http_offload_status_answer_t  *answer;

    answer = ngx_http_offload_status_answers[sctx->report - 1];

    if (answer == NULL
        || ngx_http_offload_status_age(ngx_current_msec, answer->made)
           >= NGX_HTTP_OFFLOAD_STATUS_REUSE)
    {
        return NGX_DECLINED;
    }

    peer = answer->peer;
    copy = peer->status_copy;

    if (copy != answer->copy || copy->fetched != answer->fetched
        || peer->status_entry == 0)
    {
        return NGX_DECLINED;
    }

    /* a word another worker writes under the lock: read as it is (the
     * entry may be another Redis's since: its refresh is not this copy's,
     * and this one is still this Redis's own answer) */

    fetched = ((volatile ngx_http_offload_status_entry_t *)
               &ngx_http_offload_status_cache_of->sh
                    ->entry[peer->status_entry - 1])->fetched;

    if (fetched != copy->fetched) {
        return NGX_DECLINED;
    }

    rd = &sctx->read[sctx->nreads++];
    rd->peer = peer;
    rd->state = NGX_HTTP_OFFLOAD_READ_OK;
    rd->copy = copy;
    copy->refs++;
    sctx->kept = answer;
    answer->refs++;

    if (sctx->report == NGX_HTTP_OFFLOAD_REPORT_JSON) {
        sctx->rendered = &copy->json;
        sctx->gz = &copy->json_gz;

    } else {
        sctx->rendered = &copy->prom;
        sctx->gz = &copy->prom_gz;
    }

    return ngx_http_offload_status_answer(sctx, &answer->head,
                                          &answer->frame);
}


/* Keeps a default answer's head (this nginx's part, just rendered) for
 * _reuse(), held by the request. */

static ngx_http_offload_status_answer_t *
ngx_http_offload_status_keep(ngx_http_offload_status_ctx_t *sctx,
    ngx_str_t *head)
{
    ngx_http_offload_status_read_t     *rd;
    ngx_http_offload_status_answer_t   *answer, **kept;

    kept = &ngx_http_offload_status_answers[sctx->report - 1];
    rd = &sctx->read[0];

    answer = ngx_alloc(sizeof(ngx_http_offload_status_answer_t) + head->len,
                       sctx->request->connection->log);
    if (answer == NULL) {
        return NULL;
    }

    answer->refs = 1;
    answer->peer = rd->peer;
    answer->copy = rd->copy;
    answer->fetched = rd->copy->fetched;
    answer->made = ngx_current_msec;
    answer->head.data = (u_char *) &answer[1];
    answer->head.len = head->len;
    ngx_memcpy(answer->head.data, head->data, head->len);
    ngx_str_null(&answer->frame);
    answer->retired = 0;

    if (*kept) {
        if ((*kept)->refs == 0) {
            ngx_http_offload_status_answer_free(*kept);

        } else {
            (*kept)->retired = 1;
        }
    }

    *kept = answer;
    sctx->kept = answer;

    return answer;
}


/*
 * An answer of a head (this nginx's part) and the rendered Redis part: as
 * they are, or, to a client that takes gzip, a gzip member of the head in
 * stored blocks and the rendered part deflated, at its first such GET
 * (logged at info level: how often it happens can be seen).  With frame,
 * head is kept by _keep(), and its gzip frame, the head deflated, is made
 * once, into frame; without, the frame is made in the request's pool, the
 * head in stored blocks.  A HEAD spends no deflate: it gets the member's
 * length only when the deflates were done.
 */

static ngx_int_t
ngx_http_offload_status_answer(ngx_http_offload_status_ctx_t *sctx,
    ngx_str_t *head, ngx_str_t *frame)
{
    u_char                          *p;
    size_t                           len;
    ngx_buf_t                        b;
    ngx_chain_t                      cl;
    ngx_table_elt_t                 *h;
    ngx_http_request_t              *r;
    ngx_http_offload_status_out_t    out;
    ngx_http_offload_gzip_tail_t    *tail;

    r = sctx->request;

    out.pool = r->pool;
    out.first = NULL;
    out.last = &out.first;
    out.len = 0;

    if (!ngx_http_offload_gzip_accepted(r)) {
        if (ngx_http_offload_status_add(&out, head->data, head->len) != NGX_OK
            || ngx_http_offload_status_add(&out, sctx->rendered->data,
                                           sctx->rendered->len)
               != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_offload_status_send_out(sctx, &out);
    }

    tail = sctx->gz;
    len = ngx_http_offload_gzip_frame_size(head->len);

    if (r->method == NGX_HTTP_HEAD) {

        /* the member's length, known once its parts were made */

        if (tail->data == NULL || (frame && frame->data == NULL)) {
            out.len = -1;

        } else {
            out.len = (frame ? frame->len : len) + tail->len;
        }

        goto encoded;
    }

    if (tail->data == NULL) {
        if (ngx_http_offload_gzip_tail(tail, sctx->rendered,
                                       r->connection->log)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "offload status: the %s answer's nodes part of "
                      "this refresh gzip'd, %uz bytes to %uz",
                      sctx->report == NGX_HTTP_OFFLOAD_REPORT_JSON
                      ? "JSON" : "Prometheus", sctx->rendered->len,
                      tail->len);
    }

    if (frame && frame->data == NULL
        && ngx_http_offload_gzip_frame_deflated(frame, head, tail,
                                                r->connection->log)
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (frame) {
        p = frame->data;
        len = frame->len;

    } else {
        p = ngx_pnalloc(r->pool, len);
        if (p == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_memzero(&b, sizeof(ngx_buf_t));
        b.pos = head->data;
        b.last = head->data + head->len;
        cl.buf = &b;
        cl.next = NULL;

        ngx_http_offload_gzip_frame(p, &cl, tail);
    }

    out.first = ngx_http_offload_gzip_chain(r->pool, p, len, tail, &out.len);
    if (out.first == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

encoded:

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Content-Encoding");
    ngx_str_set(&h->value, "gzip");
    r->headers_out.content_encoding = h;

    return ngx_http_offload_status_send_out(sctx, &out);
}


static ngx_int_t
ngx_http_offload_status_send(ngx_http_offload_status_ctx_t *sctx)
{
    ngx_int_t                          rc;
    ngx_str_t                          head;
    ngx_uint_t                         i, total;
    ngx_http_request_t                *r;
    ngx_http_offload_status_out_t      out;
    ngx_http_offload_status_read_t    *rd;
    ngx_http_offload_status_answer_t  *answer;

    r = sctx->request;
    total = 0;

    for (i = 0; i < sctx->nreads; i++) {
        rd = &sctx->read[i];

        if (rd->state == NGX_HTTP_OFFLOAD_READ_OK) {
            ngx_http_offload_status_unpack(rd->copy->data, &rd->packed);
            total += rd->packed.nworkers;
        }
    }

    out.pool = r->pool;
    out.first = NULL;
    out.last = &out.first;
    out.len = 0;

    if (sctx->report == NGX_HTTP_OFFLOAD_REPORT_JSON) {
        rc = ngx_http_offload_status_json(sctx, &out, total);

    } else {
        rc = ngx_http_offload_status_prom(sctx, &out);
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (sctx->rendered == NULL) {
        return ngx_http_offload_status_send_out(sctx, &out);
    }

    head.data = out.first->buf->pos;
    head.len = out.first->buf->last - head.data;

    if (sctx->joined) {
        return ngx_http_offload_status_answer(sctx, &head, NULL);
    }

    answer = ngx_http_offload_status_keep(sctx, &head);
    if (answer == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_offload_status_answer(sctx, &answer->head,
                                          &answer->frame);
}


static ngx_int_t
ngx_http_offload_status_send_out(ngx_http_offload_status_ctx_t *sctx,
    ngx_http_offload_status_out_t *out)
{
    ngx_http_request_t  *r;

    r = sctx->request;

    /* the default answers may be gzip'd: caches must tell them apart */

    if (sctx->sort < 0 && sctx->limit == 0 && !sctx->full
        && ngx_http_offload_add_header(r, "Vary",
                                       (u_char *) "Accept-Encoding", 15)
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_offload_send_chain(r, NGX_HTTP_OK,
                                       sctx->report
                                       == NGX_HTTP_OFFLOAD_REPORT_JSON
                                       ? &ngx_http_offload_json_type
                                       : &ngx_http_offload_prom_type,
                                       out->first, out->len);
}


static ngx_int_t
ngx_http_offload_status_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_offload_status_cache_t  *ocache = data;

    ngx_slab_pool_t                  *shpool;
    ngx_http_offload_status_sh_t     *sh;
    ngx_http_offload_status_cache_t  *cache;

    cache = shm_zone->data;
    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (ocache) {
        cache->sh = ocache->sh;
        cache->shpool = ocache->shpool;
        return NGX_OK;
    }

    if (shm_zone->shm.exists) {
        cache->sh = shpool->data;
        cache->shpool = shpool;
        return NGX_OK;
    }

    sh = ngx_slab_calloc(shpool, sizeof(ngx_http_offload_status_sh_t));
    if (sh == NULL) {
        return NGX_ERROR;
    }

    shpool->data = sh;
    shpool->log_nomem = 0;

    cache->sh = sh;
    cache->shpool = shpool;

    return NGX_OK;
}


/* offload_status_cache <size> [<interval>] */

char *
ngx_http_offload_status_cache(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_offload_main_conf_t  *omcf = conf;

    ssize_t     size;
    ngx_str_t  *value;
    ngx_msec_t  interval;

    if (omcf->status_size != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    size = ngx_parse_size(&value[1]);

    if (size == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid offload_status_cache size \"%V\": a "
                           "number of bytes, with k or m", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (size < (ssize_t) (8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid offload_status_cache size \"%V\", "
                           "it must be at least %uz", &value[1],
                           8 * ngx_pagesize);
        return NGX_CONF_ERROR;
    }

    omcf->status_size = size;

    if (cf->args->nelts == 3) {
        interval = ngx_parse_time(&value[2], 0);

        if (interval == (ngx_msec_t) NGX_ERROR || interval == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid offload_status_cache interval "
                               "\"%V\"", &value[2]);
            return NGX_CONF_ERROR;
        }

        omcf->status_interval = interval;
    }

    return NGX_CONF_OK;
}


/* Called at postconfiguration: the zone, when a location reports. */

ngx_int_t
ngx_http_offload_status_add_zone(ngx_conf_t *cf,
    ngx_http_offload_main_conf_t *omcf)
{
    ngx_str_t        name = ngx_string("offload_status");
    ngx_shm_zone_t  *shm_zone;

    if (omcf->status_cache == NULL) {
        return NGX_OK;
    }

    if (omcf->status_size == NGX_CONF_UNSET) {
        omcf->status_size = NGX_HTTP_OFFLOAD_STATUS_SIZE;
    }

    if (omcf->status_interval == NGX_CONF_UNSET_MSEC) {
        omcf->status_interval = NGX_HTTP_OFFLOAD_STATUS_INTERVAL;
    }

    omcf->status_cache->interval = omcf->status_interval;

    shm_zone = ngx_shared_memory_add(cf, &name, omcf->status_size,
                                     &ngx_http_offload_module);
    if (shm_zone == NULL) {
        return NGX_ERROR;
    }

    shm_zone->init = ngx_http_offload_status_init_zone;
    shm_zone->data = omcf->status_cache;

    return NGX_OK;
}


/* offload_status, offload_metrics, offload_dashboard: the location answers
 * a report of the nodes (and so needs a Redis peer, and the cache). */

char *
ngx_http_offload_report(ngx_conf_t *cf, ngx_command_t *cmd, void *conf,
    ngx_uint_t report, ngx_http_handler_pt handler)
{
    ngx_http_offload_loc_conf_t *olcf = conf;

    char                          *rv;
    ngx_http_core_loc_conf_t      *clcf;
    ngx_http_offload_main_conf_t  *omcf;

    rv = ngx_http_offload_content(cf, cmd, olcf);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    olcf->report = report;
    olcf->reads_nodes = 1;
    olcf->handler = handler;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = handler;

    omcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_offload_module);

    if (omcf->status_cache == NULL) {
        omcf->status_cache = ngx_pcalloc(cf->pool,
                                     sizeof(ngx_http_offload_status_cache_t));
        if (omcf->status_cache == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    if (report == NGX_HTTP_OFFLOAD_REPORT_PROM) {
        omcf->status_cache->prom = 1;
    }

    return NGX_CONF_OK;
}


char *
ngx_http_offload_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    return ngx_http_offload_report(cf, cmd, conf,
                                   NGX_HTTP_OFFLOAD_REPORT_JSON,
                                   ngx_http_offload_status_handler);
}


char *
ngx_http_offload_metrics(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    return ngx_http_offload_report(cf, cmd, conf,
                                   NGX_HTTP_OFFLOAD_REPORT_PROM,
                                   ngx_http_offload_status_handler);
}
