/*
 * offloadctl_merge.c -- one view of the sidecar nodes over several Redis
 * servers (queues sharded by queue: each Redis holds the node documents
 * listing the queues that live there).  offload_nodes_script builds the
 * view of one Redis; this merges a second one into it the way the script
 * would have had it seen both: nodes by name, queues by name, workers in
 * the script's order.
 */

#include <stdlib.h>
#include <string.h>

#include "offloadctl.h"


static json_t *
node_named(json_t *nodes, const char *name)
{
    size_t   i;
    json_t  *doc;

    json_array_foreach(nodes, i, doc) {
        if (strcmp(ctl_text(doc, "node"), name) == 0) {
            return doc;
        }
    }

    return NULL;
}


static void
merge_nodes(json_t *nodes, json_t *more)
{
    size_t       i;
    json_t      *doc, *have, *queues;
    const char  *name;
    json_t      *q;

    json_array_foreach(more, i, doc) {
        have = node_named(nodes, ctl_text(doc, "node"));

        if (have == NULL) {
            json_array_append(nodes, doc);
            continue;
        }

        queues = json_object_get(have, "queues");
        json_object_foreach(json_object_get(doc, "queues"), name, q) {
            if (json_object_get(queues, name) == NULL) {
                json_object_set(queues, name, q);
            }
        }

        if (json_is_true(json_object_get(doc, "drained"))) {
            json_object_set_new(have, "drained", json_true());
        }
    }
}


static const char  *sort_by;


/* offload_nodes_script's keys: a worker's figure to sort by, descending;
 * -1 when it has none. */
static double
sort_key(json_t *w)
{
    double  a, b;

    if (strcmp(sort_by, "memory") == 0) {
        return ctl_num(w, "rss");
    }

    if (strcmp(sort_by, "cpu") == 0) {
        a = ctl_num(w, "cpu_user");
        b = ctl_num(w, "cpu_sys");
        return a + b;
    }

    if (strcmp(sort_by, "queue") == 0) {
        return ctl_num(w, "held");
    }

    if (strcmp(sort_by, "restarts") == 0) {
        return ctl_num(w, "restarts");
    }

    if (strcmp(sort_by, "jobs") == 0) {
        return ctl_worker_jobs(w);
    }

    return 0;
}


static int
cmp_workers(const void *pa, const void *pb)
{
    int      c;
    double   x, y;
    json_t  *a = *(json_t *const *) pa, *b = *(json_t *const *) pb;

    x = sort_key(a);
    y = sort_key(b);
    if (x != y) {
        return x > y ? -1 : 1;
    }

    c = strcmp(ctl_text(a, "node"), ctl_text(b, "node"));
    if (c == 0) {
        c = strcmp(ctl_text(a, "queue"), ctl_text(b, "queue"));
    }

    return c != 0 ? c : (ctl_num(a, "slot") > ctl_num(b, "slot"))
                        - (ctl_num(a, "slot") < ctl_num(b, "slot"));
}


static void
merge_workers(json_t *all, json_t *more, const char *sort, int limit)
{
    size_t    i, n;
    json_t   *workers, *w, **list;

    workers = json_object_get(all, "workers");
    json_array_extend(workers, json_object_get(more, "workers"));

    n = json_array_size(workers);
    list = malloc((n + 1) * sizeof(json_t *));
    if (list == NULL) {
        return;                 /* unsorted, not lost */
    }

    json_array_foreach(workers, i, w) {
        list[i] = json_incref(w);
    }

    sort_by = sort;
    qsort(list, n, sizeof(json_t *), cmp_workers);

    json_array_clear(workers);
    for (i = 0; i < n; i++) {
        if (limit <= 0 || i < (size_t) limit) {
            json_array_append(workers, list[i]);
        }
        json_decref(list[i]);
    }

    free(list);
}


void
ctl_nodes_merge(json_t *all, json_t *more, const char *sort, int limit)
{
    json_t      *queues, *q;
    const char  *name;

    merge_nodes(json_object_get(all, "nodes"), json_object_get(more, "nodes"));

    queues = json_object_get(all, "queues");
    json_object_foreach(json_object_get(more, "queues"), name, q) {
        if (json_object_get(queues, name) == NULL) {
            json_object_set(queues, name, q);
        }
    }

    merge_workers(all, more, sort, limit);

    json_object_set_new(all, "workers_total",
                        json_integer(ctl_int(all, "workers_total")
                                     + ctl_int(more, "workers_total")));
    json_array_extend(json_object_get(all, "crashes"),
                      json_object_get(more, "crashes"));
    json_array_extend(json_object_get(all, "malformed_nodes"),
                      json_object_get(more, "malformed_nodes"));
}
