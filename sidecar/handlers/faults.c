/*
 * faults.c -- handlers that fail on purpose, to test and demonstrate
 * the supervision: crash, abort, exit, hang, leak and flaky, and the
 * retries of transient failures: fail_until.  They are
 * the faults module: a queue can use them only with "fault_handlers on".
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "builtin.h"

/* 2^47 bytes at most: more than x86-64's user address space, which no
 * machine grants whatever its memory, so a test can ask for a refusal */
#define LEAK_MAX_MB  (1 << 27)


/* An address in the never-mapped first page, through a volatile the
 * compiler cannot see through: the write below is a real invalid memory
 * access, as a buggy handler's would be.  Not NULL itself, so that
 * UBSan's null check does not turn the crash into a clean exit. */
static volatile uintptr_t  nowhere = 64;


static void
write_nowhere(void)
{
    *(volatile int *) nowhere = 1;
}


/* crash, abort and hang never look at their payload. */
static int
crash_run(offload_job_t *job, const char *payload, size_t len)
{
    (void) payload;
    (void) len;

    write_nowhere();
    return offload_job_fail(job, NULL, "survived an invalid write");
}


static int
abort_run(offload_job_t *job, const char *payload, size_t len)
{
    (void) job;
    (void) payload;
    (void) len;

    abort();
}


static int
exit_work(offload_job_t *job, json_t *input, json_t **output)
{
    json_int_t  code = 1;

    (void) output;

    if (json_is_object(input)
        && offload_builtin_int_member(job, input, "code", 0, 255, &code)
           != OFFLOAD_OK)
    {
        return OFFLOAD_ERROR;
    }

    exit((int) code);
}


static int
hang_run(offload_job_t *job, const char *payload, size_t len)
{
    volatile uint64_t  spins = 0;

    (void) payload;
    (void) len;

    /* 2^64 spins: forever, for any timeout that matters */
    do {
        spins++;
    } while (spins != 0);

    return offload_job_fail(job, NULL, "hang ended");
}


/* What leak keeps: reachable from here, so valgrind calls it "still
 * reachable" rather than lost. */
static void  **leaked;
static size_t  nleaked;


static int
leak_work(offload_job_t *job, json_t *input, json_t **output)
{
    void        *block, **list;
    json_int_t   mb = 1;
    size_t       bytes;

    if (json_is_object(input)
        && offload_builtin_int_member(job, input, "mb", 0, LEAK_MAX_MB, &mb)
           != OFFLOAD_OK)
    {
        return OFFLOAD_ERROR;
    }

    bytes = (size_t) mb * 1024 * 1024;

    list = realloc(leaked, (nleaked + 1) * sizeof(void *));
    block = list ? malloc(bytes ? bytes : 1) : NULL;

    if (list) {
        leaked = list;
    }

    if (block == NULL) {
        offload_job_fail(job, NULL, "out of memory leaking %lld MB",
                         (long long) mb);
        return OFFLOAD_NOMEM;
    }

    memset(block, 0xa5, bytes);     /* touch every page: it counts in RSS */
    leaked[nleaked++] = block;

    *output = json_pack("{s:I}", "leaked_mb", (json_int_t) nleaked * mb);
    return OFFLOAD_OK;
}


static int
flaky_work(offload_job_t *job, json_t *input, json_t **output)
{
    json_t  *rate;

    rate = json_is_object(input) ? json_object_get(input, "fail_rate") : NULL;

    if (rate != NULL && (!json_is_number(rate) || json_number_value(rate) < 0
                         || json_number_value(rate) > 1))
    {
        return offload_job_fail(job, NULL,
                                "fail_rate must be a number in 0..1");
    }

    if (rate != NULL && random() < json_number_value(rate) * RAND_MAX) {
        write_nowhere();
    }

    *output = json_incref(input);
    return OFFLOAD_OK;
}


/* {"attempt_ok": n}: fails for now (offload_job_retry) on every attempt
 * before the n-th, then answers {"attempt": n}. */
static int
fail_until_work(offload_job_t *job, json_t *input, json_t **output)
{
    int         attempt = offload_job_attempt(job);
    json_int_t  ok = 1;

    if (json_is_object(input)
        && offload_builtin_int_member(job, input, "attempt_ok", 1, 1000, &ok)
           != OFFLOAD_OK)
    {
        return OFFLOAD_ERROR;
    }

    if (attempt < ok) {
        return offload_job_retry(job, "not_yet", "attempt %d fails, "
                                 "attempt %lld will do", attempt,
                                 (long long) ok);
    }

    *output = json_pack("{s:i}", "attempt", attempt);
    return OFFLOAD_OK;
}


static int
exit_run(offload_job_t *job, const char *payload, size_t len)
{
    return offload_builtin_json(job, payload, len, exit_work);
}


static int
leak_run(offload_job_t *job, const char *payload, size_t len)
{
    return offload_builtin_json(job, payload, len, leak_work);
}


static int
flaky_run(offload_job_t *job, const char *payload, size_t len)
{
    return offload_builtin_json(job, payload, len, flaky_work);
}


static int
fail_until_run(offload_job_t *job, const char *payload, size_t len)
{
    return offload_builtin_json(job, payload, len, fail_until_work);
}


static const offload_handler_t  handlers[] = {
    { "crash", crash_run, NULL, NULL },
    { "abort", abort_run, NULL, NULL },
    { "exit", exit_run, NULL, NULL },
    { "hang", hang_run, NULL, NULL },
    { "leak", leak_run, NULL, NULL },
    { "flaky", flaky_run, NULL, NULL },
    { "fail_until", fail_until_run, NULL, NULL },
    { NULL, NULL, NULL, NULL }
};

const offload_module_t  offload_builtin_faults = {
    OFFLOAD_ABI_VERSION, handlers
};
