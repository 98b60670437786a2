
/*
 * ngx_http_offload_jobs.c -- asynchronous jobs: a submit answered 202 once
 * its entry and its record are in Redis, and the jobs endpoint that tells
 * what became of it.
 *
 *   offload_mode sync | async;   (or per request: Prefer: respond-async)
 *   offload_jobs_url <prefix>;   the status URL is <prefix><id>
 *   offload_result_ttl <time>;   how long results and records stay
 *   offload_jobs;                GET <prefix><id>[?wait=<s>], DELETE
 *   offload_idempotency_ttl <time> | off;   how long an Idempotency-Key
 *                                names its first job
 *   offload_cancel_running on;   DELETE stops a running job's worker too
 *
 * A record is the hash offload:job:{<tag>}:<id> (proto/offload_proto.h),
 * in its queue's slot: on a cluster:// peer a read goes to the master of
 * the id's tag's slot (MOVED and ASK followed).  A long
 * poll waits in this worker's tree of waiters (by a hash of the job id:
 * thousands may wait) and is woken by the job's id published on
 * offload:jobs:done, which every nginx worker's subscriber hears: it then
 * reads the record again.  hiredis callbacks get a read's serial number,
 * never the request.  A big result (a list) is not read by the job script
 * (it answers the list's length) but element by element on the bulk link,
 * as the sync path reads one (ngx_http_offload_reply.c), and answered as
 * a chain of those pieces.
 *
 * A job submitted with an Idempotency-Key has a record too, sync or async,
 * made by the submit script with the key's memory; a second submission of
 * the key to the queue gets the first job: an async one its 202 (id,
 * status, Location), a sync one, its request handed over to a job read
 * here, the first job's result once it ends (a long poll of the record
 * that answers the result as the first request got it).  The submit and
 * job scripts go as EVALSHA, EVAL once after NOSCRIPT.
 *
 * With a cluster:// peer the trees of reads and waiters are the cluster
 * peer's; each master's subscriber hears offload:jobs:done (Redis Cluster
 * forwards a PUBLISH to every node), and the one that the map says serves
 * the id's slot wakes its waiters.
 */


#include "ngx_http_offload_module.h"
#include "offload_slot.h"


/* a GET or DELETE of a job, parked while Redis answers or the job ends */
typedef struct {
    ngx_rbtree_node_t             node;       /* key: serial; in
                                                 peer->job_reading while
                                                 a read is on its way */
    ngx_rbtree_key_t              serial;     /* its replies' privdata */
    ngx_http_offload_waiter_t     waiter;     /* in peer->job_waiters
                                                 while it waits */
    ngx_http_request_t           *request;
    ngx_http_offload_peer_t      *peer;       /* its trees' */
    ngx_http_offload_peer_t      *master;     /* where its reads go: peer,
                                                 or a cluster's master */
    ngx_uint_t                    redirects;
    u_char                        id[OFFLOAD_JOB_ID_LEN];
    ngx_event_t                   wait;
    ngx_msec_t                    deadline;   /* a long poll's end */
    ngx_str_t                     head;       /* the answer's record part,
                                                 room left for its result's
                                                 status */
    ngx_http_offload_list_t       result;     /* a big result's read */
    unsigned                      cancel:1;
    unsigned                      unmatched:1;  /* a cancel with an
                                                   If-Match no entity tag
                                                   of a job meets */
    unsigned                      linked:1;   /* in peer->job_waiters */
    unsigned                      waiting:1;  /* a long poll */
    unsigned                      reading:1;  /* a read on its way (the
                                                 record's, or a big
                                                 result's elements) */
    unsigned                      reread:1;   /* the job ended meanwhile */
    unsigned                      last:1;     /* the wait passed */
    unsigned                      accept:1;   /* a submit that waits a
                                                 while (Prefer: wait): its
                                                 result, or 202 */
    unsigned                      duplicate:1;  /* of an Idempotency-Key's
                                                   job */
    unsigned                      replay:1;   /* a duplicate sync submit:
                                                 answers the result */
    unsigned                      by_eval:1;  /* NOSCRIPT came */
    unsigned                      asked:1;    /* master named by an ASK:
                                                 ASKING before each read */
} ngx_http_offload_job_read_t;


static ngx_uint_t ngx_http_offload_preference(ngx_str_t *value,
    ngx_str_t *name, ngx_str_t *arg);
static ngx_uint_t ngx_http_offload_prefer_wait(ngx_http_request_t *r);
static ngx_int_t ngx_http_offload_job_id(ngx_http_request_t *r, u_char *id);
static ngx_uint_t ngx_http_offload_precondition_unmet(ngx_http_request_t *r);
static ngx_int_t ngx_http_offload_job_send(ngx_http_offload_job_read_t *jr);
static void ngx_http_offload_job_reading(ngx_http_offload_job_read_t *jr);
static void ngx_http_offload_job_done(redisAsyncContext *ac, void *r,
    void *privdata);
static ngx_http_offload_job_read_t *ngx_http_offload_job_found(
    ngx_http_offload_link_t *link, void *privdata);
static ngx_int_t ngx_http_offload_job_answer(ngx_http_offload_job_read_t *jr,
    redisReply *reply);
static ngx_int_t ngx_http_offload_job_head(ngx_http_offload_job_read_t *jr,
    redisReply **e);
static ngx_int_t ngx_http_offload_job_fetch(ngx_http_offload_job_read_t *jr,
    redisReply **e);
static ngx_int_t ngx_http_offload_job_list(ngx_http_offload_job_read_t *jr,
    redisReply **e);
static ngx_int_t ngx_http_offload_job_reserve(ngx_http_request_t *r,
    long long n);
static void ngx_http_offload_job_unreserve(void *data);
static void ngx_http_offload_job_index_done(redisAsyncContext *ac, void *r,
    void *privdata);
static ngx_int_t ngx_http_offload_replayed(ngx_http_offload_job_read_t *jr);
static ngx_int_t ngx_http_offload_job_result(ngx_http_offload_job_read_t *jr,
    offload_result_t *res, ngx_chain_t *body, off_t len);
static ngx_uint_t ngx_http_offload_job_error_object(ngx_chain_t **body,
    off_t len);
static u_char *ngx_http_offload_job_number(u_char *p, redisReply *e);
static void ngx_http_offload_job_wait_for_end(
    ngx_http_offload_job_read_t *jr);
static void ngx_http_offload_job_wake(ngx_http_offload_waiter_t *w);
static void ngx_http_offload_job_wait_handler(ngx_event_t *ev);
static void ngx_http_offload_job_cleanup(void *data);
static void ngx_http_offload_job_finish(ngx_http_offload_job_read_t *jr,
    ngx_int_t rc);
