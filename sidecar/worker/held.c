/*
 * held.c -- tracked commands: the commands that settle an entry otherwise
 * than by its completion (a dead letter, a retry later, a bad job's move,
 * the XACK of an entry gone), kept formatted until Redis answers.  One
 * Redis refuses is held and sent again with the completions it refused
 * (offload_completion_refused()), in order; one that keeps being refused
 * ends in its last resort: its job is answered an error and its entry
 * dead-lettered (held_give_up()).
 */

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "offload_resp.h"
#include "redis_conn.h"
#include "worker_state.h"


static void
held_free(held_t *h)
{
    free(h->cmd);
    free(h);
}


/* Forgets the tracked commands refused: their entries are read again with
 * the history (after a reconnect), or by the next worker.  A dead letter
 * (retries_exhausted) forgotten so runs its job once more, past
 * max_attempts, and is dead-lettered again when it fails again: delivery
 * is at least once, and keeping the held commands across a reconnect
 * would send them behind the history read that runs those entries. */
void
offload_held_clear(offload_worker_t *w)
{
    held_t  *h;

    while ((h = w->held) != NULL) {
        w->held = h->next;
        held_free(h);
    }

    w->held_tail = NULL;
}


/*
 * What a tracked command settles (offload_held_send() keeps it): a job's entry
 * (final: the command is its last resort), with the job, or none.
 */
void
offload_held_settles(settles_t *st, const offload_str_t *entry_id,
    const offload_entry_t *job, int final)
{
    memset(st, 0, sizeof(*st));
    st->final = final;

    if (entry_id->len < sizeof(st->entry)) {
        memcpy(st->entry, entry_id->data, entry_id->len);
        st->entry_len = entry_id->len;
    }

    if (job != NULL && offload_worker_usable_id(&job->id)
        && job->id.len < sizeof(st->id)
        && job->reply.len < sizeof(st->reply))
    {
        memcpy(st->id, job->id.data, job->id.len);
        st->id_len = job->id.len;
        if (job->reply.len > 0) {       /* none: data may be NULL */
            memcpy(st->reply, job->reply.data, job->reply.len);
            st->reply_len = job->reply.len;
        }
        st->record_ttl_ms = job->record_ttl_ms;
        st->body_keyed = job->body_len > 0;
    }
}


/*
 * The last resort for a tracked command Redis refused REFUSED_TRIES times
 * for a reason that does not pass by itself: left alone, its entry would
 * stay pending under this live worker (whose claim refreshes keep every
 * other node from taking it); a refused script did nothing (it acks last,
 * proto/offload_proto.c).  The entry is dead-lettered (reason bad_job, the
 * refusal in its report) and its job answered 500 not_settled, which ends
 * its record failed, as for a bad job.  A command that was that last
 * resort already, or one that names no job, makes the worker recycle
 * instead: the next one reads the entry again with the history.
 */
static void
held_give_up(offload_worker_t *w, held_t *h, const char *err)
{
    char             why[200];
    settles_t       *st = &h->settles;
    offload_str_t    entry_id, fields[4];

    entry_id.data = st->entry;
    entry_id.len = st->entry_len;

    if (st->final || st->id_len == 0) {
        log_error("%s: redis refused a command (%s) of entry %.*s %d times "
                  "(%s): given up; recycling this worker, so that the entry "
                  "is read again", w->name, h->name, (int) entry_id.len,
                  entry_id.data, h->tries, err);
        offload_worker_stop_reading(w, OFFLOAD_SB_EXIT_UNSETTLED);
        return;
    }

    log_error("%s: redis refused a command (%s) of entry %.*s %d times (%s): "
              "given up: dead-lettered, job %.*s answered 500", w->name,
              h->name, (int) entry_id.len, entry_id.data, h->tries, err,
              (int) st->id_len, st->id);

    fields[0].data = OFFLOAD_F_ID;
    fields[0].len = sizeof(OFFLOAD_F_ID) - 1;
    fields[1].data = st->id;
    fields[1].len = st->id_len;
    fields[2].data = OFFLOAD_F_REPLY;
    fields[2].len = sizeof(OFFLOAD_F_REPLY) - 1;
    fields[3].data = st->reply;
    fields[3].len = st->reply_len;
    snprintf(why, sizeof(why), "redis refused its %s: %.120s", h->name,
             err);

    w->record_ttl_ms = st->record_ttl_ms;
    w->body_keyed = st->body_keyed;
    w->last_resort = 1;
    offload_worker_dead_letter_answer(w, &entry_id, fields, 4, why, 500,
                                      "not_settled", why);
    w->last_resort = 0;
    w->body_keyed = 0;
    w->record_ttl_ms = 0;
}


