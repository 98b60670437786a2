/*
 * fnv.h -- FNV-1a, 64 bits: a fast hash of short strings (a table's keys,
 * a job id), in one place for the handlers and the supervisor.
 */

#ifndef OFFLOAD_FNV_H
#define OFFLOAD_FNV_H

#include <stddef.h>
#include <stdint.h>

static inline uint64_t
offload_fnv1a(const char *s, size_t len)
{
    size_t    i;
    uint64_t  h = 14695981039346656037ULL;

    for (i = 0; i < len; i++) {
        h = (h ^ (unsigned char) s[i]) * 1099511628211ULL;
    }

    return h;
}

#endif /* OFFLOAD_FNV_H */