static void ngx_http_offload_record_done(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_http_offload_duplicate(ngx_http_offload_ctx_t *ctx,
    redisReply *reply);
static ngx_int_t ngx_http_offload_replay(ngx_http_offload_ctx_t *ctx,
    ngx_msec_t wait);
static ngx_int_t ngx_http_offload_accepted_body(ngx_http_offload_ctx_t *ctx,
    u_char *status, size_t status_len, ngx_str_t *body);
static ngx_int_t ngx_http_offload_replay_answer(
    ngx_http_offload_job_read_t *jr, redisReply **e);
static ngx_int_t ngx_http_offload_job_ongoing(redisReply *status);
static ngx_int_t ngx_http_offload_job_accepted(
    ngx_http_offload_job_read_t *jr, u_char *status, size_t len);
static ngx_int_t ngx_http_offload_job_unread(ngx_http_offload_job_read_t *jr,
    ngx_uint_t status, const char *code, const char *message);
static void ngx_http_offload_script(const char *script, u_char *sha,
    ngx_uint_t by_eval, const char **argv, size_t *argvlen);


static ngx_rbtree_key_t  ngx_http_offload_job_serial;
static u_char            ngx_http_offload_submit_sha[40];
static u_char            ngx_http_offload_job_sha[40];


#define ngx_http_offload_job_waiter(w)                                        \
    ((ngx_http_offload_job_read_t *)                                          \
         ((u_char *) (w) - offsetof(ngx_http_offload_job_read_t, waiter)))


/*
 * Whether a Prefer header value names the preference name: a
 * comma-separated list of "name[=value][; param...]" (RFC 7240), names
 * case-insensitive, a value maybe a quoted string holding commas.  arg,
 * when not NULL, gets its value (quotes left on), empty without one.
 */

static ngx_uint_t
ngx_http_offload_preference(ngx_str_t *value, ngx_str_t *name,
    ngx_str_t *arg)
{
    u_char      *p, *last, *start, *end;
    ngx_uint_t   quoted, found;

    p = value->data;
    last = p + value->len;

    while (p < last) {

        while (p < last && (*p == ' ' || *p == '\t' || *p == ',')) {
            p++;
        }

        start = p;

        while (p < last && *p != '=' && *p != ';' && *p != ','
               && *p != ' ' && *p != '\t')
        {
            p++;
        }

        found = ((size_t) (p - start) == name->len
                 && ngx_strncasecmp(start, name->data, name->len) == 0);

        while (p < last && (*p == ' ' || *p == '\t')) {
            p++;
        }

        start = NULL;

        if (p < last && *p == '=') {
            for (p++; p < last && (*p == ' ' || *p == '\t'); p++) {
                /* void */
            }

            start = p;
        }

        /* the rest of this preference: its value and parameters */

        for (quoted = 0, end = NULL; p < last && (quoted || *p != ','); p++) {

            if (end == NULL && !quoted
                && (*p == ';' || *p == ' ' || *p == '\t'))
            {
                end = p;
            }

            if (quoted && *p == '\\' && p + 1 < last) {
                p++;

            } else if (*p == '"') {
                quoted = !quoted;
            }
        }

        if (found) {
            if (arg != NULL) {
                arg->data = start;
                arg->len = start ? (end ? end : p) - start : 0;
            }

            return 1;
        }
    }

    return 0;
}


/*
 * offload_mode async, or Prefer: respond-async on a request; a 202 asked
 * for says Preference-Applied on an async location too (RFC 7240: the
 * answer is what was preferred).  An async submit with Prefer: wait=<s>
 * waits that long for its job to end before it answers 202.
 */

void
ngx_http_offload_async_wanted(ngx_http_offload_ctx_t *ctx)
{
    ngx_uint_t                       n;
    ngx_table_elt_t                 *h;
    ngx_http_request_t              *r;
    ngx_http_offload_loc_conf_t     *olcf;
    ngx_http_offload_header_walk_t   walk;

    static ngx_str_t  prefer = ngx_string("Prefer");
    static ngx_str_t  async = ngx_string("respond-async");

    r = ctx->request;
    olcf = ngx_http_get_module_loc_conf(r, ngx_http_offload_module);

    ctx->async = (olcf->mode == NGX_HTTP_OFFLOAD_ASYNC);

    ngx_memzero(&walk, sizeof(walk));

    for (n = 0; (h = ngx_http_offload_header_next(r, &prefer, &walk)) != NULL;
         n++)
    {
        if (ngx_http_offload_preference(&h->value, &async, NULL)) {
            ctx->async = 1;
            ctx->preferred = 1;
            break;
        }
    }

    /* only a peer that hears the ends of jobs (offload:jobs:done) can
     * wake a waiting submit: without, it would always wait its whole
     * wait; and without a Prefer header (h NULL, n 0) there is none */

    if (ctx->async && ctx->peer->jobs && (h != NULL || n > 0)) {
        ctx->wait = ngx_http_offload_prefer_wait(r);
    }
}


/*
 * The seconds of a Prefer: wait=<s> or wait="<s>" (RFC 7240 4.3), at most
 * NGX_HTTP_OFFLOAD_WAIT_MAX; 0 without one, or with one that is not
 * delta-seconds (a preference not understood is ignored).
 */

static ngx_uint_t
ngx_http_offload_prefer_wait(ngx_http_request_t *r)
{
    ngx_int_t                        wait;
    ngx_str_t                        arg;
    ngx_table_elt_t                 *h;
    ngx_http_offload_header_walk_t   walk;

    static ngx_str_t  prefer = ngx_string("Prefer");
    static ngx_str_t  name = ngx_string("wait");

    ngx_memzero(&walk, sizeof(walk));

    while ((h = ngx_http_offload_header_next(r, &prefer, &walk)) != NULL) {

        if (!ngx_http_offload_preference(&h->value, &name, &arg)) {
            continue;
        }

        /* a value is a token or a quoted string: wait=3 or wait="3" */
        if (arg.len >= 2 && arg.data[0] == '"' && arg.data[arg.len - 1] == '"')
        {
            arg.data++;
            arg.len -= 2;
        }

        wait = ngx_atoi(arg.data, arg.len);

        if (wait == NGX_ERROR && ngx_http_offload_beyond_count(&arg, 0)) {
            return NGX_HTTP_OFFLOAD_WAIT_MAX;
        }

        return wait == NGX_ERROR ? 0 : ngx_min(wait, NGX_HTTP_OFFLOAD_WAIT_MAX);
    }

    return 0;
}


char *
ngx_http_offload_idempotency_ttl(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_offload_loc_conf_t *olcf = conf;

    ngx_msec_t   ttl;
    ngx_str_t   *value;

    if (olcf->idempotency_ttl != NGX_CONF_UNSET_MSEC) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        olcf->idempotency_ttl = 0;
        return NGX_CONF_OK;
    }

    ttl = ngx_parse_time(&value[1], 0);

    if (ttl == (ngx_msec_t) NGX_ERROR || ttl == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in \"%V\" directive: a "
                           "time over 0 (\"24h\", \"10s\") or \"off\"",
                           &value[1], &cmd->name);
        return NGX_CONF_ERROR;
    }

    olcf->idempotency_ttl = ttl;

    return NGX_CONF_OK;
}


/*
 * Idempotency-Key: 1 to OFFLOAD_IDEM_KEY_MAX visible ASCII characters,
 * bare (as Stripe takes it) or a structured-field string in double quotes
 * (the IETF httpapi draft), given once.  key is left empty without the
 * header; NGX_DECLINED for anything else.  A look at the parsed headers,
 * nothing that waits.
 */

ngx_int_t
ngx_http_offload_idempotency_key(ngx_http_request_t *r, ngx_str_t *key)
{
    u_char           *p, *last;
    ngx_table_elt_t  *h;

    static ngx_str_t  name = ngx_string("Idempotency-Key");

    if (ngx_http_offload_header_once(r, &name, &h) != NGX_OK) {
        return NGX_DECLINED;            /* given twice */
    }

    if (h == NULL) {
        return NGX_OK;
    }

    *key = h->value;

    if (key->len >= 2 && key->data[0] == '"'
        && key->data[key->len - 1] == '"')
    {
        key->data++;
        key->len -= 2;
    }

    if (key->len == 0 || key->len > OFFLOAD_IDEM_KEY_MAX) {
        return NGX_DECLINED;
    }

    last = key->data + key->len;

    for (p = key->data; p < last; p++) {
        if (*p <= 0x20 || *p >= 0x7f || *p == '"') {
            return NGX_DECLINED;
        }
    }

    return NGX_OK;
}


/* A record and its result stay offload_result_ttl after the job's end, or,
 * with an Idempotency-Key, as long as the key names the job if that is
 * longer: a duplicate always finds its first job's result. */

int64_t
ngx_http_offload_record_ttl(ngx_http_offload_ctx_t *ctx)
{
    ngx_http_offload_loc_conf_t  *olcf;

    olcf = ngx_http_get_module_loc_conf(ctx->request, ngx_http_offload_module);

    if (ctx->idem_key.len) {
        return ngx_max(olcf->result_ttl, olcf->idempotency_ttl);
    }

    return olcf->result_ttl;
}


/* EVALSHA of a script, or EVAL once Redis answered NOSCRIPT: argv[0..1] */

static void
ngx_http_offload_script(const char *script, u_char *sha, ngx_uint_t by_eval,
    const char **argv, size_t *argvlen)
{
    if (by_eval) {
        argv[0] = "EVAL";
        argvlen[0] = 4;
        argv[1] = script;
        argvlen[1] = ngx_strlen(script);
        return;
    }

    if (sha[0] == '\0') {
        (void) ngx_http_offload_script_sha(script, sha);
    }

    argv[0] = "EVALSHA";
    argvlen[0] = 7;
    argv[1] = (char *) sha;
    argvlen[1] = 40;
}


/*
 * The entry and its record in one script (offload_submit_script): 2 keys
 * (the record, the stream) or 3 (and the idempotency key), then the queue,
 * submitted_at, the record's TTL, the backlog limit (0: none), the group,
 * the idempotency key's TTL (0: none), the job's deadline (a read of a job
 * still queued past it says expired), then the entry's fields (the XADD's
 * arguments after "XADD <stream> NOMKSTREAM *").  Every key it can name
 * is declared: on a Redis Cluster with the queue's slot half moved, Redis
 * then answers ASK or TRYAGAIN for the whole script (the record of the job
 * an Idempotency-Key names, read undeclared, is in the same slot).  The
 * record lives the job's deadline span plus its TTL after the end; its end
 * sets the TTL again.
 */

