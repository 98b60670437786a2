/*
 * supervisor.h -- the sidecar's parent process: one pool of workers per
 * queue, one slot per worker process.
 */

#ifndef OFFLOAD_SUPERVISOR_H
#define OFFLOAD_SUPERVISOR_H

#include <signal.h>
#include <stdint.h>
#include <sys/types.h>

#include <ev.h>

#include "conf.h"
#include "registry.h"
#include "scoreboard.h"
#include "stats.h"

typedef struct offload_pool_s  offload_pool_t;

/* One worker process's place in a pool: it outlives the processes that
 * fill it, so a restarted worker keeps its slot number (and with it its
 * consumer name and pending entries). */
typedef struct offload_slot_s {
    offload_pool_t        *pool;
    int                    index;
    pid_t                  pid;         /* 0 while no process fills it */
    int64_t                started_us;  /* monotonic, of the process */
    int                    backoff_ms;  /* step of the next restart delay */
    int                    stopping;    /* we sent SIGTERM */
    int                    stop_expired;    /* we sent SIGKILL: it
                                               outlived shutdown_timeout */
    int                    timed_out;   /* we sent SIGKILL: job_timeout */
    int                    init_timed_out;  /* we sent SIGKILL: its
                                               handler's init hung */
    int                    init_failures;   /* its last workers in a row
                                               whose init never ended */
    int                    cancelled;   /* we sent SIGKILL: its job was
                                           cancelled (cancel.c) */
    int                    killed;      /* we sent its group SIGKILL */
    int                    reclaiming;  /* its dead worker's jobs in flight */
    int                    want_spawn;  /* start a worker once reclaimed */
    uint64_t               marked_seq;  /* the job of its worker told to
                                           Redis as running (job_seq), 0:
                                           none (running.c) */
    offload_sb_slot_t     *sb;          /* shared with its worker */
    ev_timer               restart;
    ev_timer               kill;        /* SIGKILL if it outlives its
                                           SIGTERM by shutdown_timeout */
    offload_slot_stats_t   stats;
} offload_slot_t;

/* The workers of one queue, supervised one_for_one: a crashed worker is
 * restarted alone, unless the pool's restart intensity is exceeded; then
 * the whole pool stops ("failed") until its cooldown is over. */
struct offload_pool_s {
    struct offload_supervisor_s *sup;
    const offload_conf_queue_t  *queue;
    offload_slot_t              *slots;
    int                          nslots;
    int                          failed;
    int                          retired;      /* replaced by a reload */
    int64_t                      restarts;     /* since the node started */
    int64_t                     *restart_us;   /* ring of the last
                                                  max_restarts restarts */
    uint64_t                    *restart_job;  /* and the hash of the job
                                                  each died under, or 0 */
    uint64_t                     restart_ok;   /* jobs the pool finished
                                                  at the last crash */
    int                          nrecent;      /* entries in the ring */
    int                          next;         /* where the next one goes */
    ev_timer                     cooldown;
    unsigned long                claim_refused;  /* its claims refused in
                                                    a row (BUSY...) */
    unsigned long                marks_refused;  /* its running marks'
                                                    reads, the same */
    offload_pool_stats_t         stats;
    offload_hm_table_t          *metrics;      /* its handlers' metrics,
                                                  shared with its workers */
    char                         stream_key[OFFLOAD_KEY_MAX];
    char                         dead_key[OFFLOAD_KEY_MAX];
    char                         retry_key[OFFLOAD_KEY_MAX];
};

typedef struct offload_supervisor_s {
    struct ev_loop        *loop;
    const offload_conf_t  *conf;
    const offload_conf_t  *first_conf;  /* the caller's: never freed here */
    const char            *conf_file;   /* read again on SIGHUP */
    offload_pool_t        *pools;
    size_t                 npools;

    /* A reload in progress: the pools of the previous configuration,
     * whose workers are replaced one at a time (rolling). */
    offload_pool_t        *retired;
    size_t                 nretired;
    const offload_conf_t  *retired_conf;
    offload_slot_t        *rolling;     /* the slot being replaced */
    int                    reload_pending;  /* a SIGHUP during the
                                               rolling: reload after it */

    int64_t                started_us;  /* monotonic */
    int                    stopping;
    int                    drained;     /* offloadctl drain: read no jobs */
    int                    leased;      /* holds its node_name's lease:
                                           its workers may read at all */
    ev_signal              sigterm;
    ev_signal              sigint;
    ev_signal              sigchld;
    ev_signal              sighup;
    ev_signal              sigusr1;     /* reopen the logs */
    ev_signal              sigusr2;     /* meant for another process: */
    ev_signal              sigalrm;     /* logged, not the node's death */
    ev_timer               scan;        /* job timeouts, reload's roll */
    ev_timer               claim;       /* lost nodes' jobs (claim.c) */
    ev_timer               retry;       /* due retries back (retry.h) */
    ev_timer               cancel;      /* running jobs cancelled
                                           (cancel.c) */
    ev_timer               exit_timer;  /* bounds the registry cleanup */
    offload_registry_t     registry;
    char                  *oom_events;  /* the cgroup's memory.events */
    long long              oom_kills;   /* its oom_kill count, last read */
} offload_supervisor_t;

