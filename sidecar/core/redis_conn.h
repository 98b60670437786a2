/*
 * redis_conn.h -- one self-healing async Redis connection on a libev loop.
 *
 * Connects, sends AUTH and SELECT when configured (a PING with neither),
 * then calls on_ready once they are answered OK.
 * When the connection fails or drops it calls on_lost (if it was ready) and
 * reconnects forever with exponential backoff (100 ms .. 2 s, with jitter),
 * each time with a new hiredis context.  Both the supervisor's registry and
 * every worker use it, so this logic lives in exactly one place.
 *
 * No wait is unbounded: the connect, and every command sent through
 * offload_redis_command*(), has a deadline (redis_timeout, plus the time a
 * blocking command may block).  A Redis that stops answering without
 * closing the connection (a dead host, a failover behind a virtual IP, a
 * frozen server) is dropped when the deadline passes with no byte moving
 * either way, and reconnected like any lost connection.  TCP connections
 * also have keepalive.
 *
 * With Redis Sentinel (an endpoint with sentinels), every connect first
 * asks the sentinels in turn, each under the same deadline, which server
 * is the master (after AUTH with sentinel_user/sentinel_password, when
 * given), then connects to it, and stays subscribed to +switch-master on
 * the sentinel that answered: a failover of the master drops the
 * connection at once, as does a READONLY error (the server became a
 * replica), and the reconnect asks again.  The subscribed sentinel is
 * PINGed every second: one that closes, or leaves a PING unanswered for
 * redis_timeout, is replaced by the next one, which is first asked for
 * the master in case a failover went unheard.
 *
 * With a Redis Cluster (an endpoint with seeds), every connect first asks
 * the seeds in turn (from the one that answered last), each under the
 * same deadline, for the slot map (CLUSTER SLOTS, after AUTH with the
 * endpoint's login), then connects to the master of the endpoint's slot.
 * A reply MOVED, ASK, TRYAGAIN or CLUSTERDOWN (the command was not run)
 * reaches its caller as a lost connection (a NULL reply), as do the
 * commands after it; the connection is dropped and made again after its
 * backoff: to the master a MOVED named, else asking the seeds again.  A
 * slot moved or a failover finds its new master, a slot being moved is
 * tried again until the move ends (ASK is not followed with ASKING: a
 * worker's pipeline would need every command after it sent again there).
 * Only the answer to a keyed command resets the backoff (proves_up()).
 */

#ifndef OFFLOAD_REDIS_CONN_H
#define OFFLOAD_REDIS_CONN_H

#include <ev.h>
#include <hiredis/async.h>

#include "redis_clock.h"
#include "redis_endpoint.h"

typedef struct offload_redis_conn_s  offload_redis_conn_t;
typedef struct offload_redis_cmd_s   offload_redis_cmd_t;

typedef void (*offload_redis_conn_pt)(offload_redis_conn_t *rc);

/* How far a connection's input and output had got at a look. */
typedef struct {
    size_t                  obuf;       /* unsent bytes */
    size_t                  reader[2];  /* read buffer's len, pos */
} offload_redis_bytes_t;

