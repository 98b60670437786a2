/*
 * sleep.c -- "sleep": {"ms": 0..600000} sleeps that long and answers
 * {"ms": <ms slept>}.  A stand-in for work that waits on something else.
 */

#include <errno.h>

#include "clock.h"
#include "builtin.h"

#define SLEEP_MAX_MS  600000


static int
sleep_work(offload_job_t *job, json_t *input, json_t **output)
{
    json_int_t       ms;
    int64_t          start;
    struct timespec  left;

    if (offload_builtin_ms_input(job, input, SLEEP_MAX_MS, &ms) != OFFLOAD_OK) {
        return OFFLOAD_ERROR;
    }

    start = offload_mono_us();
    left.tv_sec = (time_t) (ms / 1000);
    left.tv_nsec = (long) (ms % 1000) * 1000000;

    /* A signal (SIGTERM asks for a graceful stop) must not cut it short. */
    while (nanosleep(&left, &left) == -1 && errno == EINTR) {
        /* sleep the rest */
    }

    *output = json_pack("{s:I}", "ms",
                        (json_int_t) ((offload_mono_us() - start) / 1000));
    return OFFLOAD_OK;
}


static int
sleep_run(offload_job_t *job, const char *payload, size_t len)
{
    return offload_builtin_json(job, payload, len, sleep_work);
}


static const offload_handler_t  handlers[] = {
    { "sleep", sleep_run, NULL, NULL },
    { NULL, NULL, NULL, NULL }
};

const offload_module_t  offload_builtin_sleep = {
    OFFLOAD_ABI_VERSION, handlers
};
