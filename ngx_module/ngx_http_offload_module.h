
/*
 * ngx_http_offload_module.h -- types shared by the offload module's files:
 * configuration, the per-worker Redis peer state, the request context.
 *
 *   ngx_http_offload_module.c   directives, HTTP request flow, responses
 *   ngx_http_offload_peer_conf.c  offload_redis: the Redis peers named
 *   ngx_http_offload_redis.c    hiredis async context <-> nginx connection
 *   ngx_http_offload_sentinel.c sentinel://: the master and its failovers;
 *                               wait_replicas=: WAIT after a job's XADD
 *   ngx_http_offload_cluster.c  cluster://: the slot map, a peer per
 *                               master, MOVED and ASK
 *   ngx_http_offload_upload.c   a big body into its body key, in slices
 *   ngx_http_offload_reply.c    pending-request table, subscriber, results
 *   ngx_http_offload_metrics.c  the shared metrics zone, Prometheus text
 *   ngx_http_offload_status.c   offload_status and offload_metrics: the
 *                               zone plus the nodes' documents from Redis
 *   ngx_http_offload_status_pack.c  those documents as the status cache's
 *                               zone keeps them
 *   ngx_http_offload_gzip.c     those answers gzip'd, their bulk once
 *   ngx_http_offload_dashboard.c  offload_dashboard: the page
 *   ngx_http_offload_admission.c  X-Offload-Timeout, offload_max_backlog,
 *                               queues no live node serves
 *   ngx_http_offload_jobs.c     asynchronous jobs: 202 and their records,
 *                               offload_jobs (GET, long poll, DELETE),
 *                               Idempotency-Key
 *   ngx_http_offload_poll.c     a long poll parked without its request
 */


#ifndef _NGX_HTTP_OFFLOAD_MODULE_H_INCLUDED_
#define _NGX_HTTP_OFFLOAD_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "offload_hist.h"
#include "offload_hugepage.h"
#include "offload_proto.h"


#define NGX_HTTP_OFFLOAD_DEFAULT_REDIS    "127.0.0.1:6379"

#define NGX_HTTP_OFFLOAD_CONNECT_TIMEOUT  1000
#define NGX_HTTP_OFFLOAD_WATCHDOG         2000
#define NGX_HTTP_OFFLOAD_PING_INTERVAL    1000

/* offload_redis sentinel://...: a sentinel's port unless given; WAIT's
 * timeout unless wait_timeout= is given, and its longest: WAIT holds up
 * the command connection, whose watchdog must not take it for dead */
#define NGX_HTTP_OFFLOAD_SENTINEL_PORT    26379
/* MOVED and ASK followed per request or job read, at most */
#define NGX_HTTP_OFFLOAD_REDIRECTS        3
#define NGX_HTTP_OFFLOAD_WAIT_TIMEOUT     1000
#define NGX_HTTP_OFFLOAD_WAIT_TIMEOUT_MAX 1500

/* a master that sentinels or a cluster's map name anew: the longest
 * backoff before they are asked again */
#define NGX_HTTP_OFFLOAD_REMAP_RETRY      500

/* wait_replicas=all: WAIT for every replica the sentinels could promote
 * (a cluster: the master's replicas in its map), counted anew every
 * NGX_HTTP_OFFLOAD_COUNT_INTERVAL */
#define NGX_HTTP_OFFLOAD_WAIT_ALL         ((ngx_uint_t) -1)
#define NGX_HTTP_OFFLOAD_COUNT_INTERVAL   1000

/* ... and a count of fewer replicas is taken once it has stood this long:
 * longer than a failover takes to reach every sentinel (their hellos go
 * out every 2 s) */
#define NGX_HTTP_OFFLOAD_COUNT_SETTLE     5000

#define NGX_HTTP_OFFLOAD_UNPROCESSABLE   422

/* the message of 502 bad_result for a status below 200 (an interim one) */
#define NGX_HTTP_OFFLOAD_NOT_FINAL                                            \
    "the worker's result has a status below 200"

/* offload_mode */
#define NGX_HTTP_OFFLOAD_SYNC             0
#define NGX_HTTP_OFFLOAD_ASYNC            1

/* the longest GET /jobs/<id>?wait=<seconds> */
#define NGX_HTTP_OFFLOAD_WAIT_MAX         60

/*
 * A body over OFFLOAD_BODY_OVER, or a result over OFFLOAD_NOTICE_OVER,
 * travels in OFFLOAD_SLICE commands (a slice each) on a link of its own, so
 * small jobs never queue behind them.  A command is handed to hiredis in
 * pieces of NGX_HTTP_OFFLOAD_PIECE straight from where its data is: hiredis
 * 0.14 memmoves its whole output buffer after every partial write.  One
 * event loop turn writes or reads at most NGX_HTTP_OFFLOAD_TURN bytes of a
 * link.  A request has at most NGX_HTTP_OFFLOAD_SLICES slice commands on
 * their way at once.
 */
#define NGX_HTTP_OFFLOAD_PIECE            (256 * 1024)
#define NGX_HTTP_OFFLOAD_TURN             (1024 * 1024)
#define NGX_HTTP_OFFLOAD_SLICES           2
#define NGX_HTTP_OFFLOAD_SLICE_LAST       "262143"     /* OFFLOAD_SLICE - 1 */

/* what a link reads from its socket at a time */
#define NGX_HTTP_OFFLOAD_READ             (64 * 1024)

/* a command up to this long is formatted on the stack, a longer one in
 * memory of its own (ngx_http_offload_link_send) */
#define NGX_HTTP_OFFLOAD_SEND_BUF         4096


/* how long a GET of the result key may take once the deadline passed */
#define NGX_HTTP_OFFLOAD_LAST_LOOK        1000

#define NGX_HTTP_OFFLOAD_NO_WORKERS                                          \
    "no live worker serves this queue now (its nodes stopped or drained, "   \
    "or its pools failed)"

/* a queue's counters take 5 pages (20 KB, most of it fine buckets): 6m
 * holds all NGX_HTTP_OFFLOAD_METRICS_QUEUES of them */
#define NGX_HTTP_OFFLOAD_METRICS_SIZE     (6 * 1024 * 1024)
#define NGX_HTTP_OFFLOAD_METRICS_QUEUES   256

