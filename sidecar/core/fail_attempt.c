/*
 * fail_attempt.c -- fails one attempt of a job whose worker went away
 * under it (fail_attempt.h): requeued with attempt + 1 while attempts and
 * its deadline are left, otherwise dead-lettered and answered.
 *
 * Each is one Lua script (proto/offload_proto.c) that checks the entry is
 * still pending and acks it last, so two nodes racing for an entry fail it
 * once, and one Redis refuses halfway leaves it pending.  Scripts go with
 * EVAL rather than EVALSHA: this path runs once per lost worker, not per
 * job.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bad_job.h"
#include "clock.h"
#include "error_doc.h"
#include "fail_attempt.h"
#include "log.h"


/* One script sent by offload_fail_attempt(). */
typedef struct {
    char                     entry[64];
    char                     job_id[160];
    char                     request_id[160];   /* for its lines' context */
    char                     trace_id[OFFLOAD_TRACE_ID_LEN + 1];
    offload_fail_done_pt     done;
    void                    *data;
} fail_t;


const char *
offload_fail_reason_name(offload_fail_reason_e reason)
{
    switch (reason) {
    case OFFLOAD_FAIL_SIGNAL:       return "signal";
    case OFFLOAD_FAIL_EXIT:         return "exit";
    case OFFLOAD_FAIL_MEMORY_LIMIT: return "memory_limit";
    case OFFLOAD_FAIL_ALLOCATION:   return "allocation_failed";
    case OFFLOAD_FAIL_OOM:          return "oom";
    case OFFLOAD_FAIL_JOB_TIMEOUT:  return "job_timeout";
    case OFFLOAD_FAIL_INIT_TIMEOUT: return "init_timeout";
    case OFFLOAD_FAIL_NODE_LOST:    return "node_lost";
    }

    return "?";
}


static void
fail_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    fail_t      *f = privdata;
    redisReply  *reply = r;

    (void) ac;

    offload_log_job_ids(f->job_id, f->request_id, f->trace_id);

    if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
        /* Not sent again: a refused script did nothing (it acks last), and
         * the entry, still pending, is read again by the slot's next
         * worker or claimed again after claim_idle. */
        log_error("failing job %s (entry %s): redis refused it (%s): the "
                  "entry stays pending", f->job_id, f->entry, reply->str);

    } else if (reply != NULL && reply->type == REDIS_REPLY_STRING) {
        log_notice("job %s runs again as entry %s", f->job_id, reply->str);

    } else if (reply != NULL && reply->type == REDIS_REPLY_INTEGER) {
        log_notice("job %s (entry %s) is dead-lettered", f->job_id,
                   f->entry);
    }

    offload_log_job_ids(NULL, NULL, NULL);

    if (f->done != NULL) {
        f->done(f->data, reply == NULL ? OFFLOAD_FAIL_LINK_LOST
                         : reply->type == REDIS_REPLY_ERROR
                         ? OFFLOAD_FAIL_REFUSED : OFFLOAD_FAIL_SETTLED);
    }

    free(f);
}


const char *
offload_partial_hint(char *buf, size_t size, int partial)
{
    buf[0] = '\0';

    if (partial > 0) {
        snprintf(buf, size, "; its handler process had written %d bytes of "
                 "an answer without the newline that ends it (not "
                 "flushed?)", partial);
    }

    return buf;
}


