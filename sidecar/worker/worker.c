/*
 * worker.c -- the worker's loop, docs/PROTOCOL.md "The worker's steps":
 *
 *   after every (re)connect: SCRIPT LOAD the scripts called by EVALSHA,
 *   XGROUP CREATE (BUSYGROUP is fine), read this consumer's own pending
 *   entries (id 0 onwards) until none are left, then XREADGROUP ">" with
 *   BLOCK; run each entry's job synchronously and complete it with one
 *   EVALSHA, or for plain jobs one MULTI ... EXEC.
 *
 * A read returns up to `prefetch` entries.  They are copied out of the
 * reply and run from an idle watcher that lets the loop write finished
 * results every millisecond, so each job's result leaves about as soon as
 * it is done, not when the whole batch is.
 *
 * A job's end goes to Redis as a completion (completion.c), pipelined and
 * batched; what Redis refuses is kept and sent again, never dropped
 * (completion.c, held.c).
 *
 * Big payloads never travel in one Redis command (Redis runs one command
 * at a time: a 64 MB one holds up every other client): a job whose body is
 * in its body key is read a slice at a time (body_read.c), and a big
 * result is staged a slice at a time (stage.c); meanwhile the batch waits.
 * A reconnect drops a body read, restarts a staging, and sends again the
 * completions whose reply it lost (a redirection: not run) before the
 * history is read, which so does not run those jobs again.
 */

#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <jansson.h>

#include "bad_job.h"
#include "clock.h"
#include "crash.h"
#include "entry.h"
#include "error_doc.h"
#include "exec_bridge.h"
#include "fail_attempt.h"
#include "fd_watch.h"
#include "handler_log.h"
#include "job.h"
#include "log.h"
#include "memlimit.h"
#include "redis_conn.h"
#include "retry.h"
#include "worker.h"
#include "worker_state.h"

#define READ_BLOCK_MS     1000      /* + redis_timeout: a dead link is seen
                                       within 3 s of an idle worker */
#define QUOTE(n)          #n
#define QUOTE_VALUE(n)    QUOTE(n)
#define PAUSE_CHECK_S     0.1
#define NOGROUP_RETRY_MIN_S 0.1     /* the group cannot be made again: */
#define NOGROUP_RETRY_MAX_S 2.0     /* tries back off up to this */
#define WORK_SLICE_US     1000


static void send_read(offload_worker_t *w);
static void script_load(script_t *s);


/* No memory to finish an entry (worker_state.h). */
void
offload_worker_out_of_memory(offload_worker_t *w)
{
    w->sb->exit_reason = OFFLOAD_SB_EXIT_OUT_OF_MEMORY;
    _exit(OFFLOAD_WORKER_EXIT_NOMEM);
}


/* A body read, a staging, a job's start or the batch's cancel or
 * ownership check in progress: the batch waits for it. */
static int
moving(offload_worker_t *w)
{
    return w->body.entry != NULL || w->stage.c != NULL || w->gate != NULL
           || w->checking || w->owning;
}


void
offload_worker_maybe_exit(offload_worker_t *w)
{
    if (w->stopping) {
        offload_completion_flush(w);
    }

    if (w->stopping && w->in_flight == 0 && w->batch == NULL && !moving(w)
        && w->lost == NULL && w->held == NULL)
    {
        ev_break(w->loop, EVBREAK_ALL);
    }
}


/* Goes on with the batch, or reads the next one, unless a transfer runs. */
void
offload_worker_resume(offload_worker_t *w)
{
    if (moving(w)) {
        return;
    }

    if (w->batch != NULL) {
        ev_idle_start(w->loop, &w->work);
        return;
    }

    send_read(w);
}


/* Stops taking jobs: the batch already read still runs, then the worker
 * exits and the supervisor starts another in its slot. */
void
offload_worker_stop_reading(offload_worker_t *w, offload_sb_exit_e reason)
{
    if (w->stopping) {
        return;
    }

    w->stopping = 1;
    w->sb->exit_reason = reason;
    offload_sb_set_state(w->sb, OFFLOAD_SB_STOPPING);
}


/* Forgets the rest of the batch: its entries stay pending in Redis under
 * this consumer and are read again as its history. */
static void
batch_clear(offload_worker_t *w)
{
    batch_entry_t  *e;

    while ((e = w->batch) != NULL) {
        w->batch = e->next;
        offload_entry_put(&w->spare_entries, e);
    }

    w->batch_tail = NULL;
    ev_idle_stop(w->loop, &w->work);
}


/* Recycles the worker when it, or its exec handler's process, leaks file
 * descriptors (fd_watch.c), and publishes their count for status.  Seen
 * at a failed job (a leak faster than the counts), the limit is likely
 * reached: the jobs read with it would fail too, so they are left pending,
 * and handed back to the queue when the worker has exited. */
static void
fds_check(offload_worker_t *w, int ok)
{
    char  why[128];

    if (w->stopping) {
        return;                 /* leaving already, for another reason */
    }

    switch (offload_fd_watch_job(&w->fds, w->sb->child_pid, ok, why,
                                 sizeof(why)))
    {
    case 1:
        log_warn("%s: recycling: %s (a handler that leaks them?)", w->name,
                 why);
        offload_worker_stop_reading(w, OFFLOAD_SB_EXIT_FDS);
        if (!ok) {
            batch_clear(w);
        }
        break;

    case -1:
        log_notice("%s: cannot count its file descriptors (/proc/self/fd: "
                   "%s): a handler leaking them is not recycled", w->name,
                   strerror(errno));
        break;
    }

    w->sb->fds = (int32_t) w->fds.total;
}


/* Once a second: the count shown in status while no job counted it (the
 * first count is made before the Redis connection and the exec handler's
 * process exist). */
static void
fds_tick_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    long               n;
    offload_worker_t  *w = t->data;

    (void) loop;
    (void) revents;

    n = offload_fd_watch_now(&w->fds, w->sb->child_pid);
    if (n >= 0) {
        w->sb->fds = (int32_t) n;
    }
}


/* After each job: recycle the worker when it has run its max_jobs_per_worker
 * or its resident set stays over memory_limit (a leak), or it nears its
 * file descriptor limit (fds_check), between jobs so that no job fails
 * for it. */