/* worker processes whose requests in flight the zone tells apart (2 KB
 * each): old ones still exiting after a reload count too */
#define NGX_HTTP_OFFLOAD_LEDGERS          128

/* offload_status_cache: the zone's default size and refresh interval, how
 * many Redis servers it keeps answers of */
#define NGX_HTTP_OFFLOAD_STATUS_SIZE      (8 * 1024 * 1024)
#define NGX_HTTP_OFFLOAD_STATUS_INTERVAL  1000
#define NGX_HTTP_OFFLOAD_STATUS_REDIS     32

/* what an offload_status or offload_metrics location answers */
#define NGX_HTTP_OFFLOAD_REPORT_JSON      1
#define NGX_HTTP_OFFLOAD_REPORT_PROM      2

#define NGX_HTTP_OFFLOAD_REDIS_RECONNECT  0
#define NGX_HTTP_OFFLOAD_REDIS_FAILURE    1

/* answers counted by status: 18 known ones and "other" */
#define NGX_HTTP_OFFLOAD_NSTATUS          19

/* the histograms kept per queue */
#define NGX_HTTP_OFFLOAD_HIST_QUEUE       0
#define NGX_HTTP_OFFLOAD_HIST_RUN         1
#define NGX_HTTP_OFFLOAD_HIST_REQUEST     2
#define NGX_HTTP_OFFLOAD_HIST_CPU         3
#define NGX_HTTP_OFFLOAD_HIST_RSS         4
#define NGX_HTTP_OFFLOAD_NHIST            5

/* the first three (the latency ones) also keep fine buckets, for the
 * quantiles of the status */
#define NGX_HTTP_OFFLOAD_NFINE            3


typedef struct ngx_http_offload_link_s  ngx_http_offload_link_t;
typedef struct ngx_http_offload_peer_s  ngx_http_offload_peer_t;
typedef struct ngx_http_offload_admission_s  ngx_http_offload_admission_t;
typedef struct ngx_http_offload_sentinel_s  ngx_http_offload_sentinel_t;
typedef struct ngx_http_offload_cluster_s  ngx_http_offload_cluster_t;
typedef struct ngx_http_offload_waiter_s  ngx_http_offload_waiter_t;

typedef void (*ngx_http_offload_link_up_pt)(ngx_http_offload_link_t *link);


/* A small command sent along with a streamed one (RESP, its callback). */
typedef struct {
    ngx_str_t                     cmd;
    redisCallbackFn              *fn;         /* NULL: errors logged only */
    void                         *privdata;
    const char                   *name;       /* for that log */
} ngx_http_offload_small_t;


/* A command written in pieces: head, the big argument (one part per
 * buffer it is in), tail (RESP); small commands may go just before and
 * after it, nothing else between them (a MULTI ... EXEC around it). */
typedef struct {
    ngx_queue_t                   queue;       /* in the link's streams */
    ngx_str_t                    *part;
    ngx_uint_t                    nparts;
    size_t                        total;
    size_t                        sent;        /* of all the parts */
    ngx_uint_t                    at;          /* the part being sent, */
    size_t                        at_off;      /* and how far */
    redisCallbackFn              *fn;
    void                         *privdata;
    ngx_http_offload_small_t     *small;      /* nbefore go before it, */
    ngx_uint_t                    nbefore;    /* the rest of nsmall after */
    ngx_uint_t                    nsmall;
    unsigned                      queued:1;
    unsigned                      owned:1;     /* the link frees it */
    unsigned                      blank:1;     /* the rest of a withdrawn
                                                  one: no head */
} ngx_http_offload_stream_t;


/* where a walk over the request headers of one name stopped
 * (ngx_http_offload_header_next) */
typedef struct {
    ngx_list_part_t              *part;        /* NULL: not begun */
    ngx_uint_t                    next;
} ngx_http_offload_header_walk_t;


/*
 * A big result's read on a bulk link (ngx_http_offload_reply.c): its
 * list's elements, an LINDEX each, NGX_HTTP_OFFLOAD_SLICES on their way,
 * copied one after another into one buffer in pool, the answer a chain of
 * them (the first holds the header line).  The sync path's and the jobs
 * endpoint's: fn, the owner's callback for an element, finds it by
 * privdata.
 */
typedef struct {
    ngx_str_t                     key;         /* empty: no read */
    ngx_http_offload_link_t      *link;
    ngx_pool_t                   *pool;
    redisCallbackFn              *fn;
    void                         *privdata;
    ngx_http_offload_stream_t    *stream;      /* command n's is
                                                  stream[n % 2], NULL
                                                  before the first */
    ngx_chain_t                  *out;         /* its elements read, */
    ngx_chain_t                 **last;
    u_char                       *pos;         /* where the next one goes */
    ngx_uint_t                    n;           /* of how many, */
    ngx_uint_t                    sliced;      /* asked for, */
    ngx_uint_t                    got;         /* answered */
    size_t                        len;         /* bytes after the first */
} ngx_http_offload_list_t;


/* A place in a body's buffers: the next slice starts pos bytes into cl. */
typedef struct {
    ngx_chain_t                  *cl;
    size_t                        pos;
} ngx_http_offload_cursor_t;


/* One hiredis async context, re-created on every reconnect. */
struct ngx_http_offload_link_s {
    redisAsyncContext            *ac;
    ngx_connection_t             *connection;
    ngx_http_offload_peer_t      *peer;
    const char                   *role;
    ngx_http_offload_link_up_pt   on_up;
    ngx_http_offload_link_up_pt   on_down;     /* NULL: reconnect after the
                                                  backoff */
    offload_addr_t               *addr;        /* where it connects */
    ngx_log_t                    *log;

    ngx_event_t                   reconnect;
    ngx_event_t                   connect_timer;
    ngx_event_t                   watchdog;

    ngx_queue_t                   streams;     /* the first is written */

    ngx_uint_t                    retries;     /* since it was usable */
    ngx_uint_t                    inflight;
    ngx_uint_t                    failures;
    uint32_t                      refused;     /* CRC32 of the setup refusal
                                                  logged last, */
    uint32_t                      failed;      /* of the failure: each is
                                                  logged again when it
                                                  changes; 0 once usable */
    ngx_uint_t                    generation;
    uint64_t                      written;     /* bytes of this context's
                                                  commands gone to the
                                                  socket */
    size_t                        unwritten;   /* its buffer before a
                                                  write */

