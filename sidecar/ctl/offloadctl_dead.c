/*
 * offloadctl_dead.c -- a queue's dead letters (offload:{q}:dead, jobs out
 * of attempts): `dead` lists them (with their trace ids; from every Redis
 * that may hold the queue, tagged with its address when more than one),
 * `retry` puts them back on the queue as new jobs (offload_retry_script:
 * add, delete the letter, delete the old answer, in one step; a job whose
 * body is in its body key fails with the script's message when that key
 * is gone), `purge` deletes them; both on the one Redis that holds the
 * queue (ctl_find_queue).
 */

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "offloadctl.h"

#define SCAN_PAGE  "1000"


static int
dead_key(char *buf, size_t size, const char *cmd, const char *queue)
{
    if (!offload_queue_name_valid(queue, strlen(queue))) {
        ctl_usage_error(cmd, "invalid queue name \"%s\"", queue);
        return -1;
    }

    return offload_dead_key(buf, size, queue, strlen(queue)) < 0 ? -1 : 0;
}


const char *
ctl_entry_id(const redisReply *entry)
{
    if (entry->type != REDIS_REPLY_ARRAY || entry->elements == 0
        || entry->element[0]->type != REDIS_REPLY_STRING)
    {
        return NULL;
    }

    return entry->element[0]->str;
}


const char *
ctl_entry_field(const redisReply *entry, const char *name)
{
    size_t             i;
    const redisReply  *f = entry->element[1];

    for (i = 0; f->type == REDIS_REPLY_ARRAY && i + 1 < f->elements; i += 2) {
        if (strcmp(f->element[i]->str, name) == 0) {
            return f->element[i + 1]->str;
        }
    }

    return NULL;
}


long
ctl_each_entry(ctl_t *ctl, const char *queue, const char *key,
    const char *job_id, ctl_visit_pt visit, void *data)
{
    long         n = 0;
    char         from[64] = "-", to[64];
    size_t       i;
    redisReply  *reply;
    const char  *id;

    /* the stream as it is now, up to its last entry: a visit may add to
     * it (a retried job that fails again is a new dead letter), and those
     * are not visited */
    reply = ctl_command(ctl, "XREVRANGE %s + - COUNT 1", key);
    if (reply == NULL) {
        return -1;
    }

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements == 0) {
        freeReplyObject(reply);
        return 0;
    }

    if (ctl_entry_id(reply->element[0]) == NULL) {
        fprintf(stderr, "offloadctl: %s: XREVRANGE answered no entry id\n",
                key);
        freeReplyObject(reply);
        return -1;
    }

    snprintf(to, sizeof(to), "%s", ctl_entry_id(reply->element[0]));
    freeReplyObject(reply);

    for ( ;; ) {
        reply = ctl_command(ctl, "XRANGE %s %s %s COUNT " SCAN_PAGE, key,
                            from, to);
        if (reply == NULL) {
            return -1;
        }

        for (i = 0; i < reply->elements; i++) {
            id = ctl_entry_field(reply->element[i], "id");
            if (job_id == NULL || (id != NULL && strcmp(id, job_id) == 0)) {
                if (visit(ctl, queue, key, reply->element[i], data) != 0) {
                    freeReplyObject(reply);
                    return -1;
                }
                n++;
            }
        }

        if (reply->elements == 0) {
            freeReplyObject(reply);
            return n;
        }

        /* next page: after the last id, "(" makes the start exclusive */
        snprintf(from, sizeof(from), "(%s",
                 reply->element[reply->elements - 1]->element[0]->str);
        freeReplyObject(reply);
    }
}


static const char *
or_dash(const redisReply *entry, const char *name)
{
    const char  *v = ctl_entry_field(entry, name);

    return v ? v : "-";
}


/* The trace id of a dead letter's traceparent, or "-" (none, or one a
 * worker would not accept either). */
static void
trace_id(char *buf, size_t size, const redisReply *entry)
{
    const char  *tp = ctl_entry_field(entry, OFFLOAD_F_TRACEPARENT);

    if (tp == NULL || offload_traceparent_check(tp, strlen(tp)) != 0) {
        snprintf(buf, size, "-");
        return;
    }

    snprintf(buf, size, "%.*s", OFFLOAD_TRACE_ID_LEN,
             tp + OFFLOAD_TRACE_ID_AT);
}


/* How the letters are laid out: each line tagged with its Redis's
 * address when the queue is on several; the header above the first letter
 * (none above "no dead letters"). */
typedef struct {
    int  tagged;
    int  headed;
} dead_table_t;


