/*
 * cancelled.c -- jobs cancelled before they run never run.
 *
 * Sync jobs whose clients went away (OFFLOAD_CANCELLED_FMT): a ZCARD of
 * the queue's cancelled set goes with every read, in the same write, so a
 * batch costs no round trip more while the set is empty (it is, unless
 * clients gave up within the last offload_timeout).  When it is not, one
 * script drops the batch's cancelled entries before the batch runs.  A
 * client that goes away later finds its job run (prefetch entries are
 * checked when read, not one by one).
 *
 * Async jobs (a record, no reply channel), which DELETE /jobs/<id> may
 * cancel at any time: each goes through the gate, its start script, which
 * drops a cancelled one, tells of one a read of its record expired, and
 * marks the others running.
 *
 * Nor do jobs another node took: the supervisor keeps its node's entries
 * from being claimed as a lost node's by touching them every claim_idle/2
 * (claim.c); a node stopped longer than that (SIGSTOP, a frozen container,
 * a paused VM) finds them claimed, failed an attempt and run again
 * elsewhere.  So a batch read (or last found ours) claim_idle/2 ago is
 * looked at again before its next entry runs: one XPENDING of this
 * consumer's entries from the batch's first to its last, and those it no
 * longer lists are dropped unrun.  Ago by this host's monotonic clock
 * (which counts a stopped process's time), or by Redis' clock as the
 * supervisor last measured it (a VM's guest clock may stand still while
 * the VM is paused: its next measure shows the jump).  The gate checks
 * each async job the same way.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "redis_clock.h"
#include "redis_conn.h"
#include "worker_state.h"


static const offload_str_t *entry_job_id(const batch_entry_t *e);
static void log_unrun(offload_worker_t *w, int level,
    const batch_entry_t *e, const char *what, const char *why);
static void log_claimed(offload_worker_t *w, const batch_entry_t *e);


/*
 * The start script's answer for the entry at the gate: a cancelled job is
 * gone (acked and deleted by the script), never run, and counted here
 * (once, whether it was cancelled queued or running: a running one comes
 * back here from its killed worker); so is one another run ended (its
 * status, not counted); an entry no longer this worker's ("claimed": its
 * node stopped for longer than claim_idle, another took its jobs) or no
 * longer pending (0) is left to whoever has it; one a read expired (by
 * Redis' clock, which may be ahead of ours) is answered expired;
 * otherwise the entry goes back to the head of the batch, started.  An
 * error is logged and the job runs: its record is a report, not a lock.
 * A lost connection leaves the entry pending: it is read again with the
 * history.
 */
static void
gate_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    const char           *err;
    redisReply           *reply = r;
    batch_entry_t        *e;
    offload_entry_t       job;
    offload_worker_t     *w = privdata;

    (void) ac;

    e = w->gate;
    w->gate = NULL;

    if (e == NULL) {
        return;                 /* dropped with the connection */
    }

    if (reply == NULL) {
        offload_entry_put(&w->spare_entries, e);
        return;
    }

    if (offload_worker_script_missing(&w->scripts[SCRIPT_JOB_START], reply)
        && offload_job_decode(&job, e->fields, e->nfields, &err) == 0
        && offload_cancelled_gate(w, e, &job, 1) == 0)
    {
        return;
    }

    if ((reply->type == REDIS_REPLY_INTEGER && reply->integer == 0)
        || (reply->type == REDIS_REPLY_STRING
            && strcmp(reply->str, "expired") != 0))
    {
        if (reply->type != REDIS_REPLY_STRING) {
            /* settled by someone else meanwhile */

        } else if (strcmp(reply->str, "cancelled") == 0) {
            log_unrun(w, OFFLOAD_LOG_INFO, e, "was cancelled", "");
            w->sb->jobs_cancelled++;

        } else if (strcmp(reply->str, "claimed") == 0) {
            log_claimed(w, e);

        } else {
            log_unrun(w, OFFLOAD_LOG_NOTICE, e, "ended already",
                      ": another run of it ended its record");
        }

        offload_entry_put(&w->spare_entries, e);
        offload_worker_resume(w);
        offload_worker_maybe_exit(w);
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        log_error("%s: starting the job of entry %.*s: %s", w->name,
                  (int) e->id.len, e->id.data, reply->str);
    }

    e->expired = reply->type == REDIS_REPLY_STRING
                 && strcmp(reply->str, "expired") == 0;

    e->started = 1;
    e->next = w->batch;
    w->batch = e;
    if (w->batch_tail == NULL) {
        w->batch_tail = e;
    }

    offload_worker_resume(w);
}


