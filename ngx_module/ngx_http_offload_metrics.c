/*
 * ngx_http_offload_metrics.c -- the counters and histograms every nginx
 * worker keeps in one shared memory zone (offload_metrics_zone), and their
 * two renderings: Prometheus text (offload_metrics) and the "nginx" part of
 * the JSON status (offload_status).
 *
 * The latency histograms (queue wait, run, request) count twice: into
 * Prometheus' few "le" buckets, exported as they are, and into fine
 * log-linear ones (offload_hist.h) the status' quantiles are taken from,
 * within 2% of the true value.  Summing the fine buckets into the "le"
 * ones instead would not be exact: fine buckets straddle bounds such as
 * 1 ms and 1 s.
 *
 * Counting is lock-free (atomic adds on the request path); only the first
 * request of a queue takes the zone's mutex, to add the queue.  A gauge
 * (requests in flight) is also kept per worker process, in its ledger: a
 * worker that dies without taking its requests off (SIGKILL, a crash) has
 * them taken off by the next worker to start.  The zone
 * survives reloads, so counters only reset when nginx restarts, as
 * Prometheus expects of a counter.  "offload_metrics_zone off" counts
 * nothing: every function here then gets NULL and does nothing.
 */


#include "ngx_http_offload_module.h"


#define NGX_HTTP_OFFLOAD_HIST_TIME  0
#define NGX_HTTP_OFFLOAD_HIST_SIZE  1


typedef struct {
    const char                    *name;
    const char                    *help;
    ngx_uint_t                     kind;
} ngx_http_offload_hist_meta_t;


/* what the answers' statuses are counted as; the last is "other" */
static ngx_uint_t  ngx_http_offload_statuses[NGX_HTTP_OFFLOAD_NSTATUS - 1] = {
    200, 202, 400, 401, 403, 404, 405, 408, 409, 411, 413, 422, 429, 499,
    500, 502, 503, 504
};

static ngx_http_offload_hist_meta_t
    ngx_http_offload_hists[NGX_HTTP_OFFLOAD_NHIST] =
{
    { "offload_job_queue_seconds",
      "Time a job waited in its queue before a worker took it.",
      NGX_HTTP_OFFLOAD_HIST_TIME },

    { "offload_job_run_seconds",
      "Time a job's handler ran.",
      NGX_HTTP_OFFLOAD_HIST_TIME },

    { "offload_request_seconds",
      "Time from the request to its answer, as nginx saw it.",
      NGX_HTTP_OFFLOAD_HIST_TIME },

    { "offload_job_cpu_seconds",
      "CPU time (user + system) a job's handler used.",
      NGX_HTTP_OFFLOAD_HIST_TIME },

    { "offload_job_rss_growth_bytes",
      "How much a job raised its worker's peak resident set.",
      NGX_HTTP_OFFLOAD_HIST_SIZE }
};


/* the fine histograms' names in the status: queue_p50_ms ... */
static const char  *ngx_http_offload_json_names[NGX_HTTP_OFFLOAD_NFINE] = {
    "queue", "run", "request"
};

/* their percentiles there: p50, p99 */
static const double  ngx_http_offload_json_qs[2] = { 0.5, 0.99 };


static void ngx_http_offload_metrics_settle(ngx_http_offload_metrics_t *m,
    ngx_http_offload_ledger_t *ledger, ngx_log_t *log);


static const offload_hist_t *
ngx_http_offload_hist_of(ngx_uint_t h)
{
    return ngx_http_offload_hists[h].kind == NGX_HTTP_OFFLOAD_HIST_TIME
           ? &offload_hist_time : &offload_hist_size;
}


