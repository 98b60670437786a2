/*
 * shm.c -- the one place that maps the memory a supervisor shares with its
 * workers (shm.h), so that the scoreboard and the handler metrics ask for
 * it the same way.
 */

#include <sys/mman.h>

#include "shm.h"


void *
offload_shm_map(size_t size)
{
    void  *p;

    p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
             -1, 0);

    return p == MAP_FAILED ? NULL : p;
}


void
offload_shm_unmap(void *p, size_t size)
{
    if (p != NULL) {
        munmap(p, size);
    }
}
