/*
 * stage.c -- a big result's way into Redis.  A result over
 * OFFLOAD_NOTICE_OVER never travels in one Redis command (Redis runs one
 * command at a time: a 64 MB one holds up every other client): it is
 * written to a staging list with RPUSH, OFFLOAD_SLICE bytes an element,
 * STAGE_WINDOW commands in flight (so that Redis does not run a whole
 * pipeline of them in one go, and hiredis' output buffer stays small),
 * then completed with the staging key, which the completion script renames
 * to the result key.  A list, not a string grown by APPEND: Redis copies a
 * growing string every megabyte or so, which stalls every client for up
 * to hundreds of ms on a 64 MB one.  While a staging runs, the batch
 * waits: one big job at a time per worker.  A reconnect restarts it from
 * its first slice.
 */

#include <stdio.h>
#include <string.h>

#include "log.h"
#include "offload_proto.h"
#include "redis_conn.h"
#include "worker_state.h"

#define STAGE_TRIES       3


static void stage_send(offload_worker_t *w);


/* The body slice that starts at byte off of the encoded result. */
static size_t
stage_slice(const stage_t *s, size_t off)
{
    return s->len - off < OFFLOAD_SLICE ? s->len - off : OFFLOAD_SLICE;
}


/*
 * Staging a big result as a list: MULTI, UNLINK <stage> (what an earlier
 * try left), RPUSH <stage> <header line>, PEXPIRE <stage> <result TTL>,
 * EXEC (no staging key without a lifetime), then RPUSH of each OFFLOAD_SLICE
 * of the body, at most STAGE_WINDOW unanswered, each reply checked (the
 * list's length so far); then the completion with the staging key, whose
 * script renames it to the result key after checking its length.  A
 * failure stages again from the start, STAGE_TRIES times, then answers the
 * client an error rather than leave it waiting.
 */
void
offload_stage_start(offload_worker_t *w, completion_t *c,
    const offload_str_t *job_id, size_t header_len, const char *body)
{
    stage_t  *s = &w->stage;

    if (s->c != NULL) {
        /* cannot happen: the batch waits while a result is staged */
        log_error("%s: a result is staged already: entry %.*s stays "
                  "pending", w->name, (int) c->arglen[C_ENTRY],
                  c->arg[C_ENTRY]);
        offload_completion_put(w, c);
        return;
    }

    memset(s, 0, sizeof(*s));
    s->c = c;
    s->header = c->arg[C_RESULT];
    s->body = body;
    s->len = c->arglen[C_RESULT];
    s->header_len = header_len;
    snprintf(s->elements_arg, sizeof(s->elements_arg), "%zu",
             1 + (s->len - header_len + OFFLOAD_SLICE - 1) / OFFLOAD_SLICE);
    snprintf(s->job_id, sizeof(s->job_id), "%.*s", (int) job_id->len,
             job_id->data);
    c->arg[C_RESULT] = s->elements_arg;
    c->arglen[C_RESULT] = strlen(s->elements_arg);

    log_debug("%s: staging a result of %zu bytes for entry %.*s", w->name,
              s->len, (int) c->arglen[C_ENTRY], c->arg[C_ENTRY]);
    stage_send(w);
}


/*
 * Whether an EXEC's error says MULTI or EXEC themselves were refused, not
 * a command queued between them (an ACL without RPUSH: EXECABORT too):
 * EXEC unknown (renamed away) or refused with its MULTI left open, "EXEC
 * without MULTI" (MULTI refused), or EXECABORT for a NOPERM that names
 * exec or multi (Redis 7 discards a transaction whose EXEC it denies).
 */
static int
transaction_itself_refused(const char *err)
{
    if (strncmp(err, "EXECABORT", 9) != 0) {
        return 1;
    }

    return strstr(err, "NOPERM") != NULL
           && (strstr(err, "'exec'") != NULL
               || strstr(err, "'multi'") != NULL);
}


/* The EXEC's reply (or the script's): UNLINK's, then the first RPUSH's 1,
 * PEXPIRE's 1. */
static int
stage_first_ok(const redisReply *reply)
{
    return reply->type == REDIS_REPLY_ARRAY && reply->elements == 3
           && reply->element[1]->type == REDIS_REPLY_INTEGER
           && reply->element[1]->integer == 1
           && reply->element[2]->type == REDIS_REPLY_INTEGER
           && reply->element[2]->integer == 1;
}


static void
stage_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    size_t             n;
    offload_worker_t  *w = privdata;
    stage_t           *s = &w->stage;
    redisReply        *reply = r;

    (void) ac;

    if (reply == NULL || s->c == NULL) {
        return;                 /* disconnected: staged again on reconnect */
    }

    /* the first reply is the first step's: its EXEC's.  MULTI or EXEC
     * refused themselves: staged again, by the script; with its MULTI left
     * open, the link is dropped first (staged again on reconnect). */
    if (s->acked == 0 && !s->scripted && reply->type == REDIS_REPLY_ERROR) {
        if (transaction_itself_refused(reply->str)) {
            offload_completion_transactions_refused(w, reply->str);
        }

        if (offload_completion_exec_left_open(w, reply)) {
            return;
        }
    }

    n = s->acked == 0 ? s->header_len : stage_slice(s, s->acked);
    s->in_flight--;
    s->pushed++;

    if (s->acked == 0 ? !stage_first_ok(reply)
                      : reply->type != REDIS_REPLY_INTEGER
                        || reply->integer != (long long) s->pushed)
    {
        if (!s->failed) {
            log_error("%s: staging the result of job %s failed at byte "
                      "%zu: %s", w->name, s->job_id, s->acked,
                      reply->type == REDIS_REPLY_ERROR ? reply->str
                                                       : "unexpected reply");
        }
        s->failed = 1;
    }

    s->acked += n;

    if (!s->failed) {
        stage_send(w);

    } else if (s->in_flight == 0) {
        offload_stage_retry(w);
    }
}