char *
ngx_http_offload_metrics_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_offload_main_conf_t  *omcf = conf;

    size_t      least;
    ssize_t     size;
    ngx_str_t  *value;

    if (omcf->metrics_size != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        omcf->metrics_size = 0;
        return NGX_CONF_OK;
    }

    size = ngx_parse_size(&value[1]);

    if (size == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid offload_metrics_zone size \"%V\": a "
                           "number of bytes, with k or m", &value[1]);
        return NGX_CONF_ERROR;
    }

    /* what the zone holds before any queue (init_zone), the allocator's
     * own pages, and one queue's counters: each allocation is of whole
     * pages */

    least = ngx_align(sizeof(ngx_http_offload_metrics_sh_t), ngx_pagesize)
            + ngx_align(NGX_HTTP_OFFLOAD_LEDGERS
                        * sizeof(ngx_http_offload_ledger_t), ngx_pagesize)
            + ngx_align(sizeof(ngx_http_offload_queue_metrics_t),
                        ngx_pagesize)
            + 8 * ngx_pagesize;

    if ((size_t) size < least) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid offload_metrics_zone size \"%V\", "
                           "it must be at least %uz (%uzk): room for one "
                           "queue's counters", &value[1], least,
                           (least + 1023) / 1024);
        return NGX_CONF_ERROR;
    }

    omcf->metrics_size = size;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_offload_metrics_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_offload_metrics_t  *octx = data;

    ngx_slab_pool_t              *shpool;
    ngx_http_offload_metrics_t   *ctx;
    ngx_http_offload_metrics_sh_t  *sh;

    ctx = shm_zone->data;

    if (octx) {
        ctx->sh = octx->sh;
        ctx->shpool = octx->shpool;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        ctx->sh = shpool->data;
        ctx->shpool = shpool;
        return NGX_OK;
    }

    sh = ngx_slab_calloc(shpool, sizeof(ngx_http_offload_metrics_sh_t));
    if (sh == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(sh->other.name, "_other", sizeof("_other") - 1);
    sh->other.name_len = sizeof("_other") - 1;
    sh->other.index = NGX_HTTP_OFFLOAD_METRICS_QUEUES;

    /* without room for them, a dead worker's requests stay counted */
    sh->ledgers = ngx_slab_calloc(shpool, NGX_HTTP_OFFLOAD_LEDGERS
                                          * sizeof(ngx_http_offload_ledger_t));

    shpool->data = sh;
    shpool->log_nomem = 0;

    ctx->sh = sh;
    ctx->shpool = shpool;

    return NGX_OK;
}


/* Called at postconfiguration: the zone, of the configured or default
 * size. */

ngx_int_t
ngx_http_offload_metrics_add_zone(ngx_conf_t *cf,
    ngx_http_offload_main_conf_t *omcf)
{
    ngx_str_t        name = ngx_string("offload_metrics");
    ngx_shm_zone_t  *shm_zone;

    if (omcf->metrics_size == NGX_CONF_UNSET) {
        omcf->metrics_size = NGX_HTTP_OFFLOAD_METRICS_SIZE;
    }

    if (omcf->metrics_size == 0) {
        return NGX_OK;                  /* off */
    }

    omcf->metrics = ngx_pcalloc(cf->pool, sizeof(ngx_http_offload_metrics_t));
    if (omcf->metrics == NULL) {
        return NGX_ERROR;
    }

    shm_zone = ngx_shared_memory_add(cf, &name, omcf->metrics_size,
                                     &ngx_http_offload_module);
    if (shm_zone == NULL) {
        return NGX_ERROR;
    }

    shm_zone->init = ngx_http_offload_metrics_init_zone;
    shm_zone->data = omcf->metrics;

    return NGX_OK;
}


/* The queue among queues [from, to) of the zone, or NULL. */

static ngx_http_offload_queue_metrics_t *
ngx_http_offload_metrics_find(ngx_http_offload_metrics_sh_t *sh,
    ngx_uint_t from, ngx_uint_t to, ngx_str_t *name)
{
    ngx_uint_t                         i;
    ngx_http_offload_queue_metrics_t  *q;

    for (i = from; i < to; i++) {
        q = sh->queues[i];
        if (q->name_len == name->len
            && ngx_memcmp(q->name, name->data, name->len) == 0)
        {
            return q;
        }
    }

    return NULL;
}


