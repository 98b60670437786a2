/*
 * ngx_http_offload_dashboard.c -- offload_dashboard: one self-contained
 * page (dashboard.html: HTML, CSS and script inline, no CDN; compiled in
 * as it is) that polls its own location with ?status, which answers as
 * offload_status does.  The page shows the nodes, an Observer-like worker
 * table sorted by the server (memory, cpu, queue, restarts, jobs: click a
 * column, or #sort=<key>), the queues, throughput and latency charts of
 * the last five minutes built from this nginx's counters, and the latest
 * crash reports.
 */


#include "ngx_http_offload_module.h"


static ngx_str_t  ngx_http_offload_html_type =
    ngx_string("text/html; charset=utf-8");

/* ngx_http_offload_page[]: ngx_module/dashboard.html, made a header by
 * config.make */
#include "ngx_http_offload_dashboard_page.h"


static ngx_int_t
ngx_http_offload_dashboard_handler(ngx_http_request_t *r)
{
    ngx_int_t  rc;

    if (r->args.len >= 6 && ngx_strncmp(r->args.data, "status", 6) == 0) {
        return ngx_http_offload_status_handler(r);
    }

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return ngx_http_offload_not_allowed(r, "GET, HEAD");
    }

    /* a body is discarded, never asked for (no "100 Continue") */
    r->expect_tested = 1;

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    return ngx_http_offload_send_body(r, NGX_HTTP_OK,
                                      &ngx_http_offload_html_type,
                                      ngx_http_offload_page,
                                      sizeof(ngx_http_offload_page) - 1);
}


char *
ngx_http_offload_dashboard(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    return ngx_http_offload_report(cf, cmd, conf,
                                   NGX_HTTP_OFFLOAD_REPORT_JSON,
                                   ngx_http_offload_dashboard_handler);
}