/* A job with a record first asks Redis whether it may run (it was not
 * cancelled) and marks it running (by EVAL, not EVALSHA, when eval).
 * Returns -1 when disconnected. */
int
offload_cancelled_gate(offload_worker_t *w, batch_entry_t *e,
    const offload_entry_t *job, int eval)
{
    int          n;
    char         rec[KEY_ROOM], body[KEY_ROOM], attempt[16], deadline[24];
    const char  *argv[13];
    size_t       argvlen[13];

    if (offload_job_record_key(rec, sizeof(rec), job->id.data, job->id.len)
        < 0
        || offload_body_key(body, sizeof(body), w->queue->name,
                            strlen(w->queue->name), job->id.data,
                            job->id.len)
           < 0)
    {
        return -1;
    }

    snprintf(attempt, sizeof(attempt), "%d", job->attempt);

    /* by Redis' clock, a job past it is not marked running: it never ran */
    if (job->deadline_ms == OFFLOAD_NO_DEADLINE) {
        deadline[0] = '\0';
    } else {
        snprintf(deadline, sizeof(deadline), "%lld",
                 (long long) job->deadline_ms);
    }

    offload_worker_script_call(&w->scripts[SCRIPT_JOB_START], eval, argv,
                               argvlen);
    argv[2] = "3";
    argv[3] = w->stream;
    argv[4] = rec;
    argv[5] = body;
    argv[6] = OFFLOAD_GROUP;
    argv[7] = e->id.data;
    argv[8] = attempt;
    argv[9] = w->conf->node_name;
    argv[10] = w->slot_index;
    argv[11] = deadline;
    argv[12] = w->consumer;

    for (n = 2; n < 13; n++) {
        argvlen[n] = n == 7 ? e->id.len : strlen(argv[n]);
    }

    if (offload_redis_command_argv(&w->conn, gate_cb, w, 13, argv, argvlen)
        != REDIS_OK)
    {
        return -1;
    }

    w->gate = e;
    return 0;
}


/* The job id of an entry (its "id" field), or NULL. */
static const offload_str_t *
entry_job_id(const batch_entry_t *e)
{
    size_t  i;

    for (i = 0; i + 1 < e->nfields; i += 2) {
        if (e->fields[i].len == sizeof(OFFLOAD_F_ID) - 1
            && memcmp(e->fields[i].data, OFFLOAD_F_ID, e->fields[i].len) == 0)
        {
            return &e->fields[i + 1];
        }
    }

    return NULL;
}


/*
 * "job <id> <what>, not run<why>", with the job's ids in the line's
 * context as the lines of a run have them: one grep of its job id or of
 * nginx's $request_id finds it.
 */
static void
log_unrun(offload_worker_t *w, int level, const batch_entry_t *e,
    const char *what, const char *why)
{
    const char           *err;
    offload_entry_t       job;
    const offload_str_t  *id;

    if (offload_job_decode(&job, e->fields, e->nfields, &err) != 0) {
        id = entry_job_id(e);
        offload_log(level, "%s: entry %.*s: job %.*s %s, not run%s", w->name,
                    (int) e->id.len, e->id.data, id ? (int) id->len : 1,
                    id ? id->data : "?", what, why);
        return;
    }

    offload_log_job(&job);
    offload_log(level, "%s: entry %.*s: job %.*s %s, not run%s", w->name,
                (int) e->id.len, e->id.data, (int) job.id.len, job.id.data,
                what, why);
    offload_log_job(NULL);
}


/* Takes the entry out of the batch, unrun, and forgets it. */
static void
batch_unlink(offload_worker_t *w, batch_entry_t **at, batch_entry_t *prev)
{
    batch_entry_t  *e = *at;

    if (w->batch_tail == e) {
        w->batch_tail = prev;
    }

    *at = e->next;
    offload_entry_put(&w->spare_entries, e);
}


/* Takes the entry out of the batch: its job was cancelled. */
static void
batch_drop(offload_worker_t *w, const char *entry_id, size_t len)
{
    batch_entry_t  **at, *prev = NULL;

    for (at = &w->batch; *at != NULL; prev = *at, at = &(*at)->next) {
        if ((*at)->id.len != len || memcmp((*at)->id.data, entry_id, len) != 0)
        {
            continue;
        }

        log_unrun(w, OFFLOAD_LOG_INFO, *at, "cancelled",
                  ": its client went away");
        w->sb->jobs_cancelled++;
        batch_unlink(w, at, prev);
        return;
    }
}


