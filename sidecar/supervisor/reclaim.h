/*
 * reclaim.h -- what the supervisor does with the jobs of a worker that is
 * gone: the job it was running fails one attempt (run again at once, or
 * dead-lettered and answered when no attempt is left), the jobs it had
 * prefetched but not started go back to the queue unchanged.
 *
 * The job's attempt is failed by fail_attempt.c, which also serves the
 * workers of a lost node (claim.c, after claim_idle).
 */

#ifndef OFFLOAD_RECLAIM_H
#define OFFLOAD_RECLAIM_H

#include "conf.h"
#include "fail_attempt.h"
#include "redis_conn.h"

typedef void (*offload_reclaim_done_pt)(void *data);

/* After a worker of q exited: when it held a job (held_entry not NULL, with
 * failure), reads that entry and fails its attempt; then hands the rest of
 * the consumer's pending entries back to the queue.  A stopped worker's
 * job (failure NULL) goes back with the rest, marked interrupted (its run
 * was cut short, not failed).  Returns 0 and
 * calls done(data) when all of it is over, or -1 without calling it when
 * Redis is not connected. */
int offload_reclaim_worker(offload_redis_conn_t *conn,
    const offload_conf_t *conf, const offload_conf_queue_t *q,
    const char *consumer, const char *held_entry,
    const offload_failure_t *failure, offload_reclaim_done_pt done,
    void *data);

#endif /* OFFLOAD_RECLAIM_H */