/* The error answered when a job is out of attempts. */
static json_t *
failure_body(const offload_conf_queue_t *q, const offload_failure_t *fl,
    int attempts, int *status)
{
    char         message[256], hint[128];
    json_t      *doc, *err, *detail;
    const char  *code, *sig = NULL;

    if (fl->signal != 0 && sigabbrev_np(fl->signal) != NULL) {
        sig = sigabbrev_np(fl->signal);
    }

    switch (fl->reason) {
    case OFFLOAD_FAIL_JOB_TIMEOUT:
        *status = 504;
        code = "job_timeout";
        snprintf(message, sizeof(message), "the job ran longer than the "
                 "queue's timeout (%d ms); its worker was killed%s",
                 q->timeout_ms,
                 offload_partial_hint(hint, sizeof(hint),
                                      fl->answer_partial));
        break;

    case OFFLOAD_FAIL_MEMORY_LIMIT:
    case OFFLOAD_FAIL_ALLOCATION:
    case OFFLOAD_FAIL_OOM:
        *status = 502;
        code = "out_of_memory";
        snprintf(message, sizeof(message), "the job ran its worker out of "
                 "memory (%s), %d attempt(s)",
                 offload_fail_reason_name(fl->reason), attempts);
        break;

    default:
        *status = 502;
        code = "worker_crashed";
        snprintf(message, sizeof(message), "the worker running the job "
                 "died (%s%s%s), %d attempt(s)",
                 offload_fail_reason_name(fl->reason), sig ? ": SIG" : "",
                 sig ? sig : "", attempts);
    }

    doc = offload_error_doc(code, message);
    err = offload_error_doc_inner(doc);
    if (err == NULL
        || json_object_set_new(err, "reason",
               json_string(offload_fail_reason_name(fl->reason))) != 0
        || json_object_set_new(err, "attempts", json_integer(attempts)) != 0)
    {
        json_decref(doc);
        return NULL;
    }

    if (sig != NULL) {
        json_object_set_new(err, "signal", json_sprintf("SIG%s", sig));
    }

    if (fl->exit_code >= 0) {
        json_object_set_new(err, "exit_code", json_integer(fl->exit_code));
    }

    /* An exec handler's process: what it did (crash_report.c). */
    detail = json_object_get(fl->report, "handler_error");
    if (json_is_string(detail)) {
        json_object_set(err, "handler_error", detail);
    }

    if (fl->reason == OFFLOAD_FAIL_JOB_TIMEOUT) {
        json_object_set_new(err, "timeout_ms", json_integer(q->timeout_ms));
    }

    return doc;
}


/* argv of an EVAL whose entry fields follow its fixed arguments. */
typedef struct {
    const char  **argv;
    size_t       *argvlen;
    int           argc;
} args_t;


static int
args_init(args_t *a, size_t max)
{
    a->argv = malloc(max * sizeof(char *));
    a->argvlen = malloc(max * sizeof(size_t));
    a->argc = 0;

    if (a->argv == NULL || a->argvlen == NULL) {
        free(a->argv);
        free(a->argvlen);
        return -1;
    }

    return 0;
}


static void
arg(args_t *a, const char *s, size_t len)
{
    a->argv[a->argc] = s;
    a->argvlen[a->argc++] = len;
}

#define arg_str(a, s)  arg(a, s, strlen(s))


static int
send_args(offload_redis_conn_t *conn, args_t *a, fail_t *f)
{
    int  rc;

    rc = offload_redis_command_argv(conn, fail_cb, f, a->argc, a->argv,
                                    a->argvlen);
    free(a->argv);
    free(a->argvlen);

    return rc == REDIS_OK ? 0 : -1;
}


/* Requeues the job with attempt + 1: its fields, the attempt replaced. */
static int
send_requeue(offload_redis_conn_t *conn, const char *stream,
    const offload_str_t *entry_id, const offload_str_t *fields,
    size_t nfields, int attempt, fail_t *f)
{
    size_t   i;
    char     next[16];
    args_t   a;
    int      replaced = 0;

    if (args_init(&a, 6 + nfields + 2) != 0) {
        return -1;
    }

    snprintf(next, sizeof(next), "%d", attempt + 1);

    arg_str(&a, "EVAL");
    arg_str(&a, offload_requeue_script);
    arg_str(&a, "1");
    arg_str(&a, stream);
    arg_str(&a, OFFLOAD_GROUP);
    arg(&a, entry_id->data, entry_id->len);

    for (i = 0; i + 1 < nfields; i += 2) {
        arg(&a, fields[i].data, fields[i].len);

        if (fields[i].len == sizeof(OFFLOAD_F_ATTEMPT) - 1
            && memcmp(fields[i].data, OFFLOAD_F_ATTEMPT, fields[i].len) == 0)
        {
            arg_str(&a, next);
            replaced = 1;
        } else {
            arg(&a, fields[i + 1].data, fields[i + 1].len);
        }
    }

    if (!replaced) {
        arg_str(&a, OFFLOAD_F_ATTEMPT);
        arg_str(&a, next);
    }

    return send_args(conn, &a, f);
}


