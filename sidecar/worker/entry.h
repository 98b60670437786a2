/*
 * entry.h -- a stream entry a worker copied out of an XREADGROUP reply,
 * waiting its turn in the batch, in a buffer the worker recycles.
 *
 * Freed, an entry's buffer often borders the heap's top chunk: glibc then
 * merges every small block freed since (malloc_consolidate), and a worker
 * frees hundreds with every read's reply: ~2,000 instructions per echo
 * job.  Kept on a spare list, it is not freed; at most as many are kept
 * as were ever waiting at once (the prefetch, and a job being started or
 * having its body read), each of up to 4 KB (entry.c).
 */

#ifndef OFFLOAD_ENTRY_H
#define OFFLOAD_ENTRY_H

#include <stddef.h>

#include "offload_proto.h"

typedef struct batch_entry_s {
    struct batch_entry_s  *next;
    size_t                 cap;         /* bytes of its buffer */
    offload_str_t          id;
    int                    started;     /* its record says running */
    int                    expired;     /* its record says expired (by
                                           Redis' clock): not to run */
    size_t                 nfields;
    offload_str_t          fields[];    /* then the bytes they point to */
} batch_entry_t;

/* An entry with room for nfields fields and bytes of id and fields, from
 * the spare list or allocated; NULL when out of memory. */
batch_entry_t *offload_entry_get(batch_entry_t **spares, size_t nfields,
    size_t bytes);

/* Gives e back: kept on the spare list, or freed when big.  NULL: none. */
void offload_entry_put(batch_entry_t **spares, batch_entry_t *e);

/* Frees the spare list. */
void offload_entry_spares_free(batch_entry_t **spares);

#endif /* OFFLOAD_ENTRY_H */
