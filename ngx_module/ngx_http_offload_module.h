
/*
 * ngx_http_offload_module.h -- types shared by the offload module's files:
 * configuration, the per-worker Redis peer state, the request context.
 *
 *   ngx_http_offload_module.c   directives, HTTP request flow, responses
 *   ngx_http_offload_redis.c    hiredis async context <-> nginx connection
 *   ngx_http_offload_reply.c    pending-request table, subscriber, results
 */


#ifndef _NGX_HTTP_OFFLOAD_MODULE_H_INCLUDED_
#define _NGX_HTTP_OFFLOAD_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "offload_proto.h"


#define NGX_HTTP_OFFLOAD_DEFAULT_REDIS    "127.0.0.1:6379"

#define NGX_HTTP_OFFLOAD_CONNECT_TIMEOUT  1000
#define NGX_HTTP_OFFLOAD_WATCHDOG         5000
#define NGX_HTTP_OFFLOAD_BACKOFF_MIN      50
#define NGX_HTTP_OFFLOAD_BACKOFF_MAX      2000
#define NGX_HTTP_OFFLOAD_PING_INTERVAL    1000

#define NGX_HTTP_OFFLOAD_UNPROCESSABLE   422

/* how long a GET of the result key may take once the deadline passed */
#define NGX_HTTP_OFFLOAD_LAST_LOOK        1000


typedef struct ngx_http_offload_link_s  ngx_http_offload_link_t;
typedef struct ngx_http_offload_peer_s  ngx_http_offload_peer_t;

typedef void (*ngx_http_offload_link_up_pt)(ngx_http_offload_link_t *link);


/* One hiredis async context, re-created on every reconnect. */
struct ngx_http_offload_link_s {
    redisAsyncContext            *ac;
    ngx_connection_t             *connection;
    ngx_http_offload_peer_t      *peer;
    const char                   *role;
    ngx_http_offload_link_up_pt   on_up;
    ngx_log_t                    *log;

    ngx_event_t                   reconnect;
    ngx_event_t                   connect_timer;
    ngx_event_t                   watchdog;

    ngx_msec_t                    backoff;
    ngx_uint_t                    inflight;
    ngx_uint_t                    failures;
    ngx_uint_t                    generation;

    unsigned                      up:1;
    unsigned                      subscribed:1;
    unsigned                      exiting:1;
};


/* A distinct (address, password, db): one per offload_redis triple. */
struct ngx_http_offload_peer_s {
    ngx_str_t                     name;
    offload_addr_t                addr;
    ngx_str_t                     password;
    ngx_uint_t                    db;
    unsigned                      used:1;

    /* per worker process, from init_process on */
    ngx_http_offload_link_t       command;
    ngx_http_offload_link_t       subscriber;
    ngx_rbtree_t                  pending;
    ngx_rbtree_node_t             sentinel;
    ngx_event_t                   ping;
};


typedef struct {
    ngx_array_t                   peers;       /* ngx_http_offload_peer_t * */
    ngx_int_t                     request_id_index;
} ngx_http_offload_main_conf_t;


typedef struct {
    ngx_http_offload_peer_t      *peer;
    ngx_http_complex_value_t     *queue;
    ngx_msec_t                    timeout;
    ngx_flag_t                    validate_json;
} ngx_http_offload_loc_conf_t;


/* A parked request. */
typedef struct {
    ngx_rbtree_node_t             node;        /* key: the job's sequence */
    ngx_http_request_t           *request;
    ngx_http_offload_peer_t      *peer;
    ngx_str_t                     queue;
    u_char                        id[OFFLOAD_JOB_ID_LEN];
    ngx_event_t                   deadline;

    unsigned                      parked:1;
    unsigned                      submitted:1; /* XADD acknowledged */
    unsigned                      expired:1;   /* deadline passed */
} ngx_http_offload_ctx_t;


/* Identity of this worker process: its job id nonce and reply channel. */
typedef struct {
    char                          nonce[OFFLOAD_NONCE_LEN];
    char                          channel[OFFLOAD_KEY_MAX];
    size_t                        channel_len;
    uint64_t                      seq;
} ngx_http_offload_worker_t;


extern ngx_module_t               ngx_http_offload_module;
extern ngx_http_offload_worker_t  ngx_http_offload_worker;


/* ngx_http_offload_module.c */
void ngx_http_offload_answer_result(ngx_http_offload_ctx_t *ctx,
    offload_result_t *res);
void ngx_http_offload_answer_error(ngx_http_offload_ctx_t *ctx,
    ngx_uint_t status, const char *code, const char *message);

/* ngx_http_offload_redis.c */
void ngx_http_offload_link_init(ngx_http_offload_link_t *link,
    ngx_http_offload_peer_t *peer, const char *role,
    ngx_http_offload_link_up_pt on_up, ngx_log_t *log);
void ngx_http_offload_link_connect(ngx_http_offload_link_t *link);
void ngx_http_offload_link_drop(ngx_http_offload_link_t *link);
void ngx_http_offload_link_close(ngx_http_offload_link_t *link);
ngx_int_t ngx_http_offload_link_send(ngx_http_offload_link_t *link,
    redisCallbackFn *fn, void *privdata, int argc, const char **argv,
    const size_t *argvlen);
ngx_http_offload_link_t *ngx_http_offload_link_replied(
    redisAsyncContext *ac, redisReply *reply);

/* ngx_http_offload_reply.c */
void ngx_http_offload_peer_start(ngx_http_offload_peer_t *peer,
    ngx_log_t *log);
void ngx_http_offload_peer_stop(ngx_http_offload_peer_t *peer);
void ngx_http_offload_park(ngx_http_offload_ctx_t *ctx, ngx_msec_t timeout);
void ngx_http_offload_unpark(ngx_http_offload_ctx_t *ctx);
void ngx_http_offload_xadd_done(redisAsyncContext *ac, void *r,
    void *privdata);


#endif /* _NGX_HTTP_OFFLOAD_MODULE_H_INCLUDED_ */
