/*
 * redis_ask.h -- one question to one server with hiredis' blocking API:
 * connect within a deadline, log in, ask, each command under its own.
 * What offloadctl and liboffload ask a sentinel (sentinel_sync.c) and a
 * cluster seed (cluster_map.c), which block anyway.
 */

#ifndef OFFLOAD_REDIS_ASK_H
#define OFFLOAD_REDIS_ASK_H

#include <stddef.h>

#include <hiredis/hiredis.h>

#include "redis_endpoint.h"

/* Connects to s within connect_ms, AUTH with user/password when password
 * is set, then sends the command (format and its arguments), each
 * command within command_ms.  Returns the reply (the caller frees it:
 * freeReplyObject), or NULL with why in err, naming s as what ("sentinel",
 * "cluster seed") and the login as login ("sentinel_user/
 * sentinel_password"), never the password. */
redisReply *offload_redis_ask(const offload_addr_t *s, const char *what,
    const char *user, const char *password, const char *login,
    int connect_ms, int command_ms, char *err, size_t errlen,
    const char *format, ...);

#endif /* OFFLOAD_REDIS_ASK_H */
