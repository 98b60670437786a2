/*
 * cancel.h -- running async jobs cancelled by DELETE /jobs/<id> (the
 * module's offload_cancel_running on): the supervisor stops the worker
 * that runs one.
 */

#ifndef OFFLOAD_CANCEL_H
#define OFFLOAD_CANCEL_H

struct offload_supervisor_s;

/* Supervisor: every OFFLOAD_CANCEL_ROUND_S, while one of its workers is
 * busy, takes the node's cancel list (OFFLOAD_CANCEL_FMT) and SIGKILLs each
 * worker still running a job named there, its slot marked cancelled. */
#define OFFLOAD_CANCEL_ROUND_S  0.1
#define OFFLOAD_CANCEL_BATCH    100

void offload_cancel_round(struct offload_supervisor_s *sup);

#endif /* OFFLOAD_CANCEL_H */
