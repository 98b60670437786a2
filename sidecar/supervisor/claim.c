/*
 * claim.c -- takes over the jobs of lost nodes (claim.h).
 *
 * XAUTOCLAIM only knows how long an entry has been idle, not whether its
 * consumer is alive, and a live worker deep in a long job holds an entry
 * that looks idle.  So every round first touches this node's own entries
 * (offload_touch_script: XCLAIM to the same consumer, JUSTID), and only
 * then claims what stayed idle for claim_idle: entries whose node no longer
 * touches them.  A claimed entry its node marked running (running.c) has
 * lost its worker: it fails one attempt (fail_attempt.c), so a job that
 * takes whole nodes down still ends dead-lettered after max_attempts; the
 * others were only read, and go back to the queue unchanged
 * (offload_handback_script, naming them) but for their "lost" count.  A
 * mark comes up to 0.1 s after its job started, so an entry given back
 * OFFLOAD_LOST_FREE times is charged as a marked one: a job that takes its
 * node down at once still ends dead-lettered.  Marks unknown (HVALS not
 * allowed), each claimed entry fails an attempt, as before there were
 * marks.
 * Each round also forgets the names of lost nodes in offload:{ctl}:nodes
 * (offload_prune_nodes_script) and then their consumers in the groups of
 * the queues there, once these hold nothing
 * (offload_forget_consumers_script): with host names that change
 * (containers), neither the set nor the groups grow with every name.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "claim.h"
#include "events.h"
#include "log.h"
#include "fail_attempt.h"
#include "supervisor.h"

#define CLAIM_COUNT    100
#define HANDBACK_ARGS  8       /* EVAL, the script, ..., before the ids */


/* One queue's claim, page after page of XAUTOCLAIM.  It names its queue
 * rather than pointing at the pool: a SIGHUP reload may free the pool
 * between two pages. */
typedef struct {
    offload_supervisor_t  *sup;
    offload_redis_conn_t  *conn;        /* the queue's Redis: its links
                                           outlive a reload */
    offload_redis_conn_t  *node_conn;   /* its node-level keys' */
    char                   queue[OFFLOAD_QUEUE_NAME_MAX + 1];
    char                   who[OFFLOAD_QUEUE_NAME_MAX + 7];  /* for the
                                                               log */
    char                   claimer[OFFLOAD_CONSUMER_MAX];
    char                   stream[OFFLOAD_KEY_MAX];
    char                   running[OFFLOAD_KEY_MAX];
    char                   cursor[OFFLOAD_SB_ENTRY_ID_MAX];  /* the next
                                                               page's */
    int                    marks_known;
    size_t                 nmarks;
    char                 (*marks)[OFFLOAD_SB_ENTRY_ID_MAX];  /* the entries
                                           marked running, read before
                                           each page */
} claim_t;


static void claim_refused(claim_t *c, int marks, const char *err);
static void claim_cb(redisAsyncContext *ac, void *r, void *privdata);


static void
claim_free(claim_t *c)
{
    free(c->marks);
    free(c);
}


static void
send_autoclaim(claim_t *c)
{
    char                   idle[16];
    offload_supervisor_t  *sup = c->sup;

    snprintf(idle, sizeof(idle), "%d", sup->conf->claim_idle_ms);

    if (offload_redis_command(c->conn, claim_cb, c,
                              "XAUTOCLAIM %s %s %s %s %s COUNT %d", c->stream,
                              OFFLOAD_GROUP, c->claimer, idle, c->cursor,
                              CLAIM_COUNT)
        != REDIS_OK)
    {
        claim_free(c);
    }
}


/* The entries marked running in the queue (HVALS of its running hash),
 * then a page of the claim: read again for each page, as a node lost
 * since the last one may have marked more.  Refused for good (an ACL from
 * before the marks, a server without HVALS), every claimed entry fails an
 * attempt, as before there were marks; refused for a while
 * (offload_refusal_passes(): BUSY, LOADING...), the round ends here. */