/*
 * The queue's counters; a queue past the zone's room counts as "_other".
 * Without add, only a queue that already has counters: a request takes a
 * slot only once Redis has accepted its job, so made-up queue names cannot
 * use up the zone.
 */

ngx_http_offload_queue_metrics_t *
ngx_http_offload_metrics_queue(ngx_http_offload_metrics_t *m, ngx_str_t *name,
    ngx_uint_t add)
{
    ngx_uint_t                         n;
    ngx_http_offload_queue_metrics_t  *q;
    ngx_http_offload_metrics_sh_t     *sh;

    if (m == NULL) {
        return NULL;
    }

    sh = m->sh;
    n = sh->nqueues;
    ngx_memory_barrier();

    q = ngx_http_offload_metrics_find(sh, 0, n, name);
    if (q != NULL || !add) {
        return q;
    }

    /* not there: add it, unless another worker just did */

    ngx_shmtx_lock(&m->shpool->mutex);

    q = ngx_http_offload_metrics_find(sh, n, sh->nqueues, name);
    if (q != NULL) {
        goto done;
    }

    if (sh->nqueues < NGX_HTTP_OFFLOAD_METRICS_QUEUES
        && name->len <= OFFLOAD_QUEUE_NAME_MAX)
    {
        q = ngx_slab_calloc_locked(m->shpool,
                                   sizeof(ngx_http_offload_queue_metrics_t));
    }

    if (q == NULL) {
        q = &sh->other;
        goto done;
    }

    ngx_memcpy(q->name, name->data, name->len);
    q->name_len = name->len;
    q->index = sh->nqueues;

    sh->queues[sh->nqueues] = q;
    ngx_memory_barrier();
    sh->nqueues++;

done:

    ngx_shmtx_unlock(&m->shpool->mutex);

    return q;
}


static ngx_uint_t
ngx_http_offload_status_index(ngx_uint_t status)
{
    ngx_uint_t  i;

    for (i = 0; i < NGX_HTTP_OFFLOAD_NSTATUS - 1; i++) {
        if (ngx_http_offload_statuses[i] == status) {
            return i;
        }
    }

    return NGX_HTTP_OFFLOAD_NSTATUS - 1;
}


void
ngx_http_offload_metrics_answered(ngx_http_offload_queue_metrics_t *q,
    ngx_uint_t status)
{
    if (q == NULL) {
        return;
    }

    (void) ngx_atomic_fetch_add(&q->requests[
                                    ngx_http_offload_status_index(status)],
                                1);
}


void
ngx_http_offload_metrics_invalid(ngx_http_offload_metrics_t *m,
    ngx_uint_t status)
{
    if (m == NULL) {
        return;
    }

    (void) ngx_atomic_fetch_add(&m->sh->invalid[
                                    ngx_http_offload_status_index(status)],
                                1);
}


/* *a = max(*a, v): only a new maximum writes */

static void
ngx_http_offload_atomic_max(ngx_atomic_t *a, ngx_atomic_uint_t v)
{
    ngx_atomic_uint_t  old;

    for ( ;; ) {
        old = *a;

        if (old >= v || ngx_atomic_cmp_set(a, old, v)) {
            return;
        }
    }
}


void
ngx_http_offload_metrics_observe(ngx_http_offload_queue_metrics_t *q,
    ngx_uint_t h, int64_t value)
{
    ngx_uint_t                       b;
    ngx_http_offload_hist_counts_t  *hc;

    if (q == NULL) {
        return;
    }

    hc = &q->hist[h];

    if (value < 0) {
        value = 0;
    }

    (void) ngx_atomic_fetch_add(&hc->count[
                         offload_hist_bucket(ngx_http_offload_hist_of(h),
                                             value)],
                                1);
    (void) ngx_atomic_fetch_add(&hc->sum, (ngx_atomic_int_t) value);

    if (h < NGX_HTTP_OFFLOAD_NFINE) {
        b = offload_hist_fine_bucket(value);

        /* the bounds first: a reader that reads them, then the buckets,
         * sees this count or none of it */
        ngx_http_offload_atomic_max(&q->fine_from[h], OFFLOAD_HIST_FINE - b);
        ngx_http_offload_atomic_max(&q->fine_to[h], b + 1);

        (void) ngx_atomic_fetch_add(&q->fine[h][b], 1);
    }
}


