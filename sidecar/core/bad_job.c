/*
 * bad_job.c -- a stream entry nobody can run: fields missing or malformed,
 * as a program that writes to Redis itself may leave one.  It must neither
 * stay pending (read again after every restart) nor vanish with only a log
 * line: it moves to the queue's dead-letter stream with reason bad_job, its
 * own fields and the decoder's complaint, in one script, where
 * `offloadctl dead` shows it.  Workers call it for what they read, the
 * supervisor for what a dead worker held.  When the entry names a job id
 * that can make a key, the job's body key (if any) is kept a week with it.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "bad_job.h"
#include "clock.h"
#include "log.h"


/* The body key of the job the fields name, or -1: no id, or one that
 * would make another job's key (a NUL byte cuts "%.*s" short). */
static int
body_key(char *buf, size_t size, const char *queue,
    const offload_str_t *fields, size_t nfields)
{
    size_t               i;
    const offload_str_t  *id;

    for (i = 0; i + 1 < nfields; i += 2) {
        if (fields[i].len != sizeof(OFFLOAD_F_ID) - 1
            || memcmp(fields[i].data, OFFLOAD_F_ID, fields[i].len) != 0)
        {
            continue;
        }

        id = &fields[i + 1];
        if (id->len == 0 || id->len > 128
            || memchr(id->data, '\0', id->len) != NULL)
        {
            return -1;
        }

        return offload_body_key(buf, size, queue, strlen(queue), id->data,
                                id->len);
    }

    return -1;
}


int
offload_bad_job(offload_redis_send_pt send, void *data,
    const char *queue, const offload_str_t *entry_id,
    const offload_str_t *fields, size_t nfields, const char *why)
{
    int          rc, i, argc = 0;
    char         stream[OFFLOAD_KEY_MAX], dead[OFFLOAD_KEY_MAX];
    char         body[OFFLOAD_KEY_MAX], maxlen[16], at[24], *report;
    size_t       qlen = strlen(queue), argvlen[11];
    json_t      *doc;
    const char  *argv[11];

    if (offload_stream_key(stream, sizeof(stream), queue, qlen) < 0
        || offload_dead_key(dead, sizeof(dead), queue, qlen) < 0)
    {
        return REDIS_ERR;
    }

    doc = json_pack("{s:s,s:s}", "reason", "bad_job", "message", why);
    report = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (report == NULL) {
        log_error("queue %s: out of memory dead-lettering entry %.*s", queue,
                  (int) entry_id->len, entry_id->data);
        return REDIS_ERR;
    }

    snprintf(maxlen, sizeof(maxlen), "%d", OFFLOAD_DEAD_MAXLEN);
    snprintf(at, sizeof(at), "%lld", (long long) offload_wall_ms());

    argv[argc++] = "EVAL";
    argv[argc++] = offload_bad_job_script;
    argv[argc++] = "2";
    argv[argc++] = stream;
    argv[argc++] = dead;

    if (body_key(body, sizeof(body), queue, fields, nfields) >= 0) {
        argv[2] = "3";
        argv[argc++] = body;
    }

    argv[argc++] = OFFLOAD_GROUP;
    argv[argc++] = maxlen;          /* the entry id's place, set below */
    argv[argc++] = maxlen;
    argv[argc++] = report;
    argv[argc++] = at;

    for (i = 0; i < argc; i++) {
        argvlen[i] = strlen(argv[i]);
    }

    /* ARGV[2]: the entry id, as given (not NUL-terminated) */
    argv[argc - 4] = entry_id->data;
    argvlen[argc - 4] = entry_id->len;

    rc = send(data, argc, argv, argvlen);
    free(report);

    return rc;
}