ngx_int_t
ngx_http_offload_xadd_record(ngx_http_offload_ctx_t *ctx, const char *stream,
    int argc, const char **argv, size_t *argvlen)
{
    int                           i, n, k;
    u_char                       *rec, *num, *p;
    const char                   *args[OFFLOAD_JOB_ARGC + 11];
    size_t                        lens[OFFLOAD_JOB_ARGC + 11];
    ngx_http_offload_loc_conf_t  *olcf;

    olcf = ngx_http_get_module_loc_conf(ctx->request, ngx_http_offload_module);

    rec = ngx_pnalloc(ctx->request->pool, OFFLOAD_KEY_MAX
                                          + OFFLOAD_IDEM_REDIS_KEY_MAX
                                          + 5 * NGX_INT64_LEN);
    if (rec == NULL) {
        return NGX_ERROR;
    }

    n = offload_job_record_key((char *) rec, OFFLOAD_KEY_MAX,
                               (char *) ctx->id, OFFLOAD_JOB_ID_LEN);
    if (n < 0) {
        return NGX_ERROR;
    }

    ngx_http_offload_script(offload_submit_script, ngx_http_offload_submit_sha,
                            ctx->admit_by_eval, args, lens);

    args[2] = ctx->idem_key.len ? "3" : "2";
    lens[2] = 1;
    args[3] = (char *) rec;
    lens[3] = n;
    args[4] = stream;
    lens[4] = ngx_strlen(stream);
    k = 5;

    p = rec + OFFLOAD_KEY_MAX;

    if (ctx->idem_key.len) {
        n = offload_idem_key((char *) p, OFFLOAD_IDEM_REDIS_KEY_MAX,
                             (char *) ctx->queue.data, ctx->queue.len,
                             (char *) ctx->idem_key.data, ctx->idem_key.len);
        if (n < 0) {
            return NGX_ERROR;
        }

        args[k] = (char *) p;
        lens[k++] = n;
        p += n;
    }

    args[k] = (char *) ctx->queue.data;
    lens[k++] = ctx->queue.len;

    args[k] = (char *) p;
    num = ngx_sprintf(p, "%L", ctx->submitted_ms);
    lens[k++] = num - p;

    args[k] = (char *) num;
    p = ngx_sprintf(num, "%L",
                    (int64_t) olcf->timeout + ngx_http_offload_record_ttl(ctx));
    lens[k++] = p - num;

    args[k] = (char *) p;
    num = ctx->unserved ? ngx_cpymem(p, "unserved", 8)
                        : ngx_sprintf(p, "%ui", olcf->max_backlog);
    lens[k++] = num - p;

    args[k] = OFFLOAD_GROUP;
    lens[k++] = sizeof(OFFLOAD_GROUP) - 1;

    args[k] = (char *) num;
    p = ngx_sprintf(num, "%M", ctx->idem_key.len ? olcf->idempotency_ttl : 0);
    lens[k++] = p - num;

    args[k] = (char *) p;
    num = ngx_sprintf(p, "%L", ctx->submitted_ms + ctx->timeout);
    lens[k++] = num - p;

    for (i = OFFLOAD_JOB_FIELDS_AT; i < argc; i++) {
        args[k] = argv[i];
        lens[k++] = argvlen[i];
    }

    return ngx_http_offload_link_send(&ctx->peer->command,
                                      ngx_http_offload_record_done,
                                      (void *) (uintptr_t) ctx->node.key,
                                      k, args, lens);
}


/* the submit script's answer: an entry id or nil as an XADD's, or an
 * array: the backlog is full, or the Idempotency-Key names a job */

static void
ngx_http_offload_record_done(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply              *reply = r;
    redisReply              *what;
    ngx_http_offload_ctx_t  *ctx;

    ctx = ngx_http_offload_submit_ctx(ac, reply, privdata);
    if (ctx == NULL) {
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR && !ctx->admit_by_eval
        && ngx_strncmp(reply->str, "NOSCRIPT", 8) == 0)
    {
        ctx->admit_by_eval = 1;

        if (ngx_http_offload_cluster_resend(ctx) != NGX_OK) {
            ngx_http_offload_answer_error(ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                          "redis_unavailable",
                                          "redis is not reachable");
        }

        return;
    }

    if (reply->type != REDIS_REPLY_ARRAY) {
        ngx_http_offload_xadd_result(ctx, reply);
        return;
    }

    what = reply->elements >= 1 ? reply->element[0] : NULL;

    if (what != NULL && what->type == REDIS_REPLY_STRING
        && ngx_strcmp(what->str, "full") == 0 && reply->elements == 2
        && reply->element[1]->type == REDIS_REPLY_INTEGER)
    {
        ngx_http_offload_admission_full(ctx, reply->element[1]->integer);
        return;
    }

    if (what != NULL && what->type == REDIS_REPLY_STRING
        && ngx_strcmp(what->str, "unserved") == 0)
    {
        ngx_http_offload_admission_unserved(ctx);
        return;
    }

    if (what != NULL && what->type == REDIS_REPLY_STRING
        && ngx_strcmp(what->str, "reused") == 0)
    {
        ngx_http_offload_answer_error(ctx, NGX_HTTP_OFFLOAD_UNPROCESSABLE,
                                      "idempotency_key_reused",
                                      "this Idempotency-Key was used for "
                                      "another body on this queue");
        return;
    }

    if (what != NULL && what->type == REDIS_REPLY_STRING
        && ngx_strcmp(what->str, "dup") == 0 && reply->elements == 3
        && reply->element[1]->type == REDIS_REPLY_STRING
        && reply->element[1]->len == OFFLOAD_JOB_ID_LEN
        && reply->element[2]->type == REDIS_REPLY_STRING)
    {
        ngx_http_offload_duplicate(ctx, reply);
        return;
    }

    ngx_log_error(NGX_LOG_ERR, ctx->request->connection->log, 0,
                  "offload: unexpected answer of the submit script");
    ngx_http_offload_answer_error(ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                  "redis_unavailable",
                                  "redis refused the job");
}


/*
 * The Idempotency-Key names a job already ({ "dup", id, status }): it
 * stands for this request's.  Async: 202 with its id and status as it is
 * now.  Sync: its result, when it has ended or once it does.
 */

static void
ngx_http_offload_duplicate(ngx_http_offload_ctx_t *ctx, redisReply *reply)
{
    ngx_int_t  rc;

    ngx_memcpy(ctx->id, reply->element[1]->str, OFFLOAD_JOB_ID_LEN);
    ctx->replayed = 1;

    ngx_http_offload_submitted(ctx);

    if (ctx->async) {
        ngx_http_offload_accepted(ctx, (u_char *) reply->element[2]->str,
                                  reply->element[2]->len);
        return;
    }

    rc = ngx_http_offload_replay(ctx, 0);

    if (rc == NGX_ERROR) {
        ngx_http_offload_answer_error(ctx, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                      "internal", "out of memory");

    } else if (rc == NGX_DECLINED) {
        ngx_http_offload_answer_error(ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                      "redis_unavailable",
                                      "redis is not reachable");
    }
}


/*
 * A sync duplicate leaves the pending table for the job reads: it long
 * polls the first job's record until the end of its own deadline, and
 * answers that job's result.  So does an async submit that prefers to wait
 * (wait, in ms, not 0), for that long, then answers 202 if the job has not
 * ended.  NGX_DONE, NGX_ERROR, or NGX_DECLINED without a link to Redis.
 */

static ngx_int_t
ngx_http_offload_replay(ngx_http_offload_ctx_t *ctx, ngx_msec_t wait)
{
    int64_t                       spent;
    ngx_http_request_t           *r;
    ngx_http_cleanup_t           *cln;
    ngx_http_offload_job_read_t  *jr;

    r = ctx->request;

    jr = ngx_pcalloc(r->pool, sizeof(ngx_http_offload_job_read_t));
    cln = ngx_http_cleanup_add(r, 0);

    if (jr == NULL || cln == NULL) {
        return NGX_ERROR;
    }

    ngx_http_offload_unpark(ctx);
    ctx->replaying = 1;

    jr->request = r;
    jr->peer = ctx->peer->parent ? ctx->peer->parent : ctx->peer;
    jr->master = ctx->peer;
    jr->asked = ctx->asked;
    jr->serial = ++ngx_http_offload_job_serial;
    jr->replay = 1;
    jr->accept = (wait != 0);
    jr->duplicate = ctx->replayed;
    jr->waiting = 1;
    ngx_memcpy(jr->id, ctx->id, OFFLOAD_JOB_ID_LEN);

    cln->handler = ngx_http_offload_job_cleanup;
    cln->data = jr;

    ngx_http_offload_job_wait_for_end(jr);

    spent = (ngx_http_offload_now_us() - ctx->start_us) / 1000;

    jr->wait.handler = ngx_http_offload_job_wait_handler;
    jr->wait.data = jr;
    jr->wait.log = r->connection->log;

    if (wait == 0) {
        wait = spent < (int64_t) ctx->timeout
               ? ctx->timeout - (ngx_msec_t) spent : 1;
    }

    ngx_add_timer(&jr->wait, wait);

    if (ngx_http_offload_job_send(jr) != NGX_OK) {
        /* out of the tree and its timer off: the 503 ends the request */
        ngx_http_offload_job_cleanup(jr);
        return NGX_DECLINED;
    }

    return NGX_DONE;
}


