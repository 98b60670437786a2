/*
 * offload_client.h -- liboffload: submit jobs to offload queues from any
 * C program, straight through Redis, and get their results.
 *
 * Synchronous (hiredis' blocking API, with a connect and a command
 * timeout and TCP keepalive): for programs and tools, never for an event
 * loop such as nginx's.  A client holds one command connection and, once
 * a job was submitted to be waited for, a second one subscribed to its own
 * reply channel (subscribed before the job is added, so no result can be
 * missed).  On a Redis Cluster both go to the master of the queue of the
 * call (conf.cluster below).  A client is not thread-safe: one per
 * thread.
 *
 *   offload_client_t *c = offload_client_connect(&conf);
 *   if (offload_client_error(c)) ...
 *   rc = offload_client_submit(c, "echo", json, len, &opts, id);
 *   rc = offload_client_wait(c, "echo", id, 30000, &res);
 *   ... res.status, res.body, res.body_len ...
 *   offload_client_result_free(&res);
 *   offload_client_free(c);
 *
 * docs/PROTOCOL.md, "Submitting jobs from your own code", says what goes
 * over the wire.  Link with build/liboffload.a -lhiredis.
 */

#ifndef OFFLOAD_CLIENT_H
#define OFFLOAD_CLIENT_H

#include <stddef.h>
#include <stdint.h>

/* Return codes */
#define OFFLOAD_CLIENT_OK         0
#define OFFLOAD_CLIENT_ERROR     -1   /* Redis unreachable or failing */
#define OFFLOAD_CLIENT_INVALID   -2   /* bad queue name, not JSON, too big */
#define OFFLOAD_CLIENT_NOT_FOUND -3   /* no such queue; no stored result */
#define OFFLOAD_CLIENT_TIMEOUT   -4   /* no result within the time given */
#define OFFLOAD_CLIENT_UNKNOWN   -5   /* submit: sent, not answered: the job
                                         may have been queued */

/* A job id: 32 lower-case hex digits, and a NUL. */
#define OFFLOAD_CLIENT_ID_SIZE   33

/* The longest time in ms the library takes (10 years): a deadline_ms or
 * timeout_ms over it counts as this, so that adding it to a clock, or
 * making it a timeval, cannot overflow.  (The int timeouts of the
 * configuration are below it anyway.) */
#define OFFLOAD_CLIENT_MS_MAX    315360000000LL

typedef struct offload_client_s  offload_client_t;

typedef struct {
    const char  *host;                /* default "127.0.0.1" */
    int          port;                /* default 6379 */
    const char  *unix_path;           /* instead of host and port */
    const char  *user;                /* Redis ACL user, or NULL */
    const char  *password;            /* or NULL: no AUTH */
    int          db;                  /* SELECT, 0: none */
    int          connect_timeout_ms;  /* default 2000 */
    int          command_timeout_ms;  /* default 5000 */

    /* Redis Sentinel, instead of host, port and unix_path: before each
     * connection it makes, the client asks the sentinels in turn for the
     * master named master_name (connect_timeout_ms and command_timeout_ms
     * apply to each sentinel), connects to it and checks with ROLE that
     * it is a master, else asks the next sentinel.  A command that meets
     * a broken connection or READONLY (a failover) is sent once more on a
     * new connection to the master the sentinels name then: a failover
     * needs no new client.  That second try makes a job submitted while
     * the master dies "at least once" (it may be added twice), and so is
     * one whose answer took longer than command_timeout_ms: a timeout
     * looks like a broken connection.  user,
     * password and db are the master's login; sentinel_user and
     * sentinel_password the sentinels' own (AUTH before asking). */
    const char  *sentinels;           /* "host:port,host:port...", a port
                                         26379 when left out; NULL: none */
    const char  *master_name;         /* as in the sentinels' config */
    const char  *sentinel_user;       /* or NULL */
    const char  *sentinel_password;   /* or NULL: no AUTH to sentinels */

    /* Redis Cluster, instead of host, port, unix_path and sentinels
     * (db stays 0): the seeds are asked in turn for CLUSTER SLOTS (each
     * within the timeouts, with user and password, the masters' login),
     * and a call about a queue goes to the master of the queue's slot
     * (the hash tag of all its keys), remembered per slot.  The command
     * connection follows the queue of the call: a client alternating
     * between queues on different masters connects each time.  MOVED
     * (the command was not run: no job is added twice) is sent again to
     * the master it names; ASK once to the node it names, after ASKING;
     * TRYAGAIN and CLUSTERDOWN after a short pause (the seeds asked
     * again); 5 redirections at most, then the error is the call's.  A
     * broken connection is sent once more to the master the seeds name
     * then, as with sentinels ("at least once"), and a master that
     * refuses a connection has the seeds asked again: a client outlives
     * a failover once the cluster promoted the replica.  The reply
     * channel is the queue's own, offload:{<queue>}:reply:<nonce>,
     * SSUBSCRIBEd on the queue's master before the job is added, and
     * follows a MOVED or a lost master there first; when its slot moves
     * while a result is waited for, the result key is looked at instead.
     * A payload over 1 MB submitted while its queue's slot is half moved
     * (ASK) fails, nothing added: its body key's transaction is
     * refused. */
    const char  *cluster;             /* "host:port,host:port...", a port
                                         6379 when left out; NULL: none */
} offload_client_conf_t;

