/*
 * handler.h -- the internal interface between a worker and the code that
 * does a job.
 *
 * A handler is a name and one function: it gets the job's payload parsed as
 * JSON and either sets *output to a new reference and returns 0, or fills
 * err and returns -1.  It runs synchronously in a worker process, so it may
 * block and burn CPU as long as the job needs.  The registry in handlers.c
 * maps names to handlers; one file per handler (handler_<name>.c).
 */

#ifndef OFFLOAD_HANDLER_H
#define OFFLOAD_HANDLER_H

#include <jansson.h>

typedef struct {
    const char  *message;     /* static text, or points into buf */
    char         buf[256];
} offload_handler_error_t;

/* Returned by a handler that ran out of memory (RLIMIT_AS, memory_limit):
 * the worker exits without answering and the job counts as a failed
 * attempt, so a fresh worker may run it again. */
#define OFFLOAD_HANDLER_NOMEM  -2

typedef int (*offload_handler_run_pt)(json_t *input, json_t **output,
    offload_handler_error_t *err);

typedef struct {
    const char              *name;
    offload_handler_run_pt   run;
    int                      fault;   /* crashes on purpose: needs
                                         "fault_handlers on" */
} offload_handler_t;

/* Returns the handler registered under name, or NULL. */
const offload_handler_t *offload_handler_find(const char *name);

/* Formats a message into err->buf, points err->message at it, returns -1:
 * `return offload_handler_fail(err, "ms must be ...");` */
int offload_handler_fail(offload_handler_error_t *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Reads an optional integer member of an object into *value, checking
 * [min, max].  A missing member leaves *value alone.  Returns 0, or -1 with
 * err saying what is wrong. */
int offload_handler_int_member(json_t *obj, const char *key, json_int_t min,
    json_int_t max, json_int_t *value, offload_handler_error_t *err);

/* Reads the {"ms": n} input of the timing handlers (spin, sleep): an
 * object with a required integer "ms" in [0, max].  Returns 0, or -1 with
 * err saying what is wrong. */
int offload_handler_ms_input(json_t *input, json_int_t max, json_int_t *ms,
    offload_handler_error_t *err);

extern const offload_handler_t  offload_handler_echo;
extern const offload_handler_t  offload_handler_sha256;
extern const offload_handler_t  offload_handler_spin;
extern const offload_handler_t  offload_handler_sleep;
extern const offload_handler_t  offload_handler_aggregate;
extern const offload_handler_t  offload_handler_crash;
extern const offload_handler_t  offload_handler_abort;
extern const offload_handler_t  offload_handler_exit;
extern const offload_handler_t  offload_handler_hang;
extern const offload_handler_t  offload_handler_leak;
extern const offload_handler_t  offload_handler_flaky;

#endif /* OFFLOAD_HANDLER_H */