/* 202 Accepted: where to ask, and what is known (the job is queued, or,
 * for a duplicate, as its record says); first, if the client prefers, a
 * wait for the job's end */

void
ngx_http_offload_accepted(ngx_http_offload_ctx_t *ctx, u_char *status,
    size_t status_len)
{
    ngx_str_t  body;

    /* without a read of the job to wait on (no link, no memory), the 202
     * at once: the job is queued all the same */

    if (ctx->wait
        && ngx_http_offload_replay(ctx, ctx->wait * 1000) == NGX_DONE)
    {
        return;
    }

    if (ngx_http_offload_accepted_body(ctx, status, status_len, &body)
        != NGX_OK)
    {
        ngx_http_offload_answer_error(ctx, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                      "internal", "out of memory");
        return;
    }

    ngx_http_offload_answer_body(ctx, NGX_HTTP_ACCEPTED, body.data, body.len);
}


/* a 202's headers, and its body */

static ngx_int_t
ngx_http_offload_accepted_body(ngx_http_offload_ctx_t *ctx, u_char *status,
    size_t status_len, ngx_str_t *out)
{
    u_char                       *p, *url, *body;
    size_t                        len;
    ngx_http_request_t           *r;
    ngx_http_offload_loc_conf_t  *olcf;

    r = ctx->request;
    olcf = ngx_http_get_module_loc_conf(r, ngx_http_offload_module);

    len = olcf->jobs_url.len + OFFLOAD_JOB_ID_LEN;

    url = ngx_pnalloc(r->pool, len);
    body = ngx_pnalloc(r->pool, sizeof("{\"id\":\"\",\"status\":\"\","
                                       "\"status_url\":\"\"}") - 1
                                + OFFLOAD_JOB_ID_LEN + 6 * status_len
                                + 6 * len);

    if (url == NULL || body == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(url, "%V%*s", &olcf->jobs_url, (size_t) OFFLOAD_JOB_ID_LEN,
                ctx->id);

    p = ngx_sprintf(body, "{\"id\":\"%*s\",\"status\":\"",
                    (size_t) OFFLOAD_JOB_ID_LEN, ctx->id);
    p = (u_char *) ngx_escape_json(p, status, status_len);
    p = ngx_cpymem(p, "\",\"status_url\":\"", 16);
    p = (u_char *) ngx_escape_json(p, url, len);
    p = ngx_cpymem(p, "\"}", 2);

    if (ngx_http_offload_add_header(r, "Location", url, len) != NGX_OK
        || ngx_http_offload_add_header(r, "X-Offload-Job-Id", ctx->id,
                                       OFFLOAD_JOB_ID_LEN)
           != NGX_OK
        || (ctx->preferred
            && ngx_http_offload_add_header(r, "Preference-Applied",
                                           (u_char *) "respond-async",
                                           sizeof("respond-async") - 1)
               != NGX_OK)
        || (ctx->replayed
            && ngx_http_offload_add_header(r, "Idempotent-Replayed",
                                           (u_char *) "true", 4)
               != NGX_OK))
    {
        return NGX_ERROR;
    }

    out->data = body;
    out->len = p - body;

    return NGX_OK;
}


char *
ngx_http_offload_jobs(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_offload_loc_conf_t *olcf = conf;

    char                      *rv;
    ngx_http_core_loc_conf_t  *clcf;

    rv = ngx_http_offload_content(cf, cmd, olcf);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    /* like the reports, the location needs a Redis peer, whose
     * subscriber then hears the ends of jobs */
    olcf->reads_nodes = 1;
    olcf->jobs = 1;
    olcf->handler = ngx_http_offload_jobs_handler;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = olcf->handler;

    return NGX_CONF_OK;
}


ngx_int_t
ngx_http_offload_jobs_handler(ngx_http_request_t *r)
{
    ngx_int_t                     rc, wait;
    ngx_str_t                     value;
    ngx_msec_t                    wait_ms;
    ngx_http_cleanup_t           *cln;
    ngx_http_offload_job_read_t  *jr;
    ngx_http_offload_loc_conf_t  *olcf;

    /* the body is discarded before any answer: left unread, on a
     * keepalive connection it would be taken for the next request; and
     * never asked for (no "100 Continue"): no method here reads one */

    r->expect_tested = 1;

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD|NGX_HTTP_DELETE))) {
        if (ngx_http_offload_add_header(r, "Allow",
                                        (u_char *) "GET, HEAD, DELETE", 17)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_offload_send_error(r, NGX_HTTP_NOT_ALLOWED,
                                           "method_not_allowed",
                                           "GET, HEAD or DELETE a job");
    }

    /* a job's state changes under the same URL: no cache may keep it */

    if (ngx_http_offload_add_header(r, "Cache-Control",
                                    (u_char *) "no-store", 8)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    jr = ngx_pcalloc(r->pool, sizeof(ngx_http_offload_job_read_t));
    if (jr == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_offload_job_id(r, jr->id) != NGX_OK) {
        return ngx_http_offload_send_error(r, NGX_HTTP_NOT_FOUND,
                                           "unknown_job",
                                           "no such job (or it expired)");
    }

    wait = 0;

    if (r->method != NGX_HTTP_DELETE
        && ngx_http_arg(r, (u_char *) "wait", 4, &value) == NGX_OK)
    {
        wait = ngx_atoi(value.data, value.len);

        if (wait == NGX_ERROR && ngx_http_offload_beyond_count(&value, 0)) {
            wait = NGX_HTTP_OFFLOAD_WAIT_MAX;
        }

        if (wait == NGX_ERROR) {
            return ngx_http_offload_send_error(r, NGX_HTTP_BAD_REQUEST,
                                               "bad_wait",
                                               "wait is a whole number of "
                                               "seconds");
        }

        wait = ngx_min(wait, NGX_HTTP_OFFLOAD_WAIT_MAX);

    } else if (r->method != NGX_HTTP_DELETE) {
        wait = ngx_http_offload_prefer_wait(r);
    }

    wait_ms = (ngx_msec_t) wait * 1000;

    /* a poll parked without its request comes back as this request: with
     * what is left of its wait, or to be logged once its client has gone */

    if (ngx_http_offload_poll_resumed(r, &wait_ms) != NGX_OK) {
        return NGX_HTTP_CLIENT_CLOSED_REQUEST;
    }

    olcf = ngx_http_get_module_loc_conf(r, ngx_http_offload_module);

    /* a cluster's: the master of the slot the id's tag names */

    jr->master = ngx_http_offload_cluster_peer(olcf->peer,
                                               jr->id + OFFLOAD_JOB_ID_TAG_AT,
                                               OFFLOAD_SLOT_TAG_LEN);

    if (jr->master == NULL || !jr->master->command.up) {
        return ngx_http_offload_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                           "redis_unavailable",
                                           "redis is not reachable");
    }

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    jr->request = r;
    jr->peer = olcf->peer;
    jr->serial = ++ngx_http_offload_job_serial;
    jr->cancel = (r->method == NGX_HTTP_DELETE);
    jr->unmatched = jr->cancel && ngx_http_offload_precondition_unmet(r);

    cln->handler = ngx_http_offload_job_cleanup;
    cln->data = jr;

    if (wait_ms > 0) {
        /* listed before the first read: an end published while it is on
         * its way is not missed */
        ngx_http_offload_job_wait_for_end(jr);

        jr->waiting = 1;
        jr->deadline = ngx_current_msec + wait_ms;
        jr->wait.handler = ngx_http_offload_job_wait_handler;
        jr->wait.data = jr;
        jr->wait.log = r->connection->log;
        ngx_add_timer(&jr->wait, wait_ms);
    }

    if (ngx_http_offload_job_send(jr) != NGX_OK) {
        ngx_http_offload_job_cleanup(jr);
        return ngx_http_offload_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                           "redis_unavailable",
                                           "redis is not reachable");
    }

    /* notice a client that gives up */
    r->read_event_handler = ngx_http_test_reading;
    r->write_event_handler = ngx_http_request_empty_handler;

    r->main->count++;

    return NGX_DONE;
}


/* the id is the URI's last segment, 32 lower-case hex digits */

static ngx_int_t
ngx_http_offload_job_id(ngx_http_request_t *r, u_char *id)
{
    u_char  *p, *start, *end;

    end = r->uri.data + r->uri.len;
    start = end;

    while (start > r->uri.data && start[-1] != '/') {
        start--;
    }

    if (end - start != OFFLOAD_JOB_ID_LEN) {
        return NGX_DECLINED;
    }

    for (p = start; p < end; p++) {
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) {
            return NGX_DECLINED;
        }
    }

    ngx_memcpy(id, start, OFFLOAD_JOB_ID_LEN);

    return NGX_OK;
}