    unsigned                      up:1;        /* connected */
    unsigned                      usable:1;    /* its setup answered */
    unsigned                      probe:1;     /* no AUTH, no SELECT: a
                                                  PING tells */
    unsigned                      was_up:1;    /* a later up reconnects */
    unsigned                      subscribed:1;
    unsigned                      exiting:1;
    unsigned                      ask_sentinel:1;  /* the sentinels name
                                                      addr first */
    unsigned                      awaiting:1;  /* the sentinels' answer */
    unsigned                      to_sentinel:1;   /* the sentinels' AUTH,
                                                      no SELECT */
    unsigned                      writing:1;   /* in the write handler */
    unsigned                      protocol_error:1;  /* a reply refused */
};


/* A cluster's master: a queue whose jobs' replies come on its sharded
 * channel, offload:{<queue>}:reply:<nonce>, on the master's subscriber. */
typedef struct {
    u_char                        queue[OFFLOAD_QUEUE_NAME_MAX];
    size_t                        len;
    ngx_uint_t                    generation;  /* the subscriber's that
                                                  confirmed it; 0: not yet */
    unsigned                      left:1;      /* sunsubscribed: the slot
                                                  left, the map to tell */
} ngx_http_offload_shard_t;

#define NGX_HTTP_OFFLOAD_SHARDS           64   /* per master */


/* A distinct (address, user, password, db): one per offload_redis. */
/*
 * A long poll waiting for its job to end, in its peer's job_waiters: a job
 * read holding its request (ngx_http_offload_jobs.c), or a poll parked
 * without one (ngx_http_offload_poll.c).  wake is called when the end of
 * the job named by id is heard, or ends may have been missed.
 */

struct ngx_http_offload_waiter_s {
    ngx_rbtree_node_t             node;       /* key: crc32 of the id */
    u_char                       *id;         /* OFFLOAD_JOB_ID_LEN */
    void                        (*wake)(ngx_http_offload_waiter_t *w);
};


struct ngx_http_offload_peer_s {
    ngx_str_t                     name;
    offload_addr_t                addr;
    ngx_str_t                     user;        /* Redis ACL user, or empty */
    ngx_str_t                     password;
    ngx_uint_t                    db;
    ngx_http_offload_sentinel_t  *sentinels;   /* NULL: addr is the master */
    ngx_http_offload_cluster_t   *cluster;     /* cluster://: its masters
                                                  are peers of their own */
    ngx_http_offload_peer_t      *parent;      /* a cluster's master: the
                                                  cluster's peer */
    ngx_http_offload_shard_t     *shards;      /* a cluster's master's */
    ngx_uint_t                    nshards;
    ngx_uint_t                    wait_replicas;   /* 0: no WAIT; or
                                                  ..._WAIT_ALL */
    ngx_msec_t                    wait_timeout;
    unsigned                      used:1;
    unsigned                      passes:1;    /* an offload_pass uses it */
    unsigned                      jobs:1;      /* offload_jobs uses it */
    unsigned                      named:1;     /* a cluster's master its
                                                  map names */
    unsigned                      retired:1;   /* a cluster's master its
                                                  map dropped: stopped */

    /* per worker process, from init_process on */
    ngx_http_offload_link_t       command;
    ngx_http_offload_link_t       subscriber;
    ngx_http_offload_link_t       bulk;
    ngx_rbtree_t                  pending;
    ngx_rbtree_node_t             sentinel;
    ngx_rbtree_t                  job_waiters; /* offload_jobs long polls */
    ngx_rbtree_node_t             job_waiters_sentinel;
    ngx_rbtree_t                  job_reading; /* job reads, by serial */
    ngx_rbtree_node_t             job_sentinel;
    ngx_event_t                   ping;
    ngx_msec_t                    ping_unheard;  /* since when a ping
                                                    is on its way, or 0 */
    int64_t                       clock_base;  /* Redis' clock less
                                                  ngx_current_msec, ms */
    int64_t                       clock_offset;  /* Redis' clock less our
                                                    wall clock, ms */
    ngx_msec_t                    clock_sent;  /* the last TIME's */
    int64_t                       clock_sent_wall;  /* ... by the wall
                                                       clock, ms */
    unsigned                      clock_known:1;   /* measured */
    unsigned                      clock_asking:1;  /* a TIME on its
                                                      way */
    unsigned                      clock_warned:1;  /* said apart */
    unsigned                      clock_refused:1; /* said refused */
    ngx_http_offload_admission_t *admission;   /* which queues are served */
    ngx_msec_t                    troubled_at; /* a connection of this
                                                  worker's lost, or a
                                                  command refused (OOM,
                                                  LOADING...); 0: never */
    ngx_uint_t                    status_entry;  /* its answer in the
                                                    status cache, + 1 */
    ngx_str_t                     status_id;   /* that entry's id */
    struct ngx_http_offload_status_copy_s  *status_copy;  /* this
                                                    worker's copy of it */
    unsigned                      status_by_eval:1;  /* NOSCRIPT came */
    ngx_queue_t                   replicating; /* jobs for the next WAIT, */
    ngx_queue_t                   waited;      /* for the one on its way */
    ngx_uint_t                    wait_sent;   /* its replicas */
    ngx_uint_t                    replicas;    /* a cluster's master: its
                                                  replicas in the last map
                                                  (wait_replicas=all) */
    unsigned                      counted:1;   /* replicas was set */
    unsigned                      waiting:1;
    unsigned                      no_transactions:1;  /* MULTI or EXEC
                                                  refused for good: big
                                                  bodies begin by a
                                                  script */
    unsigned                      keeps_results:1;  /* UNLINK of a big
                                                  result refused (an ACL
                                                  without it) */
};


/* sentinel://host:port,.../<master>: where a peer finds its master. */
struct ngx_http_offload_sentinel_s {
    offload_addr_t               *addrs;       /* the sentinels, resolved */
    ngx_uint_t                    naddrs;
    ngx_str_t                     master_name;
    ngx_str_t                     user;        /* the sentinels' login: */
    ngx_str_t                     password;    /* empty, no AUTH */

