/*
 * handler_faults.c -- handlers that fail on purpose, to test and demonstrate
 * the supervision: crash, abort, exit, hang, leak and flaky.  They are
 * marked `fault`, so a queue can use them only with "fault_handlers on".
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "handler.h"

#define LEAK_MAX_MB  65536


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


static int
crash_run(json_t *input, json_t **output, offload_handler_error_t *err)
{
    (void) input;
    (void) output;

    write_nowhere();
    return offload_handler_fail(err, "survived an invalid write");
}


static int
abort_run(json_t *input, json_t **output, offload_handler_error_t *err)
{
    (void) input;
    (void) output;
    (void) err;

    abort();
}


static int
exit_run(json_t *input, json_t **output, offload_handler_error_t *err)
{
    json_int_t  code = 1;

    (void) output;

    if (json_is_object(input)
        && offload_handler_int_member(input, "code", 0, 255, &code, err) != 0)
    {
        return -1;
    }

    exit((int) code);
}


static int
hang_run(json_t *input, json_t **output, offload_handler_error_t *err)
{
    volatile uint64_t  spins = 0;

    (void) input;
    (void) output;

    /* 2^64 spins: forever, for any timeout that matters */
    do {
        spins++;
    } while (spins != 0);

    return offload_handler_fail(err, "hang ended");
}


/* What leak keeps: reachable from here, so valgrind calls it "still
 * reachable" rather than lost. */
static void  **leaked;
static size_t  nleaked;


static int
leak_run(json_t *input, json_t **output, offload_handler_error_t *err)
{
    void        *block, **list;
    json_int_t   mb = 1;
    size_t       bytes;

    if (json_is_object(input)
        && offload_handler_int_member(input, "mb", 0, LEAK_MAX_MB, &mb, err)
           != 0)
    {
        return -1;
    }

    bytes = (size_t) mb * 1024 * 1024;

    list = realloc(leaked, (nleaked + 1) * sizeof(void *));
    block = list ? malloc(bytes ? bytes : 1) : NULL;

    if (list) {
        leaked = list;
    }

    if (block == NULL) {
        offload_handler_fail(err, "out of memory leaking %lld MB",
                             (long long) mb);
        return OFFLOAD_HANDLER_NOMEM;
    }

    memset(block, 0xa5, bytes);     /* touch every page: it counts in RSS */
    leaked[nleaked++] = block;

    *output = json_pack("{s:I}", "leaked_mb", (json_int_t) nleaked * mb);
    return 0;
}


static int
flaky_run(json_t *input, json_t **output, offload_handler_error_t *err)
{
    json_t  *rate;

    rate = json_is_object(input) ? json_object_get(input, "fail_rate") : NULL;

    if (rate != NULL && (!json_is_number(rate) || json_number_value(rate) < 0
                         || json_number_value(rate) > 1))
    {
        return offload_handler_fail(err, "fail_rate must be a number in "
                                    "0..1");
    }

    if (rate != NULL && random() < json_number_value(rate) * RAND_MAX) {
        write_nowhere();
    }

    *output = json_incref(input);
    return 0;
}


const offload_handler_t  offload_handler_crash = { "crash", crash_run, 1 };
const offload_handler_t  offload_handler_abort = { "abort", abort_run, 1 };
const offload_handler_t  offload_handler_exit = { "exit", exit_run, 1 };
const offload_handler_t  offload_handler_hang = { "hang", hang_run, 1 };
const offload_handler_t  offload_handler_leak = { "leak", leak_run, 1 };
const offload_handler_t  offload_handler_flaky = { "flaky", flaky_run, 1 };