/*
 * A precondition no job meets.  An If-Match other than "*": a job has no
 * entity tag (its state changes under one URL, and no answer gives an
 * ETag), so no tag is met, and a DELETE it conditions must not cancel
 * (RFC 9110 13.1.1); "*" is met by any job that exists.  An
 * If-None-Match: "*" asks that the job not exist, which it does (13.1.2);
 * one of tags is met, none being the job's.
 */

static ngx_uint_t
ngx_http_offload_precondition_unmet(ngx_http_request_t *r)
{
    ngx_table_elt_t  *h;

    h = r->headers_in.if_match;

    if (h != NULL && !(h->value.len == 1 && h->value.data[0] == '*')) {
        return 1;
    }

    h = r->headers_in.if_none_match;

    return h != NULL && h->value.len == 1 && h->value.data[0] == '*';
}


/* reads the job's record again, or answers 503 without a link to Redis */

static void
ngx_http_offload_job_look(ngx_http_offload_job_read_t *jr)
{
    if (ngx_http_offload_job_send(jr) != NGX_OK) {
        ngx_http_offload_job_finish(jr,
                ngx_http_offload_job_unread(jr, NGX_HTTP_SERVICE_UNAVAILABLE,
                                            "redis_unavailable",
                                            "redis is not reachable"));
    }
}


/* offload_job_script: the record (and result), or a cancel */

static ngx_int_t
ngx_http_offload_job_send(ngx_http_offload_job_read_t *jr)
{
    u_char                       *ttl, rec[OFFLOAD_KEY_MAX];
    u_char                        ttl_buf[NGX_INT64_LEN];
    int                           n;
    const char                   *argv[8];
    size_t                        argvlen[8];
    ngx_http_offload_loc_conf_t  *olcf;

    olcf = ngx_http_get_module_loc_conf(jr->request, ngx_http_offload_module);

    n = offload_job_record_key((char *) rec, sizeof(rec), (char *) jr->id,
                               OFFLOAD_JOB_ID_LEN);
    if (n < 0) {
        return NGX_ERROR;
    }

    ttl = ngx_sprintf(ttl_buf, "%M", olcf->result_ttl);

    ngx_http_offload_script(offload_job_script, ngx_http_offload_job_sha,
                            jr->by_eval, argv, argvlen);

    argv[2] = "1";
    argv[3] = (char *) rec;
    argv[4] = jr->unmatched ? "unmatched" : jr->cancel ? "cancel" : "get";
    argv[5] = (char *) jr->id;
    argv[6] = (char *) ttl_buf;
    argv[7] = olcf->cancel_running ? "running" : "queued";

    argvlen[2] = 1;
    argvlen[3] = n;
    argvlen[4] = ngx_strlen(argv[4]);
    argvlen[5] = OFFLOAD_JOB_ID_LEN;
    argvlen[6] = ttl - ttl_buf;
    argvlen[7] = ngx_strlen(argv[7]);

    /* ASKING covers the next command alone: again before each read on
     * the node an ASK named (a read after NOSCRIPT, a long poll's) */

    if (jr->asked && ngx_http_offload_cluster_asking(jr->master) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_offload_link_send(&jr->master->command,
                                   ngx_http_offload_job_done,
                                   (void *) (uintptr_t) jr->serial,
                                   8, argv, argvlen)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* found by its serial when the reply comes, among thousands of
     * parked polls */
    ngx_http_offload_job_reading(jr);

    return NGX_OK;
}


/* a read is on its way: the replies find jr by its serial (a node's key
 * is set each time: ngx_rbtree_delete() zeroes it, and every read after
 * the first of a request shared key 0, a big result's elements or a woken
 * poll's record went to another request's read) */

static void
ngx_http_offload_job_reading(ngx_http_offload_job_read_t *jr)
{
    jr->node.key = jr->serial;
    ngx_rbtree_insert(&jr->peer->job_reading, &jr->node);
    jr->reading = 1;
}


/* the job read a reply of link's belongs to (privdata: its serial), or
 * NULL: it is gone */

static ngx_http_offload_job_read_t *
ngx_http_offload_job_found(ngx_http_offload_link_t *link, void *privdata)
{
    ngx_rbtree_key_t          key;
    ngx_rbtree_node_t        *node, *sentinel;
    ngx_http_offload_peer_t  *peer;

    peer = link->peer->parent ? link->peer->parent : link->peer;

    key = (ngx_rbtree_key_t) (uintptr_t) privdata;
    node = peer->job_reading.root;
    sentinel = peer->job_reading.sentinel;

    while (node != sentinel) {

        if (key == node->key) {
            return (ngx_http_offload_job_read_t *) node;
        }

        node = (key < node->key) ? node->left : node->right;
    }

    return NULL;
}


static void
ngx_http_offload_job_done(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply                   *reply = r;
    ngx_uint_t                    ask;
    ngx_http_offload_peer_t      *master;
    ngx_http_offload_link_t      *link;
    ngx_http_offload_job_read_t  *jr;

    link = ngx_http_offload_link_replied(ac, reply);

    jr = ngx_http_offload_job_found(link, privdata);
    if (jr == NULL) {
        return;
    }

    ngx_rbtree_delete(&jr->peer->job_reading, &jr->node);
    jr->reading = 0;

    if (reply != NULL && reply->type == REDIS_REPLY_ERROR
        && !jr->by_eval && ngx_strncmp(reply->str, "NOSCRIPT", 8) == 0)
    {
        jr->by_eval = 1;
        ngx_http_offload_job_look(jr);
        return;
    }

    /* a cluster's slot moved (or is moving): the master named */

    ask = reply != NULL && reply->type == REDIS_REPLY_ERROR
          && ngx_strncmp(reply->str, "ASK ", 4) == 0;
    master = reply != NULL && jr->redirects < NGX_HTTP_OFFLOAD_REDIRECTS
             ? ngx_http_offload_cluster_moved(link->peer, reply, ask)
             : NULL;

    if (master != NULL) {
        ngx_log_error(NGX_LOG_INFO, link->log, 0,
                      "offload: job %*s read: %s, sent to %V",
                      (size_t) OFFLOAD_JOB_ID_LEN, jr->id, reply->str,
                      &master->name);

        jr->master = master;
        jr->asked = ask;
        jr->redirects++;

        ngx_http_offload_job_look(jr);
        return;
    }

    ngx_http_offload_job_finish(jr, ngx_http_offload_job_answer(jr, reply));
}


/*
 * Answers a read's reply, or returns NGX_DONE to go on waiting (a long
 * poll whose job has not ended: read again if it ended meanwhile; a big
 * result being read).
 */

static ngx_int_t
ngx_http_offload_job_answer(ngx_http_offload_job_read_t *jr,
    redisReply *reply)
{
    ngx_uint_t           i;
    redisReply         **e;
    ngx_http_request_t  *r;

    r = jr->request;

    if (reply == NULL) {
        return ngx_http_offload_job_unread(jr, NGX_HTTP_SERVICE_UNAVAILABLE,
                                           "redis_unavailable",
                                           "the redis connection was lost");
    }

    if (reply->type == REDIS_REPLY_NIL) {
        return ngx_http_offload_job_unread(jr, NGX_HTTP_NOT_FOUND,
                                           "unknown_job",
                                           "no such job (or it expired)");
    }

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 10) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "offload: reading job %*s failed: %s",
                      (size_t) OFFLOAD_JOB_ID_LEN, jr->id,
                      reply->type == REDIS_REPLY_ERROR
                      ? reply->str : "unexpected reply");
        return ngx_http_offload_job_unread(jr, NGX_HTTP_SERVICE_UNAVAILABLE,
                                           "redis_unavailable",
                                           "redis refused the read");
    }

    e = reply->element;

    for (i = 0; i < 10; i++) {
        if (i == 8) {
            continue;                   /* the result, read below */
        }

        if ((e[i]->type != REDIS_REPLY_STRING && e[i]->type != REDIS_REPLY_NIL)
            || (i == 0 && e[i]->type != REDIS_REPLY_STRING)
            || (i == 9 && e[i]->type == REDIS_REPLY_STRING
                && e[i]->len != OFFLOAD_TRACE_ID_LEN))
        {
            return ngx_http_offload_job_unread(jr,
                                               NGX_HTTP_SERVICE_UNAVAILABLE,
                                               "redis_unavailable",
                                               "unexpected job record");
        }
    }

    if (ngx_strcmp(e[0]->str, "running") == 0) {
        return ngx_http_offload_send_error(r, NGX_HTTP_CONFLICT, "running",
                                           "the job is running");
    }

    if (ngx_strcmp(e[0]->str, "waited") == 0) {
        return ngx_http_offload_send_error(r, NGX_HTTP_CONFLICT, "sync_job",
                                           "a sync job's client waits for "
                                           "it: it is not cancelled");
    }

    if (ngx_strcmp(e[0]->str, "finished") == 0) {
        return ngx_http_offload_send_error(r, NGX_HTTP_CONFLICT,
                                           "already_finished",
                                           "the job has ended");
    }

    if (ngx_strcmp(e[0]->str, "unmatched") == 0) {
        return ngx_http_offload_send_error(r, NGX_HTTP_PRECONDITION_FAILED,
                                           "precondition_failed",
                                           "the job does not meet the "
                                           "request's If-Match or "
                                           "If-None-Match (it has no entity "
                                           "tag; only If-Match: * is met): "
                                           "not cancelled");
    }

    /* a long poll whose job has not ended: read again if it ended since
     * this read went (even as its wait passes: its answer would be stale),
     * else wait on */

    if (jr->waiting && ngx_http_offload_job_ongoing(e[2])) {
        if (jr->reread) {
            jr->reread = 0;

            if (ngx_http_offload_job_send(jr) != NGX_OK) {
                return ngx_http_offload_job_unread(jr,
                                               NGX_HTTP_SERVICE_UNAVAILABLE,
                                               "redis_unavailable",
                                               "redis is not reachable");
            }

            return NGX_DONE;
        }

        if (!jr->last) {
            /* parked without its request where it can be (then r, and jr
             * in its pool, are gone), or waits on as it is */

            if (!jr->replay) {
                ngx_http_offload_poll_park(r, jr->peer, jr->id,
                                           jr->deadline);
            }

            return NGX_DONE;
        }
    }

    if (jr->replay) {
        return ngx_http_offload_replay_answer(jr, e);
    }

    if (ngx_http_offload_job_head(jr, e) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_offload_job_fetch(jr, e);
}


