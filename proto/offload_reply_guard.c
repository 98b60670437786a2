/*
 * offload_reply_guard.c -- replies hiredis 0.14 would assert() on, refused
 * before they reach it (offload_reply_guard.h).
 *
 * hiredis 0.14 assert()s on reply shapes it does not expect, and Debian
 * builds it with asserts on: a broken, hostile or "Redis-compatible" server
 * (or sentinel, or proxy) would abort the nginx worker or the sidecar
 * process, again after every respawn.  What server bytes reach, in
 * async.c's redisProcessCallbacks():
 *
 *   - a reply no callback waits for, on a context neither subscribed nor
 *     monitoring, that is not an error: assert(c->flags & REDIS_SUBSCRIBED
 *     || ...);
 *   - on a subscribed context with no callback waiting, an array goes to
 *     __redisGetSubscribeCallback(): assert(reply->elements >= 2), element
 *     0 and 1 asserted bulk strings, and for "(p)unsubscribe" element 2
 *     asserted an integer (read past the array when there is none);
 *   - there, a message to a channel not subscribed to, or a reply of
 *     another kind with no command waiting in ac->sub.invalid, finds no
 *     callback: the callback last run in the same read runs again with
 *     it.  No assert; the second is refused below (a reply nothing asked
 *     for), the first cannot be told without hiredis' private dict (the
 *     pub/sub callbacks of the module and the sidecar check what they
 *     get).
 *
 * (The asserts in read.c and hiredis.c are the reader's own invariants;
 * the one in __redisAsyncDisconnect() needs a clean disconnect with
 * callbacks pending, which a server cannot cause.)
 *
 * hiredis has no public way to dispatch a reply taken from the reader
 * ourselves, and a second reader fed the same bytes would parse every
 * result twice.  But redisProcessCallbacks() makes each reply with the
 * reader's object functions right before it dispatches it, and what
 * decides where it goes (a callback waiting in ac->replies, the context
 * subscribed) does not change from the reply's first object to its
 * dispatch: only a dispatch shifts ac->replies, and a command sent on a
 * subscribed context waits elsewhere.  So the reader builds replies with
 * hiredis' own functions behind a check of the reply's head and its first
 * three elements; a reply of a shape that would reach an assert (or a
 * reply nothing asked for) makes the function fail, which hiredis takes
 * for a reader error: the context is freed, pending callbacks get NULL,
 * and the caller's reconnect runs with its usual backoff.  The cost: a
 * call and a few compares per reply object, which hiredis mallocs anyway;
 * for a result on the module's subscriber (an array of 3 strings) about
 * 220 instructions, 4% of hiredis' own parse of a 200-byte result
 * (callgrind).
 *
 * A string reply is made here, not by hiredis: the object and its bytes in
 * one allocation where hiredis makes two, and freed (reply_free(), the
 * reader's freeObject, which hiredis calls for every reply it made) with
 * one free().  Every string of a job's XADD reply and its result message
 * is one: 1,300 of the 28,700 instructions an nginx worker spent per echo
 * job (callgrind).
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "offload_reply_guard.h"


static void *reply_string(const redisReadTask *task, char *str, size_t len);
static void *reply_array(const redisReadTask *task, int elements);
static void *reply_integer(const redisReadTask *task, long long value);
static void *reply_nil(const redisReadTask *task);
static void reply_free(void *reply);


/* hiredis' own functions (static in hiredis.c: taken from the first
 * reader), and who is told of a refusal */
static redisReplyObjectFunctions  *hiredis_replies;
static offload_reply_refused_pt   *refused_hook;

static redisReplyObjectFunctions  checked_replies = {
    reply_string,
    reply_array,
    reply_integer,
    reply_nil,
    reply_free
};


void
offload_reply_guard(redisAsyncContext *ac, offload_reply_refused_pt *refused)
{
    if (hiredis_replies == NULL) {
        hiredis_replies = ac->c.reader->fn;
    }

    refused_hook = refused;
    ac->c.reader->fn = &checked_replies;
    ac->c.reader->privdata = ac;
}


/* Whether hiredis takes a pub/sub reply's kind for "unsubscribe" or
 * "punsubscribe": it compares its copy, ended at the first NUL, without
 * case. */
static int
is_unsubscribe(const char *str, size_t len)
{
    const char  *nul;

    /* "message", "pmessage", "smessage": at once */
    if (len < sizeof("unsubscribe") - 1) {
        return 0;
    }

    nul = memchr(str, '\0', len);
    if (nul != NULL) {
        len = nul - str;
    }

    if (len && (str[0] == 'p' || str[0] == 'P')) {
        str++;
        len--;
    }

    return len == sizeof("unsubscribe") - 1
           && strncasecmp(str, "unsubscribe", len) == 0;
}


/* NULL if the object task makes (of type, an array of elements, a string
 * str of len) takes the reply where hiredis goes without asserting, else
 * why not.  Objects deeper than the reply's elements never matter. */
