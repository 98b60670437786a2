/*
 * builtin.h -- offload's own handlers, each file a module as a plugin's
 * would be (offload.h), and what those written with jansson share.
 */

#ifndef OFFLOAD_BUILTIN_H
#define OFFLOAD_BUILTIN_H

#include <jansson.h>

#include "offload.h"

/* A handler's work on the payload parsed by jansson: sets *output to a new
 * reference and returns OFFLOAD_OK, or fails the job (offload_job_fail) or
 * returns OFFLOAD_NOMEM. */
typedef int (*offload_builtin_json_pt)(offload_job_t *job, json_t *input,
    json_t **output);

/* Runs work on the payload parsed and answers with its output encoded:
 * the whole of a jansson handler's run. */
int offload_builtin_json(offload_job_t *job, const char *payload, size_t len,
    offload_builtin_json_pt work);

/* Reads an optional integer member of an object into *value, checking
 * [min, max].  A missing member leaves *value alone.  Returns OFFLOAD_OK,
 * or fails the job saying what is wrong. */
int offload_builtin_int_member(offload_job_t *job, json_t *obj,
    const char *key, json_int_t min, json_int_t max, json_int_t *value);

/* Reads the {"ms": n} input of the timing handlers (spin, sleep): an
 * object with a required integer "ms" in [0, max]. */
int offload_builtin_ms_input(offload_job_t *job, json_t *input,
    json_int_t max, json_int_t *ms);

extern const offload_module_t  offload_builtin_echo;
extern const offload_module_t  offload_builtin_sha256;
extern const offload_module_t  offload_builtin_spin;
extern const offload_module_t  offload_builtin_sleep;
extern const offload_module_t  offload_builtin_aggregate;
extern const offload_module_t  offload_builtin_faults;  /* crash on
                                                            purpose */

#endif /* OFFLOAD_BUILTIN_H */
