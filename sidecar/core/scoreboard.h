/*
 * scoreboard.h -- what each worker is doing, in memory it shares with its
 * supervisor (Apache's scoreboard).
 *
 * Every slot of a pool owns one shared anonymous page, mapped by the
 * supervisor before its first fork, so every worker that ever fills the
 * slot inherits it.  The worker writes what it does; the supervisor reads
 * it while the worker runs (job timeouts, status) and after the worker
 * died (which job it held, how it crashed), and writes only a few orders
 * and facts the worker reads (paused, standby, the clock's offset), each
 * a word of its own.  No locks: the worker publishes a
 * job's fields before it sets the state busy (release), the supervisor
 * reads the state first (acquire); job_seq tells a reader which job it saw.
 */

#ifndef OFFLOAD_SCOREBOARD_H
#define OFFLOAD_SCOREBOARD_H

#include <stdint.h>
#include <sys/types.h>

#include "handler_metrics.h"
#include "offload_hist.h"
#include "offload_proto.h"

#define OFFLOAD_SB_ENTRY_ID_MAX   48      /* "<ms>-<seq>" is 41 at most */
#define OFFLOAD_SB_JOB_ID_MAX     129     /* ids are at most 128 bytes */
#define OFFLOAD_SB_FRAMES_MAX     32
#define OFFLOAD_SB_CHILD_ERROR_MAX 256

typedef enum {
    OFFLOAD_SB_STARTING = 0,    /* forked, not reading jobs yet */
    OFFLOAD_SB_IDLE,            /* waiting for jobs */
    OFFLOAD_SB_BUSY,            /* running the job below */
    OFFLOAD_SB_STOPPING,        /* finishing its batch, then exits */
    OFFLOAD_SB_PAUSED           /* its node is drained: reads no jobs */
} offload_sb_state_e;

/* Why a worker left on its own, set just before it exits. */
typedef enum {
    OFFLOAD_SB_EXIT_NONE = 0,
    OFFLOAD_SB_EXIT_STOPPED,        /* SIGTERM: shutdown, reload */
    OFFLOAD_SB_EXIT_MAX_JOBS,       /* max_jobs_per_worker reached */
    OFFLOAD_SB_EXIT_MEMORY,         /* RSS over memory_limit after a job */
    OFFLOAD_SB_EXIT_OUT_OF_MEMORY,  /* a job ran out of RLIMIT_AS */
    OFFLOAD_SB_EXIT_HANDLER_PROCESS,/* an exec handler's process died or
                                       broke the framing (child_*) */
    OFFLOAD_SB_EXIT_UNSETTLED,      /* Redis refused for good to settle an
                                       entry: the next worker reads it */
    OFFLOAD_SB_EXIT_INIT_FAILED,    /* its handler's init failed: it is
                                       leaving, not stuck in it */
    OFFLOAD_SB_EXIT_FDS             /* near its file descriptor limit after
                                       a job: a handler leaking them */
} offload_sb_exit_e;

/* The exit status of a worker whose job ran out of memory, set with
 * OFFLOAD_SB_EXIT_OUT_OF_MEMORY; here, not in worker.h, because the exec
 * handler (handlers/) ends the worker with these too. */
#define OFFLOAD_WORKER_EXIT_NOMEM  3

/* The exit status of a worker whose exec handler process died or broke
 * the framing, set with OFFLOAD_SB_EXIT_HANDLER_PROCESS. */
#define OFFLOAD_WORKER_EXIT_HANDLER  4

