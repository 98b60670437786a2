/*
 * body_read.c -- a big job's body, read into memory from its body key.  A
 * body over OFFLOAD_BODY_OVER never travels in one Redis command (Redis
 * runs one command at a time: a 64 MB one holds up every other client):
 * the module and liboffload write it as a list of slices, and the worker
 * reads it back the same way, LLEN first, then LINDEX an element per
 * command, STAGE_WINDOW in flight, and then runs the job.  While a read
 * runs, the batch waits: one big job at a time per worker.  A reconnect
 * drops the read; the entry is read again with the pending history.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "offload_hugepage.h"
#include "offload_proto.h"
#include "redis_conn.h"
#include "worker_state.h"


static void body_element_cb(redisAsyncContext *ac, void *r,
    void *privdata);


/* Ends a body read: the job ran, or its entry went the bad_job way, or
 * the connection went (the entry is read again with the history). */
void
offload_body_read_end(offload_worker_t *w)
{
    body_read_t  *b = &w->body;

    free(b->buf);
    offload_entry_put(&w->spare_entries, b->entry);
    memset(b, 0, sizeof(*b));
    offload_worker_resume(w);
}


/* Sends the entry the bad_job way, saying what was wrong with its body
 * (b->why, or its length). */
static void
body_read_failed(offload_worker_t *w)
{
    body_read_t  *b = &w->body;

    if (b->why[0] == '\0') {
        snprintf(b->why, sizeof(b->why), "the job's body does not match "
                 "its entry: %s holds %lld bytes, not %lld", b->key,
                 (long long) b->found, (long long) b->job.body_len);
    }

    offload_worker_bad_entry(w, &b->entry->id, b->entry->fields,
                             b->entry->nfields, b->why);
    offload_body_read_end(w);
}


/* As a handler out of memory: the supervisor fails the attempt. */
static void
body_no_memory(offload_worker_t *w)
{
    body_read_t  *b = &w->body;

    log_error("%s: no memory for the %lld-byte body of job %.*s", w->name,
              (long long) b->job.body_len, (int) b->job.id.len,
              b->job.id.data);
    offload_sb_job_start(w->sb, b->entry->id.data, b->entry->id.len,
                         &b->job, offload_mono_us());
    offload_worker_out_of_memory(w);
}


/* Room for need bytes (at most job.body_len): the buffer grows with what
 * arrives.  Past OFFLOAD_HUGEPAGE_MIN it is made once for what all the
 * elements hold at most (OFFLOAD_SLICE each, as the module writes them),
 * on huge pages (offload_hugepage.c), the body so far copied in after the
 * advice: realloc would copy it into 4 KB pages first, and the advice
 * splits the block's mapping, so that realloc cannot mremap() it again
 * but copies it at every growth.  An entry claiming more than its
 * elements bring costs address space only, and when even that is
 * refused, the buffer grows by doubling as for a small body: a false
 * claim is found out by the read (body_read_failed), not taken for a lack
 * of memory. */
static void
body_room(offload_worker_t *w, size_t need)
{
    size_t        cap, all;
    char         *buf;
    body_read_t  *b = &w->body;

    if (need <= b->cap) {
        return;
    }

    cap = b->cap * 2 > need ? b->cap * 2 : need;
    if (cap > (size_t) b->job.body_len) {
        cap = (size_t) b->job.body_len;
    }

    if (cap < OFFLOAD_HUGEPAGE_MIN) {
        buf = realloc(b->buf, cap);

    } else {
        all = b->elements < b->job.body_len / OFFLOAD_SLICE + 1
              ? (size_t) b->elements * OFFLOAD_SLICE
              : (size_t) b->job.body_len;

        buf = all > cap ? malloc(all) : NULL;

        if (buf != NULL) {
            cap = all;

        } else {
            buf = malloc(cap);
        }

        offload_hugepage_advise(buf, cap);

        if (buf != NULL) {
            if (b->found > 0) {
                memcpy(buf, b->buf, (size_t) b->found);
            }
            free(b->buf);
        }
    }

    if (buf == NULL) {
        body_no_memory(w);
    }

    b->buf = buf;
    b->cap = cap;
}


static void
body_read_send(offload_worker_t *w)
{
    char          at[24];
    body_read_t  *b = &w->body;

    while (b->asked < b->elements && b->in_flight < STAGE_WINDOW
           && b->why[0] == '\0')
    {
        snprintf(at, sizeof(at), "%lld", (long long) b->asked);

        if (offload_redis_command(&w->conn, body_element_cb, w,
                                  "LINDEX %s %s", b->key, at)
            != REDIS_OK)
        {
            return;             /* disconnected: body_read_end follows */
        }

        b->asked++;
        b->in_flight++;
    }
}


