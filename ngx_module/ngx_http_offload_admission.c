
/*
 * ngx_http_offload_admission.c -- whether a job is let in at all: the
 * client's shorter deadline (X-Offload-Timeout), the queue's backlog limit
 * (offload_max_backlog), a queue no live node serves any more, and one
 * whose workers never started (no stream, yet listed by a node).
 *
 *   offload_max_backlog <n> | off;
 *
 * The backlog check and the XADD are one script (EVALSHA, EVAL once after
 * NOSCRIPT), so concurrent submissions cannot overshoot the limit; a job
 * with a record (async, Idempotency-Key) is checked the same way by the
 * submit script (ngx_http_offload_jobs.c).  Which
 * queues live nodes serve, and how fast each drains, comes from the node
 * registry: every worker process reads it once a second with a timer
 * (EVALSHA_RO), never per request; a request only looks at that cache.
 */

#include <ngx_sha1.h>


#include "ngx_http_offload_module.h"


#define NGX_HTTP_OFFLOAD_ADMIT_QUEUES     256
#define NGX_HTTP_OFFLOAD_ADMIT_REFRESH    1000
/* a refused job reads it again, at most this often, for this long after
 * a read last found its queue served (a restart takes less) */
#define NGX_HTTP_OFFLOAD_ADMIT_AGAIN      100
#define NGX_HTTP_OFFLOAD_ADMIT_AGAIN_FOR  10000
/* a cache older than this says nothing: the check lets jobs through */
#define NGX_HTTP_OFFLOAD_ADMIT_STALE      3000
/* nor does it this long after the Redis was in trouble (a connection
 * lost, a command refused: OOM...): the nodes could not write their
 * documents meanwhile, which expired, and a node takes a reconnect and a
 * heartbeat to write its own again */
#define NGX_HTTP_OFFLOAD_ADMIT_TROUBLE    10000
/* Retry-After: 1 s at least, at most this */
#define NGX_HTTP_OFFLOAD_RETRY_MAX        30
/* Retry-After of no_workers: a node's restart and first heartbeat */
#define NGX_HTTP_OFFLOAD_RETRY_NO_WORKERS 5


typedef struct {
    uint32_t                      hash;
    size_t                        len;
    u_char                        name[OFFLOAD_QUEUE_NAME_MAX];
    double                        rate;       /* jobs per second */
    ngx_msec_t                    served_at;  /* the last read found it
                                                 served */
    unsigned                      served:1;
} ngx_http_offload_served_t;


struct ngx_http_offload_admission_s {
    ngx_http_offload_peer_t      *peer;
    ngx_event_t                   timer;
    ngx_msec_t                    read_at;    /* 0: never */
    ngx_msec_t                    asked_at;   /* the last read sent */
    ngx_uint_t                    nqueues;
    ngx_uint_t                    refused;    /* reads refused in a row */
    ngx_http_offload_served_t     queues[NGX_HTTP_OFFLOAD_ADMIT_QUEUES];
    unsigned                      querying:1;
    unsigned                      by_sha:1;
};


static void ngx_http_offload_admission_tick(ngx_event_t *ev);
static void ngx_http_offload_admission_ask(ngx_http_offload_admission_t *adm);
static ngx_int_t ngx_http_offload_admission_query(
    ngx_http_offload_admission_t *adm);
static void ngx_http_offload_admission_read(redisAsyncContext *ac, void *r,
    void *privdata);
static ngx_http_offload_served_t *ngx_http_offload_admission_listed(
    ngx_http_offload_ctx_t *ctx);
static ngx_http_offload_served_t *ngx_http_offload_admission_find(
    ngx_http_offload_admission_t *adm, u_char *name, size_t len,
    ngx_uint_t add);
static ngx_uint_t ngx_http_offload_admission_retry(ngx_http_offload_ctx_t *ctx,
    long long backlog);
static void ngx_http_offload_admission_done(redisAsyncContext *ac, void *r,
    void *privdata);


/*
 * KEYS[1] the stream; ARGV[1] the limit, ARGV[2] the group, the rest the
 * entry's fields.  The backlog is offload_backlog_full()'s
 * (offload_proto.h).  Answers nil (no stream: NOMKSTREAM, 404),
 * {"full", backlog}, or the entry's id;
 * another error (NOPERM...) is passed on.
 */