static ngx_atomic_uint_t
ngx_http_offload_requests_sum(ngx_http_offload_queue_metrics_t *q)
{
    ngx_uint_t         s;
    ngx_atomic_uint_t  sum;

    sum = 0;

    for (s = 0; s < NGX_HTTP_OFFLOAD_NSTATUS; s++) {
        sum += q->requests[s];
    }

    return sum;
}


void
ngx_http_offload_metrics_in_flight(ngx_http_offload_queue_metrics_t *q,
    ngx_atomic_int_t delta)
{
    ngx_http_offload_ledger_t  *ledger;

    if (q == NULL) {
        return;
    }

    (void) ngx_atomic_fetch_add(&q->in_flight, delta);

    ledger = ngx_http_offload_worker.metrics->ledger;

    if (ledger != NULL) {
        (void) ngx_atomic_fetch_add(&ledger->in_flight[q->index], delta);
    }
}


/*
 * A worker process starts: the ledgers of processes gone (a pid that is
 * no more: SIGKILL, a crash) are taken off the gauges, and a free ledger
 * is this process's.
 */

void
ngx_http_offload_metrics_join(ngx_http_offload_metrics_t *m, ngx_log_t *log)
{
    ngx_uint_t                  i;
    ngx_http_offload_ledger_t  *ledger;

    if (m == NULL || m->sh->ledgers == NULL) {
        return;
    }

    ngx_shmtx_lock(&m->shpool->mutex);

    for (i = 0; i < NGX_HTTP_OFFLOAD_LEDGERS; i++) {
        ledger = &m->sh->ledgers[i];

        if (ledger->pid != 0 && kill((ngx_pid_t) ledger->pid, 0) == -1
            && ngx_errno == NGX_ESRCH)
        {
            ngx_http_offload_metrics_settle(m, ledger, log);
        }

        if (ledger->pid == 0 && m->ledger == NULL) {
            ledger->pid = ngx_pid;
            m->ledger = ledger;
        }
    }

    ngx_shmtx_unlock(&m->shpool->mutex);
}


/* A worker process leaves: what it did not take off (requests never
 * finalized) is taken off now, and its ledger is free. */

void
ngx_http_offload_metrics_leave(ngx_http_offload_metrics_t *m, ngx_log_t *log)
{
    if (m == NULL || m->ledger == NULL) {
        return;
    }

    ngx_shmtx_lock(&m->shpool->mutex);
    ngx_http_offload_metrics_settle(m, m->ledger, log);
    ngx_shmtx_unlock(&m->shpool->mutex);

    m->ledger = NULL;
}


static void
ngx_http_offload_metrics_settle(ngx_http_offload_metrics_t *m,
    ngx_http_offload_ledger_t *ledger, ngx_log_t *log)
{
    ngx_uint_t                         i;
    ngx_atomic_int_t                   n, total;
    ngx_http_offload_queue_metrics_t  *q;

    total = 0;

    for (i = 0; i <= NGX_HTTP_OFFLOAD_METRICS_QUEUES; i++) {
        n = (ngx_atomic_int_t) ledger->in_flight[i];

        if (n == 0) {
            continue;
        }

        q = i < m->sh->nqueues ? m->sh->queues[i] : &m->sh->other;
        (void) ngx_atomic_fetch_add(&q->in_flight, -n);
        ledger->in_flight[i] = 0;
        total += n;
    }

    if (total != 0) {
        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "offload: %A requests in flight of worker process %P "
                      "taken off the gauges", total,
                      (ngx_pid_t) ledger->pid);
    }

    ledger->pid = 0;
}


