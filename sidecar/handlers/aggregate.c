/*
 * aggregate.c -- "events.aggregate": summary statistics of a batch
 * of events, per event type.
 *
 * Input: [{"type": string, "value": number, "ts": number}, ...], or the same
 * array as {"events": [...]}.  Output:
 *
 *   {"count": N, "types": {"<type>": {"count", "sum", "min", "max", "mean",
 *                                     "p50", "p95", "p99"}}}
 *
 * Percentiles use the nearest-rank method on the sorted values of a type:
 * the p-th percentile of n values is the value at rank ceil(p / 100 * n)
 * (1-based), so it is always one of the observed values.  Values are
 * collected per type in growable arrays and sorted with qsort: a million
 * events in one job is expected.
 */

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "builtin.h"
#include "fnv.h"


typedef struct {
    const char  *name;        /* points into the input JSON; NULL: free */
    size_t       len;
    double      *values;
    size_t       n;
    size_t       cap;
    double       sum;
} agg_type_t;

typedef struct {
    agg_type_t  *slots;       /* open addressing, linear probing */
    size_t       size;        /* a power of two */
    size_t       used;
} agg_table_t;


static int
table_grow(agg_table_t *t)
{
    size_t       i, j, size = t->size ? t->size * 2 : 16;
    agg_type_t  *slots;

    slots = calloc(size, sizeof(agg_type_t));
    if (slots == NULL) {
        return -1;
    }

    for (i = 0; i < t->size; i++) {
        if (t->slots[i].name == NULL) {
            continue;
        }
        j = offload_fnv1a(t->slots[i].name, t->slots[i].len) & (size - 1);
        while (slots[j].name != NULL) {
            j = (j + 1) & (size - 1);
        }
        slots[j] = t->slots[i];
    }

    free(t->slots);
    t->slots = slots;
    t->size = size;
    return 0;
}


static agg_type_t *
table_get(agg_table_t *t, const char *name, size_t len)
{
    size_t  i;

    if ((t->used + 1) * 10 > t->size * 7 && table_grow(t) != 0) {
        return NULL;
    }

    i = offload_fnv1a(name, len) & (t->size - 1);

    while (t->slots[i].name != NULL) {
        if (t->slots[i].len == len
            && memcmp(t->slots[i].name, name, len) == 0)
        {
            return &t->slots[i];
        }
        i = (i + 1) & (t->size - 1);
    }

    t->slots[i].name = name;
    t->slots[i].len = len;
    t->used++;
    return &t->slots[i];
}


static void
table_free(agg_table_t *t)
{
    size_t  i;

    for (i = 0; i < t->size; i++) {
        free(t->slots[i].values);
    }
    free(t->slots);
}


static int
type_add(agg_type_t *type, double value)
{
    size_t   cap;
    double  *values;

    if (type->n == type->cap) {
        cap = type->cap ? type->cap * 2 : 8;
        values = realloc(type->values, cap * sizeof(double));
        if (values == NULL) {
            return -1;
        }
        type->values = values;
        type->cap = cap;
    }

    type->values[type->n++] = value;
    type->sum += value;
    return 0;
}


static int
cmp_double(const void *a, const void *b)
{
    double  x = *(const double *) a, y = *(const double *) b;

    return (x > y) - (x < y);
}


/* Nearest rank: the value at 1-based rank ceil(p / 100 * n). */
static double
percentile(const double *sorted, size_t n, double p)
{
    size_t  rank = (size_t) ceil(p / 100.0 * (double) n);

    if (rank < 1) {
        rank = 1;
    }

    return sorted[rank - 1];
}


static json_t *
type_summary(agg_type_t *type)
{
    qsort(type->values, type->n, sizeof(double), cmp_double);

    return json_pack("{s:I,s:f,s:f,s:f,s:f,s:f,s:f,s:f}",
                     "count", (json_int_t) type->n,
                     "sum", type->sum,
                     "min", type->values[0],
                     "max", type->values[type->n - 1],
                     "mean", type->sum / (double) type->n,
                     "p50", percentile(type->values, type->n, 50),
                     "p95", percentile(type->values, type->n, 95),
                     "p99", percentile(type->values, type->n, 99));
}


static int
check_event(offload_job_t *job, json_t *event, size_t index)
{
    json_t  *v;

    if (!json_is_object(event)) {
        return offload_job_fail(job, NULL, "event %zu: not an object",
                                index);
    }

    if (!json_is_string(json_object_get(event, "type"))) {
        return offload_job_fail(job, NULL,
                                "event %zu: \"type\" must be a string",
                                index);
    }

    v = json_object_get(event, "value");
    if (!json_is_number(v)) {
        return offload_job_fail(job, NULL,
                                "event %zu: \"value\" must be a number",
                                index);
    }

    if (!json_is_number(json_object_get(event, "ts"))) {
        return offload_job_fail(job, NULL,
                                "event %zu: \"ts\" must be a number", index);
    }

    return OFFLOAD_OK;
}


static int
aggregate_work(offload_job_t *job, json_t *input, json_t **output)
{
    size_t        i, n;
    json_t       *events, *event, *type, *types, *summary, *out = NULL;
    agg_type_t   *t;
    agg_table_t   table = { NULL, 0, 0 };

    events = json_is_object(input) ? json_object_get(input, "events") : input;

    if (!json_is_array(events)) {
        return offload_job_fail(job, NULL, "input must be an array of "
                                "events or {\"events\": [...]}");
    }

    n = json_array_size(events);

    for (i = 0; i < n; i++) {
        event = json_array_get(events, i);

        if (check_event(job, event, i) != OFFLOAD_OK) {
            goto failed;
        }

        type = json_object_get(event, "type");
        t = table_get(&table, json_string_value(type),
                      json_string_length(type));

        if (t == NULL
            || type_add(t, json_number_value(json_object_get(event, "value")))
               != 0)
        {
            offload_job_fail(job, NULL, "out of memory");
            goto failed;
        }
    }

    types = json_object();
    out = json_pack("{s:I,s:o}", "count", (json_int_t) n, "types", types);
    if (out == NULL) {
        offload_job_fail(job, NULL, "out of memory");
        goto failed;
    }

    for (i = 0; i < table.size; i++) {
        t = &table.slots[i];
        if (t->name == NULL) {
            continue;
        }

        /* each value is finite (JSON has no infinity), their sum may not
         * be, and JSON has no text for it */
        if (!isfinite(t->sum)) {
            offload_job_fail(job, NULL, "type \"%.*s\": the sum of its "
                             "values is past the range of a double "
                             "(about 1.8e308)", (int) t->len, t->name);
            goto failed;
        }

        summary = type_summary(t);
        if (summary == NULL
            || json_object_setn_new(types, t->name, t->len, summary) != 0)
        {
            offload_job_fail(job, NULL, "out of memory");
            goto failed;
        }
    }

    table_free(&table);
    *output = out;
    return OFFLOAD_OK;

failed:

    json_decref(out);
    table_free(&table);
    return OFFLOAD_ERROR;
}


static int
aggregate_run(offload_job_t *job, const char *payload, size_t len)
{
    return offload_builtin_json(job, payload, len, aggregate_work);
}


static const offload_handler_t  handlers[] = {
    { "events.aggregate", aggregate_run, NULL, NULL },
    { NULL, NULL, NULL, NULL }
};

const offload_module_t  offload_builtin_aggregate = {
    OFFLOAD_ABI_VERSION, handlers
};
