/*
 * handler_metrics.c -- the per-queue table of handler metrics
 * (handler_metrics.h): naming an entry without a lock, and the atomic adds
 * a count and an observation cost.
 */

#include <math.h>
#include <string.h>
#include <sched.h>

#include <jansson.h>

#include "handler_metrics.h"
#include "log.h"
#include "shm.h"

#define FREE    0
#define NAMING  1
#define NAMED   2

#define NAMING_SPINS  1000


offload_hm_table_t *
offload_hm_map(void)
{
    return offload_shm_map(sizeof(offload_hm_table_t));
}


void
offload_hm_unmap(offload_hm_table_t *t)
{
    offload_shm_unmap(t, sizeof(offload_hm_table_t));
}


int
offload_hm_name(const char *name, char *out)
{
    size_t  i;
    char    c;

    if (name == NULL
        || !((name[0] >= 'a' && name[0] <= 'z')
             || (name[0] >= 'A' && name[0] <= 'Z')))
    {
        return -1;
    }

    for (i = 0; name[i] != '\0'; i++) {
        if (i == OFFLOAD_HM_NAME_MAX - 1) {
            return -1;
        }

        c = name[i];

        if (c >= 'A' && c <= 'Z') {
            c = (char) (c - 'A' + 'a');

        } else if (c == '.' || c == '-') {
            c = '_';

        } else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
                     || c == '_'))
        {
            return -1;
        }

        out[i] = c;
    }

    out[i] = '\0';

    /* A counter is exported as <name>_total: "bytes_total" counted is
     * "bytes" (as Prometheus's own clients do), and an observed
     * "bytes_total" could not clash with "bytes" counted. */
    if (i > sizeof("_total") - 1
        && strcmp(out + i - (sizeof("_total") - 1), "_total") == 0)
    {
        out[i - (sizeof("_total") - 1)] = '\0';
    }

    return 0;
}


/* The entry of a name (in its exported form): found, or claimed in the
 * first free place it may have.  A worker naming an entry holds it for a few stores;
 * another one looking for the same name waits for them, but not for ever:
 * a worker killed between them leaves the entry unnamed for good, and it
 * is skipped (a slow one may then see its name taken twice: the readers
 * add such twins up). */
static offload_hm_entry_t *
entry_of(offload_hm_table_t *t, const char *name)
{
    int                  i, spins;
    uint32_t             state, expected, hash = 2166136261u;
    const char          *c;
    offload_hm_entry_t  *e;

    /* Open addressing: a name's place is its FNV-1a hash, or the next free
     * one after it; names are never removed, so a free entry ends the
     * search. */
    for (c = name; *c; c++) {
        hash = (hash ^ (unsigned char) *c) * 16777619u;
    }

    for (i = 0; i < OFFLOAD_HM_NAMES; i++) {
        e = &t->entry[(hash + (uint32_t) i) % OFFLOAD_HM_NAMES];
        state = __atomic_load_n(&e->state, __ATOMIC_ACQUIRE);

        if (state == FREE) {
            expected = FREE;
            if (__atomic_compare_exchange_n(&e->state, &expected, NAMING, 0,
                                            __ATOMIC_ACQUIRE,
                                            __ATOMIC_ACQUIRE))
            {
                strcpy(e->name, name);
                __atomic_store_n(&e->state, NAMED, __ATOMIC_RELEASE);
                __atomic_add_fetch(&t->named, 1, __ATOMIC_RELEASE);
                return e;
            }
            state = expected;
        }

        for (spins = 0; state == NAMING && spins < NAMING_SPINS; spins++) {
            sched_yield();
            state = __atomic_load_n(&e->state, __ATOMIC_ACQUIRE);
        }

        if (state == NAMED && strcmp(e->name, name) == 0) {
            return e;
        }
    }

    __atomic_fetch_add(&t->refused, 1, __ATOMIC_RELAXED);

    if (__atomic_exchange_n(&t->refused_logged, 1, __ATOMIC_RELAXED) == 0) {
        log_warn("handler metric \"%s\" refused: its queue has %d names "
                 "already; later names are refused without a word",
                 name, OFFLOAD_HM_NAMES);
    }

    return NULL;
}


/* A counter a handler drives past what the document's integers hold
 * (JSON's, signed 64 bits) stays at their top, not wrapped (negative). */
static uint64_t
add_capped(uint64_t count, uint64_t n)
{
    return (n > (uint64_t) INT64_MAX - count) ? (uint64_t) INT64_MAX
                                              : count + n;
}


static void
add_saturating(uint64_t *count, uint64_t n)
{
    uint64_t  old = __atomic_load_n(count, __ATOMIC_RELAXED);

    /* a failed exchange reloads old */
    while (!__atomic_compare_exchange_n(count, &old, add_capped(old, n), 1,
                                        __ATOMIC_RELAXED, __ATOMIC_RELAXED))
    {
        continue;
    }
}