/*
 * Replies to commands the worker must see answered before it exits.  One
 * Redis refuses is kept and sent again (offload_completion_refused()); one
 * that cannot pass by itself (a script error) is given up after
 * REFUSED_TRIES (held_give_up()).  A lost link leaves the entry pending:
 * it is read again with the history after the reconnect.
 */
static void
tracked_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    held_t            *h = privdata;
    offload_worker_t  *w = h->worker;
    redisReply        *reply = r;
    int                resent = h->resent;

    (void) ac;

    w->in_flight--;

    if (resent) {
        h->resent = 0;
        w->resending--;
    }

    if (reply != NULL && reply->type == REDIS_REPLY_NIL && h->tries > 0) {
        /* a script's guard found its entry no longer pending: settled by
         * someone else meanwhile (the supervisor's claim, a completion);
         * the refused tries did nothing (the scripts ack last) */
        log_notice("%s: entry %.*s, whose %s redis refused, was settled "
                   "elsewhere meanwhile", w->name,
                   (int) h->settles.entry_len, h->settles.entry, h->name);
        held_free(h);

    } else if (reply == NULL || reply->type != REDIS_REPLY_ERROR) {
        held_free(h);

    } else {
        if (!w->refusing) {
            log_error("%s: redis refused a command (%s): %s", w->name,
                      h->name, reply->str);
        }

        if (!offload_refusal_passes(reply->str)
            && ++h->tries >= REFUSED_TRIES)
        {
            held_give_up(w, h, reply->str);
            held_free(h);

        } else {
            h->next = NULL;
            if (w->held_tail != NULL) {
                w->held_tail->next = h;
            } else {
                w->held = h;
            }
            w->held_tail = h;
            offload_completion_refused(w);
        }
    }

    if (resent) {
        offload_completion_settled(w);
    }

    offload_worker_maybe_exit(w);
}


static int
held_send(offload_worker_t *w, held_t *h)
{
    if (offload_redis_command_formatted(&w->conn, tracked_cb, h, h->name,
                                        h->cmd, h->len)
        != REDIS_OK)
    {
        return REDIS_ERR;
    }

    w->in_flight++;
    return REDIS_OK;
}


/* Sends a tracked command (offload_redis_send_pt), settling what
 * w->settling says (none: final, no entry known): not sent (no link), its
 * entry stays pending and is read again with the history. */
int
offload_held_send(void *data, int argc, const char **argv,
    const size_t *argvlen)
{
    size_t             len;
    held_t            *h;
    offload_worker_t  *w = data;

    len = offload_resp_size(argc, argv, argvlen);
    h = calloc(1, sizeof(held_t));
    if (h == NULL || (h->cmd = malloc(len + 1)) == NULL) {
        log_error("%s: out of memory sending a %s", w->name, argv[0]);
        offload_worker_out_of_memory(w);
    }

    offload_resp_write(h->cmd, argc, argv, argvlen);
    h->worker = w;
    h->len = len;
    if (w->settling != NULL) {
        h->settles = *w->settling;
    } else {
        h->settles.final = 1;
    }
    snprintf(h->name, sizeof(h->name), "%.*s",
             (int) (argvlen != NULL ? argvlen[0] : strlen(argv[0])), argv[0]);

    if (held_send(w, h) != REDIS_OK) {
        held_free(h);
        return REDIS_ERR;
    }

    return REDIS_OK;
}


/* Sends again the tracked commands Redis refused, in their order. */
void
offload_held_resend(offload_worker_t *w)
{
    held_t  *h;

    while ((h = w->held) != NULL) {
        if (held_send(w, h) != REDIS_OK) {
            return;
        }

        w->held = h->next;
        if (w->held == NULL) {
            w->held_tail = NULL;
        }

        h->resent = 1;
        w->resending++;
    }
}


/* XACK an entry deleted while it was pending: nothing is left to run. */
void
offload_held_drop_entry(offload_worker_t *w, const char *id, size_t idlen)
{
    const char     *argv[4];
    size_t          argvlen[4];
    settles_t       st;
    offload_str_t   entry_id = { id, idlen };

    offload_held_settles(&st, &entry_id, NULL, 1);
    argv[0] = "XACK"; argvlen[0] = 4;
    argv[1] = w->stream; argvlen[1] = strlen(w->stream);
    argv[2] = OFFLOAD_GROUP; argvlen[2] = sizeof(OFFLOAD_GROUP) - 1;
    argv[3] = id; argvlen[3] = idlen;
    w->settling = &st;
    offload_held_send(w, 4, argv, argvlen);
    w->settling = NULL;
}
