/*
 * completion.c -- a job's end, told to Redis: its result stored and
 * published, its entry acked and deleted.
 *
 * Completions are pipelined: they are sent without waiting for replies and
 * the next XREADGROUP follows the batch on the same connection, so Redis
 * sees them in order.  The jobs finished in one turn of the loop (up to
 * COMPLETE_BATCH_MAX, and as many as COMPLETE_BATCH_BYTES of results hold)
 * are completed by one call, by the completion script (EVALSHA) or, for
 * plain jobs, one MULTI ... EXEC: the call's own cost and one XACK and one
 * XDEL are paid once for all of them.  A completion's arguments are kept
 * until its reply arrives, for the EVAL fallback on NOSCRIPT; their
 * buffers are recycled through a free list so the steady state allocates
 * nothing per job besides the JSON documents themselves.
 *
 * What Redis refuses (maxmemory under noeviction, BUSY...) is not dropped:
 * a completion answered with an error is kept with the lost ones (whose
 * reply the link lost), the tracked commands in held.c, and both are sent
 * again by the resend timer, backing off, while the worker reads nothing
 * new (offload_completion_refused(), offload_completion_settled()).
 * Thrown away, its entry would stay pending under a live worker, whose
 * claim refreshes keep every other node from taking it.  A refusal that
 * does not pass by itself (a script error, an ACL) ends after
 * REFUSED_TRIES in a last resort: the job is answered an
 * error and its entry dead-lettered (completion_give_up(),
 * held_give_up()); should that be refused too, a completion's entry is
 * dead-lettered, a tracked command's makes the worker recycle, so that the
 * next one reads the entry again.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "bad_job.h"
#include "error_doc.h"
#include "log.h"
#include "offload_proto.h"
#include "offload_resp.h"
#include "redis_conn.h"
#include "worker_state.h"

#define COMPLETE_BATCH_MAX 32       /* jobs completed by one call, */
#define COMPLETE_BATCH_BYTES (256 << 10)    /* and results' bytes: no
                                               batch of big results makes
                                               one huge command */
#define RESEND_MAX_S      2.0       /* RESEND_MIN_S, doubling up to
                                       this */
#define COMPLETE_ARGV_MAX (6 + COMPLETE_BATCH_MAX * C_ARGS)


static void completion_give_up(offload_worker_t *w, completion_t *c,
    const char *err);
static int send_transaction(offload_worker_t *w, completion_t *c);


void
offload_completion_put(offload_worker_t *w, completion_t *c)
{
    if (c->cap > KEEP_BUFFER_MAX) {
        free(c->buf);           /* a big result's: not kept per worker */
        c->buf = NULL;
        c->cap = 0;
    }

    free(c->staged_body);
    c->staged_body = NULL;

    c->next = w->free_list;
    w->free_list = c;
}


static void
set_arg(completion_t *c, int i, const char *data, size_t len)
{
    c->arg[i] = data;
    c->arglen[i] = len;
}


/* Recycles the completions of one call. */
void
offload_completion_put_all(offload_worker_t *w, completion_t *c)
{
    completion_t  *next;

    for ( /* void */ ; c != NULL; c = next) {
        next = c->next;
        offload_completion_put(w, c);
    }
}


static completion_t *
completion_get(offload_worker_t *w, size_t need)
{
    char          *buf;
    completion_t  *c = w->free_list;

    if (c != NULL) {
        w->free_list = c->next;
        c->next = NULL;
    } else {
        c = calloc(1, sizeof(completion_t));
        if (c == NULL) {
            return NULL;
        }
        c->worker = w;
    }

    if (c->cap < need) {
        buf = realloc(c->buf, need);
        if (buf == NULL) {
            offload_completion_put(w, c);
            return NULL;
        }
        c->buf = buf;
        c->cap = need;
    }

    return c;
}


/*
 * A completion call whose reply the link lost: a redirect (MOVED, ASK,
 * TRYAGAIN, CLUSTERDOWN: not run), or a connection lost (run or not).  Its
 * jobs ran: it is kept and sent again after the reconnect, before the
 * history read, which otherwise would run them again (and again, each
 * cycle, while their slot is migrating).
 */
void
offload_completion_lost(offload_worker_t *w, completion_t *c)
{
    c->next_call = NULL;

    if (w->lost_tail != NULL) {
        w->lost_tail->next_call = c;
    } else {
        w->lost = c;
    }

    w->lost_tail = c;
}


