
/*
 * ngx_http_offload_errors.c -- nginx's own error answers, as JSON.
 *
 * Every answer the module makes is JSON, an error {"error":{"code",
 * "message"}}.  Some answers of an offload_pass, offload_jobs or
 * offload_status location are not the module's but nginx's: a body over
 * client_max_body_size (413), a malformed chunked body (400), a request
 * refused by deny, auth_request or limit_req (403, 401, 503), a handler's
 * NGX_HTTP_ code on a path that ran out of memory (500).  nginx answers
 * them with its HTML page, which a client of a JSON API cannot read.
 * offload_metrics (Prometheus text) and offload_dashboard (a page for a
 * browser) keep nginx's.
 *
 * A header filter takes nginx's page (the special response: r->err_status
 * set, text/html or no body) in those locations, and in the blocks inside
 * them (limit_except, if: they carry on the location's directive), and
 * sends the module's JSON error in its place,
 * with the same status, through the module's own answer path (its
 * headers, counted in the metrics as its own errors are).  Then
 * r->header_only keeps nginx from sending its page after it.  An
 * error_page for that status, the location's own or one it inherits, is
 * nginx's business first: nginx goes there before any page is made.
 */


#include "ngx_http_offload_module.h"


typedef struct {
    ngx_uint_t   status;
    const char  *code;
    const char  *message;
} ngx_http_offload_error_t;


static ngx_int_t ngx_http_offload_errors_header_filter(ngx_http_request_t *r);


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;


/* the statuses nginx itself answers in a location; the last is any other */

static ngx_http_offload_error_t  ngx_http_offload_errors[] = {

    { NGX_HTTP_BAD_REQUEST, "bad_request",
      "the request could not be read (a malformed chunked body, say)" },

    { NGX_HTTP_UNAUTHORIZED, "unauthorized", "authentication is required" },

    { NGX_HTTP_FORBIDDEN, "forbidden", "access to this location is denied" },

    { NGX_HTTP_NOT_FOUND, "not_found", "not found" },

    { NGX_HTTP_NOT_ALLOWED, "method_not_allowed",
      "this method is not allowed here" },

    { NGX_HTTP_REQUEST_TIME_OUT, "request_timeout",
      "the request was not read in time" },

    { NGX_HTTP_LENGTH_REQUIRED, "length_required",
      "a body needs a Content-Length or chunked encoding" },

    { NGX_HTTP_REQUEST_ENTITY_TOO_LARGE, "too_large",
      "the body is larger than client_max_body_size" },

    { NGX_HTTP_TOO_MANY_REQUESTS, "too_many_requests",
      "too many requests: the server limits their rate" },

    { NGX_HTTP_INTERNAL_SERVER_ERROR, "internal",
      "the server could not handle the request" },

    { NGX_HTTP_NOT_IMPLEMENTED, "not_implemented",
      "the request asks for something the server does not do" },

    { NGX_HTTP_SERVICE_UNAVAILABLE, "unavailable",
      "the server cannot take the request now" },

    { 0, "request_failed", "the server could not handle the request" }
};


ngx_int_t
ngx_http_offload_errors_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_offload_errors_header_filter;

    return NGX_OK;
}


static ngx_int_t
ngx_http_offload_errors_header_filter(ngx_http_request_t *r)
{
    ngx_int_t                     rc;
    ngx_str_t                    *type;
    ngx_http_offload_error_t     *e;
    ngx_http_offload_loc_conf_t  *olcf;

    if (r->err_status < NGX_HTTP_BAD_REQUEST || r != r->main) {
        return ngx_http_next_header_filter(r);
    }

    olcf = ngx_http_get_module_loc_conf(r, ngx_http_offload_module);

    /* offload_metrics has the status handler too */

    if (olcf->queue == NULL && !olcf->jobs
        && (olcf->handler != ngx_http_offload_status_handler
            || olcf->report != NGX_HTTP_OFFLOAD_REPORT_JSON))
    {
        return ngx_http_next_header_filter(r);
    }

    /* nginx's page, not an answer of the module's (JSON, err_status 0) nor
     * one a job's handler made with it set */

    type = &r->headers_out.content_type;

    if (type->len != 0
        && !(type->len == sizeof("text/html") - 1
             && ngx_strncmp(type->data, "text/html", type->len) == 0))
    {
        return ngx_http_next_header_filter(r);
    }

    for (e = ngx_http_offload_errors; e->status; e++) {
        if (e->status == r->err_status) {
            break;
        }
    }

    /* the answer comes back through this filter as JSON, and is let by */

    rc = ngx_http_offload_send_error(r, r->err_status, e->code, e->message);

    r->header_only = 1;

    return rc;
}