/* Sends the transaction that makes the staging list with the header, or,
 * where Redis refuses transactions, the script that does. */
static int
stage_send_first(offload_worker_t *w)
{
    stage_t       *s = &w->stage;
    completion_t  *c = s->c;
    const char    *key = c->arg[C_STAGE_KEY];
    size_t         klen = c->arglen[C_STAGE_KEY];
    const char    *argv[6];
    size_t         argvlen[6];

    s->scripted = w->no_transactions;

    if (s->scripted) {
        argv[0] = "EVAL";
        argv[1] = offload_stage_first_script;
        argv[2] = "1";
        argv[3] = key;
        argv[4] = s->header;
        argv[5] = w->ttl_ms;
        argvlen[0] = 4;
        argvlen[1] = strlen(offload_stage_first_script);
        argvlen[2] = 1;
        argvlen[3] = klen;
        argvlen[4] = s->header_len;
        argvlen[5] = strlen(w->ttl_ms);

        return offload_redis_command_argv(&w->conn, stage_cb, w, 6, argv,
                                          argvlen)
               == REDIS_OK ? 0 : -1;
    }

    argv[1] = key;
    argvlen[1] = klen;

    argv[0] = "MULTI";
    argvlen[0] = 5;
    if (offload_redis_command_argv(&w->conn, NULL, NULL, 1, argv, argvlen)
        != REDIS_OK)
    {
        return -1;
    }

    argv[0] = "UNLINK";
    argvlen[0] = 6;
    offload_completion_send_queued(w, NULL, NULL, 2, argv, argvlen);

    argv[0] = "RPUSH";
    argvlen[0] = 5;
    argv[2] = s->header;
    argvlen[2] = s->header_len;
    offload_completion_send_queued(w, NULL, NULL, 3, argv, argvlen);

    argv[0] = "PEXPIRE";
    argvlen[0] = 7;
    argv[2] = w->ttl_ms;
    argvlen[2] = strlen(w->ttl_ms);
    offload_completion_send_queued(w, NULL, NULL, 3, argv, argvlen);

    /* a queued command refused makes EXEC fail (EXECABORT): checked */
    argv[0] = "EXEC";
    argvlen[0] = 4;
    offload_completion_send_queued(w, stage_cb, w, 1, argv, argvlen);
    return 0;
}


static void
stage_send(offload_worker_t *w)
{
    size_t         n, argvlen[3];
    const char    *argv[3];
    stage_t       *s = &w->stage;
    completion_t  *c = s->c;

    if (s->sent == 0) {
        if (stage_send_first(w) != 0) {
            return;             /* disconnected: staged again on reconnect */
        }

        s->sent = s->header_len;
        s->in_flight++;
    }

    while (s->sent < s->len && s->in_flight < STAGE_WINDOW) {
        n = stage_slice(s, s->sent);

        /* RPUSHX: a staging list gone meanwhile (expired, or its
         * transaction aborted) is not made again without a lifetime; the
         * count in the reply tells */
        argv[0] = "RPUSHX";
        argv[1] = c->arg[C_STAGE_KEY];
        argv[2] = s->body + (s->sent - s->header_len);
        argvlen[0] = 6;
        argvlen[1] = c->arglen[C_STAGE_KEY];
        argvlen[2] = n;

        if (offload_redis_command_argv(&w->conn, stage_cb, w, 3, argv,
                                       argvlen)
            != REDIS_OK)
        {
            return;             /* disconnected: staged again on reconnect */
        }

        s->sent += n;
        s->in_flight++;
    }

    if (s->in_flight == 0 && s->acked == s->len) {
        offload_completion_send(w, c);
    }
}


/* From the first slice again (after a reconnect, or a failure). */
void
offload_stage_restart(offload_worker_t *w)
{
    stage_t  *s = &w->stage;

    s->sent = 0;
    s->acked = 0;
    s->pushed = 0;
    s->in_flight = 0;
    s->failed = 0;
    stage_send(w);
}


void
offload_stage_retry(offload_worker_t *w)
{
    char              why[80];
    stage_t          *s = &w->stage;
    completion_t     *c = s->c;
    offload_str_t     job_id;

    if (++s->tries < STAGE_TRIES) {
        log_warn("%s: staging the result of job %s again (try %d of %d)",
                 w->name, s->job_id, s->tries + 1, STAGE_TRIES);
        offload_stage_restart(w);
        return;
    }

    log_error("%s: the result of job %s (%zu bytes) could not be stored "
              "after %d tries: answering an error instead", w->name,
              s->job_id, s->len, STAGE_TRIES);

    /* what was staged goes now, not when its lifetime ends */
    offload_redis_command(&w->conn, NULL, NULL, "UNLINK %b",
                          c->arg[C_STAGE_KEY], c->arglen[C_STAGE_KEY]);

    s->c = NULL;
    job_id.data = s->job_id;
    job_id.len = strlen(s->job_id);
    snprintf(why, sizeof(why), "%zu bytes, not staged after %d tries",
             s->len, STAGE_TRIES);
    offload_completion_answer_instead(w, c, &job_id, why, 0);
    offload_worker_resume(w);
}


void
offload_stage_end(offload_worker_t *w)
{
    offload_completion_put(w, w->stage.c);
    w->stage.c = NULL;
    offload_worker_resume(w);
}
