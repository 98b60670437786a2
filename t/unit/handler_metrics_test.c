/*
 * handler_metrics_test.c -- the per-queue table of handler metrics
 * (sidecar/core/handler_metrics.c): names, counts, observations, the 64
 * names and the node document's form, with workers that fork and die,
 * printed as TAP.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "handler_metrics.h"
#include "tap.h"


static void
test_names(void)
{
    char  out[OFFLOAD_HM_NAME_MAX];
    char  long_name[OFFLOAD_HM_NAME_MAX + 1];

    ok(offload_hm_name("Thumbs.bytes-in", out) == 0
       && strcmp(out, "thumbs_bytes_in") == 0,
       "'.' and '-' become '_', letters lower case");
    ok(offload_hm_name("Bytes.Total", out) == 0
       && strcmp(out, "bytes") == 0,
       "a trailing _total is dropped: the counter's own suffix");
    ok(offload_hm_name("total", out) == 0 && strcmp(out, "total") == 0,
       "\"total\" alone stays");
    ok(offload_hm_name("9lives", out) == -1, "a digit first: refused");
    ok(offload_hm_name("", out) == -1, "empty: refused");
    ok(offload_hm_name("a b", out) == -1, "a space: refused");
    ok(offload_hm_name("a{b}", out) == -1, "a brace: refused");
    memset(long_name, 'a', OFFLOAD_HM_NAME_MAX - 1);
    long_name[OFFLOAD_HM_NAME_MAX - 1] = '\0';
    ok(offload_hm_name(long_name, out) == 0, "47 characters: taken");
    long_name[OFFLOAD_HM_NAME_MAX - 1] = 'a';
    long_name[OFFLOAD_HM_NAME_MAX] = '\0';
    ok(offload_hm_name(long_name, out) == -1, "48: refused");
}


/* Workers that count and die: what they added stays, once. */
static void
test_workers(offload_hm_table_t *t)
{
    int     i, status;
    pid_t   pid;
    json_t  *doc;

    for (i = 0; i < 4; i++) {
        pid = fork();
        if (pid == 0) {
            offload_hm_count(t, "jobs.seen", 10);
            offload_hm_observe(t, "size", 3);
            if (i == 3) {
                kill(getpid(), SIGKILL);
            }
            _exit(0);
        }
        waitpid(pid, &status, 0);
    }

    doc = offload_hm_json(t);
    ok(json_integer_value(json_object_get(json_object_get(doc, "jobs_seen"),
                                          "count")) == 40,
       "4 processes, one SIGKILLed: 40 counted");
    ok(json_integer_value(json_object_get(json_object_get(doc, "size"),
                                          "observations")) == 4,
       "4 observations");
    ok(json_real_value(json_object_get(json_object_get(doc, "size"), "sum"))
       == 12.0, "their sum");
    ok(json_object_get(json_object_get(doc, "jobs_seen"), "observations")
       == NULL, "a name only counted lists no observations");
    json_decref(doc);
}


static void
test_full(offload_hm_table_t *t)
{
    int   i, rc = 0;
    char  name[32];

    for (i = 0; i < OFFLOAD_HM_NAMES - 2; i++) {
        snprintf(name, sizeof(name), "n%d", i);
        rc |= offload_hm_count(t, name, 1);
    }
    ok(rc == 0, "64 names in all taken");
    ok(offload_hm_count(t, "one.more", 1) == -2, "the 65th refused");
    ok(offload_hm_observe(t, "one.more", 1) == -2, "again");
    ok(offload_hm_count(t, "n0", 1) == 0, "a known name still counts");
    ok(t->refused == 2 && t->refused_logged == 1, "2 refused, logged once");
    ok(offload_hm_observe(t, "n1", 1.0 / 0.0) == -1, "infinity refused");
    ok(offload_hm_observe(t, "n1.count", 1) == -1
       && offload_hm_observe(t, "n1_Sum", 1) == -1
       && offload_hm_observe(t, "n1-bucket", 1) == -1,
       "observed names ending as a histogram's series refused");
    ok(offload_hm_count(t, "n2.count", 1) == -2
       && offload_hm_observe(t, "n2.counts", 1) == -2,
       "counted, or another ending: a good name (no room left here)");
}


/* The entry holding a name, or -1. */
static int
place(const offload_hm_table_t *t, const char *name)
{
    int  i;

    for (i = 0; i < OFFLOAD_HM_NAMES; i++) {
        if (t->entry[i].state == 2 && strcmp(t->entry[i].name, name) == 0) {
            return i;
        }
    }

    return -1;
}


/* A worker killed while it named an entry: the entry is skipped; a name
 * taken twice (a slow namer skipped) is added up. */
static void
test_stuck(void)
{
    int                  k, twin;
    json_t              *doc;
    offload_hm_table_t  *t = offload_hm_map();

    offload_hm_count(t, "x", 1);
    k = place(t, "x");
    memset(t, 0, sizeof(*t));
    t->entry[k].state = 1;                  /* being named, for ever */
    ok(offload_hm_count(t, "x", 2) == 0, "a stuck entry is passed over");
    ok(place(t, "x") == (k + 1) % OFFLOAD_HM_NAMES,
       "the next one takes the name");
    twin = (k + 2) % OFFLOAD_HM_NAMES;
    strcpy(t->entry[twin].name, "x");
    t->entry[twin].count = 5;
    t->entry[twin].state = 2;
    doc = offload_hm_json(t);
    ok(json_object_size(doc) == 1
       && json_integer_value(json_object_get(json_object_get(doc, "x"),
                                             "count")) == 7,
       "twins are one name, their counts added");
    json_decref(doc);
    offload_hm_unmap(t);
}


/* Counts past JSON's integers stay at their top (a handler's count of
 * 2^63 - 1, twice, showed -2). */
static void
test_saturated(void)
{
    json_t              *doc;
    offload_hm_table_t  *t = offload_hm_map();

    offload_hm_count(t, "big", INT64_MAX);
    offload_hm_count(t, "big", INT64_MAX);
    offload_hm_count(t, "big", 5);
    doc = offload_hm_json(t);
    ok(json_integer_value(json_object_get(json_object_get(doc, "big"),
                                          "count")) == INT64_MAX,
       "a count past 2^63 - 1 stays 2^63 - 1");
    json_decref(doc);
    offload_hm_unmap(t);
}


int
main(void)
{
    offload_hm_table_t  *t = offload_hm_map();

    ok(t != NULL, "a table mapped (%zu bytes, %zu a name)",
       sizeof(*t), sizeof(t->entry[0]));
    ok(offload_hm_json(t) == NULL, "an unused table has no document");
    test_names();
    test_workers(t);
    test_full(t);
    offload_hm_unmap(t);
    test_stuck();
    test_saturated();
    return done_testing();
}