/*
 * Redis refused a command that settles an entry (a completion, a dead
 * letter, a retry): it is kept and sent again by the resend timer,
 * RESEND_MIN_S after the first refusal, twice as long after each try, at
 * most RESEND_MAX_S apart.  Meanwhile the worker reads no new job (its
 * results would only be refused too).  The episode is logged when it
 * starts and when it ends (offload_completion_settled()), not at every try.
 */
void
offload_completion_refused(offload_worker_t *w)
{
    if (!w->refusing) {
        log_error("%s: kept and sent again, every %g s at most, until redis "
                  "takes it; no new job is read meanwhile", w->name,
                  RESEND_MAX_S);
        w->refusing = 1;
        w->resend_delay = RESEND_MIN_S;
    }

    if (!ev_is_active(&w->resend)) {
        ev_timer_set(&w->resend, w->resend_delay, 0.0);
        ev_timer_start(w->loop, &w->resend);
        w->resend_delay *= 2;
        if (w->resend_delay > RESEND_MAX_S) {
            w->resend_delay = RESEND_MAX_S;
        }
    }
}


/* Nothing refused is held any more: the episode ends, the worker reads
 * again (unless a read is out or due already). */
void
offload_completion_settled(offload_worker_t *w)
{
    if (w->lost != NULL || w->held != NULL || w->resending > 0) {
        return;
    }

    ev_timer_stop(w->loop, &w->resend);

    if (w->refusing) {
        log_notice("%s: nothing refused is held any more: reading again",
                   w->name);
        w->refusing = 0;
    }

    if (w->conn.ready && !w->reading && !ev_is_active(&w->read_retry)) {
        offload_worker_resume(w);
    }
}


/*
 * Answers the job of c an error (500 result_not_stored, the message given)
 * in place of its result, which could not be stored: its entry, reply
 * channel, body key and record lifetime are c's, so that an async job's
 * record ends failed as a waiting client is answered.  c goes back to the
 * free list.  An answer made with last_resort that Redis refuses too ends
 * in a dead letter (completion_give_up()).
 */
void
offload_completion_answer_instead(offload_worker_t *w, completion_t *c,
    const offload_str_t *job_id, const char *why, int last_resort)
{
    char           message[200], ttl[24];
    offload_str_t  entry_id, reply;

    entry_id.data = c->arg[C_ENTRY];
    entry_id.len = c->arglen[C_ENTRY];
    reply.data = c->arg[C_CHANNEL];
    reply.len = c->arglen[C_CHANNEL];
    snprintf(message, sizeof(message), "the result could not be stored in "
             "Redis: %.120s", why);
    snprintf(ttl, sizeof(ttl), "%.*s", (int) c->arglen[C_REC_TTL],
             c->arg[C_REC_TTL]);

    /* the answer refers to c's buffer: c goes back after it is encoded */
    w->body_keyed = c->arglen[C_BODY_KEY] > 0;
    w->record_ttl_ms = strtoll(ttl, NULL, 10);
    w->last_resort = last_resort;
    offload_completion_error(w, &entry_id, job_id, &reply, 500, 0,
                             "result_not_stored", message);
    w->last_resort = 0;
    w->record_ttl_ms = 0;
    w->body_keyed = 0;
    offload_completion_put(w, c);
}


/* A completion's job id: its result key's end.  Returns -1 when the key
 * names none. */
static int
completion_job_id(const offload_worker_t *w, const completion_t *c,
    offload_str_t *id)
{
    size_t  plen = strlen(w->result_prefix);

    if (c->arglen[C_RESULT_KEY] <= plen) {
        return -1;
    }

    id->data = c->arg[C_RESULT_KEY] + plen;
    id->len = c->arglen[C_RESULT_KEY] - plen;
    return 0;
}


/*
 * A completion Redis keeps refusing for a reason that does not pass by
 * itself: its client is answered an error instead
 * (offload_completion_answer_instead()), as for a big result that could not
 * be staged.  Should that be refused
 * too, or the job id not be had from the result key, the entry goes to
 * the dead-letter stream (reason bad_job, the refusal in its report; the
 * bad-job script touches neither result, record nor channel), where
 * `offloadctl dead` shows it, rather than be tried for ever or left
 * pending.
 */
