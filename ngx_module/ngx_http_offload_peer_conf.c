
/*
 * ngx_http_offload_peer_conf.c -- the offload_redis directive: which Redis
 * a location talks to (an address, a unix socket, Sentinel or Cluster
 * seeds), how to log in, and the peer it makes, one per distinct
 * (address, user, password, db, WAIT) so that locations naming the same
 * Redis share its connections.
 *
 *   offload_redis <host:port | [ipv6]:port | unix:/path
 *                  | sentinel://host:port[,host:port...]/<master>
 *                  | cluster://host:port[,host:port...]>
 *                 [user=<acl user>] [password=<secret>] [db=<n>]
 *                 [sentinel_user=<acl user>] [sentinel_password=<secret>]
 *                 [wait_replicas=<n>|all [wait_timeout=<time>]];
 *
 * Host names are resolved here, once, as nginx resolves proxy_pass's.
 */


#include "ngx_http_offload_module.h"


static ngx_int_t ngx_http_offload_resolve(ngx_conf_t *cf,
    offload_addr_t *addr);
static ngx_http_offload_sentinel_t *ngx_http_offload_sentinel_parse(
    ngx_conf_t *cf, ngx_str_t *url);
static ngx_uint_t ngx_http_offload_str_eq(ngx_str_t *a, ngx_str_t *b);


static ngx_str_t  ngx_http_offload_redis_directive =
    ngx_string("offload_redis");


/*
 * hiredis resolves a host name with a blocking getaddrinfo() on every
 * connect, inside the worker's event loop.  Resolve it once here instead,
 * while the configuration is read, as nginx does for proxy_pass: the workers
 * then connect to an address.
 */

static ngx_int_t
ngx_http_offload_resolve(ngx_conf_t *cf, offload_addr_t *addr)
{
    size_t     len;
    u_char     host[sizeof(addr->host) + 2];
    ngx_url_t  u;

    if (addr->is_unix) {
        return NGX_OK;
    }

    ngx_memzero(&u, sizeof(ngx_url_t));

    /* ngx_parse_url() wants an IPv6 address in brackets */

    u.url.data = host;
    u.url.len = ngx_sprintf(host, ngx_strchr(addr->host, ':') ? "[%s]" : "%s",
                            addr->host)
                - host;
    u.default_port = (in_port_t) addr->port;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK || u.naddrs == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "cannot resolve redis host \"%s\" in \"%V\" "
                           "directive: %s", addr->host,
                           &ngx_http_offload_redis_directive,
                           u.err ? u.err : "no address");
        return NGX_ERROR;
    }

    len = ngx_sock_ntop(u.addrs[0].sockaddr, u.addrs[0].socklen,
                        (u_char *) addr->host, sizeof(addr->host) - 1, 0);
    addr->host[len] = '\0';

    return NGX_OK;
}


/*
 * host[:port][,host[:port]...] from p to last: the addresses resolved now
 * as a plain address is, port where one has none.
 */

ngx_int_t
ngx_http_offload_addrs_parse(ngx_conf_t *cf, u_char *p, u_char *last,
    int port, offload_addr_t **addrs, ngx_uint_t *naddrs)
{
    u_char          *end;
    ngx_uint_t       n;
    offload_addr_t  *addr;

    if (p == last) {
        return NGX_DECLINED;
    }

    for (n = 1, end = p; end < last; end++) {
        n += (*end == ',');
    }

    *addrs = ngx_pcalloc(cf->pool, n * sizeof(offload_addr_t));
    if (*addrs == NULL) {
        return NGX_ERROR;
    }

    *naddrs = 0;

    for (addr = *addrs; p < last; addr++, p = end + 1) {
        end = ngx_strlchr(p, last, ',');
        if (end == NULL) {
            end = last;
        }

        if (end == p
            || offload_addr_parse(addr, (char *) p, end - p) != 0
            || addr->is_unix)
        {
            return NGX_DECLINED;
        }

        /* "host" or "[v6]" alone: the default port */
        if (end[-1] == ']' || (*p != '[' && ngx_strlchr(p, end, ':') == NULL))
        {
            addr->port = port;
        }

        if (ngx_http_offload_resolve(cf, addr) != NGX_OK) {
            return NGX_ERROR;
        }

        (*naddrs)++;

        if (end == last) {
            break;
        }
    }

    /* an empty last one: "a," */
    return (*naddrs == n) ? NGX_OK : NGX_DECLINED;
}


