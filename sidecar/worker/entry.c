/*
 * entry.c -- the buffers of a worker's batch entries, recycled (entry.h).
 */

#include <stdlib.h>

#include "entry.h"

#define ENTRY_KEEP_MAX  4096    /* bigger buffers are freed */


/* The spare on top, grown if need be: buffers only grow (up to
 * ENTRY_KEEP_MAX), so there are never more than entries were alive. */
batch_entry_t *
offload_entry_get(batch_entry_t **spares, size_t nfields, size_t bytes)
{
    size_t          need;
    batch_entry_t  *e = *spares, *grown;

    need = sizeof(batch_entry_t) + nfields * sizeof(offload_str_t) + bytes;

    if (e != NULL) {
        *spares = e->next;

        if (e->cap >= need) {
            return e;
        }
    }

    grown = realloc(e, need);
    if (grown == NULL) {
        offload_entry_put(spares, e);
        return NULL;
    }

    grown->cap = need;
    return grown;
}


void
offload_entry_put(batch_entry_t **spares, batch_entry_t *e)
{
    if (e == NULL) {
        return;
    }

    if (e->cap > ENTRY_KEEP_MAX) {
        free(e);
        return;
    }

    e->next = *spares;
    *spares = e;
}


void
offload_entry_spares_free(batch_entry_t **spares)
{
    batch_entry_t  *e;

    while ((e = *spares) != NULL) {
        *spares = e->next;
        free(e);
    }
}
