/*
 * hugepage_test.c -- offload_hugepage_advise() (proto/offload_hugepage.c)
 * advises exactly the whole huge pages inside a big buffer, and nothing of
 * a small one or outside it; where the kernel gives advised memory huge
 * pages, a big buffer written after the advice is on them.  Read from
 * /proc/self/smaps; printed as TAP.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "offload_hugepage.h"
#include "tap.h"


typedef struct {
    uintptr_t  start, end;
    long       huge_kb;         /* its AnonHugePages */
} advised_t;


/* The mappings of this process advised MADV_HUGEPAGE ("hg" in VmFlags)
 * that overlap [lo, hi): how many, the first in *a. */
static int
advised_in(uintptr_t lo, uintptr_t hi, advised_t *a)
{
    int           n = 0, overlaps = 0;
    long          kb;
    char          line[512];
    FILE         *f;
    unsigned long start, end;
    advised_t     cur = { 0, 0, 0 };

    f = fopen("/proc/self/smaps", "r");
    if (f == NULL) {
        return -1;
    }

    while (fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "%lx-%lx ", &start, &end) == 2
            && strchr(line, '-') < strchr(line, ' '))
        {
            cur.start = start;
            cur.end = end;
            cur.huge_kb = 0;
            overlaps = start < hi && end > lo;

        } else if (sscanf(line, "AnonHugePages: %ld kB", &kb) == 1) {
            cur.huge_kb = kb;

        } else if (strncmp(line, "VmFlags:", 8) == 0 && overlaps
                   && strstr(line, " hg") != NULL)
        {
            if (n++ == 0) {
                *a = cur;
            }
        }
    }

    fclose(f);
    return n;
}


/* transparent huge pages for advised memory: "always" or "madvise", and
 * not turned off for this process (prctl PR_SET_THP_DISABLE, as a
 * container runtime may) */
static int
thp_for_advised(void)
{
    char   line[128];
    FILE  *f;
    int    on;

    f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (f == NULL) {
        return 0;
    }

    on = fgets(line, sizeof(line), f) != NULL
         && (strstr(line, "[always]") != NULL
             || strstr(line, "[madvise]") != NULL);
    fclose(f);

    f = fopen("/proc/self/status", "r");
    while (on && f != NULL && fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "THP_enabled:", 12) == 0) {
            on = atoi(line + 12) != 0;
        }
    }

    if (f != NULL) {
        fclose(f);
    }

    return on;
}


int
main(void)
{
    int        n;
    char      *big, *small;
    size_t     len = 64u << 20;
    uintptr_t  lo, hi, want_start, want_end;
    advised_t  a;

    if (access("/sys/kernel/mm/transparent_hugepage/enabled", F_OK) != 0) {
        printf("1..0 # skip this kernel has no transparent huge pages\n");
        return 0;
    }

    /* one byte short of OFFLOAD_HUGEPAGE_MIN, it holds a whole huge page */
    big = malloc(len);
    small = malloc(OFFLOAD_HUGEPAGE_MIN - 1);
    if (big == NULL || small == NULL) {
        return 1;
    }

    lo = (uintptr_t) big;
    hi = lo + len;
    want_start = (lo + OFFLOAD_HUGEPAGE - 1)
                 & ~(uintptr_t) (OFFLOAD_HUGEPAGE - 1);
    want_end = hi & ~(uintptr_t) (OFFLOAD_HUGEPAGE - 1);

    ok(advised_in(lo, hi, &a) == 0, "a fresh 64 MB buffer is not advised");

    offload_hugepage_advise(big, len);
    n = advised_in(lo, hi, &a);

    ok(n == 1, "advised: one mapping of the 64 MB buffer (got %d)", n);
    ok(n == 1 && a.start == want_start && a.end == want_end,
       "it is the whole 2 MB pages inside the buffer, no byte outside: "
       "%#lx-%#lx, want %#lx-%#lx", (unsigned long) a.start,
       (unsigned long) a.end, (unsigned long) want_start,
       (unsigned long) want_end);

    offload_hugepage_advise(small, OFFLOAD_HUGEPAGE_MIN - 1);
    ok(advised_in((uintptr_t) small,
                  (uintptr_t) small + OFFLOAD_HUGEPAGE_MIN - 1, &a) == 0,
       "a buffer under OFFLOAD_HUGEPAGE_MIN is left alone");

    memset(big, 'x', len);
    n = advised_in(lo, hi, &a);

    if (thp_for_advised()) {
        ok(n == 1 && a.huge_kb > 0, "written after the advice, the buffer "
           "is on huge pages: %ld kB of %lu", a.huge_kb,
           (unsigned long) ((want_end - want_start) >> 10));

    } else {
        printf("ok %d # skip transparent huge pages are off for advised "
               "memory here\n", ++tap_n);
    }

    free(small);
    free(big);
    return done_testing();
}
