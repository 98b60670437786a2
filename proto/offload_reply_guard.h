/*
 * offload_reply_guard.h -- replies hiredis 0.14 would assert() on, refused
 * before they reach it: shared by the module's links and the sidecar's
 * connections.
 */

#ifndef OFFLOAD_REPLY_GUARD_H
#define OFFLOAD_REPLY_GUARD_H

#include <hiredis/hiredis.h>
#include <hiredis/async.h>


/* Told why a reply of ac was refused (a constant string), before hiredis
 * takes the refusal for a reader error: it then frees ac (pending
 * callbacks get NULL, the disconnect callback runs with ac->errstr "Out of
 * memory", which is hiredis' word for any object that could not be made). */
typedef void offload_reply_refused_pt(redisAsyncContext *ac,
    const char *why);

/* Has the reader of ac (a fresh context, before any read) build its
 * replies behind the check, reporting refusals to refused: one function
 * per process (every call names the same one), which finds its connection
 * in ac->data.  The reader's privdata becomes ac. */
void offload_reply_guard(redisAsyncContext *ac,
    offload_reply_refused_pt *refused);


#endif /* OFFLOAD_REPLY_GUARD_H */