void
ngx_http_offload_metrics_timeout(ngx_http_offload_queue_metrics_t *q)
{
    if (q != NULL) {
        (void) ngx_atomic_fetch_add(&q->timeouts, 1);
    }
}


void
ngx_http_offload_metrics_redis(ngx_uint_t what)
{
    ngx_http_offload_metrics_t  *m = ngx_http_offload_worker.metrics;

    if (m == NULL) {
        return;
    }

    (void) ngx_atomic_fetch_add(what == NGX_HTTP_OFFLOAD_REDIS_RECONNECT
                                ? &m->sh->redis_reconnects
                                : &m->sh->redis_failures,
                                1);
}


/* v in decimal: ngx_sprintf()'s %uA without its format parsing, which
 * was most of a status answer's CPU with many queues */

static u_char *
ngx_http_offload_put_uint(u_char *p, ngx_atomic_uint_t v)
{
    u_char  digits[NGX_ATOMIC_T_LEN], *d;

    d = digits + NGX_ATOMIC_T_LEN;

    do {
        *--d = (u_char) ('0' + v % 10);
        v /= 10;
    } while (v);

    return ngx_cpymem(p, d, digits + NGX_ATOMIC_T_LEN - d);
}


/* Prometheus text, 0.0.4 */

static u_char *
ngx_http_offload_prom_header(u_char *p, u_char *last, const char *name,
    const char *type, const char *help)
{
    return ngx_slprintf(p, last, "# HELP %s %s\n# TYPE %s %s\n",
                        name, help, name, type);
}


static const char *
ngx_http_offload_status_label(ngx_uint_t i, u_char *buf)
{
    if (i == NGX_HTTP_OFFLOAD_NSTATUS - 1) {
        return "other";
    }

    *ngx_sprintf(buf, "%ui", ngx_http_offload_statuses[i]) = '\0';
    return (char *) buf;
}


/* a sum in us or bytes, in the family's base unit (s or bytes) */

static u_char *
ngx_http_offload_prom_sum(u_char *p, u_char *last, ngx_uint_t h,
    ngx_atomic_uint_t sum)
{
    if (ngx_http_offload_hists[h].kind == NGX_HTTP_OFFLOAD_HIST_SIZE) {
        return ngx_slprintf(p, last, "%uA", sum);
    }

    return ngx_slprintf(p, last, "%uA.%06uA", sum / 1000000, sum % 1000000);
}


/*
 * A histogram's samples.  Its bucket lines, most of the text, are copied
 * from a prefix made once rather than formatted: ngx_slprintf() copies a
 * %s byte by byte.  Like it, stops at last.
 */

static u_char *
ngx_http_offload_prom_hist(u_char *p, u_char *last, ngx_uint_t h,
    ngx_http_offload_queue_metrics_t *q)
{
    u_char                           pre[64 + OFFLOAD_QUEUE_NAME_MAX];
    size_t                           pre_len, le_len;
    ngx_uint_t                       b;
    const char                      *le;
    ngx_atomic_uint_t                cumulative;
    const char                      *name = ngx_http_offload_hists[h].name;
    const offload_hist_t            *hist = ngx_http_offload_hist_of(h);
    ngx_http_offload_hist_counts_t  *hc = &q->hist[h];

    pre_len = ngx_snprintf(pre, sizeof(pre), "%s_bucket{queue=\"%*s\",le=\"",
                           name, q->name_len, q->name)
              - pre;

    cumulative = 0;

    for (b = 0; b <= (ngx_uint_t) hist->nbounds; b++) {
        cumulative += hc->count[b];
        le = b < (ngx_uint_t) hist->nbounds ? hist->le[b] : "+Inf";
        le_len = ngx_strlen(le);

        if ((size_t) (last - p) < pre_len + le_len + NGX_ATOMIC_T_LEN + 4) {
            return p;
        }

        p = ngx_cpymem(p, pre, pre_len);
        p = ngx_cpymem(p, le, le_len);
        p = ngx_cpymem(p, "\"} ", 3);
        p = ngx_http_offload_put_uint(p, cumulative);
        *p++ = '\n';
    }

    p = ngx_slprintf(p, last, "%s_sum{queue=\"%*s\"} ", name, q->name_len,
                     q->name);
    p = ngx_http_offload_prom_sum(p, last, h, hc->sum);

    return ngx_slprintf(p, last, "\n%s_count{queue=\"%*s\"} %uA\n", name,
                        q->name_len, q->name, cumulative);
}