static void
completion_give_up(offload_worker_t *w, completion_t *c, const char *err)
{
    char           message[200];
    settles_t      st;
    const char    *q = w->queue->name;
    offload_str_t  entry_id, job_id;

    entry_id.data = c->arg[C_ENTRY];
    entry_id.len = c->arglen[C_ENTRY];

    if (c->last_resort) {
        log_error("%s: entry %.*s: redis refused its error answer too "
                  "(%s): dead-lettered", w->name, (int) entry_id.len,
                  entry_id.data, err);

    } else {
        if (completion_job_id(w, c, &job_id) == 0) {
            log_error("%s: entry %.*s: redis refused its completion %d "
                      "times (%s): answering an error instead", w->name,
                      (int) entry_id.len, entry_id.data, c->tries, err);
            offload_completion_answer_instead(w, c, &job_id, err, 1);
            return;
        }

        log_error("%s: entry %.*s: redis refused its completion %d times "
                  "(%s), and its result key names no job to answer: "
                  "dead-lettered", w->name, (int) entry_id.len,
                  entry_id.data, c->tries, err);
    }

    snprintf(message, sizeof(message), "its result could not be stored in "
             "Redis: %.120s", err);
    offload_held_settles(&st, &entry_id, NULL, 1);
    w->settling = &st;
    offload_bad_job(offload_held_send, w, q, &entry_id, NULL, 0, message);
    w->settling = NULL;
    offload_completion_put(w, c);
}


/*
 * Redis answered a completion call with an error: the call is kept and
 * sent again (offload_completion_refused()), as one whose reply the link
 * lost.  An error that does not pass by itself splits the call into one
 * per job, so that one job's fault holds no other, and ends each after
 * REFUSED_TRIES.
 */
static void
completion_refused(offload_worker_t *w, completion_t *c, const char *err)
{
    completion_t  *j, *next;

    if (!w->refusing) {
        log_error("%s: completing entry %.*s%s failed: %s", w->name,
                  (int) c->arglen[C_ENTRY], c->arg[C_ENTRY],
                  c->next != NULL ? " and the entries after it" : "", err);
    }

    c->tries++;

    if (!offload_refusal_passes(err)) {
        if (c->next != NULL) {
            for (j = c; j != NULL; j = next) {
                next = j->next;
                j->next = NULL;
                j->tries = c->tries;
                offload_completion_lost(w, j);
            }

            offload_completion_refused(w);
            return;
        }

        if (c->tries >= REFUSED_TRIES) {
            completion_give_up(w, c, err);
            return;
        }
    }

    offload_completion_lost(w, c);
    offload_completion_refused(w);
}


/*
 * 1 when an error answering EXEC leaves MULTI open on the link
 * (offload_exec_left_multi_open()), which is then dropped: the next
 * commands would be queued into that MULTI.
 */
int
offload_completion_exec_left_open(offload_worker_t *w,
    const redisReply *reply)
{
    if (reply->type != REDIS_REPLY_ERROR
        || !offload_exec_left_multi_open(reply->str))
    {
        return 0;
    }

    offload_redis_conn_out_of_step(&w->conn, "EXEC refused, MULTI open");
    return 1;
}


/*
 * Why a transaction (send_transaction()) failed, or NULL.  EXECABORT: a
 * queued command was refused (c->refusal keeps its reply), or EXEC itself
 * (Redis 7: the reason after "because of: ").  "EXEC without MULTI":
 * MULTI was refused (c->refusal), and the commands ran one by one, in
 * their order: sending them again does no harm.  Any other error is
 * EXEC's own, with MULTI left open (offload_completion_exec_left_open()).
 * MULTI or EXEC refused for good (an ACL without them, a renamed command)
 * makes the worker complete by the script from then on.  An error in
 * EXEC's array: a command failed when it ran (those after it ran all the
 * same: a NOGROUP XACK, then the XDEL; the script stops at its first
 * failure).
 */