/* Between supervisor.c and reload.c. */

/* Walks every slot: the current pools', then a reload's retired ones.
 * Start from a zeroed iterator. */
typedef struct {
    int     retired;
    size_t  p;
    int     i;
} offload_slot_iter_t;

offload_slot_t *offload_slot_next(offload_supervisor_t *sup,
    offload_slot_iter_t *it);

/* Whether no slot (of all, or of a reload's retired pools only) has a
 * process or jobs in flight. */
int offload_slots_done(offload_supervisor_t *sup, int retired_only);

/* The pool of the queue among the n of pools (a generation: the current
 * pools or the retired ones), or NULL. */
offload_pool_t *offload_pool_named(offload_pool_t *pools, size_t n,
    const char *queue);

/* The slot of the same queue and index in the other generation: a retired
 * slot's successor, or a current slot's predecessor.  The two share a
 * consumer name, so they must never run at the same time. */
offload_slot_t *offload_slot_twin(offload_supervisor_t *sup,
    const offload_slot_t *slot);

/* Starts the slot's worker if one is wanted and nothing stands in the way
 * (restart delay, reclaim in flight, a running twin, a failed pool). */
void offload_slot_maybe_spawn(offload_slot_t *slot);

/* Drains the node (its workers finish what they hold and read no more
 * jobs) or resumes it. */
void offload_supervisor_drain(offload_supervisor_t *sup, int drained);

/* The node holds the lease on its name, or not (node_lease.c): its workers
 * read, or read nothing at all. */
void offload_supervisor_lease(offload_supervisor_t *sup, int leased);

/* Asks a worker to finish its batch and exit (SIGTERM, to it alone), and
 * kills it with its process group (SIGKILL, pgroup.h) if it still runs
 * shutdown_timeout later; either way its exit is a stop, not a crash: what
 * it held goes back to the queue unchanged.
 * Shutdown, a reload's rolling restart and a failed pool all stop workers
 * so.  Does nothing to a worker already stopping. */
void offload_slot_stop(offload_slot_t *slot);

/* The supervisor's connection to the Redis of the pool's queue, and to
 * where that Redis keeps node-level keys (the same, or with a cluster the
 * control shard): events, crash reports. */
offload_redis_conn_t *offload_pool_conn(const offload_pool_t *pool);
offload_redis_conn_t *offload_pool_node_conn(const offload_pool_t *pool);

/* Redis' clock less this host's monotonic one, as pool's connection
 * measured it last, or OFFLOAD_CLOCK_UNKNOWN (redis_clock.h): what its
 * workers read deadlines by. */
int64_t offload_pool_clock_base(const offload_pool_t *pool);

/* One pool per queue of conf, every slot empty; NULL when out of memory. */
offload_pool_t *offload_pools_make(offload_supervisor_t *sup,
    const offload_conf_t *conf);
void offload_pools_free(offload_pool_t *pools, size_t npools);

/* A reload: the new pool of a queue keeps counting into the handler
 * metrics of the queue's old pool (whose retired workers still do). */
void offload_pool_adopt_metrics(offload_pool_t *pool, offload_pool_t *old);

/* The signals the supervisor watches (SIGHUP, SIGTERM, SIGINT, SIGUSR1):
 * main() holds them from its pid file on, offload_supervisor_run() lets
 * them through once its watchers are in place. */
void offload_supervisor_signals(sigset_t *set);

/* Runs the sidecar until SIGTERM/SIGINT; SIGHUP reads conf_file again.
 * Returns the exit status. */
int offload_supervisor_run(const offload_conf_t *conf, const char *conf_file);

#endif /* OFFLOAD_SUPERVISOR_H */