static void
job_done(offload_worker_t *w, int ok, int64_t run_us)
{
    long long                    rss;
    const offload_conf_queue_t  *q = w->queue;

    offload_sb_job_end(w->sb, ok, run_us);
    w->jobs_run++;

    if (q->max_jobs > 0 && w->jobs_run >= q->max_jobs) {
        log_info("%s: recycling after %d jobs", w->name, w->jobs_run);
        offload_worker_stop_reading(w, OFFLOAD_SB_EXIT_MAX_JOBS);
    }

    if (q->memory_limit > 0) {
        rss = offload_rss_bytes() + offload_exec_rss_bytes();

#ifdef M_TRIM_THRESHOLD
        if (rss > q->memory_limit) {
            /* the free heap kept for the next big job is no leak */
            malloc_trim(0);
            rss = offload_rss_bytes() + offload_exec_rss_bytes();
        }
#endif

        if (rss > q->memory_limit) {
            log_notice("%s: recycling: RSS %lld MB over memory_limit %lld MB",
                       w->name, rss >> 20, q->memory_limit >> 20);
            offload_worker_stop_reading(w, OFFLOAD_SB_EXIT_MEMORY);
        }
    }

    fds_check(w, ok);
}


/* argv[0] and argv[1] of a call of the script: EVALSHA and its SHA1, or
 * EVAL and its text. */
void
offload_worker_script_call(const script_t *s, int eval, const char **argv,
    size_t *argvlen)
{
    argv[0] = eval ? "EVAL" : "EVALSHA";
    argv[1] = eval ? s->text : s->sha;
    argvlen[0] = strlen(argv[0]);
    argvlen[1] = strlen(argv[1]);
}


/* 1 when the reply to a call of the script is NOSCRIPT: the script is
 * loaded again, and the caller sends its call again by EVAL. */
int
offload_worker_script_missing(script_t *s, const redisReply *reply)
{
    if (reply == NULL || reply->type != REDIS_REPLY_ERROR
        || strncmp(reply->str, "NOSCRIPT", 8) != 0)
    {
        return 0;
    }

    log_info("%s: %s script not loaded, using EVAL and loading it again",
             s->worker->name, s->what);
    script_load(s);
    return 1;
}


/* An id usable in a result header and key: no separators, bounded, and no
 * NUL byte, which would cut the id short there (another job's id). */
int
offload_worker_usable_id(const offload_str_t *s)
{
    return s->len > 0 && s->len <= 128 && memchr(s->data, ' ', s->len) == NULL
           && memchr(s->data, '\n', s->len) == NULL
           && memchr(s->data, '\0', s->len) == NULL;
}


int64_t
offload_worker_redis_ms(const offload_worker_t *w)
{
    return offload_redis_us_from(offload_sb_clock_base(w->sb)) / 1000;
}


/*
 * Moves an entry to the dead-letter stream (reason bad_job, why in its
 * report) and answers the job its fields name, if any, the error given:
 * someone may still wait for it.  Answered after it is dead-lettered (the
 * completion's XACK and XDEL then find nothing left to do); without a
 * reply channel the answer is only stored.
 */
void
offload_worker_dead_letter_answer(offload_worker_t *w,
    const offload_str_t *entry_id, const offload_str_t *fields,
    size_t nfields, const char *why, int status, const char *code,
    const char *message)
{
    size_t         i;
    settles_t      st;
    offload_str_t  id = { NULL, 0 }, reply = { NULL, 0 };

    for (i = 0; i + 1 < nfields; i += 2) {
        if (fields[i].len == 2 && memcmp(fields[i].data, "id", 2) == 0) {
            id = fields[i + 1];
        } else if (fields[i].len == 5
                   && memcmp(fields[i].data, "reply", 5) == 0)
        {
            reply = fields[i + 1];
        }
    }

    offload_held_settles(&st, entry_id, NULL, 1);
    w->settling = &st;
    offload_bad_job(offload_held_send, w, w->queue->name, entry_id, fields,
                    nfields, why);
    w->settling = NULL;

    if (!offload_worker_usable_id(&id)) {
        return;
    }

    /* a channel no job may name: the answer is only stored */
    if (reply.len > 0 && !offload_reply_channel_ok(&reply)) {
        reply.len = 0;
    }

    offload_completion_error(w, entry_id, &id, &reply, status, 0, code,
                             message);
}


void
offload_worker_bad_entry(offload_worker_t *w,
    const offload_str_t *entry_id, const offload_str_t *fields,
    size_t nfields, const char *why)
{
    char  message[160];

    log_warn("%s: bad job in entry %.*s: %s: dead-lettered", w->name,
             (int) entry_id->len, entry_id->data, why);

    snprintf(message, sizeof(message), "bad job: %s", why);
    offload_worker_dead_letter_answer(w, entry_id, fields, nfields, why, 400,
                                      "bad_job", message);
}


static int64_t
cpu_us(const struct rusage *ru)
{
    return (int64_t) (ru->ru_utime.tv_sec + ru->ru_stime.tv_sec) * 1000000
           + ru->ru_utime.tv_usec + ru->ru_stime.tv_usec;
}


/* A job failed for now on its last attempt: a dead letter (reason
 * retries_exhausted), answered in the same step with the handler's failure.
 * Returns 0 when sent (or, the connection gone, left pending), -1 when it
 * could not be made: the failure is then answered as any other. */
static int
dead_letter(offload_worker_t *w, const batch_entry_t *be,
    const offload_entry_t *entry, int64_t queue_us)
{
    int                rc = -1, hlen;
    char              *text, *report = NULL, *result = NULL;
    size_t             tlen;
    json_t            *doc, *info;
    settles_t          st;
    offload_job_t     *job = &w->job;
    offload_result_t   res;

    /* the answer, then the report: its code and message (made UTF-8 if a
     * handler's was not) and where the job was */
    doc = offload_error_doc(job->code, job->message);
    text = doc != NULL ? json_dumps(doc, JSON_OUT_FLAGS) : NULL;

    if (text != NULL) {
        info = offload_error_doc_inner(doc);
        json_object_set_new(info, "queue", json_string(w->queue->name));
        json_object_set_new(info, "job_id",
                            json_stringn(entry->id.data, entry->id.len));
        json_object_set_new(info, "entry_id",
                            json_stringn(be->id.data, be->id.len));
        json_object_set_new(info, "attempts", json_integer(entry->attempt));
        report = json_dumps(info, JSON_COMPACT);
    }

    json_decref(doc);

    tlen = text != NULL ? strlen(text) : 0;
    result = malloc(OFFLOAD_RESULT_HEADER_MAX + tlen);
    if (text == NULL || report == NULL || result == NULL) {
        goto done;
    }

    memset(&res, 0, sizeof(res));
    res.version = OFFLOAD_PROTO_VERSION;
    res.id = entry->id;
    res.status = job->status;
    res.queue_us = queue_us;

    hlen = offload_result_header(result, OFFLOAD_RESULT_HEADER_MAX, &res);
    if (hlen < 0) {
        goto done;
    }
    memcpy(result + hlen, text, tlen);

    log_notice("%s: job %.*s failed for now (%s: %s) on its last attempt "
               "(%d of %d): dead-lettered", w->name, (int) entry->id.len,
               entry->id.data, job->code, job->message, entry->attempt,
               w->queue->max_attempts);

    rc = 0;
    offload_held_settles(&st, &be->id, entry, 0);
    w->settling = &st;
    offload_retry_dead(offload_held_send, w, w->queue->name, &be->id,
                       be->fields, be->nfields, entry, result, hlen + tlen,
                       w->ttl, report);
    w->settling = NULL;

done:

    if (rc != 0) {
        log_error("%s: no memory for the dead letter of job %.*s: "
                  "answered without one", w->name, (int) entry->id.len,
                  entry->id.data);
    }

    free(text);
    free(report);
    free(result);
    return rc;
}


