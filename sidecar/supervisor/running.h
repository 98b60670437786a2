/*
 * running.h -- the job each busy worker of this node runs, told to Redis
 * (OFFLOAD_RUNNING_FMT), for the slot's next worker after the whole node's
 * death.
 */

#ifndef OFFLOAD_RUNNING_H
#define OFFLOAD_RUNNING_H

struct offload_supervisor_s;

/* Supervisor: every OFFLOAD_CANCEL_ROUND_S (0.1 s), for each busy slot
 * whose job the slot's last mark did not name, HSET of its consumer's
 * field in its queue's OFFLOAD_RUNNING_FMT hash; for a slot turned idle
 * since its last mark, HDEL of it. */
void offload_running_round(struct offload_supervisor_s *sup);

#endif /* OFFLOAD_RUNNING_H */