static int
print_dead(ctl_t *ctl, const char *queue, const char *key,
    const redisReply *entry, void *data)
{
    int            tagged;
    char           at[40], body_key[OFFLOAD_KEY_MAX];
    char           payload[OFFLOAD_KEY_MAX + 40];
    char           trace[OFFLOAD_TRACE_ID_LEN + 1];
    json_t        *fields;
    const char    *p, *body, *id;
    dead_table_t  *table = data;

    tagged = table->tagged;

    (void) key;

    if (ctl->json) {
        fields = ctl_entry_fields(entry->element[1]);
        json_object_set_new(fields, "entry",
                            json_string(entry->element[0]->str));
        if (tagged) {
            json_object_set_new(fields, "redis",
                                json_string(ctl->redis_name));
        }
        json_dumpf(fields, stdout, JSON_COMPACT);
        printf("\n");
        json_decref(fields);
        return 0;
    }

    if (!table->headed) {
        if (tagged) {
            printf("%-21s ", "REDIS");
        }
        printf("%-24s %-32s %-3s %-14s %-32s %s\n", "DEAD AT", "JOB", "TRY",
               "REASON", "TRACE", "PAYLOAD");
        table->headed = 1;
    }

    ctl_entry_time(at, sizeof(at), entry->element[0]->str);
    p = ctl_entry_field(entry, "payload");
    body = ctl_entry_field(entry, OFFLOAD_F_BODY);
    id = or_dash(entry, "id");

    if (body != NULL) {
        /* the payload is in the body key, for `retry` */
        offload_body_key(body_key, sizeof(body_key), queue, strlen(queue),
                         id, strlen(id));
        snprintf(payload, sizeof(payload), "body: %s bytes in %s", body,
                 body_key);

    } else {
        snprintf(payload, sizeof(payload), "%.39s", p ? p : "-");
        if (p != NULL && strlen(p) >= 40) {
            memcpy(payload + 36, "...", 4);
        }
    }

    trace_id(trace, sizeof(trace), entry);

    if (tagged) {
        printf("%-21s ", ctl->redis_name);
    }

    printf("%-24s %-32s %-3s %-14s %-32s %s\n", at, id,
           or_dash(entry, "attempt"), or_dash(entry, "reason"), trace,
           payload);

    return 0;
}


/* None in queue: said, and a failure when the queue itself is on none of
 * the servers (a typo lists nothing, as an empty queue would). */
static int
no_dead_letters(ctl_t *ctl, const char *queue, size_t *index, size_t n)
{
    int     known = 0;
    char    key[OFFLOAD_KEY_MAX];
    size_t  i;

    if (offload_stream_key(key, sizeof(key), queue, strlen(queue)) < 0) {
        return CTL_USAGE;
    }

    for (i = 0; i < n && !known; i++) {
        known = ctl_queue_on(ctl, index[i], queue, key);
        if (known < 0) {
            return CTL_FAIL;
        }
    }

    if (!known) {
        fprintf(stderr, "offloadctl dead: no queue %s (no %s)\n", queue,
                key);
        return CTL_FAIL;
    }

    if (!ctl->json) {
        printf("no dead letters in queue %s\n", queue);
    }

    return CTL_OK;
}


int
ctl_dead(ctl_t *ctl, int argc, char **argv)
{
    char          key[OFFLOAD_KEY_MAX];
    long          n, total = 0;
    size_t        index[CTL_REDIS_MAX], nindex, i;
    dead_table_t  table;

    if (argc != 2) {
        return ctl_usage_error(argv[0], "wants a queue");
    }

    if (dead_key(key, sizeof(key), argv[0], argv[1]) != 0) {
        return CTL_USAGE;
    }

    nindex = ctl_queue_servers(ctl, argv[1], index);
    table.tagged = nindex > 1;
    table.headed = 0;

    for (i = 0; i < nindex; i++) {
        if (ctl_use_queue(ctl, index[i], argv[1]) != CTL_OK) {
            return CTL_FAIL;
        }

        n = ctl_each_entry(ctl, argv[1], key, NULL, print_dead, &table);
        if (n < 0) {
            return CTL_FAIL;
        }

        total += n;
    }

    if (total == 0) {
        return no_dead_letters(ctl, argv[1], index, nindex);
    }

    return CTL_OK;
}