/* the result's status and what comes before it and after it */
#define NGX_HTTP_OFFLOAD_RESULT_ROOM                                          \
    (sizeof(",\"result_status\":,\"result\":") - 1 + NGX_INT_T_LEN)


/*
 * The answer's record part into jr->head: {"id":…,"queue":…,"status":…,
 * the numbers, "trace_id"; with room for "result_status" and the key of
 * the result or the error behind it.
 */

static ngx_int_t
ngx_http_offload_job_head(ngx_http_offload_job_read_t *jr, redisReply **e)
{
    u_char      *p, *body;
    size_t       len;
    ngx_uint_t   i;

    static const char   *names[] = {
        "queue", "status", "attempts", "submitted_at", "started_at",
        "finished_at", "next_attempt_at"
    };

    len = sizeof("{\"id\":\"\"") - 1 + OFFLOAD_JOB_ID_LEN
          + NGX_HTTP_OFFLOAD_RESULT_ROOM;

    for (i = 1; i < 8; i++) {
        len += sizeof(",\"\":\"\"") - 1 + ngx_strlen(names[i - 1])
               + sizeof("null") - 1
               + (e[i]->type == REDIS_REPLY_STRING
                  ? e[i]->len + ngx_escape_json(NULL, (u_char *) e[i]->str,
                                                e[i]->len)
                  : 0);
    }

    /* "trace_id": 32 hex digits (the submit script took them from a
     * checked traceparent), or null */
    len += sizeof(",\"trace_id\":\"\"") - 1 + OFFLOAD_TRACE_ID_LEN;

    body = ngx_pnalloc(jr->request->pool, len);
    if (body == NULL) {
        return NGX_ERROR;
    }

    p = ngx_sprintf(body, "{\"id\":\"%*s\"", (size_t) OFFLOAD_JOB_ID_LEN,
                    jr->id);

    for (i = 1; i < 8; i++) {
        p = ngx_sprintf(p, ",\"%s\":", names[i - 1]);

        if (i >= 3) {
            p = ngx_http_offload_job_number(p, e[i]);

        } else if (e[i]->type == REDIS_REPLY_STRING) {
            *p++ = '"';
            p = (u_char *) ngx_escape_json(p, (u_char *) e[i]->str,
                                           e[i]->len);
            *p++ = '"';

        } else {
            p = ngx_cpymem(p, "null", 4);
        }
    }

    if (e[9]->type == REDIS_REPLY_STRING) {
        p = ngx_sprintf(p, ",\"trace_id\":\"%*s\"",
                        (size_t) OFFLOAD_TRACE_ID_LEN, e[9]->str);

    } else {
        p = ngx_cpymem(p, ",\"trace_id\":null", 16);
    }

    jr->head.data = body;
    jr->head.len = p - body;

    return NGX_OK;
}


/*
 * The result the job script answered (e[8]): a string (at most
 * OFFLOAD_NOTICE_OVER bytes), decoded and copied, or a list's length: a
 * big result, read element by element on the bulk link as the sync path
 * reads one (NGX_DONE meanwhile), never joined in Redis and sent whole on
 * the command link, where it would hold up every other command of this
 * worker and stall Redis while it is written.  None, or one undecodable,
 * as ngx_http_offload_job_result() says.
 */

static ngx_int_t
ngx_http_offload_job_fetch(ngx_http_offload_job_read_t *jr, redisReply **e)
{
    u_char            *p;
    const char        *err;
    ngx_chain_t       *out;
    offload_result_t   res;

    if (e[8]->type == REDIS_REPLY_INTEGER) {
        return ngx_http_offload_job_list(jr, e);
    }

    if (e[8]->type != REDIS_REPLY_STRING) {
        return ngx_http_offload_job_result(jr, NULL, NULL, 0);
    }

    if (offload_result_decode(&res, e[8]->str, e[8]->len, &err) != 0) {
        ngx_log_error(NGX_LOG_ERR, jr->request->connection->log, 0,
                      "offload: undecodable result of job %*s: %s",
                      (size_t) OFFLOAD_JOB_ID_LEN, jr->id, err);
        return ngx_http_offload_job_result(jr, NULL, NULL, 0);
    }

    /* no empty buffer amid the answer */
    if (res.body.len == 0) {
        return ngx_http_offload_job_result(jr, &res, NULL, 0);
    }

    p = ngx_pnalloc(jr->request->pool, res.body.len);
    out = ngx_http_offload_chain_of(jr->request->pool, p, res.body.len);

    if (p == NULL || out == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(p, res.body.data, res.body.len);

    return ngx_http_offload_job_result(jr, &res, out, res.body.len);
}


/*
 * The memory a big result's read of n elements takes in the request's pool
 * (ngx_http_offload_list_start()), held until its answer is sent: a client
 * that does not read keeps it, and every GET of one big result reads it
 * again (an upload of 64 MB held 30 times over by 30 idle connections).
 * Past offload_jobs_memory in this worker such a read waits for others to
 * end: 503 busy.  One read always goes, whatever its size.  NGX_OK,
 * NGX_DECLINED (busy: nothing reserved, nothing to read), or the answer's
 * status.
 */

static ngx_int_t
ngx_http_offload_job_reserve(ngx_http_request_t *r, long long n)
{
    size_t                        size, *held;
    ngx_pool_cleanup_t           *cln;
    ngx_http_offload_loc_conf_t  *olcf;

    size = ngx_http_offload_list_size(n);
    if (size == 0) {
        return NGX_OK;                  /* refused by the read */
    }

    olcf = ngx_http_get_module_loc_conf(r, ngx_http_offload_module);

    if (ngx_http_offload_worker.jobs_reading
        && ngx_http_offload_worker.jobs_reading + size > olcf->jobs_memory)
    {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "offload: a big result's read waits: this worker's "
                      "reads of big results hold %uz bytes already "
                      "(offload_jobs_memory %uz)",
                      ngx_http_offload_worker.jobs_reading, olcf->jobs_memory);
        return NGX_DECLINED;
    }

    cln = ngx_pool_cleanup_add(r->pool, sizeof(size_t));
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    held = cln->data;
    *held = size;
    cln->handler = ngx_http_offload_job_unreserve;
    ngx_http_offload_worker.jobs_reading += *held;

    return NGX_OK;
}


static void
ngx_http_offload_job_unreserve(void *data)
{
    size_t  *held = data;

    ngx_http_offload_worker.jobs_reading -= *held;
}


/* a big result's read begins: its key is in its record's queue's slot */

