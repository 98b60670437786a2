/*
 * offload.h -- the interface between offload's workers and the handlers
 * that do their jobs: the only header a handler plugin includes.
 *
 * A plugin is a shared object that defines one symbol, offload_module, an
 * offload_module_t naming the ABI version it was built for and its
 * handlers.  The sidecar loads it with `load_module /path/to/lib.so;`
 * before it forks its workers; a queue runs one of its handlers by name
 * (`handler example.reverse;`).
 *
 * A handler runs in a worker process, one job at a time, and may block and
 * burn CPU as long as the job needs: the supervisor enforces the queue's
 * timeout and memory limit, restarts a worker that crashes and runs the job
 * again or dead-letters it.  It gets the job's payload as the bytes of one
 * well-formed JSON text (checked by offload before the call) and answers
 * with offload_job_result() or fails with offload_job_fail() (for good)
 * or offload_job_retry() (for now: it may run again later).
 *
 * Compatibility: a plugin names the ABI version it was built against; a
 * sidecar runs plugins of its own version and of every earlier one, reading
 * each with the layout of its version.  Members are only ever added at the
 * end of the structs, with a new version; a function is never changed.
 */

#ifndef OFFLOAD_H
#define OFFLOAD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define OFFLOAD_ABI_VERSION  1

/* Visible from a plugin built with -fvisibility=hidden too. */
#if defined(__GNUC__)
#define OFFLOAD_EXPORT  __attribute__((visibility("default")))
#else
#define OFFLOAD_EXPORT
#endif

/* What a handler's run returns. */
#define OFFLOAD_OK      0   /* answered with offload_job_result() */
#define OFFLOAD_ERROR  -1   /* failed with offload_job_fail() */
#define OFFLOAD_NOMEM  -2   /* out of memory: the worker exits without an
                               answer, the attempt fails and a fresh worker
                               may run the job again */

/* The job being run: valid only during the handler's run. */
typedef struct offload_job_s  offload_job_t;

/* The worker a handler's init and fini run in. */
typedef struct offload_slot_s  offload_slot_t;

typedef struct {
    /* What a queue's `handler` names, e.g. "example.reverse": 1 to 64
     * letters, digits, '.', '_' and '-'; unique among every loaded
     * handler. */
    const char  *name;

    /* Runs one job; payload is len bytes, not NUL-terminated, and read
     * only: a result that is those very bytes (an echo) is not checked as
     * JSON again. */
    int        (*run)(offload_job_t *job, const char *payload, size_t len);

    /* Optional (NULL): once in each worker process that runs this handler,
     * after it is forked and before its first job (load a model, open a
     * cache).  Non-zero: the worker exits, which counts as a crash of its
     * slot. */
    int        (*init)(const offload_slot_t *slot);

    /* Optional (NULL): when such a worker stops normally. */
    void       (*fini)(const offload_slot_t *slot);
} offload_handler_t;

typedef struct {
    unsigned int              abi_version;  /* OFFLOAD_ABI_VERSION, first */
    const offload_handler_t  *handlers;     /* ends with { NULL } */
} offload_module_t;

/* A plugin defines:
 *     const offload_module_t  offload_module = { OFFLOAD_ABI_VERSION, h };
 */
extern OFFLOAD_EXPORT const offload_module_t  offload_module;


/* The queue the worker serves, NUL-terminated. */
const char *offload_slot_queue(const offload_slot_t *slot);

/* The worker's slot in its queue's pool: 0 .. workers - 1. */
int offload_slot_index(const offload_slot_t *slot);


/* The job's id (32 hex digits), NUL-terminated. */
const char *offload_job_id(const offload_job_t *job);

/* The request id nginx gave it ($request_id), or "" if none. */
const char *offload_job_request_id(const offload_job_t *job);

/* The W3C traceparent of the job ("00-<trace id>-<parent id>-<flags>",
 * 55 characters; the parent is nginx's span for the request), or "" for a
 * job submitted without one; and its tracestate, or "". */
const char *offload_job_traceparent(const offload_job_t *job);
const char *offload_job_tracestate(const offload_job_t *job);