/* Dead-letters the job and completes it with the failure's answer. */
static int
send_dead(offload_redis_conn_t *conn, const offload_conf_t *conf,
    const offload_conf_queue_t *q, const char *stream,
    const offload_str_t *entry_id, const offload_str_t *fields,
    size_t nfields, const offload_entry_t *job,
    const offload_failure_t *failure, fail_t *f)
{
    int               rc = -1, status, hlen, klen, dlen, bklen;
    char             *result = NULL, *report = NULL, *body = NULL;
    char              key[OFFLOAD_KEY_MAX], dead[OFFLOAD_KEY_MAX];
    char              body_key[OFFLOAD_KEY_MAX], rec[OFFLOAD_KEY_MAX];
    char              ttl[16], maxlen[16], at[24];
    size_t            i, blen;
    json_t           *answer;
    args_t            a;
    offload_result_t  res;

    answer = failure_body(q, failure, job->attempt, &status);
    body = answer ? json_dumps(answer, JSON_COMPACT) : NULL;
    json_decref(answer);
    report = failure->report ? json_dumps(failure->report, JSON_COMPACT)
                             : strdup("{}");

    klen = offload_result_key(key, sizeof(key), q->name, strlen(q->name),
                              job->id.data, job->id.len);
    dlen = offload_dead_key(dead, sizeof(dead), q->name, strlen(q->name));
    bklen = offload_body_key(body_key, sizeof(body_key), q->name,
                             strlen(q->name), job->id.data, job->id.len);

    if (body == NULL || report == NULL || klen < 0 || bklen < 0
        || dlen < 0
        || offload_job_record_key(rec, sizeof(rec), job->id.data,
                                  job->id.len) < 0)
    {
        goto done;
    }

    blen = strlen(body);
    result = malloc(OFFLOAD_RESULT_HEADER_MAX + blen);
    if (result == NULL) {
        goto done;
    }

    memset(&res, 0, sizeof(res));
    res.version = OFFLOAD_PROTO_VERSION;
    res.id = job->id;
    res.status = status;

    hlen = offload_result_header(result, OFFLOAD_RESULT_HEADER_MAX, &res);
    if (hlen < 0 || args_init(&a, 14 + nfields + 8) != 0) {
        goto done;
    }
    memcpy(result + hlen, body, blen);

    snprintf(ttl, sizeof(ttl), "%d", conf->result_ttl_s);
    snprintf(maxlen, sizeof(maxlen), "%d", OFFLOAD_DEAD_MAXLEN);
    snprintf(at, sizeof(at), "%lld", (long long) offload_wall_ms());

    arg_str(&a, "EVAL");
    arg_str(&a, offload_dead_script);
    arg_str(&a, job->record_ttl_ms > 0 ? "5" : "4");
    arg_str(&a, stream);
    arg(&a, key, (size_t) klen);
    arg_str(&a, dead);
    arg(&a, body_key, (size_t) bklen);
    if (job->record_ttl_ms > 0) {
        arg_str(&a, rec);
    }
    arg_str(&a, OFFLOAD_GROUP);
    arg(&a, entry_id->data, entry_id->len);
    arg(&a, result, (size_t) hlen + blen);
    arg_str(&a, ttl);
    arg(&a, job->reply.len ? job->reply.data : "", job->reply.len);
    arg_str(&a, maxlen);

    for (i = 0; i + 1 < nfields; i += 2) {
        arg(&a, fields[i].data, fields[i].len);
        arg(&a, fields[i + 1].data, fields[i + 1].len);
    }

    arg_str(&a, "entry");
    arg(&a, entry_id->data, entry_id->len);
    arg_str(&a, "reason");
    arg_str(&a, offload_fail_reason_name(failure->reason));
    arg_str(&a, "report");
    arg_str(&a, report);
    arg_str(&a, "dead_at");
    arg_str(&a, at);

    rc = send_args(conn, &a, f);

done:

    free(body);
    free(report);
    free(result);
    return rc;
}