static const char *
transaction_error(offload_worker_t *w, const completion_t *c,
    const redisReply *reply)
{
    size_t       i;
    const char  *err, *because;

    if (reply->type == REDIS_REPLY_ARRAY) {
        for (i = 0; i < reply->elements; i++) {
            if (reply->element[i]->type == REDIS_REPLY_ERROR) {
                return reply->element[i]->str;
            }
        }

        return NULL;
    }

    if (reply->type != REDIS_REPLY_ERROR) {
        return "EXEC answered neither an array of replies nor an error";
    }

    if (strncmp(reply->str, "EXECABORT", 9) == 0) {
        if (c->refusal[0] != '\0') {
            return c->refusal;
        }

        because = strstr(reply->str, "because of: ");
        err = because != NULL ? because + 12 : reply->str;

    } else if (strstr(reply->str, "without MULTI") != NULL) {
        err = c->refusal[0] != '\0' ? c->refusal : reply->str;

    } else {
        err = reply->str;
        offload_completion_exec_left_open(w, reply);
    }

    offload_completion_transactions_refused(w, err);
    return err;
}


/* MULTI or EXEC refused for good (err, a refusal that does not pass): the
 * worker completes jobs, and begins staging lists, by scripts from then
 * on.  Said once. */
void
offload_completion_transactions_refused(offload_worker_t *w, const char *err)
{
    if (!offload_refusal_passes(err) && !offload_redirect(err)
        && !w->no_transactions)
    {
        log_error("%s: MULTI or EXEC refused (%s): jobs are completed by "
                  "the script until this worker restarts", w->name, err);
        w->no_transactions = 1;
    }
}


/*
 * Says so when a job's result was stored already under its id (SET NX
 * kept that one, this run's is not stored): the job ran twice (its entry
 * claimed from a worker taken for lost that finished after all), or a
 * program gave two jobs one id.  A call sent again after its reply was
 * lost finds its own result there: not said.  A transaction answers each
 * job's SET (nil: not stored), then its PUBLISH if it has a reply
 * channel; the script, how many it stored.
 */
static void
stored_before(offload_worker_t *w, const completion_t *c,
    const redisReply *reply)
{
    size_t               i = 0, jobs = 0;
    offload_str_t        id;
    const completion_t  *j;

    if (c->transaction) {
        for (j = c; j != NULL && i < reply->elements; j = j->next) {
            if (reply->element[i]->type == REDIS_REPLY_NIL
                && completion_job_id(w, j, &id) == 0)
            {
                log_warn("%s: job %.*s: a result was stored under its id "
                         "already and is kept, not this run's: the job ran "
                         "twice, or two jobs were given one id", w->name,
                         (int) id.len, id.data);
            }

            i += j->arglen[C_CHANNEL] > 0 ? 2 : 1;
        }

        return;
    }

    for (j = c; j != NULL; j = j->next) {
        jobs++;
    }

    if (reply->type == REDIS_REPLY_INTEGER
        && reply->integer < (long long) jobs)
    {
        log_warn("%s: %zu of the %zu jobs completed from entry %.*s on found "
                 "a result stored under their ids already, kept, not this "
                 "run's: they ran twice, or two jobs were given one id",
                 w->name, jobs - (size_t) reply->integer, jobs,
                 (int) c->arglen[C_ENTRY], c->arg[C_ENTRY]);
    }
}


static void
completion_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    completion_t      *c = privdata;
    offload_worker_t  *w = c->worker;
    redisReply        *reply = r;
    int                staged = c == w->stage.c, resent;
    const char        *err;

    (void) ac;

    if (!c->transaction && !c->eval
        && offload_worker_script_missing(&w->scripts[SCRIPT_COMPLETE], reply))
    {
        c->eval = 1;

        if (offload_completion_send(w, c) == 0) {
            w->in_flight--;             /* the resend counted itself */
            return;
        }
    }

    w->in_flight--;

    resent = c->resent;
    if (resent) {
        c->resent = 0;
        w->resending--;
    }

    if (staged) {
        if (reply == NULL) {
            return;             /* disconnected: staged again on reconnect */
        }

        if (reply->type == REDIS_REPLY_ERROR) {
            log_error("%s: completing entry %.*s from its staging key "
                      "failed: %s", w->name, (int) c->arglen[C_ENTRY],
                      c->arg[C_ENTRY], reply->str);
            offload_stage_retry(w);
            return;
        }

        offload_stage_end(w);

    } else if (reply == NULL) {
        offload_completion_lost(w, c);

    } else {
        err = c->transaction ? transaction_error(w, c, reply)
              : reply->type == REDIS_REPLY_ERROR ? reply->str : NULL;

        if (err != NULL) {
            completion_refused(w, c, err);

        } else {
            if (!resent) {
                stored_before(w, c, reply);
            }

            offload_completion_put_all(w, c);
        }
    }

    if (resent) {
        offload_completion_settled(w);
    }

    offload_worker_maybe_exit(w);
}


