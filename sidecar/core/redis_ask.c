/*
 * redis_ask.c -- one blocking question to one server (redis_ask.h): the
 * connect, deadlines and login that asking a sentinel and asking a
 * cluster seed share.
 */

#include <stdarg.h>
#include <stdio.h>

#include "redis_ask.h"


static struct timeval
tv_ms(int ms)
{
    struct timeval  tv = { ms / 1000, (ms % 1000) * 1000 };

    return tv;
}


redisReply *
offload_redis_ask(const offload_addr_t *s, const char *what,
    const char *user, const char *password, const char *login,
    int connect_ms, int command_ms, char *err, size_t errlen,
    const char *format, ...)
{
    va_list        ap;
    redisReply    *reply;
    redisContext  *c;

    c = redisConnectWithTimeout(s->host, s->port, tv_ms(connect_ms));
    if (c == NULL || c->err) {
        snprintf(err, errlen, "cannot connect to %s %s:%d: %s", what,
                 s->host, s->port, c ? c->errstr : "out of memory");
        redisFree(c);
        return NULL;
    }

    redisSetTimeout(c, tv_ms(command_ms));

    if (password != NULL) {
        reply = user != NULL ? redisCommand(c, "AUTH %s %s", user, password)
                             : redisCommand(c, "AUTH %s", password);

        if (reply == NULL) {
            goto silent;
        }

        if (reply->type == REDIS_REPLY_ERROR) {
            snprintf(err, errlen, "%s %s:%d refused AUTH with %s: %s", what,
                     s->host, s->port, login, reply->str);
            freeReplyObject(reply);
            redisFree(c);
            return NULL;
        }

        freeReplyObject(reply);
    }

    va_start(ap, format);
    reply = redisvCommand(c, format, ap);
    va_end(ap);

    if (reply != NULL) {
        redisFree(c);
        return reply;
    }

silent:

    /* a timeout is "Resource temporarily unavailable" in hiredis' words */
    snprintf(err, errlen, "%s %s:%d did not answer: %s (timeout %d ms)",
             what, s->host, s->port, c->errstr, command_ms);
    redisFree(c);
    return NULL;
}
