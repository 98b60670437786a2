/*
 * clock.h -- the two clocks the sidecar uses: wall time in ms since the
 * epoch (deadlines and submit times travel in it) and a monotonic clock in
 * microseconds (run times, spinning).
 */

#ifndef OFFLOAD_CLOCK_H
#define OFFLOAD_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t
offload_wall_us(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static inline int64_t
offload_wall_ms(void)
{
    return offload_wall_us() / 1000;
}

static inline int64_t
offload_mono_us(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

#endif /* OFFLOAD_CLOCK_H */
