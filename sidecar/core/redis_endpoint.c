/*
 * redis_endpoint.c -- parsing, comparing, copying and naming Redis
 * endpoints (redis_endpoint.h): the supervisor keeps one connection per
 * distinct endpoint its queues use, and offloadctl reads each one once.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis_endpoint.h"


#define SENTINEL_SCHEME  "sentinel://"


/* One sentinel of the list: host[:port], [ipv6][:port]. */
static int
parse_sentinel(offload_addr_t *addr, const char *text, size_t len)
{
    const char  *end = text + len, *after;

    if (offload_addr_parse(addr, text, len) != 0 || addr->is_unix) {
        return -1;
    }

    after = text[0] == '[' ? memchr(text, ']', len) + 1
                           : memchr(text, ':', len);

    if (after == NULL || after == end) {
        addr->port = OFFLOAD_SENTINEL_PORT;
    }

    return 0;
}


static int
parse_sentinels(offload_redis_endpoint_t *ep, const char *text, char *err,
    size_t errlen)
{
    size_t       n;
    const char  *p, *comma, *slash;

    p = text + sizeof(SENTINEL_SCHEME) - 1;
    slash = strrchr(p, '/');
    n = slash ? strlen(slash + 1) : 0;

    if (slash == NULL || n == 0 || n > OFFLOAD_MASTER_NAME_MAX
        || strcspn(slash + 1, " \t/,") != n)
    {
        snprintf(err, errlen, "invalid sentinel address \"%s\" (expected "
                 "sentinel://host:port[,host:port...]/<master name>)", text);
        return -1;
    }

    memcpy(ep->master, slash + 1, n + 1);
    ep->nsentinels = 0;

    for ( ;; ) {
        comma = memchr(p, ',', (size_t) (slash - p));
        n = (size_t) ((comma ? comma : slash) - p);

        if (ep->nsentinels == OFFLOAD_SENTINELS_MAX) {
            snprintf(err, errlen, "more than %d sentinels in \"%s\"",
                     OFFLOAD_SENTINELS_MAX, text);
            return -1;
        }

        if (parse_sentinel(&ep->sentinels[ep->nsentinels], p, n) != 0) {
            snprintf(err, errlen, "invalid sentinel \"%.*s\" in \"%s\" "
                     "(expected host:port or [ipv6]:port)", (int) n, p, text);
            return -1;
        }

        ep->nsentinels++;

        if (comma == NULL) {
            return 0;
        }

        p = comma + 1;
    }
}


int
offload_redis_endpoint_parse(offload_redis_endpoint_t *ep, const char *text,
    char *err, size_t errlen)
{
    memset(&ep->addr, 0, sizeof(ep->addr));
    memset(ep->sentinels, 0, sizeof(ep->sentinels));
    ep->nsentinels = 0;
    ep->master[0] = '\0';

    if (strncmp(text, SENTINEL_SCHEME, sizeof(SENTINEL_SCHEME) - 1) == 0) {
        return parse_sentinels(ep, text, err, errlen);
    }

    if (offload_addr_parse(&ep->addr, text, strlen(text)) != 0) {
        snprintf(err, errlen, "invalid redis address \"%s\" (expected "
                 "host:port, [ipv6]:port, unix:/path or sentinel://"
                 "host:port[,host:port...]/<master name>)", text);
        return -1;
    }

    return 0;
}


static int
same_addr(const offload_addr_t *a, const offload_addr_t *b)
{
    return a->is_unix == b->is_unix && a->port == b->port
           && strcmp(a->host, b->host) == 0;
}


static int
same_str(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}


int
offload_redis_endpoint_same(const offload_redis_endpoint_t *a,
    const offload_redis_endpoint_t *b)
{
    int  i;

    if (a->nsentinels != b->nsentinels
        || strcmp(a->master, b->master) != 0)
    {
        return 0;
    }

    for (i = 0; i < a->nsentinels; i++) {
        if (!same_addr(&a->sentinels[i], &b->sentinels[i])) {
            return 0;
        }
    }

    return same_addr(&a->addr, &b->addr)
           && a->db == b->db
           && same_str(a->user, b->user)
           && same_str(a->password, b->password)
           && same_str(a->sentinel_user, b->sentinel_user)
           && same_str(a->sentinel_password, b->sentinel_password);
}


static int
copy_str(char **dst, const char *src)
{
    *dst = src ? strdup(src) : NULL;
    return src != NULL && *dst == NULL ? -1 : 0;
}


int
offload_redis_endpoint_copy(offload_redis_endpoint_t *dst,
    const offload_redis_endpoint_t *src)
{
    int  failed;

    *dst = *src;
    failed = copy_str(&dst->user, src->user);
    failed |= copy_str(&dst->password, src->password);
    failed |= copy_str(&dst->sentinel_user, src->sentinel_user);
    failed |= copy_str(&dst->sentinel_password, src->sentinel_password);

    if (failed) {
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
    free(ep->sentinel_user);
    free(ep->sentinel_password);
    ep->user = NULL;
    ep->password = NULL;
    ep->sentinel_user = NULL;
    ep->sentinel_password = NULL;
}


char *
offload_redis_endpoint_name(const offload_redis_endpoint_t *ep, char *buf,
    size_t size)
{
    int     i, n;
    size_t  at;

    if (ep->nsentinels > 0) {
        at = (size_t) snprintf(buf, size, "%s", SENTINEL_SCHEME);

        for (i = 0; i < ep->nsentinels && at < size; i++) {
            n = offload_addr_format(&ep->sentinels[i], buf + at, size - at);
            at += n > 0 ? (size_t) n : 0;
            if (i + 1 < ep->nsentinels && at < size) {
                at += (size_t) snprintf(buf + at, size - at, ",");
            }
        }

        n = at < size ? snprintf(buf + at, size - at, "/%s", ep->master)
                      : 0;
        n += (int) at;

    } else {
        n = offload_addr_format(&ep->addr, buf, size);
    }

    if (ep->db != 0 && n >= 0 && (size_t) n < size) {
        snprintf(buf + n, size - (size_t) n, "/%d", ep->db);
    }

    return buf;
}