static int
retry_one(ctl_t *ctl, const char *queue, const char *key,
    const redisReply *entry, void *data)
{
    char         stream[OFFLOAD_KEY_MAX], result[OFFLOAD_KEY_MAX];
    char         body[OFFLOAD_KEY_MAX], record[OFFLOAD_KEY_MAX];
    const char  *id;
    redisReply  *reply;

    (void) data;

    /* the script's keys, all declared (a Redis Cluster routes it whole) */
    id = ctl_entry_field(entry, OFFLOAD_F_ID);
    if (id == NULL
        || offload_result_key(result, sizeof(result), queue, strlen(queue),
                              id, strlen(id))
           < 0
        || offload_body_key(body, sizeof(body), queue, strlen(queue), id,
                            strlen(id))
           < 0)
    {
        fprintf(stderr, "dead letter %s names no usable job id: it cannot "
                "run again\n", entry->element[0]->str);
        return -1;
    }

    offload_stream_key(stream, sizeof(stream), queue, strlen(queue));

    /* an async job's record (in the queue's slot): reset with it */
    if (ctl_entry_field(entry, OFFLOAD_F_RECORD) != NULL
        && offload_job_record_key(record, sizeof(record), id, strlen(id))
           >= 0)
    {
        reply = ctl_command(ctl, "EVAL %s 5 %s %s %s %s %s %s",
                            offload_retry_script, key, stream, result, body,
                            record, entry->element[0]->str);

    } else {
        reply = ctl_command(ctl, "EVAL %s 4 %s %s %s %s %s",
                            offload_retry_script, key, stream, result, body,
                            entry->element[0]->str);
    }

    if (reply == NULL) {
        return -1;
    }

    if (reply->type == REDIS_REPLY_STRING) {
        printf("retried job %s\n", reply->str);
    }

    freeReplyObject(reply);
    return 0;
}


/* `retry <queue> <job-id|--all>` and `purge <queue> <job-id...|--all>` */
static int
each_named(ctl_t *ctl, int argc, char **argv, ctl_visit_pt visit,
    const char *verb)
{
    int   i, all, rc;
    char  key[OFFLOAD_KEY_MAX];
    long  n, total = 0;

    if (argc < 3) {
        return ctl_usage_error(argv[0], "wants a queue and job ids, or "
                               "--all");
    }

    if (dead_key(key, sizeof(key), argv[0], argv[1]) != 0) {
        return CTL_USAGE;
    }

    all = strcmp(argv[2], "--all") == 0;
    if (all && argc > 3) {
        return ctl_usage_error(argv[0], "--all goes alone");
    }

    rc = ctl_find_queue(ctl, argv[0], argv[1]);
    if (rc != CTL_OK) {
        return rc;
    }

    for (i = 2; i < argc; i++) {
        n = ctl_each_entry(ctl, argv[1], key, all ? NULL : argv[i], visit,
                           NULL);
        if (n < 0) {
            return CTL_FAIL;
        }

        if (n == 0 && !all) {
            fprintf(stderr, "offloadctl %s: no dead letter of job %s in "
                    "queue %s%s%s\n", argv[0], argv[i], argv[1],
                    ctl->nservers > 1 ? " on " : "",
                    ctl->nservers > 1 ? ctl->redis_name : "");
            return CTL_FAIL;
        }

        total += n;
    }

    printf("%s %ld dead letter%s of queue %s\n", verb, total,
           total == 1 ? "" : "s", argv[1]);
    return CTL_OK;
}


int
ctl_retry(ctl_t *ctl, int argc, char **argv)
{
    if (argc > 3) {
        return ctl_usage_error(argv[0], "wants one job id, or --all");
    }

    return each_named(ctl, argc, argv, retry_one, "retried");
}


static int
purge_one(ctl_t *ctl, const char *queue, const char *key,
    const redisReply *entry, void *data)
{
    char         body_key[OFFLOAD_KEY_MAX];
    const char  *id;
    redisReply  *reply;

    (void) data;

    reply = ctl_command(ctl, "XDEL %s %s", key, entry->element[0]->str);
    freeReplyObject(reply);
    if (reply == NULL) {
        return -1;
    }

    /* a big job's body, kept with its dead letter for retry, goes too */
    id = ctl_entry_field(entry, OFFLOAD_F_ID);
    if (ctl_entry_field(entry, OFFLOAD_F_BODY) == NULL || id == NULL
        || offload_body_key(body_key, sizeof(body_key), queue,
                            strlen(queue), id, strlen(id))
           < 0)
    {
        return 0;
    }

    reply = ctl_command(ctl, "UNLINK %s", body_key);
    freeReplyObject(reply);

    return reply == NULL ? -1 : 0;
}


int
ctl_purge(ctl_t *ctl, int argc, char **argv)
{
    return each_named(ctl, argc, argv, purge_one, "purged");
}
