/*
 * bad_job.c -- a stream entry nobody can run: fields missing or malformed,
 * as a program that writes to Redis itself may leave one.  It must neither
 * stay pending (read again after every restart) nor vanish with only a log
 * line: it moves to the queue's dead-letter stream with reason bad_job, its
 * own fields and the decoder's complaint, in one script, where
 * `offloadctl dead` shows it.  Workers call it for what they read, the
 * supervisor for what a dead worker held.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "bad_job.h"
#include "clock.h"
#include "log.h"


int
offload_bad_job(offload_redis_conn_t *conn, const char *queue,
    const offload_str_t *entry_id, const char *why, redisCallbackFn *fn,
    void *privdata)
{
    int      rc;
    char     stream[OFFLOAD_KEY_MAX], dead[OFFLOAD_KEY_MAX];
    char     maxlen[16], at[24], *report;
    size_t   qlen = strlen(queue);
    json_t  *doc;

    if (offload_stream_key(stream, sizeof(stream), queue, qlen) < 0
        || snprintf(dead, sizeof(dead), OFFLOAD_DEAD_FMT, (int) qlen, queue)
           >= (int) sizeof(dead))
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

    rc = offload_redis_command(conn, fn, privdata,
                               "EVAL %s 2 %s %s %s %b %s %s %s",
                               offload_bad_job_script, stream, dead,
                               OFFLOAD_GROUP, entry_id->data, entry_id->len,
                               maxlen, report, at);
    free(report);

    return rc;
}