struct offload_redis_conn_s {
    struct ev_loop         *loop;
    const offload_redis_endpoint_t *ep;
    const char             *name;       /* for log lines */
    redisAsyncContext      *ac;         /* NULL while not connected */
    int                     ready;      /* connected, AUTH/SELECT done */
    int                     stopped;
    int                     failures;   /* in a row, for the backoff */
    int                     failures_then; /* ... when this connection
                                              became ready */
    int                     read_only;  /* it met READONLY: its answers
                                           prove nothing */
    int                     protocol_error; /* ac's reply refused (a
                                               shape hiredis asserts on) */
    char                    refused[64];    /* the setup refusal logged
                                               last, "" once ready */
    ev_timer                retry;
    ev_timer                watchdog;
    double                  connect_deadline;
    double                  progress_at;    /* last reply or bytes moved */
    offload_redis_bytes_t   seen;       /* at the last reply or look */
    offload_addr_t          master;     /* the sentinels' last answer */
    redisAsyncContext      *asking;     /* the sentinel being asked */
    redisAsyncContext      *watching;   /* the one that answered, for its
                                           +switch-master messages */
    int                     watched;    /* its index */
    double                  watch_unheard;  /* since when it owes an
                                               answer, or 0 */
    offload_redis_bytes_t   watch_seen; /* its bytes at the last look */
    ev_timer                watch_tick; /* PINGs it, or watches anew */
    int                     asked;      /* discovery: sentinels or seeds
                                           asked this round */
    int                     seed_first; /* the cluster seed that answered
                                           last: asked first */
    int                     moved;      /* master is what a MOVED named:
                                           connect there, no seed asked */
    ev_timer                ask_deadline;
    offload_redis_cmd_t    *head;       /* commands waiting for replies, */
    offload_redis_cmd_t    *tail;       /* oldest first (Redis answers in */
    offload_redis_cmd_t    *free_cmds;  /* order), and spare ones */
    offload_redis_clock_t   clock;      /* its server's, against ours */
    offload_redis_conn_pt   on_ready;
    offload_redis_conn_pt   on_lost;
    void                   *data;
};

void offload_redis_conn_init(offload_redis_conn_t *rc, struct ev_loop *loop,
    const offload_redis_endpoint_t *ep, const char *name,
    offload_redis_conn_pt on_ready, offload_redis_conn_pt on_lost, void *data);

/* Starts connecting (asynchronously). */
void offload_redis_conn_start(offload_redis_conn_t *rc);

/* Send a command as redisAsyncCommand / redisAsyncCommandArgv do (fn may
 * be NULL), under the connection's deadline; _block for a command that
 * blocks on the server for up to block_ms (XREADGROUP ... BLOCK).  Return
 * REDIS_ERR when there is no connection: fn is then never called. */
int offload_redis_command(offload_redis_conn_t *rc, redisCallbackFn *fn,
    void *privdata, const char *format, ...);
int offload_redis_command_argv(offload_redis_conn_t *rc, redisCallbackFn *fn,
    void *privdata, int argc, const char **argv, const size_t *argvlen);
int offload_redis_command_block(offload_redis_conn_t *rc, int block_ms,
    redisCallbackFn *fn, void *privdata, int argc, const char **argv,
    const size_t *argvlen);

/* A command sent as the formatted text cmd (RESP, as offload_resp.h writes it),
 * name its first word: one kept to be sent again as it was. */
int offload_redis_command_formatted(offload_redis_conn_t *rc,
    redisCallbackFn *fn, void *privdata, const char *name, const char *cmd,
    size_t len);

/* Writes the commands sent so far now, if the socket takes them, rather
 * than when the loop next sees the socket writable: for a loop's last
 * step before it waits. */
void offload_redis_write(offload_redis_conn_t *rc);

/* Sends a command made by another module (bad_job.c, retry.c) on the
 * caller's terms: offload_redis_send_plain sends it on the connection
 * data, with no callback; a worker keeps it to send it again if Redis
 * refuses it.  Returns REDIS_OK or REDIS_ERR. */
typedef int (*offload_redis_send_pt)(void *data, int argc, const char **argv,
    const size_t *argvlen);
int offload_redis_send_plain(void *conn, int argc, const char **argv,
    const size_t *argvlen);

/* From a reply callback: the reply cannot answer the command it came for
 * (what says so), the server or a proxy is out of step with the commands
 * sent.  Logged as a protocol error; the context is freed once the
 * callback returns (pending callbacks get NULL, on_lost runs) and the
 * connection made again after the backoff. */
void offload_redis_conn_out_of_step(offload_redis_conn_t *rc,
    const char *what);

/* Stops reconnecting and frees the context: pending callbacks run with a
 * NULL reply.  on_lost is not called. */
void offload_redis_conn_stop(offload_redis_conn_t *rc);

/* In a forked child: forget the parent's connection without touching the
 * server (closes the inherited socket only). */
void offload_redis_conn_forget(offload_redis_conn_t *rc);

#endif /* OFFLOAD_REDIS_CONN_H */