    /* per worker process */
    offload_addr_t                master;      /* the last answer; port 0:
                                                  none since a failover */
    ngx_http_offload_link_t       query;       /* asks addrs[asked] */
    ngx_http_offload_link_t       watch;       /* +switch-master */
    ngx_uint_t                    asked;
    ngx_uint_t                    tried;       /* sentinels, this round */
    ngx_uint_t                    watched;
    ngx_event_t                   ping;        /* the watch's liveness */
    ngx_int_t                     replicas;    /* wait_replicas=all: how
                                                  many are up; -1: unknown */
    ngx_msec_t                    fewer_since; /* a count under it first
                                                  came; 0: none */
    ngx_event_t                   count;       /* asks that again */
    ngx_uint_t                    epoch;       /* failovers seen: a count
                                                  asked before is stale */
    unsigned                      asking:1;    /* a round is on */
    unsigned                      watched_once:1;
    unsigned                      refuted:1;   /* the last answer named no
                                                  master: asked on */
};


typedef struct {
    ngx_atomic_t                  count[OFFLOAD_HIST_MAX];
    ngx_atomic_t                  sum;         /* us, or bytes */
} ngx_http_offload_hist_counts_t;


/* One queue's counters, in the shared zone. */
typedef struct {
    u_char                        name[OFFLOAD_QUEUE_NAME_MAX];
    size_t                        name_len;
    ngx_uint_t                    index;       /* in the ledgers */
    ngx_atomic_t                  requests[NGX_HTTP_OFFLOAD_NSTATUS];
    ngx_atomic_t                  in_flight;
    ngx_atomic_t                  timeouts;
    ngx_http_offload_hist_counts_t  hist[NGX_HTTP_OFFLOAD_NHIST];
    /* the fine buckets used so far lie in OFFLOAD_HIST_FINE - fine_from
     * .. fine_to - 1 (0 and 0: none), so that a status reads only them */
    ngx_atomic_t                  fine_from[NGX_HTTP_OFFLOAD_NFINE];
    ngx_atomic_t                  fine_to[NGX_HTTP_OFFLOAD_NFINE];
    ngx_atomic_t                  fine[NGX_HTTP_OFFLOAD_NFINE]
                                      [OFFLOAD_HIST_FINE];
} ngx_http_offload_queue_metrics_t;


/* A worker process's share of the in_flight gauges, per queue index
 * (the last: "_other"), so that the share of one that dies without giving
 * it back (SIGKILL, a crash) can be taken off them. */
typedef struct {
    ngx_atomic_t                  pid;         /* 0: free */
    ngx_atomic_t                  in_flight[NGX_HTTP_OFFLOAD_METRICS_QUEUES
                                            + 1];
} ngx_http_offload_ledger_t;


typedef struct {
    ngx_atomic_t                  redis_reconnects;
    ngx_atomic_t                  redis_failures;
    ngx_atomic_t                  invalid[NGX_HTTP_OFFLOAD_NSTATUS];
    ngx_uint_t                    nqueues;
    ngx_http_offload_queue_metrics_t  *queues[NGX_HTTP_OFFLOAD_METRICS_QUEUES];
    ngx_http_offload_queue_metrics_t   other;
    ngx_http_offload_ledger_t     *ledgers;    /* NULL: no room for them */
} ngx_http_offload_metrics_sh_t;


typedef struct {
    ngx_http_offload_metrics_sh_t  *sh;
    ngx_slab_pool_t               *shpool;
    ngx_http_offload_ledger_t     *ledger;     /* this worker process's */
} ngx_http_offload_metrics_t;


typedef struct ngx_http_offload_status_cache_s
    ngx_http_offload_status_cache_t;


typedef struct {
    ngx_array_t                   peers;       /* ngx_http_offload_peer_t * */
    ngx_int_t                     request_id_index;
    ssize_t                       metrics_size;
    ngx_http_offload_metrics_t   *metrics;
    ssize_t                       status_size;
    ngx_msec_t                    status_interval;
    ngx_http_offload_status_cache_t  *status_cache;  /* NULL: no report */
} ngx_http_offload_main_conf_t;


typedef struct {
    ngx_http_offload_peer_t      *peer;
    ngx_http_complex_value_t     *queue;
    ngx_flag_t                    reads_nodes; /* offload_status, _metrics,
                                                  offload_jobs */
    ngx_flag_t                    jobs;        /* offload_jobs */
    ngx_uint_t                    report;      /* NGX_HTTP_OFFLOAD_REPORT_* */
    ngx_http_handler_pt           handler;     /* the one of those above */
    ngx_str_t                    *content;     /* the directive that set
                                                  it */
    ngx_msec_t                    timeout;
    ngx_flag_t                    validate_json;
    ngx_uint_t                    max_backlog; /* 0: off */
    ngx_uint_t                    mode;        /* NGX_HTTP_OFFLOAD_SYNC... */
    ngx_str_t                     jobs_url;    /* async jobs' status URL */
    ngx_msec_t                    result_ttl;  /* and how long they stay */
    ngx_msec_t                    idempotency_ttl;  /* 0: off */
    ngx_flag_t                    cancel_running;  /* DELETE stops a
                                                      running job */
    size_t                        jobs_memory; /* big results the jobs
                                                  endpoint holds at once
                                                  in a worker */
} ngx_http_offload_loc_conf_t;


/* A big body's JSON check: a slice of its buffers per turn of the loop. */
typedef struct {
    ngx_event_t                   ev;
    offload_json_scan_t           scan;
    ngx_chain_t                  *cl;          /* where it is */
    size_t                        pos;
} ngx_http_offload_check_t;


/*
 * A parked request.  What only a big body or result needs is allocated
 * when one comes (check, stream): a request waits with its context in the
 * room left in nginx's own second 4k pool block.
 */
