/*
 * worker.h -- one worker process: takes a queue's jobs from its Redis
 * stream, runs the queue's handler and completes each job.
 */

#ifndef OFFLOAD_WORKER_H
#define OFFLOAD_WORKER_H

#include <signal.h>

#include <ev.h>

#include "conf.h"
#include "scoreboard.h"

/* Runs the worker of the queue's slot on loop until SIGTERM/SIGINT,
 * keeping sb (the slot's scoreboard entry) up to date.  Returns the
 * process's exit status.  Called with the signals of
 * offload_worker_signals() blocked, it unblocks them once its own watchers
 * are in place: one sent meanwhile is handled, not lost. */
int offload_worker_run(struct ev_loop *loop, const offload_conf_t *conf,
    const offload_conf_queue_t *queue, int slot, offload_sb_slot_t *sb);

/* Fills set with the signals a worker handles: SIGTERM and SIGINT (stop
 * after the batch), SIGUSR1 (reopen the log). */
void offload_worker_signals(sigset_t *set);

#endif /* OFFLOAD_WORKER_H */