/* A transient failure (offload_job_retry()): the job waits in its queue's
 * retry set for its next attempt, with the fields it came with (its payload
 * left in its body key), unless it has no attempt left (a dead letter) or
 * the next would come after its deadline.  Returns 0 when it waits or is
 * dead-lettered (or, the connection gone, stays pending), -1 when this
 * failure is its answer. */
static int
retry_later(offload_worker_t *w, const batch_entry_t *be,
    const offload_entry_t *entry, int64_t submitted_ms, int64_t queue_us)
{
    int64_t                      delay, due;
    settles_t                    st;
    offload_entry_t              next;
    const offload_conf_queue_t  *q = w->queue;

    if (entry->attempt >= q->max_attempts) {
        return dead_letter(w, be, entry, queue_us);
    }

    delay = offload_retry_delay_ms(q, entry->attempt);
    due = offload_worker_redis_ms(w) + delay;

    if (due >= entry->deadline_ms) {
        log_info("%s: job failed for now, but its next attempt (in %lld ms) "
                 "would come after its deadline: failed for good", w->name,
                 (long long) delay);
        return -1;
    }

    next = *entry;
    next.attempt++;
    next.submitted_ms = submitted_ms;
    if (next.body_len > 0) {
        next.payload.data = "";
        next.payload.len = 0;
    }

    log_notice("%s: job %.*s failed for now (%s: %s): attempt %d of %d at "
               "%lld, in %lld ms", w->name, (int) entry->id.len,
               entry->id.data, w->job.code, w->job.message, next.attempt,
               q->max_attempts, (long long) due, (long long) delay);

    offload_held_settles(&st, &be->id, entry, 0);
    w->settling = &st;
    offload_retry_later(offload_held_send, w, q->name, &be->id, &next, due);
    w->settling = NULL;

    w->sb->jobs_retried++;
    return 0;
}


/* Whether a run of the entry's job may have begun before this one: read
 * again from this consumer's history (its node died or lost Redis under
 * it: the batch's fresh entries then too, may being all it says), handed
 * back from a run a stop cut short, or an attempt after the first (an
 * earlier one failed for now, or crashed). */
static int
may_have_run(const offload_worker_t *w, const offload_entry_t *entry)
{
    return w->in_history || entry->interrupted || entry->attempt > 1;
}


void
offload_worker_run_job(offload_worker_t *w, const batch_entry_t *be,
    const offload_entry_t *entry)
{
    int                   rc, ran;
    const char           *not_run;
    int64_t               now_us, now_ms, queue_us, start_us, run_us;
    int64_t               submitted_ms;
    offload_job_t        *job = &w->job;
    struct rusage         before, after;
    offload_result_t      res;
    const offload_str_t  *entry_id = &be->id;

    /* An exec handler's process that wrote to its stdout since its last
     * answer fails there, not in this job: the worker stops (lost()) and
     * the entry stays pending for the next worker, at the same attempt. */
    if (offload_exec_is(w->queue->handler) && offload_exec_check() != 0) {
        return;
    }

    /* Deadlines and submit times are Redis' clock's (redis_clock.c) */
    now_us = offload_redis_us_from(offload_sb_clock_base(w->sb));
    now_ms = now_us / 1000;

    /* ms fields may hold up to 18 digits: compare before scaling to us.
     * Without "submitted", from when Redis added the entry (its id). */
    submitted_ms = entry->submitted_ms != 0
                   ? entry->submitted_ms
                   : strtoll(entry_id->data, NULL, 10);
    queue_us = submitted_ms > 0 && submitted_ms < now_ms
               ? now_us - submitted_ms * 1000
               : 0;                     /* a submitter's clock ahead */

    log_debug("%s: job from entry %.*s, attempt %d", w->name,
              (int) entry_id->len, entry_id->data, entry->attempt);

    w->record_ttl_ms = entry->record_ttl_ms;
    w->body_keyed = entry->body_len > 0;

    if (entry->deadline_ms <= now_ms || be->expired) {
        /* "not run" only of a job no worker had before */
        ran = may_have_run(w, entry);
        not_run = ran ? "not run again (an earlier run did not end it)"
                      : "not run";

        if (entry->deadline_ms <= now_ms) {
            log_info("%s: job %.*s expired %lld ms before a worker took it, "
                     "%s", w->name, (int) entry->id.len, entry->id.data,
                     (long long) (now_ms - entry->deadline_ms), not_run);
        } else {
            log_info("%s: job %.*s expired before a worker took it (so "
                     "Redis says, %lld ms before its deadline by this "
                     "worker's reading of Redis' clock), %s",
                     w->name, (int) entry->id.len, entry->id.data,
                     (long long) (entry->deadline_ms - now_ms), not_run);
        }

        w->sb->jobs_expired++;
        offload_completion_error(w, entry_id, &entry->id, &entry->reply,
                                 504, queue_us, "expired",
                                 ran ? "the deadline passed before the job "
                                       "could run again: an earlier run did "
                                       "not end it (it failed for now, or "
                                       "its worker stopped, crashed or lost "
                                       "its node), and may have done part "
                                       "of its work"
                                     : "the deadline passed before a worker "
                                       "took the job");
        w->record_ttl_ms = 0;
        w->body_keyed = 0;
        return;
    }

    offload_sb_job_start(w->sb, entry_id->data, entry_id->len, entry,
                         offload_mono_us());

    /* the handler reads its deadline by this host's wall clock: less
     * how far Redis' is ahead of it */
    offload_job_set(job, entry->id.data, entry->id.len,
                    entry->request_id.data, entry->request_id.len,
                    entry->attempt,
                    entry->deadline_ms == OFFLOAD_NO_DEADLINE
                    ? 0
                    : entry->deadline_ms - (now_ms - offload_wall_ms()));
    offload_job_set_trace(job, &entry->traceparent, &entry->tracestate);
    job->ran_before = may_have_run(w, entry);

    /* run_us is the handler's own time (Server-Timing "run"); the job's
     * start in the scoreboard, for its timeout, includes the JSON check. */
    getrusage(RUSAGE_SELF, &before);
    start_us = offload_mono_us();
    rc = offload_job_call(job, w->queue->handler, entry->payload.data,
                          entry->payload.len);
    run_us = offload_mono_us() - start_us;
    getrusage(RUSAGE_SELF, &after);

    if (rc == OFFLOAD_NOMEM) {
        /* Leave the job unanswered and busy in the scoreboard: the
         * supervisor fails this attempt, and a fresh worker may retry. */
        log_error("%s: job %s ran out of memory%s%s", w->name, job->id,
                  job->message[0] ? ": " : "", job->message);
        w->sb->exit_reason = OFFLOAD_SB_EXIT_OUT_OF_MEMORY;
        _exit(OFFLOAD_WORKER_EXIT_NOMEM);
    }

    if (job->status == 200) {
        res.version = OFFLOAD_PROTO_VERSION;
        res.id = entry->id;
        res.status = 200;
        res.queue_us = queue_us;
        res.run_us = run_us;
        res.cpu_us = cpu_us(&after) - cpu_us(&before);
        res.rss_kb = after.ru_maxrss - before.ru_maxrss;

        offload_completion_make(w, entry_id, &entry->reply, &res, NULL,
                                job->result, job->result_len, job);

    } else if (job->retry
               && retry_later(w, be, entry, submitted_ms, queue_us) == 0)
    {
        /* it runs again later, or is a dead letter answered with this */

    } else {
        log_info("%s: handler error: %s: %s", w->name, job->code,
                 job->message);
        offload_completion_error(w, entry_id, &entry->id, &entry->reply,
                                 job->status, queue_us, job->code,
                                 job->message);
    }

    w->record_ttl_ms = 0;
    w->body_keyed = 0;
    offload_job_trim(job, KEEP_BUFFER_MAX);
    job_done(w, job->status == 200, run_us);
}