static void
marks_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    size_t       i;
    claim_t     *c = privdata;
    redisReply  *reply = r;

    (void) ac;

    free(c->marks);
    c->marks = NULL;
    c->nmarks = 0;
    c->marks_known = 0;

    if (reply == NULL) {
        claim_free(c);          /* the link lost: the next round */
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        claim_refused(c, 1, reply->str);

        if (offload_refusal_passes(reply->str)) {
            claim_free(c);
            return;
        }

        send_autoclaim(c);
        return;
    }

    if (reply->type != REDIS_REPLY_ARRAY
        || (c->marks = calloc(reply->elements + 1, sizeof(*c->marks)))
           == NULL)
    {
        log_error("%s: no running marks to claim by (%s)", c->who,
                  reply->type == REDIS_REPLY_ARRAY ? "out of memory"
                                                   : "a reply not a list");
        claim_free(c);
        return;
    }

    claim_refused(c, 1, NULL);

    for (i = 0; i < reply->elements; i++) {
        if (reply->element[i]->type == REDIS_REPLY_STRING
            && reply->element[i]->len < sizeof(c->marks[0]))
        {
            memcpy(c->marks[c->nmarks++], reply->element[i]->str,
                   reply->element[i]->len + 1);
        }
    }

    c->marks_known = 1;
    send_autoclaim(c);
}


static void
send_page(claim_t *c, const char *cursor)
{
    snprintf(c->cursor, sizeof(c->cursor), "%s", cursor);

    if (offload_redis_command(c->conn, marks_cb, c, "HVALS %s", c->running)
        != REDIS_OK)
    {
        claim_free(c);
    }
}


/* Whether a claimed entry ([id, [field, value...]]) counts as run by its
 * lost node: marked running, or given back unstarted OFFLOAD_LOST_FREE
 * times already (its mark may have come too late: a job that takes its
 * node down in its first 0.1 s). */
static int
was_running(const claim_t *c, const redisReply *e)
{
    size_t             i;
    const redisReply  *f = e->element[1];

    if (!c->marks_known) {
        return 1;
    }

    for (i = 0; i < c->nmarks; i++) {
        if (strcmp(c->marks[i], e->element[0]->str) == 0) {
            return 1;
        }
    }

    for (i = 0; f->type == REDIS_REPLY_ARRAY && i + 1 < f->elements; i += 2) {
        if (f->element[i]->type == REDIS_REPLY_STRING
            && f->element[i + 1]->type == REDIS_REPLY_STRING
            && strcmp(f->element[i]->str, OFFLOAD_F_LOST) == 0)
        {
            return atoi(f->element[i + 1]->str) >= OFFLOAD_LOST_FREE;
        }
    }

    return 0;
}


/* Its claims, or reads of the marks, refused or answered: the queue's own
 * counts, each queue may have a Redis of its own (a pool a reload removed
 * counts no more). */
static void
claim_refused(claim_t *c, int marks, const char *err)
{
    offload_pool_t  *pool;

    pool = offload_pool_named(c->sup->pools, c->sup->npools, c->queue);
    if (pool == NULL) {
        return;
    }

    if (marks) {
        (void) offload_log_refused(&pool->marks_refused, c->who,
                                   "read of the running marks (HVALS)", err);
    } else {
        (void) offload_log_refused(&pool->claim_refused, c->who,
                                   "claim (XAUTOCLAIM)", err);
    }
}


/* The queue's configuration as it is now, or NULL if a reload removed it. */
static const offload_conf_queue_t *
claim_queue(claim_t *c)
{
    size_t  p;

    for (p = 0; p < c->sup->npools; p++) {
        if (strcmp(c->sup->pools[p].queue->name, c->queue) == 0) {
            return c->sup->pools[p].queue;
        }
    }

    return NULL;
}


static void
handback_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    char        *queue = privdata;
    redisReply  *reply = r;

    (void) ac;

    if (reply != NULL && reply->type == REDIS_REPLY_ERROR
        && strncmp(reply->str, "NOGROUP", 7) != 0)
    {
        log_error("queue %s: handing back the claimed entries a lost node "
                  "had only read: %s", queue, reply->str);

    } else if (reply != NULL && reply->type == REDIS_REPLY_INTEGER
               && reply->integer > 0)
    {
        log_warn("queue %s: claimed entries a lost node had only read went "
                 "back to the queue unchanged: %lld", queue, reply->integer);
    }

    free(queue);
}


/* The entries of a page the lost node had only read go back to the
 * queue, named one by one: the claimer may hold others, of another page
 * or a failure Redis refused, which are not to go back uncharged. */
static void
send_handback(claim_t *c, const char **argv, int argc)
{
    char  *queue;

    argv[0] = "EVAL";
    argv[1] = offload_handback_script;
    argv[2] = "1";
    argv[3] = c->stream;
    argv[4] = OFFLOAD_GROUP;
    argv[5] = c->claimer;
    argv[6] = "";
    argv[7] = "";

    queue = strdup(c->queue);
    if (queue != NULL
        && offload_redis_command_argv(c->conn, handback_cb, queue, argc,
                                      argv, NULL)
           != REDIS_OK)
    {
        free(queue);
    }
}