size_t
ngx_http_offload_metrics_prom_size(ngx_http_offload_metrics_t *m)
{
    if (m == NULL) {
        return 0;
    }

    /* generous: about 3 KB per histogram and queue */
    return 4096 + (m->sh->nqueues + 1) * (NGX_HTTP_OFFLOAD_NHIST + 1) * 3072;
}


u_char *
ngx_http_offload_metrics_prom(ngx_http_offload_metrics_t *m, u_char *p,
    u_char *last)
{
    u_char                             buf[NGX_INT_T_LEN + 1];
    ngx_uint_t                         i, n, s, h;
    ngx_http_offload_queue_metrics_t  *q;
    ngx_http_offload_queue_metrics_t  *queues[NGX_HTTP_OFFLOAD_METRICS_QUEUES
                                              + 1];
    ngx_http_offload_metrics_sh_t     *sh;

    if (m == NULL) {
        return p;
    }

    sh = m->sh;
    n = sh->nqueues;
    ngx_memory_barrier();

    for (i = 0; i < n; i++) {
        queues[i] = sh->queues[i];
    }

    /* "_other" only once a queue did not fit */
    if (sh->other.in_flight
        || ngx_http_offload_requests_sum(&sh->other) != 0)
    {
        queues[n++] = &sh->other;
    }

    p = ngx_http_offload_prom_header(p, last, "offload_requests_total",
            "counter", "Answers to offload_pass requests, by queue and "
            "HTTP status.");

    for (i = 0; i < n; i++) {
        q = queues[i];
        for (s = 0; s < NGX_HTTP_OFFLOAD_NSTATUS; s++) {
            if (q->requests[s] == 0 && s != 0) {
                continue;
            }
            p = ngx_slprintf(p, last,
                             "offload_requests_total{queue=\"%*s\","
                             "status=\"%s\"} %uA\n", q->name_len, q->name,
                             ngx_http_offload_status_label(s, buf),
                             q->requests[s]);
        }
    }

    p = ngx_http_offload_prom_header(p, last,
            "offload_invalid_requests_total", "counter",
            "Requests answered before they named a valid queue, by HTTP "
            "status.");

    for (s = 0; s < NGX_HTTP_OFFLOAD_NSTATUS; s++) {
        if (sh->invalid[s]) {
            p = ngx_slprintf(p, last, "offload_invalid_requests_total"
                             "{status=\"%s\"} %uA\n",
                             ngx_http_offload_status_label(s, buf),
                             sh->invalid[s]);
        }
    }

    p = ngx_http_offload_prom_header(p, last, "offload_requests_in_flight",
            "gauge", "Requests waiting for their job's result.");

    for (i = 0; i < n; i++) {
        p = ngx_slprintf(p, last,
                         "offload_requests_in_flight{queue=\"%*s\"} %uA\n",
                         queues[i]->name_len, queues[i]->name,
                         queues[i]->in_flight);
    }

    p = ngx_http_offload_prom_header(p, last, "offload_timeouts_total",
            "counter", "Requests answered 504 because offload_timeout "
            "passed.");

    for (i = 0; i < n; i++) {
        p = ngx_slprintf(p, last,
                         "offload_timeouts_total{queue=\"%*s\"} %uA\n",
                         queues[i]->name_len, queues[i]->name,
                         queues[i]->timeouts);
    }

    p = ngx_http_offload_prom_header(p, last,
            "offload_redis_reconnects_total", "counter",
            "Connections to Redis made again after one was lost.");
    p = ngx_slprintf(p, last, "offload_redis_reconnects_total %uA\n",
                     sh->redis_reconnects);

    p = ngx_http_offload_prom_header(p, last,
            "offload_redis_failures_total", "counter",
            "Connections to Redis that failed or were lost.");
    p = ngx_slprintf(p, last, "offload_redis_failures_total %uA\n",
                     sh->redis_failures);

    for (h = 0; h < NGX_HTTP_OFFLOAD_NHIST; h++) {
        p = ngx_http_offload_prom_header(p, last,
                                         ngx_http_offload_hists[h].name,
                                         "histogram",
                                         ngx_http_offload_hists[h].help);
        for (i = 0; i < n; i++) {
            p = ngx_http_offload_prom_hist(p, last, h, queues[i]);
        }
    }

    return p;
}