/* Sends the lost calls again, in their order, ahead of the history read:
 * those acked by a run whose reply was lost find their entries no longer
 * pending (the result SET NX is kept, the reply published again); the
 * others complete their jobs, which so do not run again. */
void
offload_completion_resend_lost(offload_worker_t *w)
{
    completion_t  *c;

    while ((c = w->lost) != NULL) {
        if (offload_completion_send(w, c) != 0) {
            return;                     /* lost again: next reconnect */
        }

        w->lost = c->next_call;
        if (w->lost == NULL) {
            w->lost_tail = NULL;
        }

        c->resent = 1;                  /* no read before its reply */
        w->resending++;
    }
}


/* Sends again what Redis refused (after a lost link, connected() does). */
void
offload_completion_resend_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    offload_worker_t  *w = t->data;

    (void) loop;
    (void) revents;

    if (w->conn.ready) {
        offload_completion_resend_lost(w);
        offload_held_resend(w);
    }
}


/*
 * 1 when the jobs of c's call are all plain: no body key, no staged
 * result, no record, a reply channel (if any) without a hash tag, which
 * the script publishes with SPUBLISH, or with PUBLISH when Redis refuses
 * that.  Most sync jobs are.
 */
static int
transaction_fits(const completion_t *c)
{
    for ( /* void */ ; c != NULL; c = c->next) {
        if (c->arglen[C_BODY_KEY] > 0 || c->arglen[C_STAGE_KEY] > 0
            || c->arglen[C_REC_KEY] > 0
            || memchr(c->arg[C_CHANNEL], '{', c->arglen[C_CHANNEL]) != NULL)
        {
            return 0;
        }
    }

    return 1;
}


/* The reply to MULTI or to a command it queued: +OK, +QUEUED, or why
 * Redis refused it (OOM, NOPERM...), which EXECABORT does not say. */
static void
queued_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    completion_t  *c = privdata;
    redisReply    *reply = r;

    (void) ac;

    if (reply != NULL && reply->type == REDIS_REPLY_ERROR
        && c->refusal[0] == '\0')
    {
        snprintf(c->refusal, sizeof(c->refusal), "%s", reply->str);
    }
}


/* A command of a transaction after MULTI: one that cannot be sent (no
 * memory) would leave the connection inside the transaction. */
void
offload_completion_send_queued(offload_worker_t *w, redisCallbackFn *fn,
    void *privdata, int argc, const char **argv, const size_t *argvlen)
{
    if (offload_redis_command_argv(&w->conn, fn, privdata, argc, argv,
                                   argvlen)
        != REDIS_OK)
    {
        log_error("%s: out of memory sending a transaction", w->name);
        offload_worker_out_of_memory(w);
    }
}


/*
 * The completion of plain jobs (transaction_fits()) without the script:
 * MULTI; for each job SET <result key> <result> NX PX <result_ttl> and,
 * with a reply channel, PUBLISH <channel> <result>; one XACK and one XDEL
 * of all their entries; EXEC.  What the script does for such jobs, in one
 * atomic step as the script is, without Lua's own work (arguments made
 * Lua strings, each redis.call's made Redis objects again): Redis'
 * instructions per echo job 108,000 -> 89,000 (callgrind,
 * BENCH_ONLY=instructions), EXEC about 60% of EVALSHA's time a job in
 * INFO commandstats.  The one difference: a job whose result
 * was stored already (it ran twice) publishes its own result here, the
 * stored one by the script; Redis delivers the first run's first, and
 * nginx answers with the first it gets (docs/PROTOCOL.md, step 4).
 */