static void
claim_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    int                          back = HANDBACK_ARGS;
    size_t                       i;
    const char                  *argv[HANDBACK_ARGS + CLAIM_COUNT];
    claim_t                     *c = privdata;
    redisReply                  *reply = r, *entries, *e;
    offload_failure_t            failure;
    offload_supervisor_t        *sup = c->sup;
    const offload_conf_queue_t  *q;

    (void) ac;

    /* [next cursor, [[id, [field, value...]]...], [deleted ids]] */
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements < 2
        || reply->element[0]->type != REDIS_REPLY_STRING
        || reply->element[1]->type != REDIS_REPLY_ARRAY)
    {
        if (reply != NULL && reply->type == REDIS_REPLY_ERROR
            && strncmp(reply->str, "NOGROUP", 7) != 0)
        {
            claim_refused(c, 0, reply->str);
        }
        claim_free(c);
        return;
    }

    claim_refused(c, 0, NULL);

    q = claim_queue(c);
    if (q == NULL) {
        /* Left pending under the claimer: idle again after claim_idle, a
         * node that still serves the queue claims them then. */
        log_warn("queue %s: removed by a reload while claiming", c->queue);
        claim_free(c);
        return;
    }

    entries = reply->element[1];
    failure.reason = OFFLOAD_FAIL_NODE_LOST;
    failure.signal = 0;
    failure.exit_code = -1;
    failure.answer_partial = 0;

    for (i = 0; i < entries->elements; i++) {
        e = entries->element[i];

        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2
            || e->element[0]->type != REDIS_REPLY_STRING)
        {
            continue;
        }

        if (!was_running(c, e)) {
            if (back < HANDBACK_ARGS + CLAIM_COUNT) {
                argv[back++] = e->element[0]->str;
            }
            continue;
        }

        failure.report = json_pack("{s:s,s:s,s:s}", "node",
                                   sup->conf->node_name, "reason",
                                   "node_lost", "entry_id",
                                   e->element[0]->str);

        log_warn("queue %s: claimed entry %s of a lost node", c->queue,
                 e->element[0]->str);

        offload_fail_attempt(c->conn, sup->conf, q, e, &failure, NULL, NULL);
        offload_event(c->node_conn, sup->conf->node_name, "reclaim", c->queue,
                      failure.report);
    }

    if (back > HANDBACK_ARGS) {
        send_handback(c, argv, back);
    }

    if (strcmp(reply->element[0]->str, "0-0") != 0
        && entries->elements > 0)
    {
        send_page(c, reply->element[0]->str);
        return;
    }

    claim_free(c);
}


static void
forgot_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    char        *queue = privdata;
    redisReply  *reply = r;

    (void) ac;

    if (reply != NULL && reply->type == REDIS_REPLY_INTEGER
        && reply->integer > 0)
    {
        log_info("queue %s: forgot %lld consumers of lost nodes", queue,
                 reply->integer);
    }

    free(queue);
}


static void
send_forget(offload_pool_t *pool, const redisReply *live)
{
    size_t         i, argc = 0;
    char           stream[OFFLOAD_KEY_MAX], running[OFFLOAD_KEY_MAX];
    char          *queue;
    const char   **argv;
    const char    *name = pool->queue->name;

    offload_stream_key(stream, sizeof(stream), name, strlen(name));
    snprintf(running, sizeof(running), OFFLOAD_RUNNING_FMT, name);

    argv = calloc(live->elements + 7, sizeof(char *));
    queue = strdup(name);
    if (argv == NULL || queue == NULL) {
        free(argv);
        free(queue);
        return;
    }

    argv[argc++] = "EVAL";
    argv[argc++] = offload_forget_consumers_script;
    argv[argc++] = "2";
    argv[argc++] = stream;
    argv[argc++] = running;
    argv[argc++] = OFFLOAD_GROUP;
    argv[argc++] = name;

    for (i = 0; i < live->elements; i++) {
        if (live->element[i]->type == REDIS_REPLY_STRING) {
            argv[argc++] = live->element[i]->str;
        }
    }

    if (offload_redis_command_argv(offload_pool_conn(pool), forgot_cb, queue,
                                   (int) argc, argv, NULL)
        != REDIS_OK)
    {
        free(queue);
    }

    free(argv);
}