/*
 * sentinel://host[:port][,host[:port]...]/<master>: the sentinels, resolved
 * now as a plain address is, and the name they know the master by.
 */

static ngx_http_offload_sentinel_t *
ngx_http_offload_sentinel_parse(ngx_conf_t *cf, ngx_str_t *url)
{
    u_char                       *p, *last, *name;
    ngx_int_t                     rc;
    ngx_http_offload_sentinel_t  *s;

    p = url->data + sizeof("sentinel://") - 1;
    last = url->data + url->len;

    name = ngx_strlchr(p, last, '/');

    if (name == NULL || name == p || name + 1 == last
        || ngx_strlchr(name + 1, last, '/') != NULL)
    {
        goto invalid;
    }

    s = ngx_pcalloc(cf->pool, sizeof(ngx_http_offload_sentinel_t));
    if (s == NULL) {
        return NULL;
    }

    s->master_name.data = name + 1;
    s->master_name.len = last - name - 1;

    rc = ngx_http_offload_addrs_parse(cf, p, name,
                                      NGX_HTTP_OFFLOAD_SENTINEL_PORT,
                                      &s->addrs, &s->naddrs);
    if (rc == NGX_ERROR) {
        return NULL;
    }

    if (rc == NGX_OK) {
        return s;
    }

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid sentinel address \"%V\" in \"%V\" directive, "
                       "expected sentinel://host:port[,host:port...]/<master>",
                       url, &ngx_http_offload_redis_directive);
    return NULL;
}


/* One peer per distinct (address or sentinels, user, password, db, WAIT,
 * the sentinels' login), shared by locations. */

ngx_http_offload_peer_t *
ngx_http_offload_peer_get(ngx_conf_t *cf, ngx_str_t *addr, ngx_str_t *user,
    ngx_str_t *password, ngx_uint_t db, ngx_uint_t wait_replicas,
    ngx_msec_t wait_timeout, ngx_str_t *sentinel_user,
    ngx_str_t *sentinel_password)
{
    ngx_uint_t                     i;
    offload_addr_t                 parsed;
    ngx_http_offload_peer_t       *peer, **peerp;
    ngx_http_offload_cluster_t    *cluster;
    ngx_http_offload_sentinel_t   *sentinel;
    ngx_http_offload_main_conf_t  *omcf;

    sentinel = NULL;
    cluster = NULL;
    ngx_memzero(&parsed, sizeof(offload_addr_t));

    if (offload_addr_has_login((char *) addr->data, addr->len)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "a redis address takes no user or password "
                           "(\"user:password@\"): they go in \"user=\" and "
                           "\"password=\" of the \"%V\" directive (the "
                           "address is not repeated here, to keep a "
                           "password out of logs)",
                           &ngx_http_offload_redis_directive);
        return NULL;
    }

    if (addr->len > sizeof("sentinel://") - 1
        && ngx_strncmp(addr->data, "sentinel://", sizeof("sentinel://") - 1)
           == 0)
    {
        sentinel = ngx_http_offload_sentinel_parse(cf, addr);
        if (sentinel == NULL) {
            return NULL;
        }

        sentinel->user = *sentinel_user;
        sentinel->password = *sentinel_password;

    } else if (sentinel_password->len) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"sentinel_password=\" needs a sentinel:// "
                           "address in \"%V\" directive",
                           &ngx_http_offload_redis_directive);
        return NULL;

    } else if (addr->len >= sizeof("cluster://") - 1
               && ngx_strncmp(addr->data, "cluster://",
                              sizeof("cluster://") - 1)
                  == 0)
    {
        cluster = ngx_http_offload_cluster_parse(cf, addr);
        if (cluster == NULL) {
            return NULL;
        }

    } else if (offload_addr_parse(&parsed, (char *) addr->data, addr->len)
               != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid redis address \"%V\" in \"%V\" directive",
                           addr, &ngx_http_offload_redis_directive);
        return NULL;

    } else if (ngx_http_offload_resolve(cf, &parsed) != NGX_OK) {
        return NULL;
    }

    omcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_offload_module);

    peerp = omcf->peers.elts;

    for (i = 0; i < omcf->peers.nelts; i++) {
        peer = peerp[i];

        if ((sentinel == NULL) == (peer->sentinels == NULL)
            && (cluster == NULL) == (peer->cluster == NULL)
            && (cluster
                ? ngx_http_offload_str_eq(&peer->name, addr)
                : sentinel
                ? ngx_http_offload_str_eq(&peer->name, addr)
                  && ngx_http_offload_str_eq(&peer->sentinels->user,
                                             sentinel_user)
                  && ngx_http_offload_str_eq(&peer->sentinels->password,
                                             sentinel_password)
                : peer->addr.is_unix == parsed.is_unix
                  && peer->addr.port == parsed.port
                  && ngx_strcmp(peer->addr.host, parsed.host) == 0)
            && peer->db == db
            && peer->wait_replicas == wait_replicas
            && peer->wait_timeout == wait_timeout
            && ngx_http_offload_str_eq(&peer->user, user)
            && ngx_http_offload_str_eq(&peer->password, password))
        {
            return peer;
        }
    }

    /* offload_status keeps an answer per Redis, in a zone of fixed slots */

    if (omcf->peers.nelts == NGX_HTTP_OFFLOAD_STATUS_REDIS) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "more than %d distinct Redis servers in \"%V\" "
                           "directives (offload_status reads at most %d)",
                           NGX_HTTP_OFFLOAD_STATUS_REDIS,
                           &ngx_http_offload_redis_directive,
                           NGX_HTTP_OFFLOAD_STATUS_REDIS);
        return NULL;
    }

    peer = ngx_pcalloc(cf->pool, sizeof(ngx_http_offload_peer_t));
    if (peer == NULL) {
        return NULL;
    }

    peerp = ngx_array_push(&omcf->peers);
    if (peerp == NULL) {
        return NULL;
    }

    *peerp = peer;

    peer->name = *addr;
    peer->addr = parsed;
    peer->user = *user;
    peer->password = *password;
    peer->db = db;
    peer->sentinels = sentinel;
    peer->cluster = cluster;
    peer->wait_replicas = wait_replicas;
    peer->wait_timeout = wait_timeout;

    return peer;
}