/* The pending history is read on from this entry, which was dealt with. */
static void
history_past(offload_worker_t *w, const offload_str_t *entry_id)
{
    if (w->in_history && entry_id->len < sizeof(w->history_id)) {
        memcpy(w->history_id, entry_id->data, entry_id->len);
        w->history_id[entry_id->len] = '\0';
    }
}


/*
 * Takes a stream entry out of its reply into one allocation of our own, so
 * the batch outlives the read callback: the worker then runs one job per
 * loop iteration, and the completions of finished jobs are written while
 * the rest of the batch waits, not after the whole batch.  Returns -1 when
 * there is no memory for it: it stays pending, and in the history the
 * next read starts at it again.
 */
static int
take_entry(offload_worker_t *w, redisReply *entry)
{
    char           *p;
    size_t          i, n, bytes;
    redisReply     *fields;
    batch_entry_t  *e;
    offload_str_t   entry_id;

    if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2
        || entry->element[0]->type != REDIS_REPLY_STRING)
    {
        log_error("%s: unexpected stream entry shape", w->name);
        return 0;
    }

    entry_id.data = entry->element[0]->str;
    entry_id.len = entry->element[0]->len;
    fields = entry->element[1];

    if (fields->type != REDIS_REPLY_ARRAY) {
        /* deleted while pending: nothing left to run */
        history_past(w, &entry_id);
        offload_held_drop_entry(w, entry_id.data, entry_id.len);
        return 0;
    }

    n = fields->elements;
    bytes = entry_id.len;

    for (i = 0; i < n; i++) {
        bytes += fields->element[i]->type == REDIS_REPLY_STRING
                 ? fields->element[i]->len : 0;
    }

    e = offload_entry_get(&w->spare_entries, n, bytes);
    if (e == NULL) {
        log_error("%s: out of memory taking entry %.*s", w->name,
                  (int) entry_id.len, entry_id.data);
        return -1;
    }

    history_past(w, &entry_id);

    p = (char *) &e->fields[n];
    e->next = NULL;
    e->started = 0;
    e->expired = 0;
    e->nfields = n;
    e->id.data = memcpy(p, entry_id.data, entry_id.len);
    e->id.len = entry_id.len;
    p += entry_id.len;

    for (i = 0; i < n; i++) {
        if (fields->element[i]->type != REDIS_REPLY_STRING) {
            offload_worker_bad_entry(w, &e->id, e->fields, i,
                                     "field is not a string");
            offload_entry_put(&w->spare_entries, e);
            return 0;
        }

        e->fields[i].data = memcpy(p, fields->element[i]->str,
                                   fields->element[i]->len);
        e->fields[i].len = fields->element[i]->len;
        p += fields->element[i]->len;
    }

    if (w->batch_tail) {
        w->batch_tail->next = e;
    } else {
        w->batch = e;
    }
    w->batch_tail = e;
    return 0;
}


/* Runs an entry's job, or starts reading its body first, or, for an async
 * job (a record, no reply channel), asks first whether it may run: then
 * the entry is kept (returns 1) until the job ran.  A sync job with a
 * record (an Idempotency-Key's) is not asked: its client waits for it, it
 * cannot be cancelled, and the round trip would cost every such job. */
static int
run_entry(offload_worker_t *w, batch_entry_t *e)
{
    const char       *err;
    offload_entry_t   job;

    if (offload_job_decode(&job, e->fields, e->nfields, &err) != 0) {
        offload_worker_bad_entry(w, &e->id, e->fields, e->nfields, err);
        return 0;
    }

    if (!offload_worker_usable_id(&job.id)) {
        offload_worker_bad_entry(w, &e->id, e->fields, e->nfields, "bad id");
        return 0;
    }

    if (job.record_ttl_ms > 0 && job.reply.len == 0 && !e->started) {
        return offload_cancelled_gate(w, e, &job, 0) == 0;
    }

    /* An expired job is answered without its body being read. */
    if (job.body_len > 0 && !e->expired
        && job.deadline_ms > offload_worker_redis_ms(w))
    {
        return offload_body_read_start(w, e, &job) == 0;
    }

    /* Every line logged about this job names it and its request. */
    offload_log_job(&job);
    offload_worker_run_job(w, e, &job);
    offload_log_job(NULL);
    return 0;
}


/* Whether the job that ran last was marked running in Redis by the
 * supervisor (running.c): its completion goes before the next job runs,
 * or a node's death during that one would find the mark on it, finished,
 * and fail its attempt instead of the running one's. */
static int
marked_ran(offload_worker_t *w)
{
    return __atomic_load_n(&w->sb->marked_seq, __ATOMIC_SEQ_CST)
           == __atomic_load_n(&w->sb->job_seq, __ATOMIC_RELAXED);
}