static ngx_int_t
ngx_http_offload_job_list(ngx_http_offload_job_read_t *jr, redisReply **e)
{
    int                  len;
    char                *key;
    ngx_int_t            rc;
    ngx_http_request_t  *r;

    r = jr->request;

    key = ngx_pnalloc(r->pool, OFFLOAD_KEY_MAX);
    if (key == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    len = e[1]->type == REDIS_REPLY_STRING
          ? offload_result_key(key, OFFLOAD_KEY_MAX, e[1]->str, e[1]->len,
                               (char *) jr->id, OFFLOAD_JOB_ID_LEN)
          : -1;

    if (len < 0) {
        return ngx_http_offload_job_unread(jr, NGX_HTTP_SERVICE_UNAVAILABLE,
                                           "redis_unavailable",
                                           "unexpected job record");
    }

    /* a link that is down would keep the commands until it is up again,
     * and a read without a wait has no deadline */

    if (!jr->master->bulk.up) {
        return ngx_http_offload_job_unread(jr, NGX_HTTP_SERVICE_UNAVAILABLE,
                                           "redis_unavailable",
                                           "redis is not reachable");
    }

    rc = ngx_http_offload_job_reserve(r, e[8]->integer);

    if (rc == NGX_DECLINED) {
        return ngx_http_offload_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                           "busy",
                                           "too many big results are being "
                                           "read: try again");
    }

    if (rc != NGX_OK) {
        return rc;
    }

    ngx_http_offload_list_init(&jr->result, &jr->master->bulk, r->pool,
                               ngx_http_offload_job_index_done,
                               (void *) (uintptr_t) jr->serial);
    jr->result.key.data = (u_char *) key;
    jr->result.key.len = len;

    rc = ngx_http_offload_list_start(&jr->result, e[8]->integer);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_DECLINED) {
        return ngx_http_offload_send_error(r, NGX_HTTP_BAD_GATEWAY,
                                           "bad_result",
                                           "the worker's result is "
                                           "undecodable");
    }

    /* found by its serial again while it is read: a wake or the wait
     * passing leave it alone meanwhile (it has ended) */
    ngx_http_offload_job_reading(jr);

    return NGX_DONE;
}


/* an element of a big result, on the bulk link */

