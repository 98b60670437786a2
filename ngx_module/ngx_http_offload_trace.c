/*
 * W3C Trace Context for offload_pass: $offload_traceparent, the span this
 * nginx opens for the request, is "00-<trace id>-<span id>-<flags>" with
 * the trace id and sampled flag of a valid incoming traceparent, or of a
 * fresh trace (flags 01) without one; the span id is always new (nginx
 * answering is a child span of the caller's).  The job carries it as the
 * handler's parent, and the answer returns it.  $offload_trace_id is its
 * trace id, for access logs.
 *
 * Ids come from splitmix64 on a per-worker state seeded once (on the first
 * id after the fork) with getrandom(GRND_NONBLOCK): a few multiplies per
 * id, no system call, no lock, never blocking.  Trace ids must be unique,
 * not secret; splitmix64 walks a 2^64 cycle, so one worker never repeats
 * an id, and random seeds keep workers and hosts apart.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <sys/random.h>

#include "ngx_http_offload_module.h"


static ngx_int_t ngx_http_offload_traceparent_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_offload_trace_id_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_table_elt_t *ngx_http_offload_trace_incoming(
    ngx_http_request_t *r);
static u_char *ngx_http_offload_trace_hex(u_char *p, ngx_uint_t bytes);


static ngx_http_variable_t  ngx_http_offload_trace_vars[] = {

    { ngx_string("offload_traceparent"), NULL,
      ngx_http_offload_traceparent_variable, 0, 0, 0 },

    { ngx_string("offload_trace_id"), NULL,
      ngx_http_offload_trace_id_variable, 0, 0, 0 },

      ngx_http_null_variable
};


static ngx_str_t   ngx_http_offload_traceparent_name =
    ngx_string("offload_traceparent");
static ngx_str_t   ngx_http_offload_tracestate_header =
    ngx_string("tracestate");
static ngx_str_t   ngx_http_offload_traceparent_header =
    ngx_string("traceparent");

static ngx_int_t   ngx_http_offload_traceparent_index = NGX_ERROR;
static uint64_t    ngx_http_offload_trace_state;
static ngx_pid_t   ngx_http_offload_trace_pid;


ngx_int_t
ngx_http_offload_trace_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_offload_trace_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    ngx_http_offload_traceparent_index = ngx_http_get_variable_index(cf,
                                          &ngx_http_offload_traceparent_name);

    return ngx_http_offload_traceparent_index == NGX_ERROR ? NGX_ERROR
                                                           : NGX_OK;
}


/* This request's traceparent (computed once, then cached), or NULL. */

ngx_str_t *
ngx_http_offload_traceparent(ngx_http_request_t *r, ngx_str_t *tp)
{
    ngx_http_variable_value_t  *v;

    v = ngx_http_get_indexed_variable(r, ngx_http_offload_traceparent_index);
    if (v == NULL || v->not_found) {
        return NULL;
    }

    tp->data = v->data;
    tp->len = v->len;

    return tp;
}


/*
 * The tracestate to pass on: only beside a valid incoming traceparent
 * (the spec forbids reading it otherwise); several headers are one list,
 * joined with commas, empty ones left out (empty list members, which the
 * spec has ignored).  Empty when there is none or it is not usable.
 */

ngx_int_t
ngx_http_offload_tracestate(ngx_http_request_t *r, ngx_str_t *ts)
{
    u_char                          *p;
    size_t                           len;
    ngx_uint_t                       n;
    ngx_table_elt_t                 *h, *one;
    ngx_http_offload_header_walk_t   walk;

    ngx_str_null(ts);

    if (ngx_http_offload_trace_incoming(r) == NULL) {
        return NGX_OK;
    }

    len = 0;
    n = 0;
    one = NULL;

    ngx_memzero(&walk, sizeof(walk));

    for ( ;; ) {
        h = ngx_http_offload_header_next(r,
                                         &ngx_http_offload_tracestate_header,
                                         &walk);
        if (h == NULL) {
            break;
        }

        if (h->value.len) {
            len += h->value.len + 1;
            n++;
            one = h;
        }
    }

    if (n == 0 || len - 1 > OFFLOAD_TRACESTATE_MAX) {
        return NGX_OK;
    }

    if (n == 1) {
        *ts = one->value;

    } else {
        p = ngx_pnalloc(r->pool, len);
        if (p == NULL) {
            return NGX_ERROR;
        }

        ts->data = p;

        ngx_memzero(&walk, sizeof(walk));

        for ( ;; ) {
            h = ngx_http_offload_header_next(r,
                                        &ngx_http_offload_tracestate_header,
                                        &walk);
            if (h == NULL) {
                break;
            }

            if (h->value.len == 0) {
                continue;
            }

            if (p > ts->data) {
                *p++ = ',';
            }

            p = ngx_cpymem(p, h->value.data, h->value.len);
        }

        ts->len = p - ts->data;
    }

    if (offload_tracestate_check((char *) ts->data, ts->len) != 0) {
        ngx_str_null(ts);
    }

    return NGX_OK;
}