/*
 * Runs the batch's jobs back to back for at most WORK_SLICE_US, then gives
 * the loop a turn so the results finished so far are written: short jobs
 * share one write and one completion script, and a long job delays only
 * the answers of the jobs that finished before it in its slice (a crash or
 * a kill of it sends them back to the queue unanswered: they run again,
 * as README's delivery paragraph says).  A job the supervisor marked
 * running ends the slice.  The next read goes out once the batch is
 * done.
 */
static void
work_cb(struct ev_loop *loop, ev_idle *idle, int revents)
{
    int64_t            start;
    batch_entry_t     *e;
    offload_worker_t  *w = idle->data;

    (void) loop;
    (void) revents;

    start = offload_mono_us();

    do {
        if (offload_cancelled_owned(w) == 0) {
            break;              /* the batch waits for its check */
        }

        e = w->batch;
        w->batch = e->next;

        if (run_entry(w, e) == 0) {
            offload_entry_put(&w->spare_entries, e);
        }

    } while (w->batch && !moving(w)
             && offload_mono_us() - start < WORK_SLICE_US
             && !marked_ran(w));

    if (w->batch == NULL) {
        w->batch_tail = NULL;
    }

    offload_completion_flush(w);

    if (w->batch == NULL || moving(w)) {
        ev_idle_stop(w->loop, &w->work);
        offload_worker_resume(w);
    }
}


static void
group_create_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    offload_worker_t  *w = privdata;
    redisReply        *reply = r;

    (void) ac;

    /* while the group stays gone, said once (read_cb), not every try */
    if (reply != NULL && reply->type == REDIS_REPLY_ERROR
        && strncmp(reply->str, "BUSYGROUP", 9) != 0 && w->nogroup < 2)
    {
        log_error("%s: XGROUP CREATE failed: %s", w->name, reply->str);
    }
}


static void
send_group_create(offload_worker_t *w)
{
    if (offload_redis_command(&w->conn, group_create_cb, w,
                              "XGROUP CREATE %s %s 0 MKSTREAM", w->stream,
                              OFFLOAD_GROUP)
        != REDIS_OK)
    {
        log_error("%s: cannot send XGROUP CREATE", w->name);
    }
}


static void
read_retry_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    offload_worker_t  *w = t->data;

    (void) loop;
    (void) revents;

    if (w->nogroup > 0 && w->conn.ready) {
        send_group_create(w);
    }

    send_read(w);
}


/*
 * The read found no consumer group: the stream was deleted (UNBLOCKED:
 * while the read was blocked on it), or Redis restarted empty.  The group
 * is made again and the read follows at once; when that read finds none
 * either (the XGROUP CREATE was refused: Redis out of memory, an ACL), the
 * next try waits NOGROUP_RETRY_MIN_S, twice as long each time up to
 * NOGROUP_RETRY_MAX_S, and the log says so once, not every try.
 */
static void
group_gone(offload_worker_t *w, const char *error)
{
    int     n = ++w->nogroup;
    double  delay = NOGROUP_RETRY_MIN_S;

    if (n == 1) {
        log_warn("%s: consumer group gone (%s), creating it again", w->name,
                 error);
        send_group_create(w);
        send_read(w);
        return;
    }

    if (n == 2) {
        log_error("%s: the consumer group cannot be made again (%s): "
                  "trying again every %g s at most, quietly", w->name, error,
                  NOGROUP_RETRY_MAX_S);
    }

    while (--n > 1 && delay < NOGROUP_RETRY_MAX_S) {
        delay *= 2;
    }

    if (delay > NOGROUP_RETRY_MAX_S) {
        delay = NOGROUP_RETRY_MAX_S;
    }

    ev_timer_set(&w->read_retry, delay, 0.0);
    ev_timer_start(w->loop, &w->read_retry);
}


/*
 * The first history read of a worker's life finds what its slot's
 * predecessor held when the supervisor could not reclaim it: the whole
 * sidecar was killed (SIGKILL, the OOM killer, a host's reboot), or Redis
 * was away when that worker died.  The entry the supervisor last marked
 * running for the slot (running.c), if still held, is the one that
 * predecessor was running: that job fails one attempt, as a claimed entry
 * of a lost node does (claim.c), so a job that kills its whole node on
 * every run ends dead-lettered after max_attempts instead of running
 * forever.  The others were only read, or finished in the slice of work
 * the death cut short: they run at their attempt.
 */
static void
predecessor_ran_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply        *reply = r;
    offload_worker_t  *w = privdata;

    (void) ac;

    w->predecessor_ran[0] = '\0';

    if (reply != NULL && reply->type == REDIS_REPLY_STRING
        && reply->len < sizeof(w->predecessor_ran))
    {
        memcpy(w->predecessor_ran, reply->str, reply->len + 1);

    } else if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        w->predecessor_asked = 0;       /* asked again with the next read
                                           (LOADING, a link lost) */
    }
}


/* A failure Redis refused left the entry pending under this worker, past
 * its history read, touched, run by no one: the history is read once
 * more, without the mark, and the job runs at its attempt.  A link lost
 * reads it again anyway. */
static void
predecessor_failed(void *data, offload_fail_outcome_e outcome)
{
    offload_worker_t  *w = data;

    w->in_flight--;

    if (outcome == OFFLOAD_FAIL_REFUSED) {
        w->history_again = 1;
    }

    offload_worker_maybe_exit(w);
}


/* Returns 0 when the entry was the predecessor's running one and fails
 * its attempt, -1 when it is to be taken as any other. */
static int
fail_predecessor_job(offload_worker_t *w, redisReply *entry)
{
    int                rc;
    offload_str_t      id;
    offload_failure_t  failure;

    if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2
        || entry->element[0]->type != REDIS_REPLY_STRING
        || strcmp(entry->element[0]->str, w->predecessor_ran) != 0)
    {
        return -1;
    }

    w->predecessor_ran[0] = '\0';

    memset(&failure, 0, sizeof(failure));
    failure.reason = OFFLOAD_FAIL_NODE_LOST;
    failure.exit_code = -1;
    failure.report = json_pack("{s:s,s:s,s:s,s:s}", "node",
                               w->conf->node_name, "reason", "node_lost",
                               "entry_id", entry->element[0]->str,
                               "consumer", w->consumer);

    rc = offload_fail_attempt(&w->conn, w->conf, w->queue, entry, &failure,
                              predecessor_failed, w);
    json_decref(failure.report);

    if (rc != 0) {
        return -1;
    }

    w->in_flight++;

    log_warn("%s: entry %s was running in this slot's previous worker, "
             "which did not end it (its sidecar was killed, or Redis was "
             "away when it died): that run fails one attempt", w->name,
             entry->element[0]->str);

    id.data = entry->element[0]->str;
    id.len = entry->element[0]->len;
    history_past(w, &id);

    return 0;
}


