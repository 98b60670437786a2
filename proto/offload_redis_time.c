
/*
 * offload_redis_time.c -- the answer to Redis' TIME.  Every side reads
 * deadlines by Redis' clock (docs/PROTOCOL.md, "One clock"), so each asks
 * Redis for it: one reader, so that a malformed or absurd answer (a proxy,
 * a hostile server) reads as no answer on every side, never as a time
 * whose arithmetic overflows.
 */

#include "offload_proto.h"
#include "offload_redis_time.h"


#define OFFLOAD_TIME_SEC_MAX     95617584000LL    /* 5000-01-01 */
#define OFFLOAD_TIME_SEC_DIGITS  11               /* of that */


/* A string of 1 to max digits as a number, or -1. */
static int64_t
digits(const redisReply *r, size_t max)
{
    int64_t  n;

    if (r->type != REDIS_REPLY_STRING
        || offload_decimal_parse(r->str, r->len, max, &n) != 0)
    {
        return -1;
    }

    return n;
}


int64_t
offload_redis_time_us(const redisReply *reply)
{
    int64_t  sec, usec;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 2)
    {
        return -1;
    }

    sec = digits(reply->element[0], OFFLOAD_TIME_SEC_DIGITS);
    usec = digits(reply->element[1], 6);

    if (sec <= 0 || sec >= OFFLOAD_TIME_SEC_MAX || usec < 0) {
        return -1;
    }

    return sec * 1000000 + usec;
}