/* Runs the job on the body read. */
static void
body_read_done(offload_worker_t *w)
{
    body_read_t  *b = &w->body;

    b->job.payload.data = b->buf;
    b->job.payload.len = (size_t) b->job.body_len;

    offload_log_job(&b->job);
    log_debug("%s: read a body of %lld bytes in %lld elements", w->name,
              (long long) b->job.body_len, (long long) b->elements);
    offload_worker_run_job(w, b->entry, &b->job);
    offload_log_job(NULL);

    offload_body_read_end(w);
}


/*
 * An element of the body list: copied after the others.  One that does not
 * fit in job.body_len bytes, or is gone (the list shrank: deleted or
 * expired meanwhile), stops the read; so does the job's deadline (it is
 * answered expired).  The read ends when every element asked for has
 * answered, so that no late reply meets the next read.
 */
static void
body_element_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    offload_worker_t  *w = privdata;
    body_read_t       *b = &w->body;
    redisReply        *reply = r;

    (void) ac;

    if (reply == NULL || b->entry == NULL) {
        return;                 /* disconnected: read again with history */
    }

    b->in_flight--;

    if (b->why[0] != '\0') {
        /* stopped already */

    } else if (reply->type != REDIS_REPLY_STRING) {
        snprintf(b->why, sizeof(b->why), "the job's body is gone (expired "
                 "or deleted) while it was read: %s lost its element %lld",
                 b->key, (long long) b->answered);

    } else if ((int64_t) reply->len > b->job.body_len - b->found) {
        snprintf(b->why, sizeof(b->why), "the job's body does not match "
                 "its entry: %s holds more than %lld bytes", b->key,
                 (long long) b->job.body_len);

    } else {
        body_room(w, (size_t) b->found + reply->len);
        memcpy(b->buf + b->found, reply->str, reply->len);
        b->found += (int64_t) reply->len;
    }

    b->answered++;

    if (b->in_flight > 0) {
        return;
    }

    if (b->why[0] != '\0' || b->answered == b->elements) {
        if (b->why[0] == '\0' && b->found == b->job.body_len) {
            body_read_done(w);
        } else {
            body_read_failed(w);
        }
        return;
    }

    if (b->job.deadline_ms <= offload_worker_redis_ms(w)) {
        /* run_job answers it expired: no use reading the rest */
        b->job.payload.data = "";
        b->job.payload.len = 0;
        offload_worker_run_job(w, b->entry, &b->job);
        offload_body_read_end(w);
        return;
    }

    body_read_send(w);
}


static void
body_length_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    offload_worker_t  *w = privdata;
    body_read_t       *b = &w->body;
    redisReply        *reply = r;

    (void) ac;

    if (reply == NULL || b->entry == NULL) {
        return;
    }

    b->in_flight--;

    if (reply->type == REDIS_REPLY_INTEGER && reply->integer <= 0) {
        snprintf(b->why, sizeof(b->why), "the job's body is gone (expired "
                 "or deleted): no %s", b->key);

    } else if (reply->type != REDIS_REPLY_INTEGER) {
        snprintf(b->why, sizeof(b->why), "the job's body key %s is not a "
                 "list of slices: %s", b->key,
                 reply->type == REDIS_REPLY_ERROR ? reply->str
                                                  : "unexpected reply");

    } else if (reply->integer > b->job.body_len) {
        /* not a body: each element would carry less than a byte */
        snprintf(b->why, sizeof(b->why), "the job's body does not match "
                 "its entry: %s has %lld elements for %lld bytes", b->key,
                 (long long) reply->integer, (long long) b->job.body_len);
    }

    if (b->why[0] != '\0') {
        body_read_failed(w);
        return;
    }

    b->elements = reply->integer;
    body_read_send(w);
}


/* Reads the body of a job that has one into memory, then runs the job
 * (body_element_cb).  LLEN first: a key gone is found before anything is
 * allocated.  Returns -1 when the read cannot start (disconnected: the
 * entry is read again with the history). */
int
offload_body_read_start(offload_worker_t *w, batch_entry_t *e,
    const offload_entry_t *job)
{
    body_read_t  *b = &w->body;

    memset(b, 0, sizeof(*b));

    if (offload_body_key(b->key, sizeof(b->key), w->queue->name,
                         strlen(w->queue->name), job->id.data, job->id.len)
        < 0
        || offload_redis_command(&w->conn, body_length_cb, w, "LLEN %s",
                                 b->key)
           != REDIS_OK)
    {
        return -1;
    }

    b->entry = e;
    b->job = *job;
    b->in_flight++;
    return 0;
}
