/*
 * handler_sleep.c -- "sleep": {"ms": 0..600000} sleeps that long and answers
 * {"ms": <ms slept>}.  A stand-in for work that waits on something else.
 */

#include <errno.h>

#include "clock.h"
#include "handler.h"

#define SLEEP_MAX_MS  600000


static int
sleep_run(json_t *input, json_t **output, offload_handler_error_t *err)
{
    json_int_t       ms;
    int64_t          start;
    struct timespec  left;

    if (offload_handler_ms_input(input, SLEEP_MAX_MS, &ms, err) != 0) {
        return -1;
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
    return 0;
}


const offload_handler_t  offload_handler_sleep = { "sleep", sleep_run, 0 };
