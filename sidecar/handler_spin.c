/*
 * handler_spin.c -- "spin": {"ms": 0..600000} burns CPU for that long
 * (a busy loop on the monotonic clock) and answers {"ms": <ms spun>}.
 * A stand-in for CPU-bound work.
 */

#include "clock.h"
#include "handler.h"

#define SPIN_MAX_MS  600000


static int
spin_run(json_t *input, json_t **output, offload_handler_error_t *err)
{
    json_int_t  ms;
    int64_t     start, until, now;

    if (offload_handler_ms_input(input, SPIN_MAX_MS, &ms, err) != 0) {
        return -1;
    }

    start = offload_mono_us();
    until = start + ms * 1000;

    do {
        now = offload_mono_us();
    } while (now < until);

    *output = json_pack("{s:I}", "ms", (json_int_t) ((now - start) / 1000));
    return 0;
}


const offload_handler_t  offload_handler_spin = { "spin", spin_run, 0 };