static const char *
check(const redisReadTask *task, int type, int elements, const char *str,
    size_t len)
{
    redisReply         *head;
    redisAsyncContext  *ac;

    if (task->parent != NULL && task->parent->parent != NULL) {
        return NULL;
    }

    ac = task->privdata;

    /* a callback waits for it, or hiredis hands every reply to MONITOR's */
    if (ac->replies.head != NULL || (ac->c.flags & REDIS_MONITORING)) {
        return NULL;
    }

    /* an error nothing asked for: hiredis disconnects with it, subscribed
     * or not (a refused SUBSCRIBE's -NOPERM, a -LOADING) */
    if (task->parent == NULL && type == REDIS_REPLY_ERROR) {
        return NULL;
    }

    if (!(ac->c.flags & REDIS_SUBSCRIBED)) {
        return "a reply nothing asked for";
    }

    if (task->parent == NULL) {
        if (type != REDIS_REPLY_ARRAY) {
            return ac->sub.invalid.head != NULL
                   ? NULL
                   : "a reply nothing asked for on a subscribed connection";
        }

        return elements < 2 ? "a pub/sub reply of fewer than 2 elements"
                            : NULL;
    }

    /* an element of a pub/sub reply: kind, channel, payload or count */
    switch (task->idx) {

    case 0:
        if (type != REDIS_REPLY_STRING) {
            return "a pub/sub reply whose kind is not a bulk string";
        }

        return task->parent->elements < 3 && is_unsubscribe(str, len)
               ? "an unsubscribe reply without its count" : NULL;

    case 1:
        return type != REDIS_REPLY_STRING
               ? "a pub/sub reply whose channel is not a bulk string" : NULL;

    case 2:
        head = task->parent->obj;

        return type != REDIS_REPLY_INTEGER
               && is_unsubscribe(head->element[0]->str,
                                 head->element[0]->len)
               ? "an unsubscribe reply whose count is not an integer" : NULL;

    default:
        return NULL;
    }
}


/* Whether the object may be made; the hook hears of it when not. */
static int
allowed(const redisReadTask *task, int type, int elements, const char *str,
    size_t len)
{
    const char  *why = check(task, type, elements, str, len);

    if (why == NULL) {
        return 1;
    }

    refused_hook(task->privdata, why);
    return 0;
}


/* as hiredis' createStringObject(), the bytes right behind the object */
static void *
reply_string(const redisReadTask *task, char *str, size_t len)
{
    redisReply  *r, *parent;

    if (!allowed(task, task->type, -1, str, len)
        || len > SIZE_MAX - sizeof(redisReply) - 1)
    {
        return NULL;
    }

    r = malloc(sizeof(redisReply) + len + 1);
    if (r == NULL) {
        return NULL;
    }

    memset(r, 0, sizeof(redisReply));
    r->type = task->type;
    r->str = (char *) (r + 1);
    r->len = len;
    memcpy(r->str, str, len);
    r->str[len] = '\0';

    if (task->parent != NULL) {
        parent = task->parent->obj;
        parent->element[task->idx] = r;
    }

    return r;
}


/* hiredis allocates an array's element pointers on its header, before any
 * element came: a peer's "*444444444" would take 3.5 GB.  No reply of
 * Redis to offload comes near this many. */
#define OFFLOAD_REPLY_ELEMENTS_MAX  (1 << 20)

static void *
reply_array(const redisReadTask *task, int elements)
{
    if (elements > OFFLOAD_REPLY_ELEMENTS_MAX) {
        refused_hook(task->privdata, "an array of more than 1048576 "
                     "elements");
        return NULL;
    }

    return allowed(task, REDIS_REPLY_ARRAY, elements, NULL, 0)
           ? hiredis_replies->createArray(task, elements) : NULL;
}


static void *
reply_integer(const redisReadTask *task, long long value)
{
    return allowed(task, REDIS_REPLY_INTEGER, -1, NULL, 0)
           ? hiredis_replies->createInteger(task, value) : NULL;
}


/* task->type is the kind of what came nil, $-1 or *-1 */
static void *
reply_nil(const redisReadTask *task)
{
    return allowed(task, REDIS_REPLY_NIL, -1, NULL, 0)
           ? hiredis_replies->createNil(task) : NULL;
}


/* hiredis' freeReplyObject() but for a string, whose bytes are in the
 * object's allocation (reply_string()); an array's elements may be NULL
 * (a reply cut short by a reader error) */
static void
reply_free(void *reply)
{
    size_t       i;
    redisReply  *r = reply;

    if (r == NULL) {
        return;
    }

    if (r->type == REDIS_REPLY_ARRAY && r->element != NULL) {
        for (i = 0; i < r->elements; i++) {
            reply_free(r->element[i]);
        }

        free(r->element);
    }

    free(r);
}