static const char  ngx_http_offload_admit_script[] =
    OFFLOAD_BACKLOG_LUA
    "local full = offload_backlog_full(KEYS[1], ARGV[2], tonumber(ARGV[1]))\n"
    "if type(full) == 'table' then return full end\n"
    "if full then return { 'full', full } end\n"
    "return redis.call('XADD', KEYS[1], 'NOMKSTREAM', '*', unpack(ARGV, 3))\n";


/*
 * KEYS[1] offload:{ctl}:nodes, KEYS[2] offload:{ctl}:queues; ARGV[1] the
 * node key prefix.  For each queue a live node's document lists: its name,
 * 1 when a node that is not drained serves it with a pool that has not
 * failed (else 0: a failed pool's workers are gone for its cooldown, a job
 * would wait it out), and the nodes' jobs_per_s summed (a string: Lua
 * numbers become integers in a reply).  Then each queue a node served
 * within the week (the hash the nodes stamp, what status calls unserved)
 * and none lists now, whose stream still exists (as status lists it: a
 * queue retired with its stream is unknown, 404), with 0: an nginx worker
 * started after its last node went knows it too, and refuses its jobs
 * rather than let them wait for nobody.  The hash unreadable (an older
 * ACL) leaves those out.  The stream is not a declared key: the nodes
 * stamp the hash only where it is on the same Redis (no Cluster).
 */

static const char  ngx_http_offload_served_script[] =
    OFFLOAD_NOW_LUA
    "local seen, out = {}, {}\n"
    "for _, n in ipairs(redis.call('SMEMBERS', KEYS[1])) do\n"
    "  local doc = redis.call('GET', ARGV[1] .. n)\n"
    "  local ok, d = false, nil\n"
    "  if doc then ok, d = pcall(cjson.decode, doc) end\n"
    "  if ok and type(d) == 'table' and type(d.queues) == 'table' then\n"
    "    for qn, q in pairs(d.queues) do\n"
    "      local m = seen[qn]\n"
    "      if not m then\n"
    "        m = { 0, 0 }\n"
    "        seen[qn] = m\n"
    "        out[#out + 1] = qn\n"
    "      end\n"
    "      if d.drained ~= true and not (type(q) == 'table'\n"
    "         and q.state == 'failed') then m[1] = 1 end\n"
    "      if type(q) == 'table' and type(q.jobs_per_s) == 'number'\n"
    "         and q.jobs_per_s > 0 then\n"
    "        m[2] = m[2] + q.jobs_per_s\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "end\n"
    "local stamped = redis.pcall('HGETALL', KEYS[2])\n"
    "if not stamped.err and #stamped > 0 then\n"
    "  local now = tonumber(now_ms())\n"
    "  for i = 1, #stamped - 1, 2 do\n"
    "    local qn, at = stamped[i], tonumber(stamped[i + 1])\n"
    "    if not seen[qn] and at and now - at < "
    OFFLOAD_STR(OFFLOAD_DRAIN_TTL_S) " * 1000\n"
    "       and redis.call('EXISTS', '" OFFLOAD_STREAM_HEAD "' .. qn .. '"
    OFFLOAD_STREAM_TAIL "') == 1 then\n"
    "      seen[qn] = { 0, 0 }\n"
    "      out[#out + 1] = qn\n"
    "    end\n"
    "  end\n"
    "end\n"
    "local r = {}\n"
    "for _, qn in ipairs(out) do\n"
    "  r[#r + 1] = qn\n"
    "  r[#r + 1] = seen[qn][1]\n"
    "  r[#r + 1] = tostring(seen[qn][2])\n"
    "end\n"
    "return r\n";


static u_char  ngx_http_offload_admit_sha[40];
static size_t  ngx_http_offload_admit_sha_len;
static u_char  ngx_http_offload_served_sha[40];
static size_t  ngx_http_offload_served_sha_len;


char *
ngx_http_offload_max_backlog(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_offload_loc_conf_t *olcf = conf;

    ngx_int_t   n;
    ngx_str_t  *value;

    if (olcf->max_backlog != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        olcf->max_backlog = 0;
        return NGX_CONF_OK;
    }

    n = ngx_atoi(value[1].data, value[1].len);

    if (n == NGX_ERROR || n < 1) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in \"%V\" directive: a "
                           "number of jobs, 1 or more, or \"off\"",
                           &value[1], &cmd->name);
        return NGX_CONF_ERROR;
    }

    olcf->max_backlog = (ngx_uint_t) n;

    return NGX_CONF_OK;
}