static void
read_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    int                taken = 0;
    size_t             i;
    redisReply        *reply = r, *entries;
    offload_worker_t  *w = privdata;

    (void) ac;

    w->reading = 0;

    if (reply == NULL) {
        return;                 /* disconnected: on_ready starts over */
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        if (strncmp(reply->str, "NOGROUP", 7) == 0
            || strncmp(reply->str, "UNBLOCKED", 9) == 0)
        {
            group_gone(w, reply->str);
            return;
        }

        (void) offload_log_refused(&w->read_refused, w->name,
                                   "read (XREADGROUP)", reply->str);
        ev_timer_set(&w->read_retry, 1.0, 0.0);
        ev_timer_start(w->loop, &w->read_retry);
        return;
    }

    if (w->nogroup > 1) {
        log_notice("%s: the consumer group is back, reading again", w->name);
    }
    w->nogroup = 0;
    (void) offload_log_refused(&w->read_refused, w->name,
                               "read (XREADGROUP)", NULL);

    entries = NULL;
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 1
        && reply->element[0]->type == REDIS_REPLY_ARRAY
        && reply->element[0]->elements == 2
        && reply->element[0]->element[1]->type == REDIS_REPLY_ARRAY)
    {
        entries = reply->element[0]->element[1];

    } else if (reply->type != REDIS_REPLY_NIL
               && !(reply->type == REDIS_REPLY_ARRAY && reply->elements == 0))
    {
        /* not the read's answer (a server or proxy out of step): the
         * replies after it would each go to the wrong command, the
         * entries of a read to a ZCARD's callback, taken and never run */
        offload_redis_conn_out_of_step(&w->conn, "XREADGROUP answered "
                                       "with neither entries nor nil");
        return;
    }

    if (entries == NULL || entries->elements == 0) {
        if (w->in_history && w->history_again) {
            w->history_again = 0;
            w->predecessor = 0;
            strcpy(w->history_id, "0");

        } else if (w->in_history) {
            log_debug("%s: pending history done", w->name);
            w->in_history = 0;
            w->predecessor = 0;
        }

    } else {
        for (i = 0; i < entries->elements; i++) {
            if (w->in_history && w->predecessor_ran[0] != '\0'
                && fail_predecessor_job(w, entries->element[i]) == 0)
            {
                continue;
            }

            if (take_entry(w, entries->element[i]) != 0) {
                taken = -1;
                if (w->in_history) {
                    break;      /* read again from there */
                }
            }
        }
    }

    if (taken != 0 && w->batch == NULL) {
        /* not at once: memory may be back in a second */
        ev_timer_set(&w->read_retry, 1.0, 0.0);
        ev_timer_start(w->loop, &w->read_retry);
        return;
    }

    if (w->batch) {
        w->checking = 1;        /* the ZCARD sent with the read decides */
        return;
    }

    send_read(w);
}


static void
send_read(offload_worker_t *w)
{
    int          argc = 0;
    const char  *argv[12], *zcard[2];

    offload_completion_flush(w);       /* before a read that may block */

    if (w->stopping) {
        offload_worker_maybe_exit(w);
        return;
    }

    if (!w->conn.ready) {
        return;
    }

    /* Redis refused completions or tracked commands (or a completion's
     * reply was lost): they are settled first, offload_completion_settled()
     * reads again.  After a reconnect, so the history read finds their
     * entries acked, not to be run again. */
    if (w->lost != NULL || w->held != NULL || w->resending > 0) {
        if (w->resending == 0 && !ev_is_active(&w->resend)) {
            /* kept without a refusal (a send that failed): not for good */
            ev_timer_set(&w->resend, RESEND_MIN_S, 0.0);
            ev_timer_start(w->loop, &w->resend);
        }
        return;
    }

    /* Its node does not hold its name (node_lease.c): another sidecar's
     * worker of this very name may be running the pending history. */
    if (offload_sb_standby(w->sb)) {
        offload_sb_set_state(w->sb, OFFLOAD_SB_PAUSED);
        ev_timer_set(&w->read_retry, PAUSE_CHECK_S, 0.0);
        ev_timer_start(w->loop, &w->read_retry);
        return;
    }

    /* Drained: read nothing, look again soon.  The pending history is
     * still read: those jobs are already this worker's. */
    if (!w->in_history && offload_sb_paused(w->sb)) {
        offload_sb_set_state(w->sb, OFFLOAD_SB_PAUSED);
        ev_timer_set(&w->read_retry, PAUSE_CHECK_S, 0.0);
        ev_timer_start(w->loop, &w->read_retry);
        return;
    }

    if (offload_sb_state(w->sb) == OFFLOAD_SB_PAUSED) {
        offload_sb_set_state(w->sb, OFFLOAD_SB_IDLE);
    }

    /* The predecessor's mark, asked right before its history is read (a
     * node in standby reads it only once it holds its name), on the same
     * link: its answer is in when the read's is. */
    if (w->in_history && w->predecessor && !w->predecessor_asked
        && offload_redis_command(&w->conn, predecessor_ran_cb, w,
                                 "HGET %s %s", w->running_key, w->consumer)
           == REDIS_OK)
    {
        w->predecessor_asked = 1;
    }

    argv[argc++] = "XREADGROUP";
    argv[argc++] = "GROUP";
    argv[argc++] = OFFLOAD_GROUP;
    argv[argc++] = w->consumer;
    argv[argc++] = "COUNT";
    argv[argc++] = w->prefetch;

    if (!w->in_history) {
        argv[argc++] = "BLOCK";
        argv[argc++] = QUOTE_VALUE(READ_BLOCK_MS);
    }

    argv[argc++] = "STREAMS";
    argv[argc++] = w->stream;
    argv[argc++] = w->in_history ? w->history_id : ">";

    /* by argv, not a format string: hiredis' printf-like formatting is
     * paid on every read */
    zcard[0] = "ZCARD";
    zcard[1] = w->cancelled;

    if (offload_redis_command_block(&w->conn,
                                    w->in_history ? 0 : READ_BLOCK_MS,
                                    read_cb, w, argc, argv, NULL)
        != REDIS_OK
        || offload_redis_command_argv(&w->conn, offload_cancelled_count_cb,
                                      w, 2, zcard, NULL)
           != REDIS_OK)
    {
        log_error("%s: cannot send XREADGROUP", w->name);
        return;
    }

    w->reading = 1;

    /* the batch it reads is ours as of the sending: a node stopped after
     * Redis had answered still looks again (offload_cancelled_owned) */
    w->owned_at = offload_mono_us();
    w->owned_base_ms = offload_sb_clock_base(w->sb);
}