/*
 * Appends the Server-Timing metric "traceparent" with this request's
 * traceparent as its desc at p (after ", " unless p is start): browsers'
 * scripts read Server-Timing (PerformanceServerTiming) even from another
 * origin that allows it by Timing-Allow-Origin, where other answer headers
 * need CORS; APM tools read it there to join a page to the server's trace.
 */

u_char *
ngx_http_offload_trace_timing(ngx_http_request_t *r, u_char *p,
    u_char *start)
{
    ngx_str_t  tp;

    if (ngx_http_offload_traceparent(r, &tp) == NULL) {
        return p;
    }

    if (p != start) {
        *p++ = ',';
        *p++ = ' ';
    }

    p = ngx_cpymem(p, "traceparent;desc=\"", sizeof("traceparent;desc=\"") - 1);
    p = ngx_cpymem(p, tp.data, tp.len);
    *p++ = '"';

    return p;
}


/* Every answer of offload_pass: traceparent, and a Server-Timing with it
 * unless the result's timings carried it already. */

ngx_int_t
ngx_http_offload_trace_answer(ngx_http_request_t *r)
{
    u_char                  *p, timing[NGX_HTTP_OFFLOAD_TRACE_TIMING_LEN];
    ngx_str_t                tp;
    ngx_table_elt_t         *h;
    ngx_http_offload_ctx_t  *ctx;

    if (ngx_http_offload_traceparent(r, &tp) == NULL) {
        return NGX_OK;
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "traceparent");
    h->value = tp;                      /* in the pool for the request */

    ctx = ngx_http_get_module_ctx(r, ngx_http_offload_module);

    if (ctx != NULL && ctx->timed) {
        return NGX_OK;
    }

    p = ngx_http_offload_trace_timing(r, timing, timing);

    return ngx_http_offload_add_header(r, "Server-Timing", timing,
                                       p - timing);
}


/* The one traceparent header if it is valid; NULL without one, with a
 * malformed one, or with several (which the spec calls invalid). */

static ngx_table_elt_t *
ngx_http_offload_trace_incoming(ngx_http_request_t *r)
{
    ngx_table_elt_t  *h;

    if (ngx_http_offload_header_once(r, &ngx_http_offload_traceparent_header,
                                     &h)
        != NGX_OK
        || h == NULL
        || offload_traceparent_check((char *) h->value.data, h->value.len)
           != 0)
    {
        return NULL;
    }

    return h;
}


static ngx_int_t
ngx_http_offload_traceparent_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char           *p, *start;
    ngx_table_elt_t  *h;

    start = ngx_pnalloc(r->pool, OFFLOAD_TRACEPARENT_LEN);
    if (start == NULL) {
        return NGX_ERROR;
    }

    h = ngx_http_offload_trace_incoming(r);

    p = ngx_cpymem(start, "00-", 3);

    if (h != NULL) {
        p = ngx_cpymem(p, h->value.data + OFFLOAD_TRACE_ID_AT,
                       OFFLOAD_TRACE_ID_LEN);
    } else {
        p = ngx_http_offload_trace_hex(p, OFFLOAD_TRACE_ID_LEN / 2);
    }

    *p++ = '-';
    p = ngx_http_offload_trace_hex(p, OFFLOAD_SPAN_ID_LEN / 2);

    /* version 00 defines one flag, sampled: a new trace is sampled */
    p = ngx_cpymem(p, "-0", 2);
    *p = (h == NULL
          || (ngx_hextoi(h->value.data + OFFLOAD_TRACE_FLAGS_AT + 1, 1) & 1))
         ? '1' : '0';

    v->data = start;
    v->len = OFFLOAD_TRACEPARENT_LEN;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}


static ngx_int_t
ngx_http_offload_trace_id_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t  tp;

    if (ngx_http_offload_traceparent(r, &tp) == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->data = tp.data + OFFLOAD_TRACE_ID_AT;
    v->len = OFFLOAD_TRACE_ID_LEN;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}


/* bytes random bytes as lowercase hex at p, never all zeros */

static u_char *
ngx_http_offload_trace_hex(u_char *p, ngx_uint_t bytes)
{
    uint64_t    z;
    ngx_uint_t  i, n;

    if (ngx_http_offload_trace_pid != ngx_pid) {
        if (getrandom(&ngx_http_offload_trace_state,
                      sizeof(ngx_http_offload_trace_state), GRND_NONBLOCK)
            != (ssize_t) sizeof(ngx_http_offload_trace_state))
        {
            /* the kernel's pool not ready yet (early boot): unique is
             * enough */
            ngx_http_offload_trace_state = ((uint64_t) ngx_pid << 32)
                                           ^ (uint64_t) ngx_time()
                                           ^ ((uint64_t) ngx_random() << 16);
        }

        ngx_http_offload_trace_pid = ngx_pid;
    }

    for (n = 0; n < bytes; n += 8) {
        ngx_http_offload_trace_state += 0x9e3779b97f4a7c15ULL;
        z = ngx_http_offload_trace_state;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        z ^= z >> 31;

        /* splitmix64 is a bijection: z is 0 once in 2^64 ids */
        if (z == 0) {
            z = 1;
        }

        for (i = 0; i < 16; i++) {
            *p++ = "0123456789abcdef"[z >> 60];
            z <<= 4;
        }
    }

    return p;
}