int
offload_hm_count(offload_hm_table_t *t, const char *name, uint64_t n)
{
    char                 exported[OFFLOAD_HM_NAME_MAX];
    offload_hm_entry_t  *e;

    if (offload_hm_name(name, exported) != 0) {
        return -1;
    }

    e = entry_of(t, exported);
    if (e == NULL) {
        return -2;
    }

    add_saturating(&e->count, n);
    return 0;
}


/* An exported name that ends as a histogram's own series do is not
 * observed: "x_count" would be a second family of the series "x_count" of
 * an observed "x", and Prometheus refuses the whole scrape. */
int
offload_hm_observable(const char *exported)
{
    size_t             i, len, n;
    static const char  *suffixes[] = { "_count", "_sum", "_bucket" };

    len = strlen(exported);

    for (i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        n = strlen(suffixes[i]);
        if (len > n && strcmp(exported + len - n, suffixes[i]) == 0) {
            return 0;
        }
    }

    return 1;
}


int
offload_hm_observe(offload_hm_table_t *t, const char *name, double value)
{
    int                  b;
    char                 exported[OFFLOAD_HM_NAME_MAX];
    double               sum, milli;
    uint64_t             old, new;
    offload_hm_entry_t  *e;

    if (!isfinite(value) || offload_hm_name(name, exported) != 0
        || !offload_hm_observable(exported))
    {
        return -1;
    }

    e = entry_of(t, exported);
    if (e == NULL) {
        return -2;
    }

    milli = value * 1000;
    if (milli >= 1e18) {
        b = OFFLOAD_HIST_VALUE_BOUNDS;
    } else if (milli <= 0) {
        b = 0;
    } else {
        b = offload_hist_bucket(&offload_hist_value, (int64_t) ceil(milli));
    }

    __atomic_fetch_add(&e->bucket[b], 1, __ATOMIC_RELAXED);

    old = __atomic_load_n(&e->sum, __ATOMIC_RELAXED);
    do {
        memcpy(&sum, &old, sizeof(sum));
        sum += value;
        memcpy(&new, &sum, sizeof(new));
    } while (!__atomic_compare_exchange_n(&e->sum, &old, new, 1,
                                          __ATOMIC_RELAXED,
                                          __ATOMIC_RELAXED));

    __atomic_fetch_add(&e->observations, 1, __ATOMIC_RELEASE);
    return 0;
}


/* A name's figures, its twins' added (entry_of): buckets are read one by
 * one while workers may add, so "observations" is their sum (what a
 * Prometheus histogram's +Inf bucket and _count must agree on); "sum" may
 * be an observation ahead. */
static json_t *
name_json(const offload_hm_table_t *t, int first)
{
    int                       i, b;
    double                    sum = 0, one;
    json_t                   *o, *buckets;
    uint64_t                  n, bits, count = 0, observations = 0;
    uint64_t                  bucket[OFFLOAD_HM_BUCKETS];
    const offload_hm_entry_t  *e;

    memset(bucket, 0, sizeof(bucket));

    for (i = first; i < OFFLOAD_HM_NAMES; i++) {
        e = &t->entry[i];
        if (__atomic_load_n(&e->state, __ATOMIC_ACQUIRE) != NAMED
            || strcmp(e->name, t->entry[first].name) != 0)
        {
            continue;
        }

        count = add_capped(count, __atomic_load_n(&e->count,
                                                  __ATOMIC_RELAXED));
        for (b = 0; b < OFFLOAD_HM_BUCKETS; b++) {
            n = __atomic_load_n(&e->bucket[b], __ATOMIC_RELAXED);
            bucket[b] += n;
            observations += n;
        }
        bits = __atomic_load_n(&e->sum, __ATOMIC_RELAXED);
        memcpy(&one, &bits, sizeof(one));
        sum += one;
    }

    o = json_pack("{s:I}", "count", (json_int_t) count);
    if (o == NULL || observations == 0) {
        return o;
    }

    buckets = json_array();
    for (b = 0; b < OFFLOAD_HM_BUCKETS; b++) {
        if (bucket[b] > 0) {
            json_array_append_new(buckets, json_pack("[i,I]", b,
                                                     (json_int_t) bucket[b]));
        }
    }

    json_object_set_new(o, "observations", json_integer(observations));
    json_object_set_new(o, "sum", json_real(sum));
    json_object_set_new(o, "buckets", buckets);
    return o;
}


json_t *
offload_hm_json(const offload_hm_table_t *t)
{
    int      i;
    json_t  *names = NULL;

    if (__atomic_load_n(&t->named, __ATOMIC_ACQUIRE) == 0) {
        return NULL;
    }

    for (i = 0; i < OFFLOAD_HM_NAMES; i++) {
        if (__atomic_load_n(&t->entry[i].state, __ATOMIC_ACQUIRE) != NAMED) {
            continue;
        }

        if (names == NULL) {
            names = json_object();
            if (names == NULL) {
                return NULL;
            }
        }

        if (json_object_get(names, t->entry[i].name) == NULL) {
            json_object_set_new(names, t->entry[i].name, name_json(t, i));
        }
    }

    return names;
}
