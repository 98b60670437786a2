/*
 * worker_state.h -- the worker process's state, shared by the files of
 * sidecar/worker/: worker.c (the loop: reads, runs), completion.c (a job's
 * end, told to Redis), held.c (the other commands that settle an entry),
 * cancelled.c (jobs cancelled before they run), body_read.c (a big job's
 * body, read from its body key), stage.c (a big result, staged in a list)
 * and replicas.c (wait_replicas).  Nothing here is for anyone outside the
 * worker.
 */

#ifndef OFFLOAD_WORKER_STATE_H
#define OFFLOAD_WORKER_STATE_H

#include <stddef.h>
#include <stdint.h>

#include <ev.h>
#include <hiredis/async.h>

#include "conf.h"
#include "entry.h"
#include "fd_watch.h"
#include "job.h"
#include "offload_proto.h"
#include "redis_conn.h"
#include "scoreboard.h"

#define ENTRY_ID_MAX      64        /* "<ms>-<seq>": 41 at most */
#define KEY_ROOM          512       /* a result, body or staging key */
#define STAGE_WINDOW      2         /* slice commands in flight */
#define KEEP_BUFFER_MAX   (4 << 20) /* bigger completion buffers are freed */
#define RESEND_MIN_S      0.1       /* a command Redis refused is sent
                                       again after this, at first */
#define JSON_OUT_FLAGS    (JSON_COMPACT | JSON_ENCODE_ANY)
#define REFUSED_TRIES     5         /* refused but not for want of memory
                                       (a script error): given up after */
#define REFUSAL_MAX       160       /* why a transaction was refused */


typedef struct offload_worker_s  offload_worker_t;

/*
 * A script called by EVALSHA: its SHA1 is SCRIPT LOAD's answer on every
 * connect (computed here, it would take libcrypto, which the sidecar does
 * not link: sha256.c).  The load goes ahead of the first read on the same
 * link, so the SHA1 is in before any call needs it.  A call answered
 * NOSCRIPT (Redis restarted empty, or SCRIPT FLUSH) is sent again by EVAL
 * and the script is loaded again.
 */
typedef struct {
    offload_worker_t     *worker;
    const char           *what;         /* for the log */
    const char           *text;
    char                  sha[41];
} script_t;

enum { SCRIPT_COMPLETE, SCRIPT_DROP_CANCELLED, SCRIPT_JOB_START, SCRIPTS };

/* One job's part of a completion script call: its keys (body, staging
 * and record key empty when it has none), then its OFFLOAD_COMPLETE_ARGS
 * arguments (proto/offload_proto.h). */
enum {
    C_RESULT_KEY, C_BODY_KEY, C_STAGE_KEY, C_REC_KEY,
    C_ENTRY, C_RESULT, C_CHANNEL, C_SHAPE, C_REC_TTL, C_STATUS,
    C_ARGS
};

/* One job's completion, waiting to be sent (on the ready list), in flight
 * (chained by next from the first of its call, the reply's privdata), or
 * a recycled one on the free list. */
typedef struct completion_s {
    struct completion_s  *next;
    struct completion_s  *next_call;    /* lost: the next lost call's */
    offload_worker_t     *worker;
    char                 *buf;
    size_t                cap;
    char                 *staged_body;  /* a staged result's body, taken
                                           from its job, not copied */
    int                   eval;         /* NOSCRIPT: sent again by EVAL */
    int                   tries;        /* refused by Redis so far */
    int                   resent;       /* in flight from the lost list */
    int                   last_resort;  /* the error answer made instead
                                           of a result Redis refused */
    int                   transaction;  /* sent as MULTI ... EXEC */
    char                  refusal[REFUSAL_MAX]; /* a queued command's */
    char                  shape[3];
    const char           *arg[C_ARGS];
    size_t                arglen[C_ARGS];
} completion_t;

/* What a tracked command settles, for its last resort (held_give_up()):
 * the entry, the job's id and reply channel and its record's lifetime;
 * final for a command that is itself the entry's last resort (a bad-job
 * move, the XACK of an entry gone). */
typedef struct {
    char                  entry[ENTRY_ID_MAX];
    char                  id[130];
    char                  reply[KEY_ROOM];
    size_t                entry_len;
    size_t                id_len;       /* 0: no job to answer */
    size_t                reply_len;
    int64_t               record_ttl_ms;
    int                   body_keyed;
    int                   final;
} settles_t;

/* A command that settles an entry otherwise than by its completion (a
 * dead letter, a retry, a bad job's move, an XACK), kept as formatted
 * until its reply: one Redis refuses is sent again as completions are. */
typedef struct held_s {
    struct held_s        *next;
    offload_worker_t     *worker;
    char                 *cmd;
    size_t                len;
    int                   tries;        /* refused by Redis so far */
    int                   resent;       /* in flight from the held list */
    char                  name[16];     /* its first word */
    settles_t             settles;
} held_t;

/* A job whose body is in its body key (a list of slices), being read an
 * element at a time. */
