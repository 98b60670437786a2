/*
 * claim.h -- jobs of lost nodes: a node whose supervisor and workers all
 * vanished (a host gone) leaves entries pending under its consumers, and
 * nobody else would ever run them.  Every supervisor takes such entries
 * over once they have been idle for claim_idle and fails their attempt.
 */

#ifndef OFFLOAD_CLAIM_H
#define OFFLOAD_CLAIM_H

struct offload_supervisor_s;

/* One round, run every claim_idle / 2: touch this node's own entries
 * (so they never look idle), then XAUTOCLAIM idle ones in every queue. */
void offload_claim_round(struct offload_supervisor_s *sup);

#endif /* OFFLOAD_CLAIM_H */