static int
send_transaction(offload_worker_t *w, completion_t *c)
{
    int            n;
    size_t         len[COMPLETE_BATCH_MAX + 3], ttl_len;
    const char    *arg[COMPLETE_BATCH_MAX + 3];
    completion_t  *j;

    c->refusal[0] = '\0';
    ttl_len = strlen(w->ttl_ms);
    arg[0] = "MULTI";
    len[0] = 5;

    if (offload_redis_command_argv(&w->conn, queued_cb, c, 1, arg, len)
        != REDIS_OK)
    {
        return -1;
    }

    for (j = c; j != NULL; j = j->next) {
        arg[0] = "SET";
        len[0] = 3;
        arg[1] = j->arg[C_RESULT_KEY];
        len[1] = j->arglen[C_RESULT_KEY];
        arg[2] = j->arg[C_RESULT];
        len[2] = j->arglen[C_RESULT];
        arg[3] = "NX";
        len[3] = 2;
        arg[4] = "PX";
        len[4] = 2;
        arg[5] = w->ttl_ms;
        len[5] = ttl_len;
        offload_completion_send_queued(w, queued_cb, c, 6, arg, len);

        if (j->arglen[C_CHANNEL] > 0) {         /* and the result */
            arg[0] = "PUBLISH";
            len[0] = 7;
            arg[1] = j->arg[C_CHANNEL];
            len[1] = j->arglen[C_CHANNEL];
            /* arg[2] as it was */
            offload_completion_send_queued(w, queued_cb, c, 3, arg, len);
        }
    }

    /* XACK <stream> <group> <ids>, then XDEL <stream> <ids>: the same
     * array from its second element */
    arg[0] = "XACK";
    len[0] = 4;
    arg[1] = w->stream;
    len[1] = strlen(w->stream);
    arg[2] = OFFLOAD_GROUP;
    len[2] = sizeof(OFFLOAD_GROUP) - 1;

    for (n = 3, j = c; j != NULL; j = j->next, n++) {
        arg[n] = j->arg[C_ENTRY];
        len[n] = j->arglen[C_ENTRY];
    }

    offload_completion_send_queued(w, queued_cb, c, n, arg, len);

    arg[1] = "XDEL";
    len[1] = 4;
    arg[2] = w->stream;
    len[2] = strlen(w->stream);
    offload_completion_send_queued(w, queued_cb, c, n - 1, arg + 1, len + 1);

    arg[0] = "EXEC";
    len[0] = 4;
    offload_completion_send_queued(w, completion_cb, c, 1, arg, len);

    w->in_flight++;
    offload_replicas_wait(w);
    return 0;
}


/*
 * One call completing c and the completions chained after it: a
 * transaction for plain jobs, the completion script for the others, and
 * for a call Redis refused before.  A refused command aborts a whole
 * transaction (an ACL without XACK: nothing stored, nobody answered),
 * where the script has stored and published what came before it.
 */
int
offload_completion_send(offload_worker_t *w, completion_t *c)
{
    int            i, argc, keys;
    char           numkeys[12];
    size_t         argvlen[COMPLETE_ARGV_MAX];
    const char    *argv[COMPLETE_ARGV_MAX];
    completion_t  *j;

    c->transaction = c->tries == 0 && !w->no_transactions
                     && transaction_fits(c);
    if (c->transaction) {
        return send_transaction(w, c);
    }

    offload_worker_script_call(&w->scripts[SCRIPT_COMPLETE], c->eval, argv,
                               argvlen);
    argv[2] = numkeys;
    argv[3] = w->stream;
    argvlen[3] = strlen(w->stream);
    argc = 4;

    for (j = c; j != NULL; j = j->next) {
        for (i = C_RESULT_KEY; i <= C_REC_KEY; i++) {
            if (j->arglen[i] > 0) {
                argv[argc] = j->arg[i];
                argvlen[argc++] = j->arglen[i];
            }
        }
    }

    keys = argc - 3;
    argvlen[2] = (size_t) snprintf(numkeys, sizeof(numkeys), "%d", keys);
    argv[argc] = OFFLOAD_GROUP;
    argvlen[argc++] = sizeof(OFFLOAD_GROUP) - 1;
    argv[argc] = w->ttl_ms;
    argvlen[argc++] = strlen(w->ttl_ms);

    for (j = c; j != NULL; j = j->next) {
        for (i = C_ENTRY; i < C_ARGS; i++) {
            argv[argc] = j->arg[i];
            argvlen[argc++] = j->arglen[i];
        }
    }

    if (offload_redis_command_argv(&w->conn, completion_cb, c, argc, argv,
                                   argvlen)
        != REDIS_OK)
    {
        return -1;
    }

    w->in_flight++;
    offload_replicas_wait(w);
    return 0;
}


/* Sends the completions on the ready list in one call. */
void
offload_completion_flush(offload_worker_t *w)
{
    completion_t  *c = w->ready;

    if (c == NULL) {
        return;
    }

    w->ready = NULL;
    w->ready_tail = NULL;
    w->nready = 0;
    w->ready_bytes = 0;
    ev_prepare_stop(w->loop, &w->flush);

    if (offload_completion_send(w, c) != 0) {
        offload_completion_lost(w, c);          /* disconnected: sent again */
    }
}