typedef struct {
    ngx_rbtree_node_t             node;        /* key: the job's sequence */
    ngx_http_request_t           *request;
    ngx_http_offload_peer_t      *peer;
    ngx_str_t                     queue;
    ngx_http_offload_queue_metrics_t  *metrics;
    int64_t                       start_us;    /* monotonic */
    int64_t                       submitted_ms;  /* the job accepted, ms
                                                    since the epoch */
    ngx_msec_t                    timeout;     /* offload_timeout, or the
                                                  client's shorter one */
    ngx_uint_t                    retry_after; /* s, of a 503; 0: 1 s */
    u_char                        id[OFFLOAD_JOB_ID_LEN];
    ngx_event_t                   deadline;
    uint64_t                      sent_mark;   /* the job's XADD (or
                                                  script) written, its
                                                  link's mark */
    ngx_http_offload_stream_t    *stream;      /* slice n of a big body is
                                                  stream[n % 2], NULL
                                                  before the first */
    size_t                        sliced;      /* bytes of a body asked
                                                  for */
    ngx_str_t                     body;        /* data NULL: in bufs */
    ngx_http_offload_cursor_t     body_at;     /* a big body's next slice */
    ngx_str_t                     body_key;    /* a big body's key, */
    size_t                        body_stored; /* and what Redis holds */
    ngx_http_offload_check_t     *check;       /* a big body's */
    ngx_http_offload_list_t       result;      /* a big result's read (its
                                                  LLEN, its GET too) */
    ngx_uint_t                    result_seen; /* its commands asked and
                                                  answered at the last
                                                  look past the deadline */
    ngx_str_t                     idem_key;    /* Idempotency-Key, or
                                                  empty */
    ngx_queue_t                   replication; /* in peer->replicating or
                                                  peer->waited */

    unsigned                      checking:1;
    unsigned                      first_by_script:1;  /* the body key
                                                  begun by a script */
    unsigned                      uploading:1; /* the body key is being
                                                  written, no XADD yet */
    unsigned                      result_read:1;  /* all of it in result */
    unsigned                      parked:1;
    unsigned                      submitted:1; /* XADD acknowledged */
    unsigned                      expired:1;   /* deadline passed */
    unsigned                      result_looked:1;  /* result_seen set */
    unsigned                      answered:1;
    unsigned                      timed:1;     /* Server-Timing added */
    unsigned                      admit_by_eval:1;  /* NOSCRIPT came (the
                                                       admission or the
                                                       submit script) */
    unsigned                      async:1;     /* answered 202 once added */
    unsigned                      preferred:1; /* by Prefer: respond-async */
    unsigned                      replayed:1;  /* a duplicate of the job
                                                  ctx->id (Idempotency-Key) */
    unsigned                      unserved:1;  /* no worker serves the
                                                  queue: only a duplicate
                                                  goes on */
    unsigned                      replicating:1;  /* awaits WAIT */
    unsigned                      redirects:2; /* MOVED, ASK followed by
                                                  the XADD, the EXISTS */
    unsigned                      look_redirects:2;  /* by the result
                                                        looks */
    unsigned                      replaying:1; /* waits on a job read: a
                                                  duplicate's, or Prefer:
                                                  wait's */
    unsigned                      wait:6;      /* s an async submit
                                                  waits for its job's end
                                                  (Prefer: wait) */
    unsigned                      asked:1;     /* ctx->peer named by an
                                                  ASK: ASKING before each
                                                  command sent again */
} ngx_http_offload_ctx_t;


/* Identity of this worker process: its job id nonce and reply channel. */
typedef struct {
    char                          nonce[OFFLOAD_NONCE_LEN];
    char                          channel[OFFLOAD_KEY_MAX];
    size_t                        channel_len;
    size_t                        jobs_reading;  /* bytes the jobs
                                                    endpoint's big results
                                                    hold (jobs_memory) */
    uint64_t                      seq;
    ngx_http_offload_metrics_t   *metrics;
} ngx_http_offload_worker_t;


extern ngx_module_t               ngx_http_offload_module;
extern ngx_http_offload_worker_t  ngx_http_offload_worker;


/* for latency histograms: nginx's cached time has ms resolution */

static ngx_inline int64_t
ngx_http_offload_now_us(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}


/* the pending requests a peer's replies are looked up in: a cluster's
 * masters share their cluster's */

static ngx_inline ngx_rbtree_t *
ngx_http_offload_pending_of(ngx_http_offload_peer_t *peer)
{
    return peer->parent ? &peer->parent->pending : &peer->pending;
}


/* what a connection keeps of a module's own in its pool (a parked poll, a
 * paced body): the data of its cleanup of that handler, or NULL */

static ngx_inline void *
ngx_http_offload_cleanup_data(ngx_pool_t *pool, ngx_pool_cleanup_pt handler)
{
    ngx_pool_cleanup_t  *cln;

    for (cln = pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == handler) {
            return cln->data;
        }
    }

    return NULL;
}


/* ngx_http_offload_peer_conf.c */
char *ngx_http_offload_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_offload_addrs_parse(ngx_conf_t *cf, u_char *p,
    u_char *last, int port, offload_addr_t **addrs, ngx_uint_t *naddrs);
ngx_http_offload_peer_t *ngx_http_offload_peer_get(ngx_conf_t *cf,
    ngx_str_t *addr, ngx_str_t *user, ngx_str_t *password, ngx_uint_t db,
    ngx_uint_t wait_replicas, ngx_msec_t wait_timeout,
    ngx_str_t *sentinel_user, ngx_str_t *sentinel_password);

/* ngx_http_offload_module.c */
ngx_int_t ngx_http_offload_xadd(ngx_http_offload_ctx_t *ctx);
void ngx_http_offload_body_free(ngx_http_offload_ctx_t *ctx);
ngx_table_elt_t *ngx_http_offload_header_next(ngx_http_request_t *r,
    ngx_str_t *name, ngx_http_offload_header_walk_t *walk);
ngx_int_t ngx_http_offload_header_once(ngx_http_request_t *r,
    ngx_str_t *name, ngx_table_elt_t **h);
void ngx_http_offload_answer_result(ngx_http_offload_ctx_t *ctx,
    offload_result_t *res);
ngx_uint_t ngx_http_offload_result_final(ngx_http_request_t *r,
    offload_result_t *res, u_char *id);
void ngx_http_offload_answer_error(ngx_http_offload_ctx_t *ctx,
    ngx_uint_t status, const char *code, const char *message);
void ngx_http_offload_outcome_unknown(ngx_http_offload_ctx_t *ctx,
    const char *why);
void ngx_http_offload_not_replicated(ngx_http_offload_ctx_t *ctx);
void ngx_http_offload_answer_job_error(ngx_http_offload_ctx_t *ctx,
    ngx_uint_t status, const char *code, const char *message);
ngx_int_t ngx_http_offload_send(ngx_http_request_t *r, ngx_uint_t status,
    ngx_chain_t *out, off_t len);