static int
fail_fields(offload_redis_conn_t *conn, const offload_conf_t *conf,
    const offload_conf_queue_t *q, const offload_str_t *entry_id,
    const offload_str_t *fields, size_t nfields,
    const offload_failure_t *failure, offload_fail_done_pt done,
    void *data)
{
    int               rc;
    char              stream[OFFLOAD_KEY_MAX];
    fail_t           *f;
    const char       *err;
    offload_entry_t   job;

    if (!conn->ready
        || offload_stream_key(stream, sizeof(stream), q->name,
                              strlen(q->name))
           < 0)
    {
        return -1;
    }

    if (offload_job_decode(&job, fields, nfields, &err) != 0) {
        /* Nobody can be answered; the entry must not stay pending. */
        log_error("queue %s: entry %.*s held by a dead worker is not a job "
                  "(%s): dead-lettered", q->name, (int) entry_id->len,
                  entry_id->data, err);
        offload_bad_job(offload_redis_send_plain, conn, q->name, entry_id,
                        fields, nfields, err);
        return -1;
    }

    f = calloc(1, sizeof(fail_t));
    if (f == NULL) {
        return -1;
    }

    snprintf(f->entry, sizeof(f->entry), "%.*s", (int) entry_id->len,
             entry_id->data);
    offload_str_copy(f->job_id, sizeof(f->job_id), job.id.data, job.id.len);
    offload_str_copy(f->request_id, sizeof(f->request_id),
                     job.request_id.data, job.request_id.len);
    offload_str_copy(f->trace_id, sizeof(f->trace_id),
                     job.traceparent.len
                     ? job.traceparent.data + OFFLOAD_TRACE_ID_AT : NULL,
                     OFFLOAD_TRACE_ID_LEN);
    f->done = done;
    f->data = data;

    if (failure->reason != OFFLOAD_FAIL_JOB_TIMEOUT
        && job.attempt < q->max_attempts
        && job.deadline_ms > offload_redis_clock_ms(conn))
    {
        rc = send_requeue(conn, stream, entry_id, fields, nfields,
                          job.attempt, f);
    } else {
        rc = send_dead(conn, conf, q, stream, entry_id, fields, nfields,
                       &job, failure, f);
    }

    if (rc != 0) {
        log_error("queue %s: cannot fail job %s", q->name, f->job_id);
        free(f);
    }

    return rc;
}


int
offload_fail_attempt(offload_redis_conn_t *conn,
    const offload_conf_t *conf, const offload_conf_queue_t *q,
    const redisReply *entry, const offload_failure_t *failure,
    offload_fail_done_pt done, void *data)
{
    int             rc;
    size_t          i, n;
    redisReply     *kv;
    offload_str_t   id, *fields;

    if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2
        || entry->element[0]->type != REDIS_REPLY_STRING
        || entry->element[1]->type != REDIS_REPLY_ARRAY)
    {
        return -1;
    }

    id.data = entry->element[0]->str;
    id.len = entry->element[0]->len;
    kv = entry->element[1];
    n = kv->elements;

    /* + 1: an entry may have no fields, and calloc(0) may return NULL */
    fields = calloc(n + 1, sizeof(offload_str_t));
    if (fields == NULL) {
        return -1;
    }

    for (i = 0; i < n; i++) {
        if (kv->element[i]->type == REDIS_REPLY_STRING) {
            fields[i].data = kv->element[i]->str;
            fields[i].len = kv->element[i]->len;
        }
    }

    rc = fail_fields(conn, conf, q, &id, fields, n, failure, done, data);
    free(fields);
    return rc;
}
