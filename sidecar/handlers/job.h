/*
 * job.h -- what offload.h hands a handler: the job handle (offload_job_t)
 * with the one way to call a handler with it, and the slot its init and
 * fini run in (offload_slot_t).
 */

#ifndef OFFLOAD_JOB_H
#define OFFLOAD_JOB_H

#include <stddef.h>
#include <stdint.h>

#include "handler_metrics.h"
#include "offload.h"
#include "offload_proto.h"

#define OFFLOAD_JOB_CODE_MAX     64
#define OFFLOAD_JOB_MESSAGE_MAX  256
#define OFFLOAD_JOB_STR_MAX      128

struct offload_job_s {
    char      id[OFFLOAD_JOB_STR_MAX + 1];
    char      request_id[OFFLOAD_JOB_STR_MAX + 1];
    char      traceparent[OFFLOAD_TRACEPARENT_LEN + 1];
    char      tracestate[OFFLOAD_TRACESTATE_MAX + 1];
    int       attempt;
    int       ran_before;           /* a run of it may have begun before */
    int64_t   deadline_ms;

    /* The answer: what the handler last left (offload_job_call() sets
     * status to 200, 422 or 500 from it). */
    int       status;
    char     *result;               /* the copy of a result, kept and
                                       reused from job to job */
    size_t    result_len;
    size_t    result_cap;
    char      code[OFFLOAD_JOB_CODE_MAX];
    char      message[OFFLOAD_JOB_MESSAGE_MAX];
    int       retry;                /* a 422 offload_job_retry() left: the
                                       job may run again later */
    const char *payload;            /* while run runs: its payload, checked
                                       JSON, which a result of the very same
                                       bytes (echo's) is not checked again */
    size_t    payload_len;

    offload_hm_table_t *metrics;    /* its queue's, or NULL (offloadctl
                                       replay): records nothing */
};

struct offload_slot_s {
    const char  *queue;
    int          index;
};

/* Fills in what the accessors give for the next job (strings are cut at
 * OFFLOAD_JOB_STR_MAX) and forgets the last answer. */
void offload_job_set(offload_job_t *job, const char *id, size_t idlen,
    const char *request_id, size_t ridlen, int attempt, int64_t deadline_ms);

/* The job's trace context, as its entry has it (checked by
 * offload_job_decode); offload_job_set forgets the last job's. */
void offload_job_set_trace(offload_job_t *job, const offload_str_t *tp,
    const offload_str_t *ts);

/* Checks that the payload is one JSON text, then runs the handler on it.
 * Returns OFFLOAD_NOMEM, or OFFLOAD_OK with job->status: 200 with
 * job->result, or an error status with job->code and job->message. */
int offload_job_call(offload_job_t *job, const offload_handler_t *handler,
    const char *payload, size_t len);

/* Fails the job 500 bad_result: its result is no JSON text, or nests
 * deeper than OFFLOAD_JSON_MAX_DEPTH (offload_json_check's err, offset). */
void offload_job_bad_result(offload_job_t *job, const char *err,
    size_t offset);

/* For offload's own handlers, which write a result they vouch for in
 * place (no check, no copy), and the exec bridge, whose answer line was
 * checked whole: room for len bytes of it, or NULL. */
char *offload_job_result_room(offload_job_t *job, size_t len);

/* Frees the result buffer when it grew over keep bytes (0: always). */
void offload_job_trim(offload_job_t *job, size_t keep);

/* Gives the result's buffer (malloc'ed) away: the handle forgets it. */
char *offload_job_take_result(offload_job_t *job);

#endif /* OFFLOAD_JOB_H */