static void
script_load_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    script_t    *s = privdata;
    redisReply  *reply = r;

    (void) ac;

    if (reply == NULL) {
        return;
    }

    if (reply->type != REDIS_REPLY_STRING || reply->len != 40) {
        log_error("%s: SCRIPT LOAD of the %s script failed: %s",
                  s->worker->name, s->what,
                  reply->type == REDIS_REPLY_ERROR ? reply->str
                                                   : "unexpected reply");
        return;     /* its calls fall back to EVAL on NOSCRIPT */
    }

    memcpy(s->sha, reply->str, 40);
    s->sha[40] = '\0';
}


static void
script_load(script_t *s)
{
    if (offload_redis_command(&s->worker->conn, script_load_cb, s,
                              "SCRIPT LOAD %s", s->text)
        != REDIS_OK)
    {
        log_error("%s: cannot send SCRIPT LOAD", s->worker->name);
    }
}


static void
script_init(script_t *s, offload_worker_t *w, const char *what,
    const char *text)
{
    s->worker = w;
    s->what = what;
    s->text = text;
    strcpy(s->sha, "0000000000000000000000000000000000000000");
}


static void
connected(offload_redis_conn_t *rc)
{
    int                i;
    offload_worker_t  *w = rc->data;

    if (!w->stopping) {
        offload_sb_set_state(w->sb, OFFLOAD_SB_IDLE);
    }

    for (i = 0; i < SCRIPTS; i++) {
        script_load(&w->scripts[i]);
    }

    send_group_create(w);

    /* wait_replicas all: this master's replicas, before the first WAIT:
     * every completion follows a reply to a command sent after this one */
    if (w->queue->redis.wait_replicas == OFFLOAD_WAIT_ALL) {
        w->role_refused = 0;
        offload_replicas_ask(w);
    }

    w->in_history = 1;
    strcpy(w->history_id, "0");
    w->nogroup = 0;
    w->predecessor_asked = 0;

    offload_completion_resend_lost(w);

    /* A result half staged is staged again first: its completion then
     * goes before the history read, which so does not run its job again. */
    if (w->stage.c != NULL) {
        offload_stage_restart(w);
    }

    offload_worker_resume(w);
}


static void
disconnected(offload_redis_conn_t *rc)
{
    offload_worker_t  *w = rc->data;

    ev_timer_stop(w->loop, &w->read_retry);
    ev_timer_stop(w->loop, &w->resend);     /* connected() sends again */
    w->reading = 0;
    batch_clear(w);
    offload_held_clear(w);      /* their entries: read with the history */

    /* not sent: sent after the reconnect, as those whose reply is lost */
    if (w->ready != NULL) {
        offload_completion_lost(w, w->ready);
    }
    w->ready = NULL;
    w->ready_tail = NULL;
    w->nready = 0;
    w->ready_bytes = 0;
    ev_prepare_stop(w->loop, &w->flush);

    if (w->body.entry != NULL) {
        log_info("%s: connection lost reading a body: its entry is read "
                 "again", w->name);
        offload_body_read_end(w);
    }

    offload_entry_put(&w->spare_entries, w->gate);  /* read again with
                                                       the history */
    w->gate = NULL;
    w->checking = 0;
    w->owning = 0;

    w->stage.in_flight = 0;     /* its replies are lost with the link */
}


static void
stop_cb(struct ev_loop *loop, ev_signal *s, int revents)
{
    offload_worker_t  *w = s->data;

    (void) loop;
    (void) revents;

    if (!w->stopping) {
        log_debug("%s: stopping", w->name);
    }

    offload_worker_stop_reading(w, OFFLOAD_SB_EXIT_STOPPED);
    offload_worker_maybe_exit(w);
}


/* The exec handler's process died between jobs: the batch read goes back
 * to the queue with the worker's pending entries, and the worker exits as
 * a crash of its slot. */
static void
handler_lost(void *data)
{
    offload_worker_t  *w = data;

    offload_worker_stop_reading(w, OFFLOAD_SB_EXIT_HANDLER_PROCESS);
    w->sb->exit_reason = OFFLOAD_SB_EXIT_HANDLER_PROCESS;
    batch_clear(w);
    offload_worker_maybe_exit(w);
}


static void
reopen_log_cb(struct ev_loop *loop, ev_signal *s, int revents)
{
    offload_worker_t  *w = s->data;

    (void) loop;
    (void) revents;

    if (offload_log_reopen() != 0) {
        log_error("%s: cannot reopen the log: %s", w->name, strerror(errno));
        return;
    }

    log_debug("%s: log reopened", w->name);
}


void
offload_worker_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGUSR1);
}


/* The handler's init returned non-zero: the worker leaves (its exit is a
 * crash of its slot), unless it was asked to stop meanwhile (an exec
 * handler's wait for its process's ready line gives way to SIGTERM). */
static int
init_failed(offload_worker_t *w)
{
    sigset_t  pending;

    if (w->sb->exit_reason == OFFLOAD_SB_EXIT_NONE) {
        w->sb->exit_reason = OFFLOAD_SB_EXIT_INIT_FAILED;
    }

    if (sigpending(&pending) == 0
        && (sigismember(&pending, SIGTERM) || sigismember(&pending, SIGINT)))
    {
        log_info("%s: stopped before its handler was ready", w->name);
        return 0;
    }

    log_error("%s: the init of handler %s failed", w->name,
              w->queue->handler->name);
    return 1;
}


