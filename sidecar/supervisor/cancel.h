/*
 * cancel.h -- running async jobs cancelled by DELETE /jobs/<id> (the
 * module's offload_cancel_running on): the supervisor stops the worker
 * that runs one.
 */

#ifndef OFFLOAD_CANCEL_H
#define OFFLOAD_CANCEL_H

struct offload_supervisor_s;

/* Supervisor: every OFFLOAD_CANCEL_ROUND_S, while one of its workers is
 * busy, takes the node's cancel lists (OFFLOAD_CANCEL_FMT, one per queue)
 * and SIGKILLs each worker still running a job named there, its slot
 * marked cancelled; a job not running yet in a live worker is looked for
 * again each round. */
#define OFFLOAD_CANCEL_ROUND_S  0.1
#define OFFLOAD_CANCEL_BATCH    100

/* How long a cancel waits for its job to run in the worker named (the
 * start script's answer, the body read) before it is given up. */
#define OFFLOAD_CANCEL_GRACE_S  10.0

void offload_cancel_round(struct offload_supervisor_s *sup);

#endif /* OFFLOAD_CANCEL_H */