/*
 * X-Offload-Timeout: seconds, up to 3 decimals ("2", "0.25"), more than
 * 0, given once.  Longer than the location's offload_timeout (however
 * long) is clamped to it.  NGX_DECLINED for a value that is not such a
 * number, and for two of them.
 */

ngx_int_t
ngx_http_offload_admission_timeout(ngx_http_request_t *r, ngx_msec_t max,
    ngx_msec_t *timeout)
{
    ngx_int_t         ms;
    ngx_table_elt_t  *h;

    static ngx_str_t  name = ngx_string("X-Offload-Timeout");

    *timeout = max;

    if (ngx_http_offload_header_once(r, &name, &h) != NGX_OK) {
        return NGX_DECLINED;
    }

    if (h == NULL) {
        return NGX_OK;
    }

    ms = ngx_atofp(h->value.data, h->value.len, 3);

    if (ms == NGX_ERROR && ngx_http_offload_beyond_count(&h->value, 3)) {
        return NGX_OK;
    }

    if (ms == NGX_ERROR || ms == 0) {
        return NGX_DECLINED;
    }

    if ((ngx_msec_t) ms < max) {
        *timeout = (ngx_msec_t) ms;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_offload_admission_start(ngx_http_offload_peer_t *peer,
    ngx_cycle_t *cycle)
{
    ngx_http_offload_admission_t  *adm;

    adm = ngx_pcalloc(cycle->pool, sizeof(ngx_http_offload_admission_t));
    if (adm == NULL) {
        return NGX_ERROR;
    }

    adm->peer = peer;
    adm->by_sha = 1;
    adm->timer.handler = ngx_http_offload_admission_tick;
    adm->timer.data = adm;
    adm->timer.log = cycle->log;
    adm->timer.cancelable = 1;

    peer->admission = adm;

    ngx_add_timer(&adm->timer, NGX_HTTP_OFFLOAD_ADMIT_REFRESH);

    return NGX_OK;
}


void
ngx_http_offload_admission_stop(ngx_http_offload_peer_t *peer)
{
    if (peer->admission && peer->admission->timer.timer_set) {
        ngx_del_timer(&peer->admission->timer);
    }
}


static void
ngx_http_offload_admission_tick(ngx_event_t *ev)
{
    ngx_http_offload_admission_ask(ev->data);
    ngx_add_timer(ev, NGX_HTTP_OFFLOAD_ADMIT_REFRESH);
}


static void
ngx_http_offload_admission_ask(ngx_http_offload_admission_t *adm)
{
    if (!adm->querying && ngx_http_offload_admission_query(adm) == NGX_OK) {
        adm->querying = 1;
        adm->asked_at = ngx_current_msec;
    }
}


/* EVALSHA_RO, or EVAL_RO once Redis answered NOSCRIPT (as status.c) */

static ngx_int_t
ngx_http_offload_admission_query(ngx_http_offload_admission_t *adm)
{
    const char               *argv[6];
    size_t                    argvlen[6];
    ngx_http_offload_link_t  *link;

    /* the registry is on the control shard of a cluster */

    link = ngx_http_offload_control_link(adm->peer);

    if (link == NULL || !link->up) {
        return NGX_DECLINED;
    }

    if (ngx_http_offload_served_sha_len == 0) {
        ngx_http_offload_served_sha_len = ngx_http_offload_script_sha(
                                            ngx_http_offload_served_script,
                                            ngx_http_offload_served_sha);
    }

    if (adm->by_sha) {
        argv[0] = "EVALSHA_RO";
        argvlen[0] = 10;
        argv[1] = (char *) ngx_http_offload_served_sha;
        argvlen[1] = ngx_http_offload_served_sha_len;

    } else {
        argv[0] = "EVAL_RO";
        argvlen[0] = 7;
        argv[1] = ngx_http_offload_served_script;
        argvlen[1] = sizeof(ngx_http_offload_served_script) - 1;
    }

    argv[2] = "2";
    argvlen[2] = 1;
    argv[3] = OFFLOAD_NODES_KEY;
    argvlen[3] = sizeof(OFFLOAD_NODES_KEY) - 1;
    argv[4] = OFFLOAD_QUEUES_KEY;
    argvlen[4] = sizeof(OFFLOAD_QUEUES_KEY) - 1;
    argv[5] = OFFLOAD_NODE_PREFIX;
    argvlen[5] = sizeof(OFFLOAD_NODE_PREFIX) - 1;

    return ngx_http_offload_link_send(link,
                                      ngx_http_offload_admission_read, adm,
                                      6, argv, argvlen);
}


/* The registry's answer replaces what the cache says of every queue it
 * knows; a queue once listed stays known, unserved, when its nodes go. */

static void
ngx_http_offload_admission_read(redisAsyncContext *ac, void *r,
    void *privdata)
{
    redisReply                    *reply = r;
    size_t                         i;
    redisReply                   **e;
    ngx_http_offload_served_t     *q;
    ngx_http_offload_admission_t  *adm = privdata;

    (void) ngx_http_offload_link_replied(ac, reply);

    adm->querying = 0;

    if (reply == NULL) {
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR && adm->by_sha
        && ngx_strncmp(reply->str, "NOSCRIPT", 8) == 0)
    {
        adm->by_sha = 0;

        if (ngx_http_offload_admission_query(adm) == NGX_OK) {
            adm->querying = 1;
        }

        return;
    }

    /* read every second: one refused read (BUSY while a script runs too
     * long, LOADING) is refused again the next second, logged when the
     * refusals begin and when they end */

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements % 3) {
        if (adm->refused++ == 0) {
            ngx_log_error(NGX_LOG_ERR, adm->timer.log, 0,
                          "offload: registry read for admission: %s "
                          "(logged again when it is answered)",
                          reply->type == REDIS_REPLY_ERROR
                          ? reply->str : "unexpected reply");
        }

        return;
    }

    if (adm->refused) {
        ngx_log_error(NGX_LOG_INFO, adm->timer.log, 0,
                      "offload: registry read for admission answered "
                      "again, after %ui refusals", adm->refused);
        adm->refused = 0;
    }

    adm->by_sha = 1;

    for (i = 0; i < adm->nqueues; i++) {
        if (adm->queues[i].served) {
            adm->queues[i].served_at = ngx_current_msec;
        }

        adm->queues[i].served = 0;
        adm->queues[i].rate = 0;
    }

    e = reply->element;

    for (i = 0; i < reply->elements; i += 3) {
        if (e[i]->type != REDIS_REPLY_STRING
            || e[i + 1]->type != REDIS_REPLY_INTEGER
            || e[i + 2]->type != REDIS_REPLY_STRING)
        {
            continue;
        }

        q = ngx_http_offload_admission_find(adm, (u_char *) e[i]->str,
                                            e[i]->len, 1);
        if (q == NULL) {
            continue;
        }

        q->served = e[i + 1]->integer ? 1 : 0;
        q->rate = strtod(e[i + 2]->str, NULL);
    }

    adm->read_at = ngx_current_msec;
}


static ngx_http_offload_served_t *
ngx_http_offload_admission_find(ngx_http_offload_admission_t *adm,
    u_char *name, size_t len, ngx_uint_t add)
{
    uint32_t                    hash;
    ngx_uint_t                  i;
    ngx_http_offload_served_t  *q;

    if (len > OFFLOAD_QUEUE_NAME_MAX) {
        return NULL;
    }

    hash = ngx_crc32_short(name, len);

    for (i = 0; i < adm->nqueues; i++) {
        q = &adm->queues[i];

        if (q->hash == hash && q->len == len
            && ngx_memcmp(q->name, name, len) == 0)
        {
            return q;
        }
    }

    if (!add || adm->nqueues == NGX_HTTP_OFFLOAD_ADMIT_QUEUES) {
        return NULL;
    }

    q = &adm->queues[adm->nqueues++];
    q->hash = hash;
    q->len = len;
    ngx_memcpy(q->name, name, len);

    return q;
}


/* What the registry, read within the last 3 s, says of the request's
 * queue; NULL when it does not list it, or was not read lately (Redis down
 * or slow: then it says nothing). */

static ngx_http_offload_served_t *
ngx_http_offload_admission_listed(ngx_http_offload_ctx_t *ctx)
{
    ngx_http_offload_admission_t  *adm;

    adm = ctx->peer->admission;

    if (adm == NULL || adm->read_at == 0
        || ngx_current_msec - adm->read_at > NGX_HTTP_OFFLOAD_ADMIT_STALE)
    {
        return NULL;
    }

    return ngx_http_offload_admission_find(adm, ctx->queue.data,
                                           ctx->queue.len, 0);
}


/*
 * NGX_DECLINED when the registry, read within the last 3 s, knows the
 * queue and no node that is not drained serves it; the request's
 * Retry-After is set then.  A queue never listed is let through (its
 * stream decides: 404 when there is none).  Within 10 s of a read that
 * last found the queue served, a refusal reads the registry again when
 * the last read was asked 0.1 s ago: a node back from a restart is seen
 * by the jobs after the first it refuses, not up to a second later.
 * That costs each nginx worker process at most ten reads a second, only
 * while jobs for the queue come, and only for those 10 s: a queue nobody
 * serves for good is read once a second again.  Nothing is refused
 * within NGX_HTTP_OFFLOAD_ADMIT_TROUBLE of this worker's Redis trouble.
 */

ngx_int_t
ngx_http_offload_admission_served(ngx_http_offload_ctx_t *ctx)
{
    ngx_http_offload_served_t     *q;
    ngx_http_offload_admission_t  *adm;

    adm = ctx->peer->admission;

    /* signed: the mark may be a millisecond ahead ("| 1") */

    if (adm != NULL && adm->peer->troubled_at != 0
        && (ngx_msec_int_t) (ngx_current_msec - adm->peer->troubled_at)
           < NGX_HTTP_OFFLOAD_ADMIT_TROUBLE)
    {
        return NGX_OK;
    }

    q = ngx_http_offload_admission_listed(ctx);

    if (q == NULL || q->served) {
        return NGX_OK;
    }

    ctx->retry_after = NGX_HTTP_OFFLOAD_RETRY_NO_WORKERS;

    if (ngx_current_msec - q->served_at < NGX_HTTP_OFFLOAD_ADMIT_AGAIN_FOR
        && ngx_current_msec - adm->asked_at >= NGX_HTTP_OFFLOAD_ADMIT_AGAIN)
    {
        ngx_http_offload_admission_ask(adm);
    }

    return NGX_DECLINED;
}


/*
 * Retry-After of queue_full: the time the queue needs to take in the
 * excess (backlog - limit + 1 jobs) at the rate its nodes finish jobs
 * (jobs_per_s of the registry, all nodes), rounded up, from 1 s to 30 s;
 * 30 s while nothing drains.
 */

static ngx_uint_t
ngx_http_offload_admission_retry(ngx_http_offload_ctx_t *ctx,
    long long backlog)
{
    double                         excess, rate, s;
    ngx_http_offload_loc_conf_t   *olcf;
    ngx_http_offload_served_t     *q;
    ngx_http_offload_admission_t  *adm;

    olcf = ngx_http_get_module_loc_conf(ctx->request, ngx_http_offload_module);

    excess = (double) backlog - (double) olcf->max_backlog + 1;
    if (excess < 1) {
        excess = 1;
    }

    rate = 0;
    adm = ctx->peer->admission;

    if (adm != NULL) {
        q = ngx_http_offload_admission_find(adm, ctx->queue.data,
                                            ctx->queue.len, 0);
        if (q != NULL) {
            rate = q->rate;
        }
    }

    if (rate <= 0) {
        return NGX_HTTP_OFFLOAD_RETRY_MAX;
    }

    s = excess / rate;

    if (s >= NGX_HTTP_OFFLOAD_RETRY_MAX) {
        return NGX_HTTP_OFFLOAD_RETRY_MAX;
    }

    return s <= 1 ? 1 : (ngx_uint_t) (s + 0.999);
}


/*
 * The job's XADD as the admission script: argv is the XADD the module
 * would send (XADD key NOMKSTREAM * fields...).
 */

ngx_int_t
ngx_http_offload_admission_xadd(ngx_http_offload_ctx_t *ctx, int argc,
    const char **argv, const size_t *argvlen)
{
    int                           i, n;
    u_char                        max[NGX_INT_T_LEN];
    const char                   *av[OFFLOAD_JOB_ARGC + 3];
    size_t                        avlen[OFFLOAD_JOB_ARGC + 3];
    ngx_http_offload_loc_conf_t  *olcf;

    olcf = ngx_http_get_module_loc_conf(ctx->request, ngx_http_offload_module);

    if (ngx_http_offload_admit_sha_len == 0) {
        ngx_http_offload_admit_sha_len = ngx_http_offload_script_sha(
                                            ngx_http_offload_admit_script,
                                            ngx_http_offload_admit_sha);
    }

    n = 0;

    if (ctx->admit_by_eval) {
        av[n] = "EVAL";
        avlen[n++] = 4;
        av[n] = ngx_http_offload_admit_script;
        avlen[n++] = sizeof(ngx_http_offload_admit_script) - 1;

    } else {
        av[n] = "EVALSHA";
        avlen[n++] = 7;
        av[n] = (char *) ngx_http_offload_admit_sha;
        avlen[n++] = ngx_http_offload_admit_sha_len;
    }

    av[n] = "1";
    avlen[n++] = 1;
    av[n] = argv[1];
    avlen[n++] = argvlen[1];
    av[n] = (char *) max;
    avlen[n++] = ngx_sprintf(max, "%ui", olcf->max_backlog) - max;
    av[n] = OFFLOAD_GROUP;
    avlen[n++] = sizeof(OFFLOAD_GROUP) - 1;

    for (i = OFFLOAD_JOB_FIELDS_AT; i < argc; i++) {
        av[n] = argv[i];
        avlen[n++] = argvlen[i];
    }

    return ngx_http_offload_link_send(&ctx->peer->command,
                                      ngx_http_offload_admission_done,
                                      (void *) (uintptr_t) ctx->node.key,
                                      n, av, avlen);
}


static void
ngx_http_offload_admission_done(redisAsyncContext *ac, void *r,
    void *privdata)
{
    redisReply              *reply = r;
    ngx_http_offload_ctx_t  *ctx;

    ctx = ngx_http_offload_submit_ctx(ac, reply, privdata);
    if (ctx == NULL) {
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR && !ctx->admit_by_eval
        && ngx_strncmp(reply->str, "NOSCRIPT", 8) == 0)
    {
        ctx->admit_by_eval = 1;

        if (ngx_http_offload_cluster_resend(ctx) == NGX_OK) {
            return;
        }

        ngx_http_offload_answer_error(ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                      "redis_unavailable",
                                      "redis is not reachable");
        return;
    }

    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2
        && reply->element[1]->type == REDIS_REPLY_INTEGER)
    {
        ngx_http_offload_admission_full(ctx, reply->element[1]->integer);
        return;
    }

    ngx_http_offload_xadd_result(ctx, reply);
}