ngx_int_t ngx_http_offload_send_chain(ngx_http_request_t *r,
    ngx_uint_t status, ngx_str_t *type, ngx_chain_t *out, off_t len);
ngx_int_t ngx_http_offload_send_body(ngx_http_request_t *r,
    ngx_uint_t status, ngx_str_t *type, u_char *body, size_t len);
ngx_uint_t ngx_http_offload_beyond_count(ngx_str_t *value,
    ngx_uint_t decimals);
ngx_int_t ngx_http_offload_send_error(ngx_http_request_t *r,
    ngx_uint_t status, const char *code, const char *message);
ngx_chain_t *ngx_http_offload_chain_of(ngx_pool_t *pool, u_char *data,
    size_t len);
void ngx_http_offload_answer_body(ngx_http_offload_ctx_t *ctx,
    ngx_uint_t status, u_char *body, size_t len);
ngx_int_t ngx_http_offload_add_header(ngx_http_request_t *r,
    const char *name, u_char *value, size_t len);
ngx_int_t ngx_http_offload_not_allowed(ngx_http_request_t *r,
    const char *allow);

/* ngx_http_offload_clock.c: Redis' clock, measured at every ping (anew
 * from a peer's start); now by it, in ms since the epoch */
void ngx_http_offload_clock_start(ngx_http_offload_peer_t *peer);
void ngx_http_offload_clock_ask(ngx_http_offload_peer_t *peer);
int64_t ngx_http_offload_clock_now(ngx_http_offload_peer_t *peer);

/* ngx_http_offload_errors.c */
ngx_int_t ngx_http_offload_errors_init(ngx_conf_t *cf);

/* ngx_http_offload_metrics.c */
char *ngx_http_offload_metrics_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_offload_metrics_add_zone(ngx_conf_t *cf,
    ngx_http_offload_main_conf_t *omcf);
ngx_http_offload_queue_metrics_t *ngx_http_offload_metrics_queue(
    ngx_http_offload_metrics_t *m, ngx_str_t *name, ngx_uint_t add);
void ngx_http_offload_metrics_answered(ngx_http_offload_queue_metrics_t *q,
    ngx_uint_t status);
void ngx_http_offload_metrics_invalid(ngx_http_offload_metrics_t *m,
    ngx_uint_t status);
void ngx_http_offload_metrics_observe(ngx_http_offload_queue_metrics_t *q,
    ngx_uint_t h, int64_t value);
void ngx_http_offload_metrics_join(ngx_http_offload_metrics_t *m,
    ngx_log_t *log);
void ngx_http_offload_metrics_leave(ngx_http_offload_metrics_t *m,
    ngx_log_t *log);
void ngx_http_offload_metrics_in_flight(ngx_http_offload_queue_metrics_t *q,
    ngx_atomic_int_t delta);
void ngx_http_offload_metrics_timeout(ngx_http_offload_queue_metrics_t *q);
void ngx_http_offload_metrics_redis(ngx_uint_t what);
size_t ngx_http_offload_metrics_prom_size(ngx_http_offload_metrics_t *m);
u_char *ngx_http_offload_metrics_prom(ngx_http_offload_metrics_t *m,
    u_char *p, u_char *last);
size_t ngx_http_offload_metrics_json_size(ngx_http_offload_metrics_t *m);
u_char *ngx_http_offload_metrics_json(ngx_http_offload_metrics_t *m,
    u_char *p, u_char *last);

/* ngx_http_offload_status.c */
ngx_int_t ngx_http_offload_status_handler(ngx_http_request_t *r);
char *ngx_http_offload_content(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_http_offload_loc_conf_t *olcf);
char *ngx_http_offload_report(ngx_conf_t *cf, ngx_command_t *cmd, void *conf,
    ngx_uint_t report, ngx_http_handler_pt handler);