/* The live nodes of one keyspace: the queues whose node-level keys are
 * there forget the consumers of the others. */
static void
pruned_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    size_t                 p, l;
    redisReply            *reply = r;
    offload_supervisor_t  *sup = privdata;
    offload_redis_conn_t  *control = NULL;

    /* refused (a replica, an ACL): not logged, rounds come every
     * claim_idle / 2; the next one tries again */
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        return;
    }

    for (l = 0; l < sup->registry.nlinks; l++) {
        if (sup->registry.links[l].conn.ac == ac) {
            control = &sup->registry.links[l].conn;
        }
    }

    for (p = 0; control != NULL && p < sup->npools; p++) {
        if (offload_pool_node_conn(&sup->pools[p]) == control
            && offload_pool_conn(&sup->pools[p])->ready)
        {
            send_forget(&sup->pools[p], reply);
        }
    }
}


/* Touches the entries held under the pool's consumer names, whether or not
 * a worker runs in the slot right now: a slot waiting for its restart keeps
 * its entries for its next worker. */
static void
send_touch(offload_pool_t *pool, const char *stream)
{
    int                    i, argc = 0;
    char                 (*names)[OFFLOAD_CONSUMER_MAX];
    const char           **argv;
    offload_supervisor_t  *sup = pool->sup;

    names = calloc((size_t) pool->nslots, sizeof(*names));
    argv = calloc((size_t) pool->nslots + 5, sizeof(char *));

    if (names != NULL && argv != NULL) {
        argv[argc++] = "EVAL";
        argv[argc++] = offload_touch_script;
        argv[argc++] = "1";
        argv[argc++] = stream;
        argv[argc++] = OFFLOAD_GROUP;

        for (i = 0; i < pool->nslots; i++) {
            snprintf(names[i], sizeof(names[i]), OFFLOAD_CONSUMER_FMT,
                     sup->conf->node_name, pool->queue->name, i);
            argv[argc++] = names[i];
        }

        offload_redis_command_argv(offload_pool_conn(pool), NULL, NULL, argc,
                                   argv, NULL);
    }

    free(names);
    free(argv);
}


void
offload_claim_round(offload_supervisor_t *sup)
{
    size_t                 p, l;
    claim_t               *c;
    offload_redis_conn_t  *conn;

    /* A reload's retired workers still run jobs under their names. */
    for (p = 0; p < sup->nretired; p++) {
        send_touch(&sup->retired[p], sup->retired[p].stream_key);
    }

    /* So do a stopping node's, until shutdown_timeout: their entries stay
     * touched, or another node takes them for a lost node's and runs them
     * again beside them.  A stopping node claims nothing. */
    if (sup->stopping) {
        for (p = 0; p < sup->npools; p++) {
            if (offload_pool_conn(&sup->pools[p])->ready) {
                send_touch(&sup->pools[p], sup->pools[p].stream_key);
            }
        }

        return;
    }

    for (l = 0; l < sup->registry.nlinks; l++) {
        conn = &sup->registry.links[l].conn;
        if (sup->registry.links[l].control && conn->ready) {
            offload_redis_command(conn, pruned_cb, sup, "EVAL %s 1 %s %s",
                                  offload_prune_nodes_script,
                                  OFFLOAD_NODES_KEY, OFFLOAD_NODE_PREFIX);
        }
    }

    for (p = 0; p < sup->npools; p++) {
        conn = offload_pool_conn(&sup->pools[p]);
        if (!conn->ready) {
            continue;
        }

        c = calloc(1, sizeof(claim_t));
        if (c == NULL) {
            return;
        }

        c->sup = sup;
        c->conn = conn;
        c->node_conn = offload_pool_node_conn(&sup->pools[p]);
        snprintf(c->queue, sizeof(c->queue), "%s", sup->pools[p].queue->name);
        snprintf(c->who, sizeof(c->who), "queue %s", c->queue);
        snprintf(c->claimer, sizeof(c->claimer), "%s:claim",
                 sup->conf->node_name);
        offload_stream_key(c->stream, sizeof(c->stream), c->queue,
                           strlen(c->queue));

        snprintf(c->running, sizeof(c->running), OFFLOAD_RUNNING_FMT,
                 c->queue);

        /* Same connection, so Redis runs the touch before the claim. */
        send_touch(&sup->pools[p], c->stream);

        send_page(c, "0-0");
    }
}