static void
ngx_http_offload_job_index_done(redisAsyncContext *ac, void *r,
    void *privdata)
{
    redisReply                   *reply = r;
    off_t                         len;
    ngx_int_t                     rc;
    const char                   *err;
    ngx_chain_t                  *first;
    offload_result_t              res;
    ngx_http_offload_job_read_t  *jr;

    jr = ngx_http_offload_job_found(ngx_http_offload_link_replied(ac, reply),
                                    privdata);
    if (jr == NULL) {
        return;
    }

    if (reply == NULL) {
        ngx_http_offload_job_finish(jr,
                ngx_http_offload_job_unread(jr, NGX_HTTP_SERVICE_UNAVAILABLE,
                                            "redis_unavailable",
                                            "the redis connection was "
                                            "lost"));
        return;
    }

    rc = ngx_http_offload_list_got(&jr->result, reply);

    if (rc == NGX_AGAIN) {
        return;
    }

    if (rc == NGX_DECLINED) {
        ngx_log_error(NGX_LOG_ERR, jr->request->connection->log, 0,
                      "offload: the result of job %*s changed while it "
                      "was read, or is not a worker's",
                      (size_t) OFFLOAD_JOB_ID_LEN, jr->id);
        ngx_http_offload_job_finish(jr,
                ngx_http_offload_send_error(jr->request, NGX_HTTP_BAD_GATEWAY,
                                            "bad_result",
                                            "the worker's result changed "
                                            "while it was read"));
        return;
    }

    if (rc == NGX_ERROR) {
        ngx_http_offload_job_finish(jr, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    first = jr->result.out;

    if (offload_result_decode(&res, (char *) first->buf->pos,
                              first->buf->last - first->buf->pos, &err)
        != 0)
    {
        ngx_log_error(NGX_LOG_ERR, jr->request->connection->log, 0,
                      "offload: undecodable result of job %*s: %s",
                      (size_t) OFFLOAD_JOB_ID_LEN, jr->id, err);
        ngx_http_offload_job_finish(jr,
                               ngx_http_offload_job_result(jr, NULL, NULL, 0));
        return;
    }

    first = ngx_http_offload_list_body(&jr->result, &res, &len);

    ngx_http_offload_job_finish(jr,
                                ngx_http_offload_job_result(jr, &res, first,
                                                            len));
}


/*
 * The answer with the job's result (res NULL: none, or undecodable), body
 * a chain of len bytes without empty buffers.  A sync duplicate: the
 * result as the first request got it (undecodable: 502).  Else the record
 * (jr->head), "result_status", the result (2xx) or the error: an error
 * answer {"error":{…}} shows as "error":{…}; then "}".
 */

static ngx_int_t
ngx_http_offload_job_result(ngx_http_offload_job_read_t *jr,
    offload_result_t *res, ngx_chain_t *body, off_t len)
{
    u_char              *p;
    ngx_str_t            type = ngx_string("application/json");
    ngx_chain_t         *out, *cl, *tail;
    ngx_http_request_t  *r;

    r = jr->request;

    if (jr->replay) {
        if (res == NULL) {
            return ngx_http_offload_send_error(r, NGX_HTTP_BAD_GATEWAY,
                                               "bad_result",
                                               "the worker's result is "
                                               "undecodable");
        }

        if (!ngx_http_offload_result_final(r, res, jr->id)) {
            return ngx_http_offload_send_error(r, NGX_HTTP_BAD_GATEWAY,
                                               "bad_result",
                                               NGX_HTTP_OFFLOAD_NOT_FINAL);
        }

        if (ngx_http_offload_replayed(jr) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_offload_send(r, res->status, body, len);
    }

    p = jr->head.data + jr->head.len;

    if (res != NULL) {
        p = ngx_sprintf(p, ",\"result_status\":%d", res->status);

        if (res->status >= 200 && res->status < 300) {
            p = ngx_cpymem(p, ",\"result\":", 10);

        } else if (ngx_http_offload_job_error_object(&body, len)) {
            p = ngx_cpymem(p, ",", 1);
            len -= 2;

        } else {
            p = ngx_cpymem(p, ",\"error\":", 9);
        }

    } else {
        body = NULL;
        len = 0;
    }

    out = ngx_http_offload_chain_of(r->pool, jr->head.data,
                                    p - jr->head.data);
    tail = ngx_http_offload_chain_of(r->pool, (u_char *) "}", 1);

    if (out == NULL || tail == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    for (cl = out; cl->next; cl = cl->next) { /* void */ }
    cl->next = body;

    for ( /* void */ ; cl->next; cl = cl->next) { /* void */ }
    cl->next = tail;

    return ngx_http_offload_send_chain(r, NGX_HTTP_OK, &type, out,
                                       (p - jr->head.data) + len + 1);
}


/*
 * Whether a result's body (a chain of len bytes, no empty buffer) is an
 * error answer {"error":{…}}: then its first and last bytes are cut off
 * (a buffer left empty dropped), leaving "error":{…}.
 */

static ngx_uint_t
ngx_http_offload_job_error_object(ngx_chain_t **body, off_t len)
{
    u_char        start[9];
    size_t        n, k;
    ngx_chain_t  *cl, *end, *before;

    if (len <= 10) {
        return 0;
    }

    n = 0;
    end = NULL;
    before = NULL;

    for (cl = *body; cl; cl = cl->next) {
        k = ngx_min((size_t) (cl->buf->last - cl->buf->pos), 9 - n);
        ngx_memcpy(start + n, cl->buf->pos, k);
        n += k;

        if (cl->next != NULL) {
            before = cl;
        }

        end = cl;
    }

    if (n < 9 || ngx_strncmp(start, "{\"error\":", 9) != 0
        || end->buf->last[-1] != '}')
    {
        return 0;
    }

    /* len > 10: a buffer emptied at one end is not the one at the other */

    if (--end->buf->last == end->buf->pos) {
        before->next = NULL;
    }

    if (++(*body)->buf->pos == (*body)->buf->last) {
        *body = (*body)->next;
    }

    return 1;
}


/* a record's status of a job that has not ended */

static ngx_int_t
ngx_http_offload_job_ongoing(redisReply *status)
{
    return status->type == REDIS_REPLY_STRING
           && (ngx_strcmp(status->str, "queued") == 0
               || ngx_strcmp(status->str, "running") == 0
               || ngx_strcmp(status->str, "retrying") == 0);
}


/* what every answer of a replay says: the job's id, and whether it is an
 * earlier request's */

static ngx_int_t
ngx_http_offload_replayed(ngx_http_offload_job_read_t *jr)
{
    if (ngx_http_offload_add_header(jr->request, "X-Offload-Job-Id", jr->id,
                                    OFFLOAD_JOB_ID_LEN)
        != NGX_OK
        || (jr->duplicate
            && ngx_http_offload_add_header(jr->request, "Idempotent-Replayed",
                                           (u_char *) "true", 4)
               != NGX_OK))
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * A replay's answer, from the job's record (e as the job script returns
 * it): the job's result as a sync request gets it (its status and body),
 * 409 when it ended without one (a cancelled job); if it has not ended,
 * 202 for a submit that preferred to wait, 504 for a sync duplicate (its
 * deadline passed); each with X-Offload-Job-Id (and Idempotent-Replayed
 * for a duplicate), so that the client can look the job up.
 */

static ngx_int_t
ngx_http_offload_replay_answer(ngx_http_offload_job_read_t *jr,
    redisReply **e)
{
    ngx_uint_t           ran;
    ngx_http_request_t  *r;

    /* [a duplicate][an earlier run] */
    static const char  *expired[2][2] = {
        { "the job expired before a worker took it",
          "the job expired before it could run again: an earlier run did "
          "not end it, and may have done part of its work" },
        { "the first job with this Idempotency-Key expired before a worker "
          "took it",
          "the first job with this Idempotency-Key expired before it could "
          "run again: an earlier run did not end it, and may have done part "
          "of its work" }
    };

    r = jr->request;

    /* a result: its headers go with it (ngx_http_offload_job_result) */

    if (e[8]->type == REDIS_REPLY_STRING
        || e[8]->type == REDIS_REPLY_INTEGER)
    {
        return ngx_http_offload_job_fetch(jr, e);
    }

    if (jr->accept && ngx_http_offload_job_ongoing(e[2])) {
        return ngx_http_offload_job_accepted(jr, (u_char *) e[2]->str,
                                             e[2]->len);
    }

    if (ngx_http_offload_replayed(jr) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* not ended: a sync duplicate's deadline passed */

    if (ngx_http_offload_job_ongoing(e[2])) {
        return ngx_http_offload_send_error(r, NGX_HTTP_GATEWAY_TIME_OUT,
                                           "timeout",
                                           "no result in time (the first "
                                           "job with this Idempotency-Key "
                                           "has not ended)");
    }

    /* expired at a read: no worker reached it in time; one whose record
     * counts attempts or a start ran before (an attempt failed for now, a
     * stop handed it back) and may have done part of its work */

    if (e[2]->type == REDIS_REPLY_STRING
        && ngx_strcmp(e[2]->str, "expired") == 0)
    {
        ran = (e[3]->type == REDIS_REPLY_STRING
               && !(e[3]->len == 1 && e[3]->str[0] == '0'))
              || e[5]->type == REDIS_REPLY_STRING;

        return ngx_http_offload_send_error(r, NGX_HTTP_GATEWAY_TIME_OUT,
                                           "expired",
                                           expired[jr->duplicate][ran]);
    }

    return ngx_http_offload_send_error(r, NGX_HTTP_CONFLICT, "no_result",
                                       jr->duplicate
                                       ? "the first job with this "
                                         "Idempotency-Key ended without a "
                                         "result (cancelled)"
                                       : "the job ended without a result "
                                         "(cancelled)");
}


/* a submit that waited (Prefer: wait), its job not ended: its 202 */

static ngx_int_t
ngx_http_offload_job_accepted(ngx_http_offload_job_read_t *jr,
    u_char *status, size_t len)
{
    ngx_str_t            body;
    ngx_chain_t         *out;
    ngx_http_request_t  *r;

    r = jr->request;

    if (ngx_http_offload_accepted_body(
            ngx_http_get_module_ctx(r, ngx_http_offload_module), status, len,
            &body)
        != NGX_OK
        || (out = ngx_http_offload_chain_of(r->pool, body.data, body.len))
           == NULL)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_offload_send(r, NGX_HTTP_ACCEPTED, out, body.len);
}


/*
 * A read of the job that failed: its error; but a submit that waits
 * answers its 202 all the same, status "queued" as a submit's 202 says (its
 * job is queued: a 503 would say nothing was, and a client that retried
 * would run it twice).
 */

static ngx_int_t
ngx_http_offload_job_unread(ngx_http_offload_job_read_t *jr,
    ngx_uint_t status, const char *code, const char *message)
{
    if (jr->accept) {
        return ngx_http_offload_job_accepted(jr, (u_char *) "queued", 6);
    }

    return ngx_http_offload_send_error(jr->request, status, code, message);
}


/* a time or a count: digits, or null */

static u_char *
ngx_http_offload_job_number(u_char *p, redisReply *e)
{
    size_t  i;

    if (e->type != REDIS_REPLY_STRING || e->len == 0 || e->len > 18) {
        return ngx_cpymem(p, "null", 4);
    }

    for (i = 0; i < e->len; i++) {
        if (e->str[i] < '0' || e->str[i] > '9') {
            return ngx_cpymem(p, "null", 4);
        }
    }

    return ngx_cpymem(p, e->str, e->len);
}


/*
 * A job ended (id), or, with id NULL, the subscription came back after
 * ends may have been missed: the long polls concerned are woken (a job
 * read reads again, a parked poll comes back as a request).
 */

void
ngx_http_offload_jobs_ended(ngx_http_offload_peer_t *peer, u_char *id,
    size_t len)
{
    ngx_rbtree_key_t            key;
    ngx_rbtree_node_t          *node, *next, *sentinel;
    ngx_http_offload_waiter_t  *w;

    /* a cluster's master: every master hears every end; the one serving
     * the id's slot wakes its waiters, once */

    if (peer->parent) {
        if (id != NULL
            && (len != OFFLOAD_JOB_ID_LEN
                || ngx_http_offload_cluster_peer(peer->parent,
                                                 id + OFFLOAD_JOB_ID_TAG_AT,
                                                 OFFLOAD_SLOT_TAG_LEN)
                   != peer))
        {
            return;
        }

        peer = peer->parent;
    }

    sentinel = peer->job_waiters.sentinel;
    node = peer->job_waiters.root;

    if (node == sentinel || (id != NULL && len != OFFLOAD_JOB_ID_LEN)) {
        return;
    }

    if (id == NULL) {
        node = ngx_rbtree_min(node, sentinel);

        while (node != NULL) {
            next = ngx_rbtree_next(&peer->job_waiters, node);
            w = (ngx_http_offload_waiter_t *) node;
            w->wake(w);
            node = next;
        }

        return;
    }

    /* the first waiter of the key, then those after it with the same key
     * (equal keys are neighbours in order) */

    key = ngx_crc32_short(id, len);
    next = NULL;

    while (node != sentinel) {

        if (key <= node->key) {
            if (key == node->key) {
                next = node;
            }

            node = node->left;

        } else {
            node = node->right;
        }
    }

    while (next != NULL && next->key == key) {
        node = next;
        next = ngx_rbtree_next(&peer->job_waiters, node);

        w = (ngx_http_offload_waiter_t *) node;

        if (ngx_memcmp(id, w->id, len) == 0) {
            w->wake(w);
        }
    }
}


/* a long poll waits for its job's end: listed among the peer's waiters */

static void
ngx_http_offload_job_wait_for_end(ngx_http_offload_job_read_t *jr)
{
    jr->waiter.id = jr->id;
    jr->waiter.wake = ngx_http_offload_job_wake;
    jr->waiter.node.key = ngx_crc32_short(jr->id, OFFLOAD_JOB_ID_LEN);
    ngx_rbtree_insert(&jr->peer->job_waiters, &jr->waiter.node);
    jr->linked = 1;
}


/* a long poll's job ended: read its record again (once the read on its way
 * is answered, if one is) */

static void
ngx_http_offload_job_wake(ngx_http_offload_waiter_t *w)
{
    ngx_http_offload_job_read_t  *jr;

    jr = ngx_http_offload_job_waiter(w);

    if (jr->reading) {
        jr->reread = 1;
        return;
    }

    ngx_http_offload_job_look(jr);
}


/* the wait passed: the job's status as it is now */

static void
ngx_http_offload_job_wait_handler(ngx_event_t *ev)
{
    ngx_http_offload_job_read_t  *jr = ev->data;

    jr->last = 1;

    if (jr->reading) {
        return;
    }

    ngx_http_offload_job_look(jr);
}


static void
ngx_http_offload_job_cleanup(void *data)
{
    ngx_http_offload_job_read_t  *jr = data;

    if (jr->linked) {
        ngx_rbtree_delete(&jr->peer->job_waiters, &jr->waiter.node);
        jr->linked = 0;
    }

    if (jr->reading) {
        ngx_rbtree_delete(&jr->peer->job_reading, &jr->node);
        jr->reading = 0;
    }

    /* out of the tree first: withdrawing a big read's commands may drop
     * the bulk link, whose callbacks then must not find this read */
    ngx_http_offload_list_stop(&jr->result);

    if (jr->wait.timer_set) {
        ngx_del_timer(&jr->wait);
    }
}


/* Finalizes a parked job read from a foreign event (NGX_DONE: it waits
 * on). */

static void
ngx_http_offload_job_finish(ngx_http_offload_job_read_t *jr, ngx_int_t rc)
{
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    if (rc == NGX_DONE) {
        return;
    }

    r = jr->request;
    c = r->connection;

    ngx_http_offload_job_cleanup(jr);

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}
