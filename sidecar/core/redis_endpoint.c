/*
 * redis_endpoint.c -- comparing, copying and naming Redis endpoints
 * (redis_endpoint.h): the supervisor keeps one connection per distinct
 * endpoint its queues use, and offloadctl reads each one once.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis_endpoint.h"


static int
same_str(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}


int
offload_redis_endpoint_same(const offload_redis_endpoint_t *a,
    const offload_redis_endpoint_t *b)
{
    return a->addr.is_unix == b->addr.is_unix
           && a->addr.port == b->addr.port
           && strcmp(a->addr.host, b->addr.host) == 0
           && a->db == b->db
           && same_str(a->user, b->user)
           && same_str(a->password, b->password);
}


int
offload_redis_endpoint_copy(offload_redis_endpoint_t *dst,
    const offload_redis_endpoint_t *src)
{
    *dst = *src;
    dst->user = src->user ? strdup(src->user) : NULL;
    dst->password = src->password ? strdup(src->password) : NULL;

    if ((src->user && dst->user == NULL)
        || (src->password && dst->password == NULL))
    {
        offload_redis_endpoint_free(dst);
        return -1;
    }

    return 0;
}


void
offload_redis_endpoint_free(offload_redis_endpoint_t *ep)
{
    free(ep->user);
    free(ep->password);
    ep->user = NULL;
    ep->password = NULL;
}


char *
offload_redis_endpoint_name(const offload_redis_endpoint_t *ep, char *buf,
    size_t size)
{
    int  n;

    n = offload_addr_format(&ep->addr, buf, size);

    if (ep->db != 0 && n >= 0 && (size_t) n < size) {
        snprintf(buf + n, size - (size_t) n, "/%d", ep->db);
    }

    return buf;
}
