/*
 * job.c -- offload.h's functions (job.h): the job handle's accessors, the
 * answer a handler leaves in it and how that answer becomes a status; the
 * slot's accessors.
 *
 * A handler's result is copied into a buffer the handle keeps from job to
 * job, so a worker allocates for results only while they grow.  It is
 * checked to be one JSON text, as every payload is before the handler sees
 * it: nginx answers the bytes as application/json without looking again.
 * A result that is the payload itself (echo's) was checked as it.
 */

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "job.h"
#include "log.h"
#include "offload_hugepage.h"
#include "offload_proto.h"

#define DEFAULT_CODE  "handler_error"


/* src may be NULL when len is 0 (a field the entry does not have). */
static void
copy_str(char *dst, const char *src, size_t len)
{
    if (len > OFFLOAD_JOB_STR_MAX) {
        len = OFFLOAD_JOB_STR_MAX;
    }

    if (len > 0) {
        memcpy(dst, src, len);
    }

    dst[len] = '\0';
}


void
offload_job_set(offload_job_t *job, const char *id, size_t idlen,
    const char *request_id, size_t ridlen, int attempt, int64_t deadline_ms)
{
    copy_str(job->id, id, idlen);
    copy_str(job->request_id, request_id, ridlen);
    job->traceparent[0] = '\0';
    job->tracestate[0] = '\0';
    job->attempt = attempt;
    job->ran_before = attempt > 1;
    job->deadline_ms = deadline_ms;
    job->status = 0;
    job->result_len = 0;
    job->code[0] = '\0';
    job->message[0] = '\0';
    job->retry = 0;
}


int
offload_job_ran_before(const offload_job_t *job)
{
    return job->ran_before;
}


const char *
offload_job_id(const offload_job_t *job)
{
    return job->id;
}


const char *
offload_job_request_id(const offload_job_t *job)
{
    return job->request_id;
}


void
offload_job_set_trace(offload_job_t *job, const offload_str_t *tp,
    const offload_str_t *ts)
{
    offload_str_copy(job->traceparent, sizeof(job->traceparent), tp->data,
                     tp->len);
    offload_str_copy(job->tracestate, sizeof(job->tracestate), ts->data,
                     ts->len);
}


const char *
offload_job_traceparent(const offload_job_t *job)
{
    return job->traceparent;
}


const char *
offload_job_tracestate(const offload_job_t *job)
{
    return job->tracestate;
}


int
offload_job_attempt(const offload_job_t *job)
{
    return job->attempt;
}


int64_t
offload_job_deadline(const offload_job_t *job)
{
    return job->deadline_ms;
}


/* A job without a table (offloadctl replay) records nothing, but a bad
 * name or value fails as it would in a worker. */
static int
name_ok(const char *name, int observed)
{
    char  exported[OFFLOAD_HM_NAME_MAX];

    return offload_hm_name(name, exported) == 0
           && (!observed || offload_hm_observable(exported));
}


int
offload_metric_count(offload_job_t *job, const char *name, uint64_t n)
{
    if (job->metrics == NULL) {
        return name_ok(name, 0) ? OFFLOAD_OK : OFFLOAD_ERROR;
    }

    return offload_hm_count(job->metrics, name, n) == 0 ? OFFLOAD_OK
                                                         : OFFLOAD_ERROR;
}


int
offload_metric_observe(offload_job_t *job, const char *name, double value)
{
    if (job->metrics == NULL) {
        return name_ok(name, 1) && isfinite(value) ? OFFLOAD_OK
                                                   : OFFLOAD_ERROR;
    }

    return offload_hm_observe(job->metrics, name, value) == 0
           ? OFFLOAD_OK : OFFLOAD_ERROR;
}


const char *
offload_slot_queue(const offload_slot_t *slot)
{
    return slot->queue;
}


int
offload_slot_index(const offload_slot_t *slot)
{
    return slot->index;
}


static void
set_error(offload_job_t *job, int status, const char *code,
    const char *message)
{
    job->status = status;
    job->result_len = 0;
    job->retry = 0;
    snprintf(job->code, sizeof(job->code), "%s", code);
    snprintf(job->message, sizeof(job->message), "%s", message);
}


char *
offload_job_result_room(offload_job_t *job, size_t len)
{
    char  *buf;

    if (len > job->result_cap) {
        /* what the buffer held is not kept: a big one is new memory,
         * advised onto huge pages before it is written
         * (offload_hugepage.c); out of memory, the result so far stays */
        if (len < OFFLOAD_HUGEPAGE_MIN) {
            buf = realloc(job->result, len);

        } else {
            buf = malloc(len);
            offload_hugepage_advise(buf, len);

            if (buf != NULL) {
                free(job->result);
            }
        }

        if (buf == NULL) {
            return NULL;
        }

        job->result = buf;
        job->result_cap = len;
    }

    job->result_len = len;
    job->status = 200;
    return job->result;
}


void
offload_job_bad_result(offload_job_t *job, const char *err, size_t offset)
{
    char  why[OFFLOAD_JOB_MESSAGE_MAX];

    if (err == offload_json_too_deep) {
        snprintf(why, sizeof(why), "the handler's result nests deeper than "
                 "%d levels, the limit of a job's payload and result",
                 OFFLOAD_JSON_MAX_DEPTH);
    } else {
        snprintf(why, sizeof(why), "the handler's result is not JSON: %s "
                 "at byte %zu", err, offset);
    }

    set_error(job, 500, "bad_result", why);
}