int
offload_worker_run(struct ev_loop *loop, const offload_conf_t *conf,
    const offload_conf_queue_t *queue, int slot, offload_sb_slot_t *sb)
{
    int                rc;
    sigset_t           handled;
    completion_t      *c;
    offload_worker_t   w;

    memset(&w, 0, sizeof(w));
    w.replicas = -1;
    w.predecessor = 1;
    w.loop = loop;
    w.conf = conf;
    w.queue = queue;
    w.sb = sb;
    offload_fd_watch_init(&w.fds);
    sb->fds = (int32_t) w.fds.total;

    snprintf(w.name, sizeof(w.name), "worker %s:%d", queue->name, slot);
    snprintf(w.consumer, sizeof(w.consumer), OFFLOAD_CONSUMER_FMT,
             conf->node_name, queue->name, slot);
    snprintf(w.prefetch, sizeof(w.prefetch), "%d", queue->prefetch);
    snprintf(w.slot_index, sizeof(w.slot_index), "%d", slot);
    offload_cancelled_key(w.cancelled, sizeof(w.cancelled), queue->name,
                          strlen(queue->name));
    snprintf(w.running_key, sizeof(w.running_key), OFFLOAD_RUNNING_FMT,
             queue->name);
    offload_body_key(w.body_prefix, sizeof(w.body_prefix), queue->name,
                     strlen(queue->name), "", 0);
    offload_result_key(w.result_prefix, sizeof(w.result_prefix),
                       queue->name, strlen(queue->name), "", 0);
    snprintf(w.ttl, sizeof(w.ttl), "%d", conf->result_ttl_s);
    snprintf(w.ttl_ms, sizeof(w.ttl_ms), "%lld",
             (long long) conf->result_ttl_s * 1000);
    script_init(&w.scripts[SCRIPT_COMPLETE], &w, "completion",
                offload_complete_script);
    script_init(&w.scripts[SCRIPT_DROP_CANCELLED], &w, "drop-cancelled",
                offload_drop_cancelled_script);
    script_init(&w.scripts[SCRIPT_JOB_START], &w, "job-start",
                offload_job_start_script);

    if (offload_stream_key(w.stream, sizeof(w.stream), queue->name,
                           strlen(queue->name))
        < 0)
    {
        log_error("%s: queue name too long", w.name);
        return 1;
    }

    offload_log_queue(queue->name);

    if (offload_crash_install(sb) != 0) {
        log_error("%s: cannot install the crash handler: %s", w.name,
                  strerror(errno));
    }

    if (setpriority(PRIO_PROCESS, 0, queue->nice) != 0) {
        log_warn("%s: setpriority(%d) failed: %s", w.name, queue->nice,
                 strerror(errno));
    }

    /* malloc's trimming hands a big job's freed buffers back to the kernel
     * and the next big job faults them in again, page by page: a quarter
     * of a 64 MB echo's CPU.  Blocks under 4 MB (hiredis's slices, replies
     * and output buffer) come from the heap, which keeps up to 8 MB of
     * free top; bigger blocks (a big body, a big result) are still
     * returned when freed, and faulted in on huge pages
     * (offload_hugepage.c). */
#ifdef M_TRIM_THRESHOLD
    mallopt(M_MMAP_THRESHOLD, 4 << 20);
    mallopt(M_TRIM_THRESHOLD, 8 << 20);
#endif

    /* memory_limit is the steady RSS, checked between jobs; a job may grow
     * the worker by twice that before its allocations fail (an exec
     * handler's process: exec_bridge.c). */
    if (queue->memory_limit > 0 && !offload_exec_is(queue->handler)) {
        rc = offload_memlimit_cap(2 * queue->memory_limit);
        if (rc < 0) {
            log_error("%s: setrlimit(RLIMIT_AS) failed: %s", w.name,
                      strerror(errno));
        } else if (rc > 0 && slot == 0) {
            log_notice("%s: no RLIMIT_AS in an ASan build (it reserves "
                       "terabytes of address space): memory_limit is "
                       "checked between jobs only", w.name);
        }
    }

    if (offload_exec_is(queue->handler)) {
        offload_exec_attach(loop, queue, sb, w.name, handler_lost, &w);
    }

    /* After the limits, so that what init loads counts against them. */
    w.slot.queue = queue->name;
    w.slot.index = slot;
    w.job.metrics = sb->metrics;
    offload_handler_log_name(w.name);

    if (queue->handler->init != NULL && queue->handler->init(&w.slot) != 0) {
        return init_failed(&w);
    }

    offload_sb_set_init_done(sb);

    ev_signal_init(&w.sigusr1, reopen_log_cb, SIGUSR1);
    w.sigusr1.data = &w;
    ev_signal_start(loop, &w.sigusr1);

    ev_signal_init(&w.sigterm, stop_cb, SIGTERM);
    ev_signal_init(&w.sigint, stop_cb, SIGINT);
    w.sigterm.data = &w;
    w.sigint.data = &w;
    ev_signal_start(loop, &w.sigterm);
    ev_signal_start(loop, &w.sigint);

    /* Blocked since the fork (become_worker): a SIGTERM sent since is
     * pending and reaches stop_cb on the loop's first turn. */
    offload_worker_signals(&handled);
    sigprocmask(SIG_UNBLOCK, &handled, NULL);

    ev_timer_init(&w.read_retry, read_retry_cb, 1.0, 0.0);
    w.read_retry.data = &w;

    ev_timer_init(&w.resend, offload_completion_resend_cb, RESEND_MIN_S, 0.0);
    w.resend.data = &w;

    /* not a reason for the loop to keep running either */
    ev_timer_init(&w.fds_tick, fds_tick_cb, 1.0, 1.0);
    w.fds_tick.data = &w;
    ev_timer_start(loop, &w.fds_tick);
    ev_unref(loop);

    ev_idle_init(&w.work, work_cb);
    w.work.data = &w;

    ev_prepare_init(&w.flush, offload_completion_flush_cb);
    w.flush.data = &w;

    /* not a reason for the loop to keep running */
    ev_prepare_init(&w.out, offload_completion_out_cb);
    ev_set_priority(&w.out, EV_MINPRI);
    w.out.data = &w;
    ev_prepare_start(loop, &w.out);
    ev_unref(loop);

    offload_redis_conn_init(&w.conn, loop, &queue->redis, w.name,
                            connected, disconnected, &w);
    offload_redis_conn_start(&w.conn);

    ev_run(loop, 0);

    /* Pending callbacks run now, with NULL replies. */
    offload_redis_conn_stop(&w.conn);
    ev_timer_stop(loop, &w.read_retry);
    ev_timer_stop(loop, &w.resend);
    ev_prepare_stop(loop, &w.flush);
    ev_ref(loop);
    ev_timer_stop(loop, &w.fds_tick);
    ev_ref(loop);
    ev_prepare_stop(loop, &w.out);
    batch_clear(&w);
    offload_held_clear(&w);
    offload_completion_put_all(&w, w.ready);
    free(w.body.buf);
    offload_entry_put(&w.spare_entries, w.body.entry);
    offload_job_trim(&w.job, 0);

    if (w.stage.c != NULL) {
        offload_completion_put(&w, w.stage.c);
    }

    /* stopping a watcher puts its signal back to SIG_DFL: blocked first,
     * a logrotate's SIGUSR1 (forwarded to every worker) or a second
     * SIGTERM during the handler's fini (an exec process's exit, up to a
     * second) does not kill a worker that is stopping cleanly */
    sigprocmask(SIG_BLOCK, &handled, NULL);
    ev_signal_stop(loop, &w.sigterm);
    ev_signal_stop(loop, &w.sigint);
    ev_signal_stop(loop, &w.sigusr1);

    while ((c = w.free_list) != NULL) {
        w.free_list = c->next;
        free(c->buf);
        free(c);
    }

    offload_entry_spares_free(&w.spare_entries);

    if (queue->handler->fini != NULL) {
        queue->handler->fini(&w.slot);
    }

    log_debug("%s: stopped", w.name);
    return sb->exit_reason == OFFLOAD_SB_EXIT_HANDLER_PROCESS
           ? OFFLOAD_WORKER_EXIT_HANDLER : 0;
}