char *ngx_http_offload_status(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_offload_metrics(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_offload_status_cache(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_offload_status_add_zone(ngx_conf_t *cf,
    ngx_http_offload_main_conf_t *omcf);

/* ngx_http_offload_status_pack.c: a nodes-script answer as the status
 * cache's zone keeps it */
#define NGX_HTTP_OFFLOAD_NSORT  5           /* sort keys of a worker */

/* A worker's record in a packed answer (memcpy'd, unaligned). */
typedef struct {
    int64_t                       key[NGX_HTTP_OFFLOAD_NSORT];
    uint32_t                      off;         /* of ",{...}" in the */
    uint32_t                      len;         /* workers' text */
} ngx_http_offload_status_record_t;

/* A packed answer read back: pointers into it. */
typedef struct {
    ngx_str_t                     part[5];     /* nodes, queues, crashes,
                                                  nodes without workers,
                                                  malformed nodes */
    ngx_uint_t                    nworkers;
    u_char                       *records;
    ngx_str_t                     text;        /* ",w0,w1,..." */
    ngx_uint_t                    nfams;
    u_char                       *fams;        /* packed strings */
} ngx_http_offload_status_packed_t;

size_t ngx_http_offload_status_lean(u_char *dst, u_char *src, size_t len);
size_t ngx_http_offload_status_packed_size(redisReply *reply, size_t lean);
void ngx_http_offload_status_pack(u_char *p, redisReply *reply,
    ngx_str_t *lean);
void ngx_http_offload_status_unpack(u_char *p,
    ngx_http_offload_status_packed_t *packed);
u_char *ngx_http_offload_status_get(u_char *p, ngx_str_t *s);

/* ngx_http_offload_gzip.c: a text deflated once, the end of gzip members
 * whose heads change per request */
typedef struct {
    u_char                       *data;        /* raw deflate, last block */
    size_t                        len;         /* final; NULL: not yet */
    size_t                        text_len;
    uint32_t                      crc;         /* CRC-32 of the text */
} ngx_http_offload_gzip_tail_t;

ngx_uint_t ngx_http_offload_gzip_accepted(ngx_http_request_t *r);
ngx_int_t ngx_http_offload_gzip_tail(ngx_http_offload_gzip_tail_t *tail,
    ngx_str_t *text, ngx_log_t *log);
void ngx_http_offload_gzip_tail_free(ngx_http_offload_gzip_tail_t *tail);
size_t ngx_http_offload_gzip_frame_size(size_t head_len);
void ngx_http_offload_gzip_frame(u_char *buf, ngx_chain_t *head,
    ngx_http_offload_gzip_tail_t *tail);
ngx_chain_t *ngx_http_offload_gzip_chain(ngx_pool_t *pool, u_char *frame,
    size_t len, ngx_http_offload_gzip_tail_t *tail, off_t *size);
ngx_int_t ngx_http_offload_gzip_frame_deflated(ngx_str_t *frame,
    ngx_str_t *head, ngx_http_offload_gzip_tail_t *tail, ngx_log_t *log);

/* ngx_http_offload_dashboard.c */
char *ngx_http_offload_dashboard(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/* ngx_http_offload_redis.c */
void ngx_http_offload_link_init(ngx_http_offload_link_t *link,
    ngx_http_offload_peer_t *peer, const char *role,
    ngx_http_offload_link_up_pt on_up, ngx_log_t *log);
void ngx_http_offload_link_connect(ngx_http_offload_link_t *link);
void ngx_http_offload_link_open(ngx_http_offload_link_t *link);
void ngx_http_offload_link_begin(ngx_http_offload_link_t *link,
    ngx_http_offload_link_up_pt question);
ngx_int_t ngx_http_offload_link_rotate(ngx_http_offload_link_t *link,
    offload_addr_t *addrs, ngx_uint_t naddrs, ngx_uint_t *asked,
    ngx_uint_t *tried, ngx_uint_t asking);
void ngx_http_offload_link_retry(ngx_http_offload_link_t *link,
    const char *err);
void ngx_http_offload_link_schedule(ngx_http_offload_link_t *link);
void ngx_http_offload_link_drop(ngx_http_offload_link_t *link);
ngx_int_t ngx_http_offload_link_ping(ngx_http_offload_link_t *link,
    const char *arg);
void ngx_http_offload_link_close(ngx_http_offload_link_t *link);
ngx_int_t ngx_http_offload_link_send(ngx_http_offload_link_t *link,
    redisCallbackFn *fn, void *privdata, int argc, const char **argv,
    const size_t *argvlen);
ngx_int_t ngx_http_offload_link_stream(ngx_http_offload_link_t *link,
    ngx_http_offload_stream_t *st, ngx_pool_t *pool, redisCallbackFn *fn,
    void *privdata, int argc, const char **argv, const size_t *argvlen,
    int big, ngx_http_offload_cursor_t *at);
ngx_int_t ngx_http_offload_link_post(ngx_http_offload_link_t *link,
    redisCallbackFn *fn, int argc, const char **argv, const size_t *argvlen);
ngx_int_t ngx_http_offload_link_unlink(ngx_http_offload_link_t *link,
    redisCallbackFn *fn, ngx_str_t *key);
ngx_int_t ngx_http_offload_link_small(ngx_pool_t *pool,
    ngx_http_offload_small_t *small, redisCallbackFn *fn, void *privdata,
    int argc, const char **argv, const size_t *argvlen);
void ngx_http_offload_link_unstream(ngx_http_offload_link_t *link,
    ngx_http_offload_stream_t *st);
ngx_http_offload_link_t *ngx_http_offload_link_replied(
    redisAsyncContext *ac, redisReply *reply);
void ngx_http_offload_link_logged(redisAsyncContext *ac, void *r,
    void *privdata);
void ngx_http_offload_link_exec_done(ngx_http_offload_link_t *link,
    redisReply *reply);
uint64_t ngx_http_offload_link_mark(ngx_http_offload_link_t *link);
ngx_uint_t ngx_http_offload_link_wrote(ngx_http_offload_link_t *link,
    uint64_t mark);

/* ngx_http_offload_sentinel.c */
void ngx_http_offload_sentinel_start(ngx_http_offload_peer_t *peer,
    ngx_log_t *log);
void ngx_http_offload_sentinel_stop(ngx_http_offload_peer_t *peer);
void ngx_http_offload_sentinel_ask(ngx_http_offload_link_t *link);
ngx_int_t ngx_http_offload_sentinel_role(ngx_http_offload_link_t *link,
    redisReply *reply);
void ngx_http_offload_sentinel_error(ngx_http_offload_link_t *link,
    redisReply *reply);
void ngx_http_offload_replicate(ngx_http_offload_ctx_t *ctx);
void ngx_http_offload_replicate_stop(ngx_http_offload_ctx_t *ctx);

/* ngx_http_offload_cluster.c */
ngx_http_offload_cluster_t *ngx_http_offload_cluster_parse(ngx_conf_t *cf,
    ngx_str_t *url);
void ngx_http_offload_cluster_start(ngx_http_offload_peer_t *peer,
    ngx_log_t *log);
void ngx_http_offload_cluster_stop(ngx_http_offload_peer_t *peer);
ngx_http_offload_peer_t *ngx_http_offload_cluster_peer(
    ngx_http_offload_peer_t *peer, u_char *key, size_t len);
ngx_http_offload_link_t *ngx_http_offload_control_link(
    ngx_http_offload_peer_t *peer);
void ngx_http_offload_cluster_refresh(ngx_http_offload_peer_t *peer);
void ngx_http_offload_cluster_repeer(ngx_http_offload_ctx_t *ctx);
void ngx_http_offload_cluster_lost(ngx_http_offload_peer_t *peer);
ngx_int_t ngx_http_offload_cluster_redirect(ngx_http_offload_ctx_t *ctx,
    redisReply *reply);
ngx_http_offload_peer_t *ngx_http_offload_cluster_moved(
    ngx_http_offload_peer_t *peer, redisReply *reply, ngx_uint_t ask);
ngx_int_t ngx_http_offload_cluster_asking(ngx_http_offload_peer_t *master);
ngx_int_t ngx_http_offload_cluster_resend(ngx_http_offload_ctx_t *ctx);
ngx_int_t ngx_http_offload_cluster_follow(ngx_http_offload_ctx_t *ctx,
    redisReply *reply, ngx_uint_t look);
void ngx_http_offload_cluster_error(ngx_http_offload_link_t *link,
    redisReply *reply);
void ngx_http_offload_cluster_reply(ngx_http_offload_ctx_t *ctx,
    u_char *buf, offload_str_t *reply);
void ngx_http_offload_cluster_submitted(ngx_http_offload_ctx_t *ctx);
void ngx_http_offload_cluster_resubscribe(ngx_http_offload_peer_t *peer);
ngx_int_t ngx_http_offload_cluster_message(ngx_http_offload_link_t *link,
    redisReply *kind, redisReply *channel);

/* ngx_http_offload_reply.c */
void ngx_http_offload_peer_start(ngx_http_offload_peer_t *peer,
    ngx_log_t *log);
void ngx_http_offload_peer_stop(ngx_http_offload_peer_t *peer);
ngx_http_offload_stream_t *ngx_http_offload_stream(ngx_pool_t *pool,
    ngx_http_offload_stream_t **stream, size_t n);
void ngx_http_offload_list_init(ngx_http_offload_list_t *lr,
    ngx_http_offload_link_t *link, ngx_pool_t *pool, redisCallbackFn *fn,
    void *privdata);
ngx_int_t ngx_http_offload_list_send(ngx_http_offload_list_t *lr,
    size_t n, redisCallbackFn *fn, int argc, const char **argv,
    const size_t *argvlen);
size_t ngx_http_offload_list_size(long long n);
ngx_int_t ngx_http_offload_list_start(ngx_http_offload_list_t *lr,
    long long n);
ngx_int_t ngx_http_offload_list_got(ngx_http_offload_list_t *lr,
    redisReply *reply);
ngx_chain_t *ngx_http_offload_list_body(ngx_http_offload_list_t *lr,
    offload_result_t *res, off_t *len);
void ngx_http_offload_list_stop(ngx_http_offload_list_t *lr);
void ngx_http_offload_park(ngx_http_offload_ctx_t *ctx, ngx_msec_t timeout);
void ngx_http_offload_unpark(ngx_http_offload_ctx_t *ctx);
ngx_http_offload_ctx_t *ngx_http_offload_needed_ctx(redisAsyncContext *ac,
    redisReply *reply, void *privdata);
ngx_http_offload_ctx_t *ngx_http_offload_submit_ctx(redisAsyncContext *ac,
    redisReply *reply, void *privdata);
void ngx_http_offload_xadd_done(redisAsyncContext *ac, void *r,
    void *privdata);
void ngx_http_offload_xadd_result(ngx_http_offload_ctx_t *ctx,
    redisReply *reply);
void ngx_http_offload_submitted(ngx_http_offload_ctx_t *ctx);
void ngx_http_offload_message(redisAsyncContext *ac, void *r,
    void *privdata);
void ngx_http_offload_recover_jobs(ngx_http_offload_peer_t *peer,
    ngx_str_t *queue);

/* ngx_http_offload_jobs.c */
ngx_int_t ngx_http_offload_jobs_handler(ngx_http_request_t *r);
void ngx_http_offload_async_wanted(ngx_http_offload_ctx_t *ctx);
char *ngx_http_offload_idempotency_ttl(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_offload_idempotency_key(ngx_http_request_t *r,
    ngx_str_t *key);
int64_t ngx_http_offload_record_ttl(ngx_http_offload_ctx_t *ctx);
ngx_int_t ngx_http_offload_xadd_record(ngx_http_offload_ctx_t *ctx,
    const char *stream, int argc, const char **argv, size_t *argvlen);
void ngx_http_offload_accepted(ngx_http_offload_ctx_t *ctx, u_char *status,
    size_t len);
char *ngx_http_offload_jobs(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
void ngx_http_offload_jobs_ended(ngx_http_offload_peer_t *peer,
    u_char *id, size_t len);

/* ngx_http_offload_poll.c */
void ngx_http_offload_poll_park(ngx_http_request_t *r,
    ngx_http_offload_peer_t *peer, u_char *id, ngx_msec_t deadline);
ngx_int_t ngx_http_offload_poll_resumed(ngx_http_request_t *r,
    ngx_msec_t *wait);

/* ngx_http_offload_upload.c */
ngx_int_t ngx_http_offload_upload(ngx_http_offload_ctx_t *ctx);
void ngx_http_offload_upload_stop(ngx_http_offload_ctx_t *ctx);
void ngx_http_offload_body_delete(ngx_http_offload_ctx_t *ctx);

/* ngx_http_offload_pace.c */
ngx_int_t ngx_http_offload_pace_body(ngx_http_request_t *r);

/* ngx_http_offload_admission.c */
char *ngx_http_offload_max_backlog(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_offload_admission_timeout(ngx_http_request_t *r,
    ngx_msec_t max, ngx_msec_t *timeout);
ngx_int_t ngx_http_offload_admission_start(ngx_http_offload_peer_t *peer,
    ngx_cycle_t *cycle);
void ngx_http_offload_admission_stop(ngx_http_offload_peer_t *peer);
ngx_int_t ngx_http_offload_admission_served(ngx_http_offload_ctx_t *ctx);
void ngx_http_offload_admission_no_stream(ngx_http_offload_ctx_t *ctx);
void ngx_http_offload_admission_unserved(ngx_http_offload_ctx_t *ctx);
ngx_int_t ngx_http_offload_admission_xadd(ngx_http_offload_ctx_t *ctx,
    int argc, const char **argv, const size_t *argvlen);
void ngx_http_offload_admission_full(ngx_http_offload_ctx_t *ctx,
    long long backlog);
size_t ngx_http_offload_script_sha(const char *script, u_char *sha);

/* ngx_http_offload_trace.c */
ngx_int_t ngx_http_offload_trace_add_variables(ngx_conf_t *cf);
ngx_str_t *ngx_http_offload_traceparent(ngx_http_request_t *r,
    ngx_str_t *tp);
ngx_int_t ngx_http_offload_tracestate(ngx_http_request_t *r, ngx_str_t *ts);
u_char *ngx_http_offload_trace_timing(ngx_http_request_t *r, u_char *p,
    u_char *start);
ngx_int_t ngx_http_offload_trace_answer(ngx_http_request_t *r);

/* room for ", traceparent;desc=\"<traceparent>\"" */
#define NGX_HTTP_OFFLOAD_TRACE_TIMING_LEN                                    \
    (sizeof(", traceparent;desc=\"\"") + OFFLOAD_TRACEPARENT_LEN)


#endif /* _NGX_HTTP_OFFLOAD_MODULE_H_INCLUDED_ */