typedef struct {
    int          wait;          /* offload_client_wait will follow: the
                                   result is published to this client */
    int64_t      deadline_ms;   /* the job expires unrun if no worker took
                                   it within this many ms (by Redis'
                                   clock, asked with TIME every 10 s,
                                   whatever this host's says); 0: never;
                                   at most OFFLOAD_CLIENT_MS_MAX */
    const char  *request_id;    /* for correlating logs, or NULL */
    const char  *traceparent;   /* the caller's W3C traceparent (the job's
                                   trace id and parent span), or NULL: no
                                   trace context */
} offload_submit_opts_t;

typedef struct {
    int          status;        /* HTTP-like: 200, 422, 504... */
    char        *body;          /* JSON, NUL-terminated, malloc()ed */
    size_t       body_len;
    int64_t      queue_us;      /* submitted -> taken by a worker */
    int64_t      run_us;        /* the handler's run time */
} offload_client_result_t;

/* Connects (host and port, or unix_path, or the master the sentinels
 * name, or with a cluster a master a seed names; AUTH, SELECT).  Returns
 * NULL only when out of memory; a client that could not connect (or was
 * given a bad sentinels, master_name or cluster) says why in
 * offload_client_error(), and tries again at its next call (a bad
 * sentinels or cluster list fails every call). */
offload_client_t *offload_client_connect(const offload_client_conf_t *conf);

/* Submits a job: the JSON text json[0..len) to queue.  It is checked to be
 * JSON first, and opts->traceparent to be one nginx would accept (a later
 * version is passed on as version 00): nothing is written otherwise.  A
 * payload over 1 MB goes through the job's body key in 256 KB slices,
 * never in one command.
 * Writes the job's id (OFFLOAD_CLIENT_ID_SIZE bytes; the client picks it)
 * into id.  Returns OFFLOAD_CLIENT_OK, _INVALID, _NOT_FOUND (no worker
 * ever served the queue: nothing was written), _ERROR (the job was not
 * added) or _UNKNOWN: the job's XADD was sent and its answer never came
 * (command_timeout_ms, a connection broken under it, with sentinels or a
 * cluster on its second try too), so the job may be on its queue.  Then
 * id is the job's, its body key (a payload over 1 MB) is kept to its
 * lifetime as for a job added, and offload_client_wait or
 * offload_client_result on that id say later whether it ran (a result
 * within its deadline, or result_ttl after it ended: it was added);
 * submitting it again may run it twice. */
int offload_client_submit(offload_client_t *c, const char *queue,
    const char *json, size_t len, const offload_submit_opts_t *opts,
    char *id);

/* Waits at most timeout_ms (OFFLOAD_CLIENT_MS_MAX at most) for the result
 * of a job of queue.  For a job
 * this client submitted with opts.wait, the result is pushed to it; for
 * any other, its result key is looked at every few ms.  A connection lost
 * meanwhile is made again (the channel subscribed again, the key looked
 * at) until timeout_ms.  Returns OFFLOAD_CLIENT_OK (res filled: free it
 * with offload_client_result_free), _TIMEOUT or _ERROR (the result could
 * not be read, or Redis could not be reached at the end). */
int offload_client_wait(offload_client_t *c, const char *queue,
    const char *id, int64_t timeout_ms, offload_client_result_t *res);

/* The stored result of a job, now.  Returns OFFLOAD_CLIENT_OK (res
 * filled), _NOT_FOUND (unknown job, not finished, or its result expired)
 * or _ERROR. */
int offload_client_result(offload_client_t *c, const char *queue,
    const char *id, offload_client_result_t *res);

void offload_client_result_free(offload_client_result_t *res);

/* What the last failed call (or the connect) went wrong on, or NULL when
 * the last call succeeded. */
const char *offload_client_error(const offload_client_t *c);

void offload_client_free(offload_client_t *c);

#endif /* OFFLOAD_CLIENT_H */