typedef struct {
    batch_entry_t        *entry;        /* NULL: no read in progress */
    offload_entry_t       job;
    char                  key[KEY_ROOM];
    char                 *buf;          /* the elements so far, joined */
    size_t                cap;          /* at most job.body_len */
    int64_t               elements;     /* LLEN's answer */
    int64_t               asked;        /* elements asked for */
    int64_t               answered;
    int64_t               found;        /* bytes they held */
    unsigned              in_flight;
    char                  why[KEY_ROOM + 160];  /* the read failed: why */
} body_read_t;

/* A big result being written to its staging list a slice at a time, then
 * completed with the staging key.  Lives until the completion's reply.
 * Offsets count bytes of the encoded result: the header line is the
 * list's first element, each OFFLOAD_SLICE of the rest one more. */
typedef struct {
    completion_t         *c;            /* NULL: no staging in progress */
    const char           *header;       /* the result's header line */
    const char           *body;         /* and its JSON body */
    size_t                len;          /* of both */
    size_t                header_len;
    size_t                sent;
    size_t                acked;
    size_t                pushed;       /* elements acked */
    unsigned              in_flight;
    int                   failed;
    int                   tries;
    int                   scripted;     /* begun by the script, not EXEC */
    char                  elements_arg[24];
    char                  job_id[130];
} stage_t;

struct offload_worker_s {
    struct ev_loop              *loop;
    const offload_conf_t        *conf;
    const offload_conf_queue_t  *queue;
    offload_sb_slot_t           *sb;
    offload_redis_conn_t         conn;
    ev_signal                    sigterm;
    ev_signal                    sigint;
    ev_signal                    sigusr1;       /* reopen the log */
    ev_timer                     read_retry;
    ev_timer                     fds_tick;      /* the count shown, idle */

    char                         name[OFFLOAD_QUEUE_NAME_MAX + 16];
    char                         consumer[OFFLOAD_CONSUMER_MAX];
    char                         stream[OFFLOAD_KEY_MAX];
    char                         cancelled[OFFLOAD_KEY_MAX];
    char                         running_key[OFFLOAD_KEY_MAX];
    char                         body_prefix[KEY_ROOM];
    char                         result_prefix[KEY_ROOM];
    char                         prefetch[16];
    char                         slot_index[12];
    char                         ttl[16];
    char                         ttl_ms[24];
    script_t                     scripts[SCRIPTS];

    int                          in_history;    /* reading own pending */
    char                         history_id[ENTRY_ID_MAX];
    int                          predecessor;   /* its first history
                                                   read not done yet */
    int                          predecessor_asked; /* its mark, on this
                                                   link */
    int                          history_again; /* read it once more: a
                                                   failure was refused */
    char                         predecessor_ran[ENTRY_ID_MAX];  /* the
                                                   entry its slot's last
                                                   worker ran, by the
                                                   supervisor's mark, or
                                                   "" (worker.c) */
    int                          stopping;
    unsigned                     in_flight;     /* commands to wait for */
    int                          wait_short;    /* the last WAIT saw fewer
                                                   replicas than wanted */
    int                          wait_sent;     /* and how many it asked */
    int                          replicas;      /* wait_replicas all: the
                                                   master's, by ROLE; -1 */
    int                          role_refused;  /* this connection: logged,
                                                   not asked again */
    int                          no_transactions;   /* MULTI or EXEC refused
                                                       for good: completions
                                                       by the script */
    int                          jobs_run;      /* for max_jobs_per_worker */
    offload_fd_watch_t           fds;           /* a handler's leak */
    unsigned long                read_refused;  /* reads refused in a
                                                   row (BUSY...) */
    int                          nogroup;       /* reads answered NOGROUP
                                                   in a row */

    ev_idle                      work;          /* runs the batch */
    batch_entry_t               *batch;         /* taken, not yet run */
    batch_entry_t               *batch_tail;
    batch_entry_t               *spare_entries; /* recycled (entry.h) */
    completion_t                *free_list;
    body_read_t                  body;
    batch_entry_t               *gate;          /* its start script sent */
    int                          checking;      /* the batch read waits for
                                                   its cancel check */
    int                          owning;        /* the batch waits for its
                                                   ownership check */
    int64_t                      owned_at;      /* the read, or ownership
                                                   check, last sent: the
                                                   batch was ours then */
    int64_t                      owned_base_ms; /* Redis' clock's base then
                                                   (scoreboard.h) */
    int64_t                      record_ttl_ms; /* of the job completed */
    int                          body_keyed;    /* it has a body key */
    completion_t                *lost;          /* calls whose reply the
                                                   link lost (a redirect:
                                                   not run), sent again
                                                   after the reconnect */
    completion_t                *lost_tail;
    ev_timer                     resend;        /* sends again what Redis
                                                   refused, backing off */
    double                       resend_delay;
    int                          refusing;      /* an episode: logged once */
    int                          last_resort;   /* for
                                                   offload_completion_make() */
    unsigned                     resending;     /* sent again, unanswered */
    held_t                      *held;          /* tracked commands refused,
                                                   to send again, in order */
    held_t                      *held_tail;
    const settles_t             *settling;      /* for offload_held_send() */
    int                          reading;       /* an XREADGROUP is out */
    completion_t                *ready;         /* to send, in order */
    completion_t                *ready_tail;
    unsigned                     nready;
    size_t                       ready_bytes;
    ev_prepare                   flush;         /* sends them before the
                                                   loop waits */
    ev_prepare                   out;           /* writes what is queued
                                                   before the loop waits */
    stage_t                      stage;
    offload_job_t                job;           /* the handler's handle */
    offload_slot_t               slot;          /* for its init and fini */
};


