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


/* the first line of a file, or "" */
static void
first_line(const char *path, char *line, size_t size)
{
    FILE  *f;

    line[0] = '\0';

    f = fopen(path, "r");
    if (f != NULL) {
        if (fgets(line, (int) size, f) == NULL) {
            line[0] = '\0';
        }
        fclose(f);
    }
}


/* Huge pages of OFFLOAD_HUGEPAGE bytes for advised memory: the kernel's
 * (not an arm64 one with 64 KB pages, whose are 512 MB), "always" or
 * "madvise" for them (a kernel with a setting per size: that of 2 MB, or
 * the whole one when it says "inherit"), and not turned off for this
 * process (prctl PR_SET_THP_DISABLE, as a container runtime may). */
static int
thp_for_advised(void)
{
    int    on;
    char   line[128];
    FILE  *f;

    first_line("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size", line,
               sizeof(line));
    if (strtoul(line, NULL, 10) != OFFLOAD_HUGEPAGE) {
        return 0;
    }

    first_line("/sys/kernel/mm/transparent_hugepage/hugepages-2048kB/enabled",
               line, sizeof(line));
    if (line[0] == '\0' || strstr(line, "[inherit]") != NULL) {
        first_line("/sys/kernel/mm/transparent_hugepage/enabled", line,
                   sizeof(line));
    }

    on = strstr(line, "[always]") != NULL || strstr(line, "[madvise]") != NULL;

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
    char      *big, *small, *least;
    size_t     len = 64u << 20;
    uintptr_t  lo, hi, want_start, want_end;
    advised_t  a;

    if (access("/sys/kernel/mm/transparent_hugepage/enabled", F_OK) != 0) {
        printf("1..0 # skip this kernel has no transparent huge pages\n");
        return 0;
    }

    /* one byte short of OFFLOAD_HUGEPAGE_MIN, it holds a whole huge page,
     * as does one of OFFLOAD_HUGEPAGE_MIN */
    big = malloc(len);
    small = malloc(OFFLOAD_HUGEPAGE_MIN - 1);
    least = malloc(OFFLOAD_HUGEPAGE_MIN);
    if (big == NULL || small == NULL || least == NULL) {
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

    offload_hugepage_advise(least, OFFLOAD_HUGEPAGE_MIN);
    ok(advised_in((uintptr_t) least,
                  (uintptr_t) least + OFFLOAD_HUGEPAGE_MIN, &a) == 1,
       "a buffer of OFFLOAD_HUGEPAGE_MIN is advised");

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

    free(least);
    free(small);
    free(big);
    return done_testing();
}
