/*
 * redis_endpoint.c -- parsing, comparing, copying and naming Redis
 * endpoints (redis_endpoint.h): the supervisor keeps one connection per
 * distinct endpoint its queues use (with a cluster, per slot: each goes to
 * its slot's master), and offloadctl reads each one once.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "offload_slot.h"
#include "redis_endpoint.h"


#define SENTINEL_SCHEME  "sentinel://"
#define CLUSTER_SCHEME   "cluster://"
#define CONTROL_TAG      "ctl"


/* One host of a list: host[:port], [ipv6][:port]; port defaults to
 * default_port. */
static int
parse_host(offload_addr_t *addr, const char *text, size_t len,
    int default_port)
{
    const char  *end = text + len, *after;

    if (offload_addr_parse(addr, text, len) != 0 || addr->is_unix) {
        return -1;
    }

    after = text[0] == '[' ? memchr(text, ']', len) + 1
                           : memchr(text, ':', len);

    if (after == NULL || after == end) {
        addr->port = default_port;
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

        if (parse_host(&ep->sentinels[ep->nsentinels], p, n,
                       OFFLOAD_SENTINEL_PORT)
            != 0)
        {
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


static int
addr_cmp(const void *a, const void *b)
{
    const offload_addr_t  *x = a, *y = b;
    int                    c = strcmp(x->host, y->host);

    return c != 0 ? c : x->port - y->port;
}


/* The seeds are a set, kept sorted: cluster://a,b and cluster://b,a are
 * one endpoint (one connection, one node document). */
static int
parse_seeds(offload_redis_endpoint_t *ep, const char *text, char *err,
    size_t errlen)
{
    size_t       n;
    const char  *p, *comma;

    p = text + sizeof(CLUSTER_SCHEME) - 1;
    ep->slot = offload_redis_control_slot();

    for ( ;; ) {
        comma = strchr(p, ',');
        n = comma ? (size_t) (comma - p) : strlen(p);

        if (ep->nseeds == OFFLOAD_SEEDS_MAX) {
            snprintf(err, errlen, "more than %d cluster seeds in \"%s\"",
                     OFFLOAD_SEEDS_MAX, text);
            return -1;
        }

        if (n == 0 || memchr(p, '/', n) != NULL
            || parse_host(&ep->seeds[ep->nseeds], p, n, OFFLOAD_REDIS_PORT)
               != 0)
        {
            snprintf(err, errlen, "invalid cluster seed \"%.*s\" in \"%s\" "
                     "(expected cluster://host:port[,host:port...])",
                     (int) n, p, text);
            return -1;
        }

        ep->nseeds++;

        if (comma == NULL) {
            qsort(ep->seeds, (size_t) ep->nseeds, sizeof(ep->seeds[0]),
                  addr_cmp);
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
    memset(ep->seeds, 0, sizeof(ep->seeds));
    ep->nseeds = 0;
    ep->slot = 0;

    if (offload_addr_has_login(text, strlen(text))) {
        snprintf(err, errlen, "a redis address takes no user or password "
                 "(\"user:password@\"): they are given apart (the address "
                 "is not repeated here, to keep a password out of logs)");
        return -1;
    }

    if (strncmp(text, SENTINEL_SCHEME, sizeof(SENTINEL_SCHEME) - 1) == 0) {
        return parse_sentinels(ep, text, err, errlen);
    }

    if (strncmp(text, CLUSTER_SCHEME, sizeof(CLUSTER_SCHEME) - 1) == 0) {
        return parse_seeds(ep, text, err, errlen);
    }

    if (offload_addr_parse(&ep->addr, text, strlen(text)) != 0) {
        snprintf(err, errlen, "invalid redis address \"%s\" (expected "
                 "host:port, [ipv6]:port, unix:/path, sentinel://"
                 "host:port[,host:port...]/<master name> or cluster://"
                 "host:port[,host:port...])", text);
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


static int
same_addrs(const offload_addr_t *a, int na, const offload_addr_t *b, int nb)
{
    int  i;

    if (na != nb) {
        return 0;
    }

    for (i = 0; i < na; i++) {
        if (!same_addr(&a[i], &b[i])) {
            return 0;
        }
    }

    return 1;
}


int
offload_redis_endpoint_same(const offload_redis_endpoint_t *a,
    const offload_redis_endpoint_t *b)
{
    return offload_redis_endpoint_same_keys(a, b)
           && (a->nseeds == 0 || a->slot == b->slot);
}


int
offload_redis_endpoint_same_keys(const offload_redis_endpoint_t *a,
    const offload_redis_endpoint_t *b)
{
    if (strcmp(a->master, b->master) != 0
        || !same_addrs(a->sentinels, a->nsentinels, b->sentinels,
                       b->nsentinels)
        || !same_addrs(a->seeds, a->nseeds, b->seeds, b->nseeds))
    {
        return 0;
    }

    return same_addr(&a->addr, &b->addr)
           && a->db == b->db
           && same_str(a->user, b->user)
           && same_str(a->password, b->password)
           && same_str(a->sentinel_user, b->sentinel_user)
           && same_str(a->sentinel_password, b->sentinel_password);
}


int
offload_redis_seeds_overlap(const offload_redis_endpoint_t *a,
    const offload_redis_endpoint_t *b)
{
    int  i, j;

    if (same_addrs(a->seeds, a->nseeds, b->seeds, b->nseeds)) {
        return 0;
    }

    for (i = 0; i < a->nseeds; i++) {
        for (j = 0; j < b->nseeds; j++) {
            if (same_addr(&a->seeds[i], &b->seeds[j])) {
                return 1;
            }
        }
    }

    return 0;
}


int
offload_redis_control_slot(void)
{
    return (int) offload_key_slot(CONTROL_TAG, sizeof(CONTROL_TAG) - 1);
}


int
offload_redis_endpoint_is_control(const offload_redis_endpoint_t *ep)
{
    return ep->nseeds == 0 || ep->slot == offload_redis_control_slot();
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


/* scheme and "host:port,host:port..."; returns the length written */
static size_t
name_list(const char *scheme, const offload_addr_t *addrs, int naddrs,
    char *buf, size_t size)
{
    int     i, n;
    size_t  at;

    at = (size_t) snprintf(buf, size, "%s", scheme);

    for (i = 0; i < naddrs && at < size; i++) {
        n = offload_addr_format(&addrs[i], buf + at, size - at);
        at += n > 0 ? (size_t) n : 0;
        if (i + 1 < naddrs && at < size) {
            at += (size_t) snprintf(buf + at, size - at, ",");
        }
    }

    return at;
}


char *
offload_redis_endpoint_name(const offload_redis_endpoint_t *ep, char *buf,
    size_t size)
{
    int     n;
    size_t  at;

    if (ep->nsentinels > 0) {
        at = name_list(SENTINEL_SCHEME, ep->sentinels, ep->nsentinels, buf,
                       size);
        n = at < size ? snprintf(buf + at, size - at, "/%s", ep->master)
                      : 0;
        n += (int) at;

    } else if (ep->nseeds > 0) {
        at = name_list(CLUSTER_SCHEME, ep->seeds, ep->nseeds, buf, size);
        n = at < size ? snprintf(buf + at, size - at, "#%d", ep->slot) : 0;
        n += (int) at;

    } else {
        n = offload_addr_format(&ep->addr, buf, size);
    }

    if (ep->db != 0 && n >= 0 && (size_t) n < size) {
        snprintf(buf + n, size - (size_t) n, "/%d", ep->db);
    }

    return buf;
}
