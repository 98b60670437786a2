/*
 * retry.c -- transient failures (retry.h): the backoff, the worker's move
 * of a failed entry to its queue's retry set, and the move of a queue's due
 * retries back to its stream that the supervisor's rounds make.  In core/
 * because both programs' halves of the retry protocol live here together.
 *
 * Both moves are one Lua script each (proto/offload_proto.c): the entry is
 * acked and deleted in the step that adds it to the retry set, and a retry
 * is removed from the set in the step that adds it to the stream, so a
 * crash anywhere leaves a job in exactly one place.  Scripts go with EVAL:
 * retries are the exception, and a round is one small command per queue.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "retry.h"

#define RETRY_FIXED_ARGC  10    /* EVAL, script, 3, the keys, group,
                                   entry id, due, attempts made */


int64_t
offload_retry_delay_ms(const offload_conf_queue_t *q, int attempt)
{
    int      n;
    int64_t  step = q->retry_base_ms, half;

    for (n = 1; n < attempt && step < q->retry_max_ms; n++) {
        step *= 2;
    }

    if (step > q->retry_max_ms) {
        step = q->retry_max_ms;
    }

    half = step / 2;
    return step - half + random() % (half + 1);
}


int
offload_retry_later(offload_redis_conn_t *conn, const char *queue,
    const offload_str_t *entry_id, const offload_entry_t *next,
    int64_t due_ms, redisCallbackFn *fn, void *privdata)
{
    int                     i, n, argc = 0;
    char                    stream[OFFLOAD_KEY_MAX], set[OFFLOAD_KEY_MAX];
    char                    record[OFFLOAD_KEY_MAX], due[24], made[12];
    size_t                  qlen = strlen(queue);
    size_t                  argvlen[RETRY_FIXED_ARGC + OFFLOAD_JOB_ARGC];
    size_t                  jobvlen[OFFLOAD_JOB_ARGC];
    const char             *argv[RETRY_FIXED_ARGC + OFFLOAD_JOB_ARGC];
    const char             *jobv[OFFLOAD_JOB_ARGC];
    offload_job_scratch_t   scratch;

    if (offload_stream_key(stream, sizeof(stream), queue, qlen) < 0
        || snprintf(set, sizeof(set), OFFLOAD_RETRY_FMT, (int) qlen, queue)
           >= (int) sizeof(set)
        || offload_job_record_key(record, sizeof(record), next->id.data,
                                  next->id.len)
           < 0)
    {
        return REDIS_ERR;
    }

    snprintf(due, sizeof(due), "%lld", (long long) due_ms);
    snprintf(made, sizeof(made), "%d", next->attempt - 1);

#define put(data, len)  argv[argc] = data; argvlen[argc++] = len
#define put_str(s)      put(s, strlen(s))

    put_str("EVAL");
    put_str(offload_retry_later_script);
    put_str("3");
    put_str(stream);
    put_str(set);
    put_str(record);
    put_str(OFFLOAD_GROUP);
    put(entry_id->data, entry_id->len);
    put_str(due);
    put_str(made);

    /* The new entry's fields: what an XADD of the job would carry. */
    n = offload_job_argv(next, stream, &scratch, jobv, jobvlen);

    for (i = OFFLOAD_JOB_FIELDS_AT; i < n; i++) {
        put(jobv[i], jobvlen[i]);
    }

#undef put
#undef put_str

    return offload_redis_command_argv(conn, fn, privdata, argc, argv,
                                      argvlen);
}


static void
due_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply  *reply = r;

    (void) ac;
    (void) privdata;

    if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
        log_error("moving due retries back failed: %s", reply->str);

    } else if (reply != NULL && reply->type == REDIS_REPLY_INTEGER
               && reply->integer > 0)
    {
        log_debug("moved %lld due retries back to their queue",
                  (long long) reply->integer);
    }
}


int
offload_retry_due(offload_redis_conn_t *conn, const char *retry_key,
    const char *stream_key, int64_t now_ms)
{
    char  now[24];

    snprintf(now, sizeof(now), "%lld", (long long) now_ms);

    return offload_redis_command(conn, due_cb, NULL,
                                 "EVAL %s 2 %s %s %s %d",
                                 offload_retry_due_script, retry_key,
                                 stream_key, now, OFFLOAD_RETRY_BATCH);
}