/* worker.c */

/* No memory to finish an entry (its body, its completion): as for a
 * handler out of memory, the worker exits with its job busy in the
 * scoreboard; the supervisor fails that attempt and a fresh worker reads
 * the entry again with its history.  Carrying on would leave it pending
 * under a live worker, which nobody claims. */
void offload_worker_out_of_memory(offload_worker_t *w)
    __attribute__((noreturn));
void offload_worker_resume(offload_worker_t *w);
void offload_worker_run_job(offload_worker_t *w, const batch_entry_t *be,
    const offload_entry_t *entry);
void offload_worker_bad_entry(offload_worker_t *w,
    const offload_str_t *entry_id, const offload_str_t *fields,
    size_t nfields, const char *why);
void offload_worker_maybe_exit(offload_worker_t *w);
void offload_worker_dead_letter_answer(offload_worker_t *w,
    const offload_str_t *entry_id, const offload_str_t *fields,
    size_t nfields, const char *why, int status, const char *code,
    const char *message);
void offload_worker_stop_reading(offload_worker_t *w,
    offload_sb_exit_e reason);
int offload_worker_usable_id(const offload_str_t *s);
/* Now, in ms since the epoch by the queue's Redis (redis_clock.h): what
 * deadlines and due times are read by. */
int64_t offload_worker_redis_ms(const offload_worker_t *w);
void offload_worker_script_call(const script_t *s, int eval,
    const char **argv, size_t *argvlen);
int offload_worker_script_missing(script_t *s, const redisReply *reply);

/* body_read.c */
int offload_body_read_start(offload_worker_t *w, batch_entry_t *e,
    const offload_entry_t *job);
void offload_body_read_end(offload_worker_t *w);

/* stage.c */
void offload_stage_start(offload_worker_t *w, completion_t *c,
    const offload_str_t *job_id, size_t header_len, const char *body);
void offload_stage_restart(offload_worker_t *w);
void offload_stage_retry(offload_worker_t *w);
void offload_stage_end(offload_worker_t *w);

/* replicas.c */
void offload_replicas_ask(offload_worker_t *w);
void offload_replicas_wait(offload_worker_t *w);

/* held.c */
int offload_held_send(void *data, int argc, const char **argv,
    const size_t *argvlen);
void offload_held_drop_entry(offload_worker_t *w, const char *id,
    size_t idlen);
void offload_held_clear(offload_worker_t *w);
void offload_held_resend(offload_worker_t *w);
void offload_held_settles(settles_t *st, const offload_str_t *entry_id,
    const offload_entry_t *job, int final);

/* cancelled.c */
void offload_cancelled_count_cb(redisAsyncContext *ac, void *r,
    void *privdata);
int offload_cancelled_drop(offload_worker_t *w, int eval);
int offload_cancelled_gate(offload_worker_t *w, batch_entry_t *e,
    const offload_entry_t *job, int eval);
int offload_cancelled_owned(offload_worker_t *w);

/* completion.c */
void offload_completion_put(offload_worker_t *w, completion_t *c);
void offload_completion_refused(offload_worker_t *w);
void offload_completion_settled(offload_worker_t *w);
void offload_completion_answer_instead(offload_worker_t *w, completion_t *c,
    const offload_str_t *job_id, const char *why, int last_resort);
int offload_completion_exec_left_open(offload_worker_t *w,
    const redisReply *reply);
void offload_completion_transactions_refused(offload_worker_t *w,
    const char *err);
void offload_completion_send_queued(offload_worker_t *w, redisCallbackFn *fn,
    void *privdata, int argc, const char **argv, const size_t *argvlen);
int offload_completion_send(offload_worker_t *w, completion_t *c);
void offload_completion_make(offload_worker_t *w,
    const offload_str_t *entry_id, const offload_str_t *reply,
    const offload_result_t *res, const char *code, const char *body,
    size_t blen, offload_job_t *job);
void offload_completion_error(offload_worker_t *w,
    const offload_str_t *entry_id, const offload_str_t *job_id,
    const offload_str_t *reply, int status, int64_t queue_us,
    const char *code, const char *message);
void offload_completion_lost(offload_worker_t *w, completion_t *c);
void offload_completion_put_all(offload_worker_t *w, completion_t *c);
void offload_completion_resend_lost(offload_worker_t *w);
void offload_completion_flush(offload_worker_t *w);
void offload_completion_resend_cb(struct ev_loop *loop, ev_timer *t,
    int revents);
void offload_completion_flush_cb(struct ev_loop *loop, ev_prepare *p,
    int revents);
void offload_completion_out_cb(struct ev_loop *loop, ev_prepare *p,
    int revents);

#endif /* OFFLOAD_WORKER_STATE_H */