typedef struct {
    int32_t   state;                /* offload_sb_state_e, atomic */
    int32_t   paused;               /* set by the supervisor (drain) */
    int32_t   standby;              /* set by the supervisor: read nothing,
                                       not even the pending history (its
                                       node's name is another's) */
    int32_t   exit_reason;          /* offload_sb_exit_e */
    int32_t   init_done;            /* its handler's init returned: what
                                       is left of starting is Redis */
    pid_t     pid;
    int32_t   fds;                  /* open file descriptors, its exec
                                       handler process's added, as the
                                       worker last counted (fd_watch.c) */
    int64_t   clock_base_ms;        /* set by the supervisor: Redis' clock
                                       less this host's monotonic one
                                       (redis_clock.h), or
                                       OFFLOAD_CLOCK_UNKNOWN */

    /* The current job (state busy), or the last one. */
    uint64_t  job_seq;              /* jobs started by this process */
    uint64_t  marked_seq;           /* set by the supervisor: the job_seq
                                       it told Redis runs (running.c),
                                       atomic */
    int64_t   job_start_us;         /* monotonic */
    int32_t   attempt;
    char      entry_id[OFFLOAD_SB_ENTRY_ID_MAX];
    char      job_id[OFFLOAD_SB_JOB_ID_MAX];
    char      request_id[OFFLOAD_SB_JOB_ID_MAX];    /* nginx $request_id */
    char      trace_id[OFFLOAD_TRACE_ID_LEN + 1];   /* or "" */

    /* Counters of this process. */
    uint64_t  jobs_ok;              /* answered 200 */
    uint64_t  jobs_failed;          /* answered with an error, or failed
                                       for now (offload_job_retry()) */
    uint64_t  jobs_cancelled;       /* dropped unrun: their (sync)
                                       clients went away, or cancelled */
    uint64_t  jobs_expired;         /* answered expired unrun: their
                                       deadline passed in the queue */
    uint64_t  jobs_retried;         /* failed for now, waiting in the
                                       queue's retry set */
    uint32_t  run_hist[OFFLOAD_HIST_FINE];  /* handler run times, fine
                                               buckets (offload_hist.h),
                                               atomic adds; the supervisor
                                               takes them every heartbeat
                                               (exchanges each with 0), so
                                               32 bits do */

    /* An exec handler's process (exec_bridge.c): its pid while it runs
     * (0: none); when it made the worker exit, its wait status (-1: it
     * was alive and broke the framing, then killed) and what went wrong. */
    pid_t     child_pid;
    int32_t   child_status;
    char      child_error[OFFLOAD_SB_CHILD_ERROR_MAX];

    /* Bytes of the running job's answer the exec process wrote without
     * the newline that ends it (0: none), for a timeout to say: a line
     * buffered and never flushed, or cut short, looks like a hang. */
    int32_t   answer_partial;

    /* The handler metrics of the slot's queue: one table its workers
     * share, set by the supervisor once and kept by offload_sb_reset. */
    offload_hm_table_t *metrics;

    /* The exec handler's stderr allowance (exec_bridge.c): the slot's,
     * kept by offload_sb_reset, so that a process that crashes in a loop,
     * or leaves after every job, gets no new burst with each worker. */
    int64_t   stderr_credit;        /* lines to log, x 1e6 */
    int64_t   stderr_credit_us;     /* monotonic, when last counted */

    /* Filled by the fatal-signal handler.  The worker is a fork() of the
     * supervisor without exec, so the supervisor can symbolize the frames
     * with its own backtrace_symbols(). */
    int32_t   crash_signal;         /* 0: none */
    int32_t   nframes;
    void     *frames[OFFLOAD_SB_FRAMES_MAX];
} offload_sb_slot_t;


/* Maps a zeroed shared slot.  Returns NULL on failure (errno set). */
offload_sb_slot_t *offload_sb_map(void);
void offload_sb_unmap(offload_sb_slot_t *sb);

/* Supervisor: clears the slot for a new process (its metrics table
 * stays). */
void offload_sb_reset(offload_sb_slot_t *sb, pid_t pid);

/* Worker: the state, published with release semantics. */
void offload_sb_set_state(offload_sb_slot_t *sb, offload_sb_state_e state);

/* Supervisor: stop or let the worker read jobs (offloadctl drain). */
void offload_sb_set_paused(offload_sb_slot_t *sb, int paused);
int offload_sb_paused(const offload_sb_slot_t *sb);

/* Supervisor: hold the worker back from any read (node_lease.c). */
void offload_sb_set_standby(offload_sb_slot_t *sb, int standby);
int offload_sb_standby(const offload_sb_slot_t *sb);

/* Supervisor: hand the worker its Redis' clock base.  Worker: read it. */
void offload_sb_set_clock_base(offload_sb_slot_t *sb, int64_t base_ms);
int64_t offload_sb_clock_base(const offload_sb_slot_t *sb);

/* Supervisor: the state, read with acquire semantics. */
offload_sb_state_e offload_sb_state(const offload_sb_slot_t *sb);

/* Worker: its handler's init returned.  Supervisor: whether it did (a
 * worker starting without it is in its init: init_timeout). */
void offload_sb_set_init_done(offload_sb_slot_t *sb);
int offload_sb_init_done(const offload_sb_slot_t *sb);

/* Worker: a job starts (its ids, request id and trace id are truncated to
 * fit) and the slot turns busy; a job ends (ok: answered 200; its handler
 * ran run_us) and the slot turns idle. */
void offload_sb_job_start(offload_sb_slot_t *sb, const char *entry_id,
    size_t entry_len, const offload_entry_t *job, int64_t start_us);
void offload_sb_job_end(offload_sb_slot_t *sb, int ok, int64_t run_us);

/* A job's run time among the slot's: offload_sb_job_end()'s, and the
 * supervisor's for a job the worker died under (a crash, its timeout). */
void offload_sb_run_observe(offload_sb_slot_t *sb, int64_t run_us);

const char *offload_sb_state_name(offload_sb_state_e state);

#endif /* OFFLOAD_SCOREBOARD_H */
