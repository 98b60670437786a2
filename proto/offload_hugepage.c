/*
 * offload_hugepage.c -- big buffers on transparent huge pages.
 *
 * A job's body or result of megabytes is written into memory malloc has
 * just mapped (glibc maps every block over 32 MB afresh and unmaps it when
 * freed), and the kernel backs it a 4 KB page at a time, one page fault
 * each, as it is first written.  On a virtual machine a fault may cost
 * microseconds: on the 2-vCPU VM offload is tested on (2026-12-03),
 * copying 64 MB into fresh memory took 150-200 ms, into fresh memory
 * advised MADV_HUGEPAGE 7 ms.
 * A 64 MB echo job wrote four such buffers (nginx: the body and the
 * result; the worker: the same), and nginx's event loop stood still in
 * each fault while it read them.
 *
 * With "madvise", Debian's default in
 * /sys/kernel/mm/transparent_hugepage/enabled, only advised memory gets
 * huge pages, 2 MB a fault; with "always" it gets them anyway; with
 * "never" the advice changes nothing.  Where no 2 MB page is free the
 * kernel falls back to 4 KB pages.
 */

#include <stdint.h>
#include <sys/mman.h>

#include "offload_hugepage.h"


void
offload_hugepage_advise(void *p, size_t len)
{
#ifdef MADV_HUGEPAGE
    uintptr_t  start, end;

    if (p == NULL || len < OFFLOAD_HUGEPAGE_MIN) {
        return;
    }

    /* the whole huge pages inside the buffer: madvise() takes a range of
     * whole pages, and what it names is not to be another block's */
    start = ((uintptr_t) p + OFFLOAD_HUGEPAGE - 1)
            & ~((uintptr_t) OFFLOAD_HUGEPAGE - 1);
    end = ((uintptr_t) p + len) & ~((uintptr_t) OFFLOAD_HUGEPAGE - 1);

    if (end > start) {
        (void) madvise((void *) start, end - start, MADV_HUGEPAGE);
    }
#else
    (void) p;
    (void) len;
#endif
}
