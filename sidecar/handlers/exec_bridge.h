/*
 * exec_bridge.h -- the "exec" handler: a queue's jobs run by a program in
 * any language, one long-lived process per worker, spoken to in JSON lines
 * on its stdin and stdout (docs/HANDLERS.md, "Write a handler in Python").
 */

#ifndef OFFLOAD_EXEC_BRIDGE_H
#define OFFLOAD_EXEC_BRIDGE_H

#include <ev.h>

#include "conf.h"
#include "offload.h"
#include "scoreboard.h"

/* The built-in module that defines the handler "exec". */
extern const offload_module_t  offload_exec_module;

/* Whether handler is the exec handler. */
int offload_exec_is(const offload_handler_t *handler);

/* 0 when every exec queue's program (its command's first word) names a
 * file execvp() would run (exec_program.c: offload-sidecar -t); else -1
 * with err naming the first that does not, with its file and line. */
int offload_exec_programs_check(const offload_conf_t *conf, char *err,
    size_t errlen);

/* Called by a worker of an exec queue before the handler's init (which
 * starts the process): the queue (its command), the slot's scoreboard
 * entry, the worker's name for log lines, the loop that reads the
 * process's stderr between jobs, and what to call when the process dies
 * between jobs: lost(data) stops the worker, which exits with
 * OFFLOAD_WORKER_EXIT_HANDLER. */
void offload_exec_attach(struct ev_loop *loop,
    const offload_conf_queue_t *queue, offload_sb_slot_t *sb,
    const char *name, void (*lost)(void *data), void *data);

/* Called by the worker before it starts a job: 0 when the process may run
 * it; -1 when it is gone, or has written to its stdout since its last
 * answer (or closed it), or closed its stdin: then it is ended, its
 * failure recorded as one between jobs, and the worker told to stop
 * (lost()), the job left pending, not charged. */
int offload_exec_check(void);

/* The handler process's resident set in bytes (0 when there is none), for
 * memory_limit: it counts with the worker's own. */
long long offload_exec_rss_bytes(void);

#endif /* OFFLOAD_EXEC_BRIDGE_H */