/*
 * No worker serves the queue now (ngx_http_offload_admission_served()):
 * 503 no_workers.  A request with an Idempotency-Key gets here from the
 * submit script, which found no job under its key and added nothing: a
 * duplicate is answered as always, whoever serves the queue (a client
 * retrying through a deploy learns its job exists, or ended).
 */

void
ngx_http_offload_admission_unserved(ngx_http_offload_ctx_t *ctx)
{
    ctx->retry_after = NGX_HTTP_OFFLOAD_RETRY_NO_WORKERS;
    ngx_http_offload_answer_error(ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                  "no_workers",
                                  NGX_HTTP_OFFLOAD_NO_WORKERS);
}


/*
 * The queue has no stream: unknown, 404, unless the registry, read within
 * the last 3 s, lists it: a node serves it whose workers never started
 * (a command that cannot run, an init that fails: its pool restarting or
 * failed), as they make the stream.  That is 503 no_workers, a fault of
 * the server's to see and alert on, not a client's typo.
 */

void
ngx_http_offload_admission_no_stream(ngx_http_offload_ctx_t *ctx)
{
    if (ngx_http_offload_admission_listed(ctx) != NULL) {
        ctx->retry_after = NGX_HTTP_OFFLOAD_RETRY_NO_WORKERS;
        ngx_http_offload_answer_error(ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                      "no_workers",
                                      "no worker of this queue has started "
                                      "yet (or its pool is failing)");
        return;
    }

    ngx_http_offload_answer_error(ctx, NGX_HTTP_NOT_FOUND, "unknown_queue",
                                  "no worker serves this queue");
}


/* 503 queue_full: a script found the backlog at the limit, nothing added */

void
ngx_http_offload_admission_full(ngx_http_offload_ctx_t *ctx,
    long long backlog)
{
    if (ctx->body_key.len) {
        ngx_http_offload_body_delete(ctx);
    }

    ctx->retry_after = ngx_http_offload_admission_retry(ctx, backlog);

    ngx_http_offload_answer_error(ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                  "queue_full",
                                  "the queue's backlog is at its "
                                  "offload_max_backlog");
}


/* a script's SHA1 in hex, as EVALSHA takes it: 40 bytes at sha */

size_t
ngx_http_offload_script_sha(const char *script, u_char *sha)
{
    u_char      digest[20];
    ngx_sha1_t  sha1;

    ngx_sha1_init(&sha1);
    ngx_sha1_update(&sha1, script, ngx_strlen(script));
    ngx_sha1_final(digest, &sha1);
    ngx_hex_dump(sha, digest, sizeof(digest));

    return 2 * sizeof(digest);
}