void
offload_completion_flush_cb(struct ev_loop *loop, ev_prepare *p, int revents)
{
    (void) loop;
    (void) revents;

    offload_completion_flush(p->data);
}


/*
 * Writes the commands queued in this turn of the loop before it waits, in
 * one write, rather than arming the write watcher for the next turn:
 * hiredis' libev adapter starts it with every command and stops it once
 * its buffer is written, two epoll_ctl() calls for every write, which
 * cancel out when both come before the loop looks at its watchers.  A
 * socket that is full keeps the watcher armed, as before.  It runs after
 * the flush of completions (lowest priority).
 */
void
offload_completion_out_cb(struct ev_loop *loop, ev_prepare *p, int revents)
{
    offload_worker_t  *w = p->data;

    (void) loop;
    (void) revents;

    offload_redis_write(&w->conn);
}


/* c waits for the next flush, at the latest before the loop waits. */
static void
completion_ready(offload_worker_t *w, completion_t *c)
{
    c->next = NULL;

    if (w->ready_tail != NULL) {
        w->ready_tail->next = c;
    } else {
        w->ready = c;
        ev_prepare_start(w->loop, &w->flush);
    }

    w->ready_tail = c;
    w->ready_bytes += c->arglen[C_RESULT];

    if (++w->nready == COMPLETE_BATCH_MAX
        || w->ready_bytes >= COMPLETE_BATCH_BYTES)
    {
        offload_completion_flush(w);
    }
}


/*
 * A job's result or body key: the worker's prefix (the queue's key for the
 * empty id, made once) and the job's id, which offload_worker_usable_id()
 * checked, as offload_result_key() and offload_body_key() make it,
 * without working out the prefix again for every job; -1 when it does not
 * fit in KEY_ROOM.
 */
static int
prefixed_key(char *buf, const char *prefix, const offload_str_t *id)
{
    size_t  plen = strlen(prefix);

    if (plen + id->len >= KEY_ROOM) {
        return -1;
    }

    memcpy(buf, prefix, plen);
    memcpy(buf + plen, id->data, id->len);
    buf[plen + id->len] = '\0';

    return (int) (plen + id->len);
}


/*
 * Writes the result (its header line, then the JSON body) into a
 * completion's buffer and puts it on the ready list, or, for a result over
 * OFFLOAD_NOTICE_OVER, stages it first (then completes it alone).  The
 * buffer holds, in order: the result key, the body key, the staging key,
 * the entry id, the encoded result, the reply channel; the record's key
 * and TTL in its last KEY_ROOM.  A staged result's body is not copied
 * when it is job's result: the completion takes job's buffer.
 */
