/*
 * fail_attempt.h -- one attempt of a job failed because its worker went
 * away under it: run again at once with attempt + 1, or dead-lettered and
 * answered when no attempt is left.
 *
 * The supervisor does it for a crashed worker's job (reclaim.c) and for
 * the jobs of a lost node (claim.c); a worker does it for the job its
 * slot's predecessor was running when the supervisor could not (the whole
 * sidecar was killed, or Redis was away): worker.c.
 */

#ifndef OFFLOAD_FAIL_ATTEMPT_H
#define OFFLOAD_FAIL_ATTEMPT_H

#include <jansson.h>

#include "conf.h"
#include "offload_proto.h"
#include "redis_conn.h"

/* How a job's worker went away; decides the answer when no attempt is
 * left (and that job_timeout is never run again). */
typedef enum {
    OFFLOAD_FAIL_SIGNAL = 0,    /* killed by a signal we did not send */
    OFFLOAD_FAIL_EXIT,          /* exited without finishing the job */
    OFFLOAD_FAIL_MEMORY_LIMIT,  /* the job ran out of RLIMIT_AS */
    OFFLOAD_FAIL_ALLOCATION,    /* an allocation failed with no
                                   memory_limit set: the machine's memory,
                                   a ulimit, the overcommit policy */
    OFFLOAD_FAIL_OOM,           /* the kernel's OOM killer */
    OFFLOAD_FAIL_JOB_TIMEOUT,   /* we killed it: the queue's timeout */
    OFFLOAD_FAIL_INIT_TIMEOUT,  /* we killed it: its handler's init ran
                                   past init_timeout (it held no job) */
    OFFLOAD_FAIL_NODE_LOST      /* its whole node vanished: claimed by
                                   another (claim.c), or found pending when
                                   its slot's worker started (worker.c) */
} offload_fail_reason_e;

typedef struct {
    offload_fail_reason_e   reason;
    int                     signal;     /* 0, or the signal that killed it */
    int                     exit_code;  /* -1, or the code a process exited
                                           with on its own: a plugin's
                                           worker, an exec handler's
                                           process (not a worker's code
                                           that says why it left) */
    json_t                 *report;     /* crash report, borrowed; copied
                                           into the dead-letter entry */
    int                     answer_partial; /* bytes of an exec process's
                                           answer without its newline */
} offload_failure_t;

/* How a failure's script ended: run, or not (refused by Redis, or its
 * link lost): then the entry stays pending. */
typedef enum {
    OFFLOAD_FAIL_SETTLED = 0,
    OFFLOAD_FAIL_REFUSED,
    OFFLOAD_FAIL_LINK_LOST
} offload_fail_outcome_e;

typedef void (*offload_fail_done_pt)(void *data,
    offload_fail_outcome_e outcome);

/* "signal", "exit", "memory_limit", "allocation_failed", "oom",
 * "job_timeout", "init_timeout", "node_lost" */
const char *offload_fail_reason_name(offload_fail_reason_e reason);

/* What a job timeout adds when its exec process had written partial bytes
 * of an answer without its newline (a line never flushed), for the log
 * and the 504 alike: into buf, "" when partial is 0. */
const char *offload_partial_hint(char *buf, size_t size, int partial);

/* Fails one attempt of a stream entry of queue q whose worker died while
 * holding it.  entry is the entry as Redis returned it (XRANGE, XAUTOCLAIM,
 * XREADGROUP): [id, [field, value, ...]].  Sends the requeue or the
 * dead-letter script on conn.  Returns 0 and calls done(data, outcome)
 * once Redis answered (or the connection dropped), or returns -1 without
 * calling it when nothing could be sent (or entry has another shape).
 * done may be NULL. */
int offload_fail_attempt(offload_redis_conn_t *conn,
    const offload_conf_t *conf, const offload_conf_queue_t *q,
    const redisReply *entry, const offload_failure_t *failure,
    offload_fail_done_pt done, void *data);

#endif /* OFFLOAD_FAIL_ATTEMPT_H */