/* 1 on the first run, 2 when a worker died under the first, ... */
int offload_job_attempt(const offload_job_t *job);

/* 1 when a run of this job may have begun before and done part of its
 * work: an attempt after the first, a run a stop cut short (the job handed
 * back, its attempt unchanged), or the job read again after its worker's
 * node lost Redis under it; 0 on a first run.  A handler whose work is not
 * idempotent looks before doing it again.  A new function of ABI version
 * 1: a plugin that calls it needs a sidecar that has it. */
int offload_job_ran_before(const offload_job_t *job);

/* When the client stops waiting, in ms since the epoch by this host's clock
 * (however far it is from Redis'); 0: no deadline. */
int64_t offload_job_deadline(const offload_job_t *job);

/* Answers the job with len bytes of JSON, copied: the caller keeps its
 * buffer.  Returns OFFLOAD_OK, or OFFLOAD_ERROR if json is not one
 * well-formed JSON text (the job then fails with 500 bad_result) or
 * OFFLOAD_NOMEM.  A later call replaces the answer. */
int offload_job_result(offload_job_t *job, const char *json, size_t len);

/* Fails the job: the client gets 422 and {"error": {"code": code,
 * "message": ...}}.  code is 1 to 63 letters, digits and '_' (NULL or
 * anything else: "handler_error"); fmt is a printf format (not NULL), the
 * message UTF-8, cut at 255 bytes (at a character boundary).  Returns
 * OFFLOAD_ERROR, for `return offload_job_fail(...);`. */
int offload_job_fail(offload_job_t *job, const char *code,
    const char *fmt, ...)
#ifdef __GNUC__
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Fails this attempt of the job, as offload_job_fail() does, but as a
 * transient failure (a service down, a lock taken): the job runs again
 * after the queue's retry_backoff, in a worker of any node, while it has
 * attempts left (max_attempts, shared with the runs its workers died
 * under) and its next attempt is due before its deadline.  Otherwise this
 * failure is its answer: 422 with code and the message.  Returns
 * OFFLOAD_ERROR, for `return offload_job_retry(...);`. */
int offload_job_retry(offload_job_t *job, const char *code,
    const char *fmt, ...)
#ifdef __GNUC__
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Handler metrics (docs/HANDLERS.md, "Metrics"): adds n to a counter, or
 * one observation of value to a histogram, under a name the handler
 * chooses: 1 to 47 ASCII letters, digits, '.', '_' and '-', starting with
 * a letter ("thumbs.bytes_in"); it is exported as offload_handler_<name>
 * with '.' and '-' as '_' and letters in lower case.  A call costs a few
 * atomic adds in memory the worker shares with its node, which publishes
 * the queue's totals in offload_metrics, offload_status and the dashboard.
 * A queue has room for 64 names; a name past them is refused (logged
 * once).  Returns OFFLOAD_OK, or OFFLOAD_ERROR for a bad name, a value
 * that is not finite or a refused name. */
int offload_metric_count(offload_job_t *job, const char *name, uint64_t n);
int offload_metric_observe(offload_job_t *job, const char *name,
    double value);

/* A line in the sidecar's log at info, warn or error level (shown when
 * the configured level lets it through): "worker <queue>:<slot>: handler:
 * " and the printf-style message, with what the worker's every line
 * carries while a job runs (its id, request id and trace id).  Callable
 * from run, init and fini.  A message is cut at 2047 bytes; control
 * characters are shown as '?' in text logs. */
void offload_log_info(const char *fmt, ...)
#ifdef __GNUC__
    __attribute__((format(printf, 1, 2)))
#endif
    ;
void offload_log_warn(const char *fmt, ...)
#ifdef __GNUC__
    __attribute__((format(printf, 1, 2)))
#endif
    ;
void offload_log_error(const char *fmt, ...)
#ifdef __GNUC__
    __attribute__((format(printf, 1, 2)))
#endif
    ;

#ifdef __cplusplus
}
#endif

#endif /* OFFLOAD_H */