int
offload_job_result(offload_job_t *job, const char *json, size_t len)
{
    char        *buf;
    size_t       offset;
    const char  *err;

    if (!(json == job->payload && len == job->payload_len)
        && offload_json_check(json, len, &offset, &err) != 0)
    {
        offload_job_bad_result(job, err, offset);
        return OFFLOAD_ERROR;
    }

    buf = offload_job_result_room(job, len);
    if (buf == NULL) {
        return OFFLOAD_NOMEM;
    }

    memcpy(buf, json, len);
    return OFFLOAD_OK;
}


static int
valid_code(const char *code)
{
    size_t  i, n = strlen(code);

    if (n == 0 || n >= OFFLOAD_JOB_CODE_MAX) {
        return 0;
    }

    for (i = 0; i < n; i++) {
        if (!(code[i] == '_' || (code[i] >= 'a' && code[i] <= 'z')
              || (code[i] >= 'A' && code[i] <= 'Z')
              || (code[i] >= '0' && code[i] <= '9')))
        {
            return 0;
        }
    }

    return 1;
}


/* A message cut at its buffer's end must not end inside a UTF-8
 * sequence: drops such a tail. */
static void
cut_at_character(char *text, size_t len)
{
    size_t         lead = len, want;
    unsigned char  c;

    while (lead > 0 && ((unsigned char) text[lead - 1] & 0xc0) == 0x80) {
        lead--;
    }

    if (lead == 0) {
        return;
    }

    c = (unsigned char) text[lead - 1];
    want = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;

    if (len - (lead - 1) < want) {
        text[lead - 1] = '\0';
    }
}


static void
fail_with(offload_job_t *job, int retry, const char *code, const char *fmt,
    va_list ap)
{
    int         n, bad_code = code != NULL && !valid_code(code);
    static int  said;

    job->status = 422;
    job->result_len = 0;
    job->retry = retry;
    snprintf(job->code, sizeof(job->code), "%s",
             code != NULL && !bad_code ? code : DEFAULT_CODE);

    /* a handler's bug, said once a worker: every job of it would say so */
    if (bad_code && !said) {
        log_warn("a handler failed a job with the code \"%.64s\", which "
                 "is not 1 to %d letters, digits and '_': answered as "
                 "\"" DEFAULT_CODE "\" (said once a worker)", code,
                 OFFLOAD_JOB_CODE_MAX - 1);
        said = 1;
    }

    n = vsnprintf(job->message, sizeof(job->message), fmt, ap);

    if (n >= (int) sizeof(job->message)) {
        cut_at_character(job->message, sizeof(job->message) - 1);
    }
}


int
offload_job_fail(offload_job_t *job, const char *code, const char *fmt, ...)
{
    va_list  ap;

    va_start(ap, fmt);
    fail_with(job, 0, code, fmt, ap);
    va_end(ap);

    return OFFLOAD_ERROR;
}


int
offload_job_retry(offload_job_t *job, const char *code, const char *fmt, ...)
{
    va_list  ap;

    va_start(ap, fmt);
    fail_with(job, 1, code, fmt, ap);
    va_end(ap);

    return OFFLOAD_ERROR;
}


int
offload_job_call(offload_job_t *job, const offload_handler_t *handler,
    const char *payload, size_t len)
{
    int           rc;
    char          why[80];
    size_t        offset;
    const char   *err;
    static pid_t  worker_pid;

    if (worker_pid == 0) {
        worker_pid = getpid();
    }

    if (offload_json_check_payload(payload, len, &offset, &err) != 0) {
        offload_job_fail(job, NULL, "invalid JSON payload: %s at byte %zu",
                         err, offset);
        return OFFLOAD_OK;
    }

    /* the payload is const to run: these bytes stay the JSON just checked */
    job->payload = payload;
    job->payload_len = len;
    rc = handler->run(job, payload, len);
    job->payload = NULL;

    /* A child the handler forked that returned from run instead of
     * leaving by _exit(): went on, it would run the worker's loop beside
     * it, on the same Redis link (replies crossed, "protocol error"). */
    if (getpid() != worker_pid) {
        log_error("a process the handler \"%s\" forked (pid %d) returned "
                  "from it into the worker: ended; a child must leave by "
                  "_exit() or exec", handler->name, (int) getpid());
        _exit(127);
    }

    if (rc == OFFLOAD_NOMEM) {
        return OFFLOAD_NOMEM;
    }

    /* A failure or a result that is not JSON stands, whatever run
     * returned; otherwise run's return says which of the two it meant. */
    if (job->status == 422 || job->status == 500) {
        return OFFLOAD_OK;
    }

    if (rc != OFFLOAD_OK) {
        snprintf(why, sizeof(why), "the handler failed (its run returned "
                 "%d without offload_job_fail())", rc);
        set_error(job, 422, DEFAULT_CODE, why);

    } else if (job->status != 200) {
        set_error(job, 500, "bad_result", "the handler answered nothing");
    }

    return OFFLOAD_OK;
}


void
offload_job_trim(offload_job_t *job, size_t keep)
{
    if (job->result_cap > keep) {
        free(job->result);
        job->result = NULL;
        job->result_cap = 0;
        job->result_len = 0;
    }
}


char *
offload_job_take_result(offload_job_t *job)
{
    char  *result = job->result;

    job->result = NULL;
    job->result_cap = 0;
    job->result_len = 0;
    return result;
}
