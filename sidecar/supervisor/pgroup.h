/*
 * pgroup.h -- each worker's process group (the worker leads it from its
 * fork on, spawn() in supervisor.c): what the supervisor kills when it
 * kills a worker, and sweeps when it reaps one.
 */

#ifndef OFFLOAD_PGROUP_H
#define OFFLOAD_PGROUP_H

#include <sys/types.h>

#include "supervisor.h"

/* SIGKILLs the slot's worker and all its group: its exec process and
 * whatever a handler started.  Returns kill's result (errno set). */
int offload_slot_kill(offload_slot_t *slot);

/* Right after the slot's worker pid was reaped: SIGKILLs what is left of
 * its group, logged when something was. */
void offload_pgroup_sweep(offload_slot_t *slot, pid_t pid);

#endif /* OFFLOAD_PGROUP_H */
