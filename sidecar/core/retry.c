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
 * A job out of attempts is dead-lettered with the supervisor's script
 * (offload_dead_script), so `offloadctl dead` and `retry` see it as any
 * other dead letter.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "retry.h"

#define RETRY_FIXED_ARGC  10    /* EVAL, script, 3, the keys, group,
                                   entry id, due, attempts made */
#define DEAD_FIXED_ARGC   22    /* EVAL, script, 4 or 5, the keys, the
                                   completion's 5, MAXLEN, the 4 pairs
                                   added to the entry's fields */


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
offload_retry_later(offload_redis_send_pt send, void *data,
    const char *queue, const offload_str_t *entry_id,
    const offload_entry_t *next, int64_t due_ms)
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

    return send(data, argc, argv, argvlen);
}


int
offload_retry_dead(offload_redis_send_pt send, void *data,
    const char *queue, const offload_str_t *entry_id,
    const offload_str_t *fields,
    size_t nfields, const offload_entry_t *job, const char *result,
    size_t result_len, const char *ttl, const char *report)
{
    int          rc, argc = 0;
    char         stream[OFFLOAD_KEY_MAX], key[OFFLOAD_KEY_MAX];
    char         dead[OFFLOAD_KEY_MAX], body[OFFLOAD_KEY_MAX];
    char         rec[OFFLOAD_KEY_MAX], maxlen[16], at[24];
    size_t       i, qlen = strlen(queue), *argvlen;
    const char **argv;

    if (offload_stream_key(stream, sizeof(stream), queue, qlen) < 0
        || offload_result_key(key, sizeof(key), queue, qlen, job->id.data,
                              job->id.len) < 0
        || offload_dead_key(dead, sizeof(dead), queue, qlen) < 0
        || offload_body_key(body, sizeof(body), queue, qlen, job->id.data,
                            job->id.len) < 0
        || offload_job_record_key(rec, sizeof(rec), job->id.data,
                                  job->id.len) < 0)
    {
        return REDIS_ERR;
    }

    argv = malloc((DEAD_FIXED_ARGC + nfields) * sizeof(char *));
    argvlen = malloc((DEAD_FIXED_ARGC + nfields) * sizeof(size_t));
    if (argv == NULL || argvlen == NULL) {
        free(argv);
        free(argvlen);
        return REDIS_ERR;
    }

    snprintf(maxlen, sizeof(maxlen), "%d", OFFLOAD_DEAD_MAXLEN);
    snprintf(at, sizeof(at), "%lld", (long long) offload_wall_ms());

#define put(data, len)  argv[argc] = data; argvlen[argc++] = len
#define put_str(s)      put(s, strlen(s))

    put_str("EVAL");
    put_str(offload_dead_script);
    put_str(job->record_ttl_ms > 0 ? "5" : "4");
    put_str(stream);
    put_str(key);
    put_str(dead);
    put_str(body);
    if (job->record_ttl_ms > 0) {
        put_str(rec);
    }
    put_str(OFFLOAD_GROUP);
    put(entry_id->data, entry_id->len);
    put(result, result_len);
    put_str(ttl);
    put(job->reply.len ? job->reply.data : "", job->reply.len);
    put_str(maxlen);

    for (i = 0; i + 1 < nfields; i += 2) {
        put(fields[i].data, fields[i].len);
        put(fields[i + 1].data, fields[i + 1].len);
    }

    put_str("entry");
    put(entry_id->data, entry_id->len);
    put_str("reason");
    put_str("retries_exhausted");
    put_str("report");
    put_str(report);
    put_str("dead_at");
    put_str(at);

#undef put
#undef put_str

    rc = send(data, argc, argv, argvlen);
    free(argv);
    free(argvlen);
    return rc;
}


/*
 * The retry sets whose move back Redis refuses (their keys): a refused
 * move is tried again at the next pass, its retries waiting in their set
 * meanwhile, and logged when its set's refusals begin and when they end,
 * not at every pass (five a second per queue).  By key, not by pool: a
 * reload may free a pool while its pass is in flight.
 */
static char    **refusing;
static size_t    nrefusing;


/* The index of key among the refusing, or nrefusing. */
static size_t
refusing_at(const char *key)
{
    size_t  i;

    for (i = 0; i < nrefusing && strcmp(refusing[i], key) != 0; i++) {
        /* void */
    }

    return i;
}


static void
due_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    char        *key = privdata, **more;
    size_t       i;
    redisReply  *reply = r;

    (void) ac;

    i = refusing_at(key);

    if (reply != NULL && reply->type == REDIS_REPLY_ERROR && i == nrefusing) {
        log_error("moving the due retries of %s back failed: %s (tried "
                  "again every pass, logged again once it works)", key,
                  reply->str);
        more = realloc(refusing, (nrefusing + 1) * sizeof(char *));
        if (more != NULL) {
            refusing = more;
            refusing[nrefusing++] = key;
            return;                     /* kept: not freed below */
        }

    } else if (reply != NULL && reply->type == REDIS_REPLY_INTEGER) {
        if (i < nrefusing) {
            log_notice("moving the due retries of %s back works again",
                       key);
            free(refusing[i]);
            refusing[i] = refusing[--nrefusing];
        }

        if (reply->integer > 0) {
            log_debug("moved %lld due retries of %s back to their queue",
                      (long long) reply->integer, key);
        }
    }

    free(key);
}


int
offload_retry_due(offload_redis_conn_t *conn, const char *retry_key,
    const char *stream_key, int64_t now_ms)
{
    char  now[24], *key;

    key = strdup(retry_key);
    if (key == NULL) {
        return REDIS_ERR;
    }

    snprintf(now, sizeof(now), "%lld", (long long) now_ms);

    if (offload_redis_command(conn, due_cb, key, "EVAL %s 2 %s %s %s %d",
                              offload_retry_due_script, retry_key,
                              stream_key, now, OFFLOAD_RETRY_BATCH)
        != REDIS_OK)
    {
        free(key);
        return REDIS_ERR;
    }

    return REDIS_OK;
}
