
/*
 * offload_hugepage.h -- big buffers on transparent huge pages, for the
 * module and the sidecar alike (offload_hugepage.c says why).
 */

#ifndef OFFLOAD_HUGEPAGE_H
#define OFFLOAD_HUGEPAGE_H

#include <stddef.h>


/* a transparent huge page on x86-64 and on arm64 with 4 KB pages */
#define OFFLOAD_HUGEPAGE       (2u << 20)

/* buffers smaller than this are left alone: few whole huge pages inside,
 * and malloc's heap is not split into areas of their own */
#define OFFLOAD_HUGEPAGE_MIN   (4u << 20)


/* Asks the kernel to back the whole huge pages inside [p, p + len) with
 * huge pages, before they are first written: one madvise() when len is at
 * least OFFLOAD_HUGEPAGE_MIN, nothing otherwise (nor for p NULL, a failed
 * allocation's).  Best effort: where the kernel has no transparent huge
 * pages the advice is refused, silently. */
void offload_hugepage_advise(void *p, size_t len);


#endif /* OFFLOAD_HUGEPAGE_H */
