/*
 * shm.h -- memory the supervisor shares with the workers it forks: an
 * anonymous shared mapping, made before the fork, that both sides see
 * after it (a worker's scoreboard slot, a queue's handler metrics).
 */

#ifndef OFFLOAD_SHM_H
#define OFFLOAD_SHM_H

#include <stddef.h>

/* Maps size zeroed bytes shared with the children forked after it.
 * Returns NULL on failure (errno set). */
void *offload_shm_map(size_t size);

/* Unmaps what offload_shm_map(size) returned; NULL is ignored. */
void offload_shm_unmap(void *p, size_t size);

#endif /* OFFLOAD_SHM_H */