static void
log_claimed(offload_worker_t *w, const batch_entry_t *e)
{
    log_unrun(w, OFFLOAD_LOG_WARN, e, "is no longer this worker's",
              ": another node claimed it (this one stopped for longer "
              "than claim_idle?), or it was deleted");
}


/* 1 when the reply to XPENDING lists the entry. */
static int
pending_lists(const redisReply *reply, const batch_entry_t *e)
{
    size_t             i;
    const redisReply  *id;

    for (i = 0; i < reply->elements; i++) {
        id = reply->element[i]->element[0];

        if (id->len == e->id.len && memcmp(id->str, e->id.data, id->len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


/* An XPENDING answer of this consumer's entries: [id, consumer, idle,
 * deliveries] each.  Anything else is a reply out of step with the
 * commands (a server or proxy that answers what nobody asked): read as
 * this one's, it would drop the whole batch. */
static int
pending_reply(offload_worker_t *w, const redisReply *reply)
{
    size_t             i;
    const redisReply  *p;

    for (i = 0; i < reply->elements; i++) {
        p = reply->element[i];

        if (p->type != REDIS_REPLY_ARRAY || p->elements != 4
            || p->element[0]->type != REDIS_REPLY_STRING
            || p->element[1]->type != REDIS_REPLY_STRING
            || strcmp(p->element[1]->str, w->consumer) != 0)
        {
            return 0;
        }
    }

    return 1;
}


/* The ownership check's answer: the batch's entries it does not list are
 * dropped.  An error lets the batch run: the check saves a second run, it
 * does not gate the first. */
static void
owned_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply         *reply = r;
    batch_entry_t     **at, *prev = NULL;
    offload_worker_t   *w = privdata;

    (void) ac;

    if (reply == NULL || !w->owning) {
        return;                 /* disconnected: the batch is read again */
    }

    w->owning = 0;

    if (reply->type != REDIS_REPLY_ARRAY) {
        log_error("%s: checking the batch is still this worker's: %s",
                  w->name, reply->type == REDIS_REPLY_ERROR
                           ? reply->str : "unexpected reply");
        offload_worker_resume(w);
        return;
    }

    if (!pending_reply(w, reply)) {
        offload_redis_conn_out_of_step(&w->conn, "XPENDING answered with "
                                       "other than this consumer's entries");
        return;
    }

    at = &w->batch;

    while (*at != NULL) {
        if (pending_lists(reply, *at)) {
            prev = *at;
            at = &(*at)->next;
            continue;
        }

        log_claimed(w, *at);
        batch_unlink(w, at, prev);
    }

    offload_worker_resume(w);
    offload_worker_maybe_exit(w);
}


/* Before the batch's next entry runs: when it was read, or last found
 * ours, claim_idle/2 ago, sends the ownership check and returns 0 (the
 * batch waits for it); otherwise, or when it cannot be sent, 1.  The
 * batch holds entries of this consumer in id order, from one read: from
 * its first to its last, the consumer has at most a read's worth pending
 * (the batch, and entries of that read it could not take).  On the job
 * loop: a clock read and a load, no more, until the check is due. */
int
offload_cancelled_owned(offload_worker_t *w)
{
    int64_t  base, since_us;

    since_us = offload_mono_us() - w->owned_at;

    /* the jump of Redis' clock as the supervisor measures it: the time a
     * paused VM's guest clock did not count */
    base = offload_sb_clock_base(w->sb);
    if (base != OFFLOAD_CLOCK_UNKNOWN
        && w->owned_base_ms != OFFLOAD_CLOCK_UNKNOWN)
    {
        since_us += (base - w->owned_base_ms) * 1000;
    }

    if (since_us < (int64_t) w->conf->claim_idle_ms * 500) {
        return 1;
    }

    if (offload_redis_command(&w->conn, owned_cb, w,
                              "XPENDING %s %s %b %b %d %s", w->stream,
                              OFFLOAD_GROUP, w->batch->id.data,
                              w->batch->id.len, w->batch_tail->id.data,
                              w->batch_tail->id.len, OFFLOAD_PREFETCH_MAX,
                              w->consumer)
        != REDIS_OK)
    {
        return 1;
    }

    /* as of its sending, as a read's */
    w->owned_at = offload_mono_us();
    w->owned_base_ms = base;
    w->owning = 1;
    return 0;
}


static void
drop_cancelled_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    size_t             i;
    redisReply        *reply = r;
    offload_worker_t  *w = privdata;

    (void) ac;

    if (reply == NULL || !w->checking) {
        return;                 /* disconnected: the batch is read again */
    }

    if (offload_worker_script_missing(&w->scripts[SCRIPT_DROP_CANCELLED],
                                      reply)
        && offload_cancelled_drop(w, 1) == 0)
    {
        return;
    }

    w->checking = 0;

    if (reply->type == REDIS_REPLY_ARRAY) {
        for (i = 0; i < reply->elements; i++) {
            if (reply->element[i]->type == REDIS_REPLY_STRING) {
                batch_drop(w, reply->element[i]->str,
                           reply->element[i]->len);
            }
        }

    } else {
        /* the batch runs: a cancel is a saving, not a promise */
        log_error("%s: checking the batch for cancelled jobs: %s", w->name,
                  reply->type == REDIS_REPLY_ERROR ? reply->str
                                                   : "unexpected reply");
    }

    offload_worker_resume(w);
}


/* Sends offload_drop_cancelled_script for the batch just read (by EVAL,
 * not EVALSHA, when eval); 0 when it went. */
int
offload_cancelled_drop(offload_worker_t *w, int eval)
{
    int                   argc = 0, rc;
    char                 *keys, *k, numkeys[24];
    size_t                n = 0, room = 0, plen, *argvlen;
    const char          **argv;
    batch_entry_t        *e;
    const offload_str_t  *job_id;

    plen = strlen(w->body_prefix);

    for (e = w->batch; e != NULL; e = e->next) {
        job_id = entry_job_id(e);
        if (job_id != NULL) {
            n++;
            room += plen + job_id->len;
        }
    }

    /* 6 arguments, then a body key, an entry id and a job id per job:
     * every key declared (a Redis Cluster routes the script whole) */
    argv = malloc((6 + 3 * n) * sizeof(char *));
    argvlen = malloc((6 + 3 * n) * sizeof(size_t));
    keys = malloc(room + 1);

    if (argv == NULL || argvlen == NULL || keys == NULL) {
        free(argv);
        free(argvlen);
        free(keys);
        return -1;
    }

    offload_worker_script_call(&w->scripts[SCRIPT_DROP_CANCELLED], eval, argv,
                               argvlen);
    argc = 2;
    argv[argc++] = numkeys;
    argv[argc++] = w->stream;
    argv[argc++] = w->cancelled;
    snprintf(numkeys, sizeof(numkeys), "%zu", 2 + n);

    for (n = 2; n < (size_t) argc; n++) {
        argvlen[n] = strlen(argv[n]);
    }

    k = keys;
    for (e = w->batch; e != NULL; e = e->next) {
        job_id = entry_job_id(e);

        if (job_id != NULL) {
            memcpy(k, w->body_prefix, plen);
            memcpy(k + plen, job_id->data, job_id->len);
            argv[argc] = k;
            argvlen[argc++] = plen + job_id->len;
            k += plen + job_id->len;
        }
    }

    argv[argc] = OFFLOAD_GROUP;
    argvlen[argc++] = sizeof(OFFLOAD_GROUP) - 1;

    for (e = w->batch; e != NULL; e = e->next) {
        job_id = entry_job_id(e);

        if (job_id != NULL) {
            argv[argc] = e->id.data;
            argvlen[argc++] = e->id.len;
            argv[argc] = job_id->data;
            argvlen[argc++] = job_id->len;
        }
    }

    rc = offload_redis_command_argv(&w->conn, drop_cancelled_cb, w, argc,
                                    argv, argvlen);
    free(argv);
    free(argvlen);
    free(keys);

    return rc == REDIS_OK ? 0 : -1;
}


void
offload_cancelled_count_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply        *reply = r;
    offload_worker_t  *w = privdata;

    (void) ac;

    if (reply == NULL) {
        return;
    }

    if (reply->type != REDIS_REPLY_INTEGER
        && reply->type != REDIS_REPLY_ERROR)
    {
        offload_redis_conn_out_of_step(&w->conn, "ZCARD answered with "
                                       "no count");
        return;
    }

    if (!w->checking) {
        return;                 /* the read took nothing: nothing to check */
    }

    if (reply->type == REDIS_REPLY_INTEGER && reply->integer > 0
        && offload_cancelled_drop(w, 0) == 0)
    {
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        log_error("%s: ZCARD %s failed: %s", w->name, w->cancelled,
                  reply->str);
    }

    w->checking = 0;
    offload_worker_resume(w);
}
