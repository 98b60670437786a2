/*
 * check.h -- what every harness does when a property breaks: say which and
 * abort, so that libFuzzer keeps the input as a crash.
 */

#ifndef OFFLOAD_FUZZ_CHECK_H
#define OFFLOAD_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>


static inline void
check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "broken: %s\n", what);
        abort();
    }
}

#endif /* OFFLOAD_FUZZ_CHECK_H */