/* The "nginx" member of the status document: at most so many bytes per
 * queue, its figures and at most every fine bucket of its request time as
 * "[<us, 8 digits at most>,<count>]," */

#define NGX_HTTP_OFFLOAD_JSON_QUEUE_SIZE                                     \
    (2048 + OFFLOAD_HIST_FINE                                                \
            * (sizeof("[67108864,],") - 1 + NGX_ATOMIC_T_LEN))

size_t
ngx_http_offload_metrics_json_size(ngx_http_offload_metrics_t *m)
{
    return 1024 + (m ? m->sh->nqueues + 1 : 0)
                  * NGX_HTTP_OFFLOAD_JSON_QUEUE_SIZE;
}


static u_char *
ngx_http_offload_json_ms(u_char *p, u_char *last, int64_t us)
{
    if (us < 0) {
        return ngx_slprintf(p, last, "null");
    }

    return ngx_slprintf(p, last, "%L.%03L", us / 1000, us % 1000);
}


u_char *
ngx_http_offload_metrics_json(ngx_http_offload_metrics_t *m, u_char *p,
    u_char *last)
{
    char                              *sep;
    u_char                             buf[NGX_INT_T_LEN + 1];
    int64_t                            pct[NGX_HTTP_OFFLOAD_NFINE][2];
    u_char                             names[NGX_HTTP_OFFLOAD_NSTATUS]
                                            [NGX_INT_T_LEN + 4];
    uint64_t                           counts[OFFLOAD_HIST_FINE];
    ngx_str_t                          label[NGX_HTTP_OFFLOAD_NSTATUS];
    ngx_uint_t                         i, n, s, b, h, from, to;
    ngx_http_offload_queue_metrics_t  *q;
    ngx_http_offload_metrics_sh_t     *sh;

    if (m == NULL) {
        return ngx_slprintf(p, last, "{\"pid\":%P,\"metrics\":\"off\"}",
                            ngx_pid);
    }

    sh = m->sh;
    n = sh->nqueues;
    ngx_memory_barrier();

    p = ngx_slprintf(p, last, "{\"pid\":%P,\"redis_reconnects\":%uA,"
                     "\"redis_failures\":%uA,\"invalid_requests\":{",
                     ngx_pid, sh->redis_reconnects, sh->redis_failures);

    sep = "";

    for (s = 0; s < NGX_HTTP_OFFLOAD_NSTATUS; s++) {
        if (sh->invalid[s]) {
            p = ngx_slprintf(p, last, "%s\"%s\":%uA", sep,
                             ngx_http_offload_status_label(s, buf),
                             sh->invalid[s]);
            sep = ",";
        }
    }

    p = ngx_slprintf(p, last, "},\"queues\":{");

    /* the statuses' names, once */
    for (s = 0; s < NGX_HTTP_OFFLOAD_NSTATUS; s++) {
        label[s].data = names[s];
        label[s].len = ngx_sprintf(names[s], "\"%s\":",
                                   ngx_http_offload_status_label(s, buf))
                       - names[s];
    }

    for (i = 0; i <= n; i++) {
        q = i < n ? sh->queues[i] : &sh->other;

        if (i == n && sh->other.in_flight == 0
            && ngx_http_offload_requests_sum(q) == 0)
        {
            break;
        }

        /* a queue added since the caller took the size is left out, as
         * if it came after this answer: a queue's figures are written
         * unchecked below, so there must be room for them */
        if ((size_t) (last - p) < NGX_HTTP_OFFLOAD_JSON_QUEUE_SIZE + 256) {
            break;
        }

        p = ngx_sprintf(p, "%s\"%*s\":{\"in_flight\":%uA,"
                        "\"timeouts\":%uA,\"requests\":{",
                        i ? "," : "", q->name_len, q->name, q->in_flight,
                        q->timeouts);

        for (s = 0; s < NGX_HTTP_OFFLOAD_NSTATUS; s++) {
            if (s) {
                *p++ = ',';
            }

            p = ngx_cpymem(p, label[s].data, label[s].len);
            p = ngx_http_offload_put_uint(p, q->requests[s]);
        }

        /* the request time's "le" bucket counts, as Prometheus has
         * them */
        h = NGX_HTTP_OFFLOAD_HIST_REQUEST;
        p = ngx_cpymem(p, "},\"request_hist\":[",
                       sizeof("},\"request_hist\":[") - 1);

        for (b = 0; b < OFFLOAD_HIST_MAX; b++) {
            if (b) {
                *p++ = ',';
            }

            p = ngx_http_offload_put_uint(p, q->hist[h].count[b]);
        }

        /* its fine buckets that counted something, as [<the value the
         * bucket stands for, us>, <count>], so a client can take precise
         * percentiles of an interval (the dashboard); and the latency
         * percentiles since nginx started, both of one read of the
         * counters, the percentiles of one walk over them */
        p = ngx_slprintf(p, last, "],\"request_fine_us\":[");

        for (h = 0; h < NGX_HTTP_OFFLOAD_NFINE; h++) {

            /* only the buckets used so far: reading all of them, 17 KB
             * per queue, was most of a status answer's CPU */
            from = OFFLOAD_HIST_FINE - q->fine_from[h];
            to = q->fine_to[h];
            ngx_memory_barrier();

            if (from > to) {
                from = to;
            }

            for (b = from; b < to; b++) {
                counts[b] = q->fine[h][b];
            }

            offload_hist_fine_quantiles(counts, from, to,
                                        ngx_http_offload_json_qs, pct[h], 2);

            if (h != NGX_HTTP_OFFLOAD_HIST_REQUEST) {
                continue;
            }

            sep = "";

            for (b = from; b < to; b++) {
                if (counts[b]) {
                    p = ngx_sprintf(p, "%s[%L,", sep,
                                    offload_hist_fine_value(b));
                    p = ngx_http_offload_put_uint(p, counts[b]);
                    *p++ = ']';
                    sep = ",";
                }
            }
        }

        p = ngx_slprintf(p, last, "]");

        for (h = 0; h < NGX_HTTP_OFFLOAD_NFINE; h++) {
            p = ngx_slprintf(p, last, ",\"%s_p50_ms\":",
                             ngx_http_offload_json_names[h]);
            p = ngx_http_offload_json_ms(p, last, pct[h][0]);
            p = ngx_slprintf(p, last, ",\"%s_p99_ms\":",
                             ngx_http_offload_json_names[h]);
            p = ngx_http_offload_json_ms(p, last, pct[h][1]);
        }

        p = ngx_slprintf(p, last, "}");
    }

    p = ngx_slprintf(p, last, "},\"hist_bounds_us\":[");

    for (b = 0; b < OFFLOAD_HIST_TIME_BOUNDS; b++) {
        p = ngx_slprintf(p, last, "%s%L", b ? "," : "",
                         offload_hist_time.bounds[b]);
    }

    return ngx_slprintf(p, last, "]}");
}