static ngx_uint_t
ngx_http_offload_str_eq(ngx_str_t *a, ngx_str_t *b)
{
    /* an empty one has no data to compare: it may be NULL */
    return a->len == b->len
           && (a->len == 0 || ngx_memcmp(a->data, b->data, a->len) == 0);
}


char *
ngx_http_offload_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_offload_loc_conf_t *olcf = conf;

    size_t       len;
    u_char      *eq;
    ngx_int_t    db, wait_replicas;
    ngx_str_t   *value, user, password, time, sentinel_user,
                 sentinel_password;
    ngx_msec_t   wait_timeout;
    ngx_uint_t   i, k;

    /* the master's login, and the sentinels' own (their requirepass, or
     * an ACL user of theirs), apart from it */
    struct {
        ngx_str_t    name;
        ngx_str_t   *value;
    } login[] = {
        { ngx_string("user="), &user },
        { ngx_string("password="), &password },
        { ngx_string("sentinel_user="), &sentinel_user },
        { ngx_string("sentinel_password="), &sentinel_password },
    };

    if (olcf->peer != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    ngx_str_null(&user);
    ngx_str_null(&password);
    ngx_str_null(&sentinel_user);
    ngx_str_null(&sentinel_password);
    db = 0;
    wait_replicas = 0;
    wait_timeout = NGX_CONF_UNSET_MSEC;

    /* the address and its seven parameters */
    if (cf->args->nelts > 9) {
        return "has too many parameters";
    }

    /* a parameter given twice is a mistake, not "the last one wins" */

    for (i = 3; i < cf->args->nelts; i++) {
        eq = ngx_strlchr(value[i].data, value[i].data + value[i].len, '=');
        if (eq == NULL) {
            continue;
        }

        len = eq + 1 - value[i].data;

        for (k = 2; k < i; k++) {
            if (value[k].len >= len
                && ngx_strncmp(value[k].data, value[i].data, len) == 0)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "duplicate \"%*s\" in \"%V\" directive",
                                   len, value[i].data, &cmd->name);
                return NGX_CONF_ERROR;
            }
        }
    }

    for (i = 2; i < cf->args->nelts; i++) {

        for (k = 0; k < sizeof(login) / sizeof(login[0]); k++) {
            if (ngx_strncmp(value[i].data, login[k].name.data,
                            login[k].name.len)
                == 0)
            {
                break;
            }
        }

        if (k < sizeof(login) / sizeof(login[0])) {
            login[k].value->data = value[i].data + login[k].name.len;
            login[k].value->len = value[i].len - login[k].name.len;

            if (login[k].value->len == 0) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "db=", 3) == 0) {
            db = ngx_atoi(value[i].data + 3, value[i].len - 3);

            if (db == NGX_ERROR || db > OFFLOAD_DB_MAX) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid parameter \"%V\" in \"%V\" "
                                   "directive: db= from 0 to %d",
                                   &value[i], &cmd->name, OFFLOAD_DB_MAX);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (value[i].len == 17
            && ngx_strncmp(value[i].data, "wait_replicas=all", 17) == 0)
        {
            wait_replicas = NGX_HTTP_OFFLOAD_WAIT_ALL;
            continue;
        }

        if (ngx_strncmp(value[i].data, "wait_replicas=", 14) == 0) {
            wait_replicas = ngx_atoi(value[i].data + 14, value[i].len - 14);

            if (wait_replicas == NGX_ERROR
                || wait_replicas > OFFLOAD_WAIT_REPLICAS_MAX)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid parameter \"%V\" in \"%V\" "
                                   "directive: wait_replicas= from 0 (no "
                                   "WAIT) to %d, or all", &value[i],
                                   &cmd->name, OFFLOAD_WAIT_REPLICAS_MAX);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "wait_timeout=", 13) == 0) {
            time.data = value[i].data + 13;
            time.len = value[i].len - 13;
            wait_timeout = ngx_parse_time(&time, 0);

            if (wait_timeout == (ngx_msec_t) NGX_ERROR
                || wait_timeout == 0
                || wait_timeout > NGX_HTTP_OFFLOAD_WAIT_TIMEOUT_MAX)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"%V\" in \"%V\" directive: from 1ms "
                                   "to %M ms: WAIT holds up the command "
                                   "connection", &value[i], &cmd->name,
                                   (ngx_msec_t)
                                       NGX_HTTP_OFFLOAD_WAIT_TIMEOUT_MAX);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        goto invalid;
    }

    if (wait_timeout != NGX_CONF_UNSET_MSEC && wait_replicas == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"wait_timeout=\" needs \"wait_replicas=\" of "
                           "1 or more in \"%V\" directive", &cmd->name);
        return NGX_CONF_ERROR;
    }

    /* the sentinels count the replicas they could promote, a cluster's
     * map each master's */

    if ((ngx_uint_t) wait_replicas == NGX_HTTP_OFFLOAD_WAIT_ALL
        && ngx_strncmp(value[1].data, "sentinel://", 11) != 0
        && ngx_strncmp(value[1].data, "cluster://", 10) != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"wait_replicas=all\" needs a sentinel:// or "
                           "cluster:// address in \"%V\" directive",
                           &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (wait_replicas == 0) {
        wait_timeout = 0;

    } else if (wait_timeout == NGX_CONF_UNSET_MSEC) {
        wait_timeout = NGX_HTTP_OFFLOAD_WAIT_TIMEOUT;
    }

    if (user.len && password.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"user=\" needs \"password=\" in \"%V\" directive",
                           &cmd->name);
        return NGX_CONF_ERROR;
    }

    /* a cluster has db 0 only (WAIT goes to the master that took the
     * job's XADD) */

    if (ngx_strncmp(value[1].data, "cluster://", 10) == 0 && db != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"db=\" in \"%V\" directive: a redis cluster "
                           "has only db 0", &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (sentinel_user.len && sentinel_password.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"sentinel_user=\" needs \"sentinel_password=\" "
                           "in \"%V\" directive", &cmd->name);
        return NGX_CONF_ERROR;
    }

    olcf->peer = ngx_http_offload_peer_get(cf, &value[1], &user, &password,
                                           db, wait_replicas, wait_timeout,
                                           &sentinel_user, &sentinel_password);
    if (olcf->peer == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\" in \"%V\" directive",
                       &value[i], &cmd->name);

    return NGX_CONF_ERROR;
}
