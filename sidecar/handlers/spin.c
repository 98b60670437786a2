/*
 * spin.c -- "spin": {"ms": 0..600000} burns CPU for that long
 * (a busy loop on the monotonic clock) and answers {"ms": <ms spun>}.
 * A stand-in for CPU-bound work.
 */

#include "clock.h"
#include "builtin.h"

#define SPIN_MAX_MS  600000


static int
spin_work(offload_job_t *job, json_t *input, json_t **output)
{
    json_int_t  ms;
    int64_t     start, until, now;

    if (offload_builtin_ms_input(job, input, SPIN_MAX_MS, &ms) != OFFLOAD_OK) {
        return OFFLOAD_ERROR;
    }

    start = offload_mono_us();
    until = start + ms * 1000;

    do {
        now = offload_mono_us();
    } while (now < until);

    *output = json_pack("{s:I}", "ms", (json_int_t) ((now - start) / 1000));
    return OFFLOAD_OK;
}


static int
spin_run(offload_job_t *job, const char *payload, size_t len)
{
    return offload_builtin_json(job, payload, len, spin_work);
}


static const offload_handler_t  handlers[] = {
    { "spin", spin_run, NULL, NULL },
    { NULL, NULL, NULL, NULL }
};

const offload_module_t  offload_builtin_spin = {
    OFFLOAD_ABI_VERSION, handlers
};