void
offload_completion_make(offload_worker_t *w, const offload_str_t *entry_id,
    const offload_str_t *reply, const offload_result_t *res,
    const char *code, const char *body, size_t blen, offload_job_t *job)
{
    int                   keylen, bodylen, stagelen, reclen, hlen, staged;
    char                 *rec, header[OFFLOAD_RESULT_HEADER_MAX];
    const char           *status;
    size_t                off, qlen, rlen, copied, n;
    completion_t         *c;
    const char           *q = w->queue->name;
    const offload_str_t  *job_id = &res->id;

    qlen = strlen(q);

    hlen = offload_result_header(header, sizeof(header), res);
    if (hlen < 0) {
        log_error("%s: result header too long", w->name);
        return;
    }

    rlen = (size_t) hlen + blen;
    staged = rlen > OFFLOAD_NOTICE_OVER;
    copied = staged && job != NULL ? 0 : blen;

    c = completion_get(w, 4 * KEY_ROOM + entry_id->len + (size_t) hlen
                          + copied + reply->len);
    if (c == NULL) {
        log_error("%s: out of memory completing entry %.*s", w->name,
                  (int) entry_id->len, entry_id->data);
        offload_worker_out_of_memory(w);
    }

    /* only the keys the job has: most have no body key, nor a result
     * big enough to be staged */
    keylen = prefixed_key(c->buf, w->result_prefix, job_id);
    bodylen = !w->body_keyed ? 0
              : prefixed_key(c->buf + KEY_ROOM, w->body_prefix, job_id);
    stagelen = !staged ? 0
               : offload_stage_key(c->buf + 2 * KEY_ROOM, KEY_ROOM, q, qlen,
                                   job_id->data, job_id->len, w->consumer);
    if (keylen < 0 || bodylen < 0 || stagelen < 0) {
        offload_completion_put(w, c);
        log_error("%s: job id too long in entry %.*s", w->name,
                  (int) entry_id->len, entry_id->data);
        return;
    }

    off = 3 * KEY_ROOM;
    memcpy(c->buf + off, entry_id->data, entry_id->len);
    off += entry_id->len;

    memcpy(c->buf + off, header, (size_t) hlen);
    if (copied > 0) {
        memcpy(c->buf + off + hlen, body, blen);
    }

    if (reply->len > 0) {       /* none: "fire and forget", data is NULL */
        memcpy(c->buf + off + hlen + copied, reply->data, reply->len);
    }

    n = 0;
    if (w->body_keyed) {
        c->shape[n++] = 'b';
    }
    if (staged) {
        c->shape[n++] = 's';
    }
    c->shape[n] = '\0';

    c->eval = 0;
    c->tries = 0;
    c->resent = 0;
    c->last_resort = w->last_resort;
    set_arg(c, C_RESULT_KEY, c->buf, (size_t) keylen);
    set_arg(c, C_BODY_KEY, c->buf + KEY_ROOM, (size_t) bodylen);
    set_arg(c, C_STAGE_KEY, c->buf + 2 * KEY_ROOM,
            staged ? (size_t) stagelen : 0);
    set_arg(c, C_ENTRY, c->buf + 3 * KEY_ROOM, entry_id->len);
    set_arg(c, C_RESULT, c->buf + off, rlen);   /* staged: its length */
    set_arg(c, C_CHANNEL, c->buf + off + hlen + copied, reply->len);
    set_arg(c, C_SHAPE, c->shape, n);
    set_arg(c, C_REC_KEY, "", 0);
    set_arg(c, C_REC_TTL, "", 0);
    set_arg(c, C_STATUS, "", 0);

    /* an async job's record ends with it (the buffer's last KEY_ROOM) */
    if (w->record_ttl_ms > 0) {
        rec = c->buf + c->cap - KEY_ROOM;
        reclen = offload_job_record_key(rec, KEY_ROOM / 2, job_id->data,
                                        job_id->len);
        if (reclen > 0) {
            status = offload_record_status(res->status, code);
            set_arg(c, C_REC_KEY, rec, (size_t) reclen);
            set_arg(c, C_REC_TTL, rec + KEY_ROOM / 2,
                    (size_t) snprintf(rec + KEY_ROOM / 2, KEY_ROOM / 2,
                                      "%lld",
                                      (long long) w->record_ttl_ms));
            set_arg(c, C_STATUS, status, strlen(status));
        }
    }

    if (staged) {
        if (copied == 0) {
            c->staged_body = offload_job_take_result(job);
            body = c->staged_body;
        } else {
            body = c->buf + off + hlen;
        }

        offload_completion_flush(w);    /* they go first, as they came */
        offload_stage_start(w, c, job_id, (size_t) hlen, body);
        return;
    }

    completion_ready(w, c);
}


/* The error document {"error": {"code", "message"}}, malloc'ed, or NULL. */
static char *
error_json(const char *code, const char *message)
{
    char    *text;
    json_t  *doc;

    doc = offload_error_doc(code, message);
    text = doc != NULL ? json_dumps(doc, JSON_OUT_FLAGS) : NULL;
    json_decref(doc);
    return text;
}


void
offload_completion_error(offload_worker_t *w, const offload_str_t *entry_id,
    const offload_str_t *job_id, const offload_str_t *reply, int status,
    int64_t queue_us, const char *code, const char *message)
{
    char              *text;
    offload_result_t   res;

    text = error_json(code, message);
    if (text == NULL) {
        log_error("%s: out of memory answering entry %.*s", w->name,
                  (int) entry_id->len, entry_id->data);
        offload_worker_out_of_memory(w);
    }

    memset(&res, 0, sizeof(res));
    res.version = OFFLOAD_PROTO_VERSION;
    res.id = *job_id;
    res.status = status;
    res.queue_us = queue_us;

    offload_completion_make(w, entry_id, reply, &res, code, text, strlen(text),
                            NULL);
    free(text);
}
