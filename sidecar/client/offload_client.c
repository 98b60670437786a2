/*
 * offload_client.c -- liboffload (include/offload_client.h): jobs submitted
 * from any program straight through Redis, as the nginx module does it,
 * with hiredis' blocking API.
 *
 * The job id is the client's nonce (16 hex digits from getrandom(), drawn
 * at connect) and a sequence number, as docs/PROTOCOL.md "Job ids" says;
 * the nonce also names the client's reply channel.  A job submitted to be
 * waited for names that channel in its entry, and the channel is
 * subscribed on a second connection before the first such XADD, so a
 * result published at once is already on its way to us.  Results over
 * 1 MB come as a notice and are read from the result key, a list, an
 * element per command; so are payloads over 1 MB written, to the body key.
 *
 * A connection kept between calls that Redis closed meanwhile (its idle
 * timeout, a restart, CLIENT KILL) is found so before a command is sent
 * and made again; a read is sent once more when its connection breaks
 * under it, a write of unknown outcome is not (on one Redis): a job's
 * XADD unanswered is OFFLOAD_CLIENT_UNKNOWN, its body key kept.  A wait
 * takes a lost connection for no answer: it subscribes again and looks at
 * the result key until its end.
 *
 * With Redis Sentinel every new connection goes to the master the
 * sentinels name (core's sentinel_sync.c, as offloadctl asks them), checked
 * with ROLE; a command that meets a broken connection or READONLY is sent
 * once more on a new one, as redis-py's SentinelConnectionPool does.
 *
 * With Redis Cluster a call about a queue goes to the master of the
 * queue's slot (the hash tag of all its keys), asked of the seeds with
 * CLUSTER SLOTS (core's cluster_map.c) and remembered per slot: the
 * command connection follows the queue of the call to its master.  MOVED
 * names the new master (the command was not run: sent there again, after
 * the reply channel moved there first when it is the queue's); ASK sends
 * ASKING and the command once to the node named; TRYAGAIN and CLUSTERDOWN
 * wait a little and try again, a few times.  The reply channel is then the
 * queue's own, offload:{<queue>}:reply:<nonce>, SSUBSCRIBEd on its master
 * (the sidecar SPUBLISHes to a channel with a hash tag).
 */

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/time.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "cluster_map.h"
#include "offload_client.h"
#include "offload_proto.h"
#include "offload_redis_time.h"
#include "offload_slot.h"
#include "redis_endpoint.h"
#include "sentinel_sync.h"

/* Between two looks at a result key when no result is pushed to us. */
#define POLL_MIN_MS   1
#define POLL_MAX_MS   50

/* A result list (PROTOCOL.md, "Big payloads"): its header line, then
 * slices of at most OFFLOAD_SLICE bytes of a body of at most
 * OFFLOAD_BODY_MAX; anything else is not a worker's. */
#define RESULT_ELEMENTS_MAX  (OFFLOAD_BODY_MAX / OFFLOAD_SLICE + 2)

/* Slices of a body on their way at once: Redis runs what it read from one
 * socket in one go, so a whole pipeline would hold up other clients. */
#define BODY_IN_FLIGHT  2

/* Slots whose master a cluster client remembers (a program uses a few
 * queues), and how many redirections one command follows at most. */
#define ROUTES_MAX      16
#define REDIRECTS_MAX   5
#define TRYAGAIN_MS     50

/* Redis' clock (docs/PROTOCOL.md, "One clock"): its offset from ours is
 * measured again when this old, and not taken from a TIME slower than
 * CLOCK_RTT_MAX_MS. */
#define CLOCK_AGE_MS      10000
#define CLOCK_RTT_MAX_MS  250
#define CLOCK_RETRY_MS    1000      /* after a TIME that told nothing */

typedef struct {
    int             slot;           /* -1: unused */
    offload_addr_t  master;
} route_t;


struct offload_client_s {
    redisContext  *cmd;
    redisContext  *sub;             /* subscribed to channel, or NULL */
    char          *host;
    char          *unix_path;
    char          *user;
    char          *password;
    int            port;
    int            db;
    int            connect_timeout_ms;
    int            command_timeout_ms;
    offload_redis_endpoint_t  sentinel;    /* nsentinels 0: none */
    offload_redis_endpoint_t  cluster;     /* nseeds 0: none */
    route_t        routes[ROUTES_MAX];     /* slot -> master, learnt */
    unsigned       next_route;
    int            slot;            /* cluster: the slot of the call's queue */
    offload_addr_t cmd_at;          /* cluster: where cmd is connected */
    offload_addr_t sub_at;          /*   ... and sub */
    int            sub_slot;
    char          *bad_conf;        /* why every connect fails, or NULL */
    char           nonce[OFFLOAD_NONCE_LEN + 1];
    char           channel[OFFLOAD_KEY_MAX];
    char           last_waited[OFFLOAD_CLIENT_ID_SIZE];
    uint64_t       seq;
    int            failed;
    int            lost;            /* the failure was a connection's */
    int            unanswered;      /* the last command was sent and no
                                       answer read: it may have run */
    int64_t        clock_base;      /* Redis' clock less our monotonic
                                       one, ms */
    int            clock_known;     /* clock_base was measured */
    int64_t        clock_at;        /* when it was asked (monotonic ms),
                                       0: never */
    char           err[256];
};


static void
fail(offload_client_t *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
fail(offload_client_t *c, const char *fmt, ...)
{
    va_list  ap;

    va_start(ap, fmt);
    vsnprintf(c->err, sizeof(c->err), fmt, ap);
    va_end(ap);
    c->failed = 1;
}


static struct timeval
tv_ms(int ms)
{
    struct timeval  tv = { ms / 1000, (ms % 1000) * 1000 };

    return tv;
}


/* What went wrong on r, for a person: hiredis tells a command's timeout
 * (SO_RCVTIMEO, SO_SNDTIMEO) as read()'s or write()'s EAGAIN, "Resource
 * temporarily unavailable". */
static const char *
conn_error(const redisContext *r)
{
    if (r->err == REDIS_ERR_IO && strcmp(r->errstr, strerror(EAGAIN)) == 0) {
        return "timed out: Redis did not take or answer it in time";
    }

    return r->errstr;
}


/* A time in ms given by the caller, at most OFFLOAD_CLIENT_MS_MAX: added
 * to a clock in ms (or made a deadline in the entry, a body key's
 * lifetime) it cannot overflow. */
static int64_t
clamp_ms(int64_t ms)
{
    return ms < OFFLOAD_CLIENT_MS_MAX ? ms : OFFLOAD_CLIENT_MS_MAX;
}


static int64_t
now_ms(int clock)
{
    struct timespec  ts;

    clock_gettime(clock, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


/* Whether a connection between two commands can be used: nothing is due
 * on it, so anything to read (an EOF: Redis' idle timeout, a restart,
 * CLIENT KILL, a proxy's reset) or an error says it is gone.  Nothing was
 * sent on it yet: a new one is safe. */
static int
conn_idle_ok(redisContext *r)
{
    struct pollfd  pfd = { r->fd, POLLIN, 0 };

    return !r->err && poll(&pfd, 1, 0) == 0;
}


static char *
dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}


/* A new connection to host and port (or unix_path), authenticated and on
 * its db, or NULL (c->err). */
static redisContext *
login_conn(offload_client_t *c, const char *host, int port,
    const char *unix_path)
{
    redisContext  *r;
    redisReply    *reply = NULL;
    const char    *what = "";

    if (unix_path) {
        r = redisConnectUnixWithTimeout(unix_path,
                                        tv_ms(c->connect_timeout_ms));
    } else {
        r = redisConnectWithTimeout(host, port,
                                    tv_ms(c->connect_timeout_ms));
    }

    if (r == NULL || r->err) {
        if (unix_path) {
            fail(c, "cannot connect to Redis at unix:%s: %s", unix_path,
                 r ? r->errstr : "out of memory");
        } else {
            fail(c, "cannot connect to Redis at %s:%d: %s", host, port,
                 r ? r->errstr : "out of memory");
        }
        redisFree(r);
        return NULL;
    }

    redisSetTimeout(r, tv_ms(c->command_timeout_ms));
    if (!unix_path) {
        redisEnableKeepAlive(r);
    }

    if (c->password) {
        what = "AUTH";
        reply = c->user ? redisCommand(r, "AUTH %s %s", c->user, c->password)
                        : redisCommand(r, "AUTH %s", c->password);
    }

    if ((c->password == NULL || (reply && reply->type != REDIS_REPLY_ERROR))
        && c->db != 0)
    {
        freeReplyObject(reply);
        what = "SELECT";
        reply = redisCommand(r, "SELECT %d", c->db);
    }

    if ((c->password || c->db) && (reply == NULL
                                   || reply->type == REDIS_REPLY_ERROR))
    {
        fail(c, "Redis %s: %s", what, reply ? reply->str : conn_error(r));
        freeReplyObject(reply);
        redisFree(r);
        return NULL;
    }

    freeReplyObject(reply);
    return r;
}


typedef struct {
    offload_client_t  *client;
    redisContext      *conn;        /* to the master, once found */
} master_search_t;


/* The master a sentinel named, if it says it is one (an
 * offload_master_check_pt; data: a master_search_t). */
static int
check_master(const offload_addr_t *master, void *data, char *err,
    size_t errlen)
{
    master_search_t   *search = data;
    offload_client_t  *c = search->client;
    redisContext      *r;
    redisReply        *reply;

    r = login_conn(c, master->host, master->port, NULL);
    if (r == NULL) {
        snprintf(err, errlen, "%s", c->err);
        return -1;
    }

    /* A user without +role (README's offload-submitter) cannot ask: a
     * stale sentinel's replica then shows itself by READONLY, retried. */
    reply = redisCommand(r, "ROLE");
    if (reply != NULL
        && ((reply->type == REDIS_REPLY_ARRAY && reply->elements > 0
             && reply->element[0]->type == REDIS_REPLY_STRING
             && strcmp(reply->element[0]->str, "master") == 0)
            || (reply->type == REDIS_REPLY_ERROR
                && strncmp(reply->str, "NOPERM", 6) == 0)))
    {
        freeReplyObject(reply);
        search->conn = r;
        return 0;
    }

    snprintf(err, errlen, "%s:%d, named the master, answers ROLE with %s",
             master->host, master->port,
             reply == NULL ? conn_error(r)
             : reply->type == REDIS_REPLY_ERROR ? reply->str
             : reply->type == REDIS_REPLY_ARRAY && reply->elements > 0
               && reply->element[0]->type == REDIS_REPLY_STRING
             ? reply->element[0]->str : "an unexpected reply");
    freeReplyObject(reply);
    redisFree(r);
    return -1;
}


static int
same_master(const offload_addr_t *a, const offload_addr_t *b)
{
    return a->port == b->port && strcmp(a->host, b->host) == 0;
}


static void
learn_route(offload_client_t *c, int slot, const offload_addr_t *master)
{
    int       i;
    route_t  *rt = NULL;

    /* the slot's own entry, else a free one, else the next in turn */
    for (i = 0; i < ROUTES_MAX; i++) {
        if (c->routes[i].slot == slot) {
            rt = &c->routes[i];
            break;
        }

        if (rt == NULL && c->routes[i].slot == -1) {
            rt = &c->routes[i];
        }
    }

    if (rt == NULL) {
        rt = &c->routes[c->next_route++ % ROUTES_MAX];
    }

    rt->slot = slot;
    rt->master = *master;
}


static void
forget_route(offload_client_t *c, int slot)
{
    int  i;

    for (i = 0; i < ROUTES_MAX; i++) {
        if (c->routes[i].slot == slot) {
            c->routes[i].slot = -1;
        }
    }
}


/* Every slot learnt to be master's: it went (its connection broke or was
 * refused, or it says it is a replica now). */
static void
forget_master(offload_client_t *c, const offload_addr_t *master)
{
    int  i;

    for (i = 0; i < ROUTES_MAX; i++) {
        if (c->routes[i].slot != -1
            && same_master(&c->routes[i].master, master))
        {
            c->routes[i].slot = -1;
        }
    }
}


/* The master of a cluster's slot, as learnt or as the seeds name it now:
 * 0, or -1 (c->err). */
static int
route(offload_client_t *c, int slot, offload_addr_t *master)
{
    int  i;

    for (i = 0; i < ROUTES_MAX; i++) {
        if (c->routes[i].slot == slot) {
            *master = c->routes[i].master;
            return 0;
        }
    }

    c->cluster.slot = slot;
    if (offload_cluster_find_master(&c->cluster, c->connect_timeout_ms,
                                    c->command_timeout_ms, c->err,
                                    sizeof(c->err))
        != 0)
    {
        c->failed = 1;
        return -1;
    }

    learn_route(c, slot, &c->cluster.addr);
    *master = c->cluster.addr;
    return 0;
}


/* A new connection, authenticated and on its db, to the Redis of the
 * configuration, the master the sentinels name, or the master of the
 * cluster's slot c->slot (then *at says which; a master learnt earlier
 * that refuses it has the seeds asked again), or NULL (c->err). */
static redisContext *
open_conn(offload_client_t *c, offload_addr_t *at)
{
    int               tries;
    redisContext     *r;
    master_search_t   search = { c, NULL };

    if (c->bad_conf != NULL) {
        fail(c, "%s", c->bad_conf);
        return NULL;
    }

    for (tries = 0; c->cluster.nseeds > 0 && tries < 2; tries++) {
        if (route(c, c->slot, at) != 0) {
            return NULL;
        }

        r = login_conn(c, at->host, at->port, NULL);
        if (r != NULL) {
            return r;
        }

        forget_master(c, at);
    }

    if (c->cluster.nseeds > 0) {
        return NULL;
    }

    if (c->sentinel.nsentinels == 0) {
        return login_conn(c, c->host, c->port, c->unix_path);
    }

    if (offload_sentinel_find_master(&c->sentinel, c->connect_timeout_ms,
                                     c->command_timeout_ms, check_master,
                                     &search, c->err, sizeof(c->err))
        != 0)
    {
        c->failed = 1;
        return NULL;
    }

    c->failed = 0;      /* what a stale sentinel's master said is past */
    return search.conn;
}


/* The command connection, made again if the last one broke; with a
 * cluster, to the master of c->slot. */
static redisContext *
cmd_conn(offload_client_t *c)
{
    offload_addr_t  master;

    if (c->cmd != NULL && !conn_idle_ok(c->cmd)) {
        redisFree(c->cmd);
        c->cmd = NULL;
    }

    if (c->cmd != NULL && c->cluster.nseeds > 0) {
        if (route(c, c->slot, &master) != 0) {
            return NULL;
        }

        if (!same_master(&master, &c->cmd_at)) {
            redisFree(c->cmd);
            c->cmd = NULL;
        }
    }

    if (c->cmd == NULL) {
        c->cmd = open_conn(c, &c->cmd_at);
    }

    return c->cmd;
}


static int subscribe_channel(offload_client_t *c);


/* The reply channel's connection gone (or replaced): the job last
 * submitted to be waited for may be published while none listens, so a
 * wait for it looks at its result key instead of waiting for a push. */
static void
drop_sub(offload_client_t *c)
{
    redisFree(c->sub);
    c->sub = NULL;
    c->last_waited[0] = '\0';
}


/* The host:port a MOVED or ASK error names: 0, or -1 (none given). */
static int
redirect_addr(const char *error, offload_addr_t *to)
{
    const char  *addr, *colon;

    addr = strchr(error, ' ');
    addr = addr ? strchr(addr + 1, ' ') : NULL;
    colon = addr ? strrchr(addr, ':') : NULL;

    if (colon == NULL || colon == addr + 1
        || (size_t) (colon - addr - 1) >= sizeof(to->host))
    {
        return -1;
    }

    memset(to, 0, sizeof(*to));
    memcpy(to->host, addr + 1, (size_t) (colon - addr - 1));
    to->port = atoi(colon + 1);
    return to->port > 0 && to->port <= 65535 ? 0 : -1;
}


/* With a cluster, the reply channel, if it is c->slot's, subscribed
 * again where the map says now: before a command that went to the wrong
 * master (MOVED, a lost connection) is sent again.  Returns 0, or -1
 * (c->err). */
static int
follow_sub(offload_client_t *c)
{
    if (c->cluster.nseeds == 0 || c->sub == NULL || c->sub_slot != c->slot) {
        return 0;
    }

    drop_sub(c);
    return subscribe_channel(c);
}


/*
 * What a cluster said instead of running a command on the master of
 * c->slot, the redirects-th time: MOVED has the master it names learnt
 * (or the seeds asked again), and the reply channel follows; TRYAGAIN and
 * CLUSTERDOWN a short pause (and the seeds asked again: a failover).
 * Returns 0 (send the command again), or -1 (c->err) when the reply
 * channel could not follow.
 */
static int
redirected(offload_client_t *c, const char *error, int redirects)
{
    offload_addr_t  to;
    int64_t         ms = (int64_t) TRYAGAIN_MS * redirects;

    if (strncmp(error, "MOVED ", 6) == 0 && redirect_addr(error, &to) == 0) {
        learn_route(c, c->slot, &to);

    } else {
        forget_route(c, c->slot);

        if (strncmp(error, "MOVED ", 6) != 0) {
            nanosleep(&(struct timespec) { ms / 1000,
                                           (ms % 1000) * 1000000 }, NULL);
        }
    }

    return follow_sub(c);
}


/* A command sent once, after ASKING, to the node an ASK error names (a
 * slot being migrated there holds the key already): its reply, or NULL
 * (c->err). */
static redisReply *
ask(offload_client_t *c, const char *error, int argc, const char **argv,
    const size_t *argvlen)
{
    redisReply      *asking = NULL, *reply = NULL;
    redisContext    *r;
    offload_addr_t   to;

    if (redirect_addr(error, &to) != 0) {
        fail(c, "Redis %s: %s", argv[0], error);
        return NULL;
    }

    r = login_conn(c, to.host, to.port, NULL);
    if (r == NULL) {
        return NULL;
    }

    redisAppendCommand(r, "ASKING");
    redisAppendCommandArgv(r, argc, argv, argvlen);

    if (redisGetReply(r, (void **) &asking) != REDIS_OK
        || redisGetReply(r, (void **) &reply) != REDIS_OK)
    {
        fail(c, "Redis %s at %s:%d (ASK): %s", argv[0], to.host, to.port,
             conn_error(r));
        c->unanswered = 1;
    }

    freeReplyObject(asking);
    redisFree(r);
    return reply;
}


/* Whether a command only reads: sent again when its connection broke
 * under it, whatever the deployment. */
static int
read_only(const char *cmd)
{
    return strcmp(cmd, "GET") == 0 || strcmp(cmd, "LLEN") == 0
           || strcmp(cmd, "LINDEX") == 0 || strcmp(cmd, "EXISTS") == 0;
}


/* A command's reply, an error reply too, or NULL (c->err, c->lost) for a
 * broken connection (c->unanswered when the command went on one: it may
 * have run).  A connection found closed before the command is
 * sent (cmd_conn()) is made again first.  A read (read_only()) that meets
 * a broken connection is sent once more on a new one; a write only with
 * sentinels or a cluster (PROTOCOL.md: it may then be run twice), where a
 * broken connection or READONLY (the master was demoted) has the command
 * sent once more on a new connection to the master they name now; with a
 * cluster, MOVED, ASK, TRYAGAIN and CLUSTERDOWN are followed,
 * REDIRECTS_MAX times at most. */
static redisReply *
run_command(offload_client_t *c, int argc, const char **argv,
    const size_t *argvlen)
{
    int            again, redirects = 0;
    int            retries = c->sentinel.nsentinels > 0
                             || c->cluster.nseeds > 0
                             || read_only(argv[0]);
    redisReply    *reply, *asked;
    redisContext  *r;

    c->lost = 0;
    c->unanswered = 0;

    for ( ;; ) {
        r = cmd_conn(c);
        if (r == NULL) {
            c->lost = 1;
            return NULL;
        }

        reply = redisCommandArgv(r, argc, argv, argvlen);
        c->unanswered |= reply == NULL;

        if (reply == NULL
            || (reply->type == REDIS_REPLY_ERROR
                && strncmp(reply->str, "READONLY", 8) == 0))
        {
            again = retries-- > 0;
            forget_master(c, &c->cmd_at);

            if (again && follow_sub(c) != 0) {
                freeReplyObject(reply);
                c->lost = 1;
                return NULL;
            }

        } else if (c->cluster.nseeds > 0
                   && reply->type == REDIS_REPLY_ERROR
                   && offload_cluster_redirected(reply->str)
                   && redirects++ < REDIRECTS_MAX)
        {
            if (strncmp(reply->str, "ASK ", 4) == 0) {
                asked = ask(c, reply->str, argc, argv, argvlen);
                freeReplyObject(reply);
                return asked;
            }

            if (redirected(c, reply->str, redirects) != 0) {
                freeReplyObject(reply);
                return NULL;
            }
            freeReplyObject(reply);
            continue;

        } else {
            again = 0;
        }

        if (!again) {
            break;
        }

        freeReplyObject(reply);
        redisFree(c->cmd);
        c->cmd = NULL;
    }

    if (reply == NULL) {
        fail(c, "Redis %s: %s", argv[0], conn_error(r));
        c->lost = 1;
    }

    return reply;
}


/* A command's reply, or NULL (c->err) for a broken connection or an error
 * reply. */
static redisReply *
command_argv(offload_client_t *c, int argc, const char **argv,
    const size_t *argvlen)
{
    redisReply  *reply;

    reply = run_command(c, argc, argv, argvlen);
    if (reply == NULL) {
        return NULL;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        fail(c, "Redis %s: %s", argv[0], reply->str);
        freeReplyObject(reply);
        return NULL;
    }

    return reply;
}


/* Now, in ms since the epoch by Redis' clock: jobs are stamped by it, as
 * the module stamps them, whatever this host's clock says.  It is read as
 * the monotonic clock plus how far Redis' was ahead of it (a step of the
 * wall clock changes nothing), asked (TIME) of the queue's Redis at the
 * first call and every CLOCK_AGE_MS, again after CLOCK_RETRY_MS when TIME
 * told nothing (refused by an ACL, too slow, a connection lost: the
 * call's own command then says so); the wall clock until it first
 * answers.  One for all of a cluster's masters: their clocks are taken to
 * agree. */
static int64_t
redis_now_ms(offload_client_t *c)
{
    int64_t      mono, rtt, redis_us;
    redisReply  *reply;
    const char  *argv[] = { "TIME" };

    mono = now_ms(CLOCK_MONOTONIC);

    if (c->clock_at == 0 || mono - c->clock_at >= CLOCK_AGE_MS) {
        c->clock_at = mono - CLOCK_AGE_MS + CLOCK_RETRY_MS;
        reply = run_command(c, 1, argv, NULL);
        rtt = now_ms(CLOCK_MONOTONIC) - mono;
        redis_us = offload_redis_time_us(reply);

        if (redis_us >= 0 && rtt <= CLOCK_RTT_MAX_MS) {
            c->clock_base = redis_us / 1000 - mono - rtt / 2;
            c->clock_known = 1;
            c->clock_at = mono;
        }

        freeReplyObject(reply);
        c->failed = 0;
    }

    return c->clock_known ? now_ms(CLOCK_MONOTONIC) + c->clock_base
                          : now_ms(CLOCK_REALTIME);
}


/* A configuration that makes every connect fail, saying why.  Returns -1
 * only when out of memory. */
static int
bad_conf(offload_client_t *c, const char *why)
{
    c->bad_conf = strdup(why);
    return c->bad_conf ? 0 : -1;
}


/* ep parsed from the sidecar's address "<scheme><list><tail>".  Returns 0,
 * 1 (it does not parse: bad_conf() said why) or -1 (out of memory). */
static int
parse_endpoint(offload_client_t *c, offload_redis_endpoint_t *ep,
    const char *scheme, const char *list, const char *tail)
{
    int    n;
    char  *addr, err[sizeof(c->err)];

    n = snprintf(NULL, 0, "%s%s%s", scheme, list, tail);
    addr = malloc((size_t) n + 1);
    if (addr == NULL) {
        return -1;
    }
    snprintf(addr, (size_t) n + 1, "%s%s%s", scheme, list, tail);

    n = offload_redis_endpoint_parse(ep, addr, err, sizeof(err));
    free(addr);
    if (n == 0) {
        return 0;
    }

    ep->nsentinels = 0;
    ep->nseeds = 0;
    return bad_conf(c, err) == 0 ? 1 : -1;
}


/* The sentinels of conf, parsed as the sidecar's "sentinel://" address;
 * one that does not parse makes every connect fail, saying why.  Returns
 * -1 only when out of memory. */
static int
use_sentinels(offload_client_t *c, const offload_client_conf_t *conf)
{
    int                        rc;
    char                       tail[OFFLOAD_MASTER_NAME_MAX + 3];
    offload_redis_endpoint_t  *ep = &c->sentinel;

    /* a longer name is cut one past the longest: refused as too long */
    snprintf(tail, sizeof(tail), "/%s",
             conf->master_name ? conf->master_name : "");
    rc = parse_endpoint(c, ep, "sentinel://", conf->sentinels, tail);
    if (rc != 0) {
        return rc < 0 ? -1 : 0;
    }

    ep->sentinel_user = dup_or_null(conf->sentinel_user);
    ep->sentinel_password = dup_or_null(conf->sentinel_password);

    return (conf->sentinel_user && ep->sentinel_user == NULL)
           || (conf->sentinel_password && ep->sentinel_password == NULL)
           ? -1 : 0;
}


/* The seeds of conf, parsed as the sidecar's "cluster://" address, and
 * the login the seeds take (the masters'); a list that does not parse, or
 * a db, or sentinels too, make every connect fail, saying why.  Returns -1
 * only when out of memory. */
static int
use_cluster(offload_client_t *c, const offload_client_conf_t *conf)
{
    int                        rc, i;
    offload_redis_endpoint_t  *ep = &c->cluster;

    for (i = 0; i < ROUTES_MAX; i++) {
        c->routes[i].slot = -1;
    }
    c->slot = offload_redis_control_slot();

    if (conf->sentinels != NULL) {
        return bad_conf(c, "sentinels and a cluster: give one of them");
    }

    if (conf->db != 0) {
        return bad_conf(c, "a Redis Cluster has only db 0: leave db at 0 "
                        "with a cluster");
    }

    rc = parse_endpoint(c, ep, "cluster://", conf->cluster, "");
    if (rc != 0) {
        return rc < 0 ? -1 : 0;
    }

    ep->user = dup_or_null(conf->user);
    ep->password = dup_or_null(conf->password);

    return (conf->user && ep->user == NULL)
           || (conf->password && ep->password == NULL) ? -1 : 0;
}


offload_client_t *
offload_client_connect(const offload_client_conf_t *conf)
{
    offload_client_t  *c;
    unsigned char      rnd[OFFLOAD_NONCE_LEN / 2];
    size_t             i;

    static const char  hex[] = "0123456789abcdef";

    c = calloc(1, sizeof(offload_client_t));
    if (c == NULL) {
        return NULL;
    }

    c->host = strdup(conf->host ? conf->host : "127.0.0.1");
    c->unix_path = dup_or_null(conf->unix_path);
    c->user = dup_or_null(conf->user);
    c->password = dup_or_null(conf->password);
    c->port = conf->port ? conf->port : 6379;
    c->db = conf->db;
    c->connect_timeout_ms = conf->connect_timeout_ms > 0
                            ? conf->connect_timeout_ms : 2000;
    c->command_timeout_ms = conf->command_timeout_ms > 0
                            ? conf->command_timeout_ms : 5000;

    if (c->host == NULL || (conf->unix_path && c->unix_path == NULL)
        || (conf->user && c->user == NULL)
        || (conf->password && c->password == NULL))
    {
        offload_client_free(c);
        return NULL;
    }

    if (conf->cluster != NULL ? use_cluster(c, conf) != 0
        : conf->sentinels != NULL && use_sentinels(c, conf) != 0)
    {
        offload_client_free(c);
        return NULL;
    }

    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t) sizeof(rnd)) {
        fail(c, "getrandom: %s", strerror(errno));
        return c;
    }

    for (i = 0; i < sizeof(rnd); i++) {
        c->nonce[2 * i] = hex[rnd[i] >> 4];
        c->nonce[2 * i + 1] = hex[rnd[i] & 0xf];
    }
    offload_reply_channel(c->channel, sizeof(c->channel), c->nonce,
                          OFFLOAD_NONCE_LEN);

    cmd_conn(c);
    return c;
}


const char *
offload_client_error(const offload_client_t *c)
{
    return c->failed ? c->err : NULL;
}


void
offload_client_free(offload_client_t *c)
{
    if (c == NULL) {
        return;
    }

    redisFree(c->cmd);
    redisFree(c->sub);
    free(c->host);
    free(c->unix_path);
    free(c->user);
    free(c->password);
    free(c->bad_conf);
    offload_redis_endpoint_free(&c->sentinel);
    offload_redis_endpoint_free(&c->cluster);
    free(c);
}


void
offload_client_result_free(offload_client_result_t *res)
{
    free(res->body);
    res->body = NULL;
}


/* The reply channel's connection: with sentinels, to the master of the
 * command connection while it says it is one (no need to ask them), else
 * to the one they name now; with a cluster, to the master of c->slot. */
static redisContext *
open_sub_conn(offload_client_t *c)
{
    char             why[sizeof(c->err)];
    master_search_t  search = { c, NULL };

    if (c->sentinel.nsentinels > 0 && c->cmd != NULL && !c->cmd->err
        && check_master(&c->sentinel.addr, &search, why, sizeof(why)) == 0)
    {
        c->failed = 0;
        return search.conn;
    }

    c->sub_slot = c->slot;
    return open_conn(c, &c->sub_at);
}


/* Subscribes c->channel on a connection of its own (SSUBSCRIBE on the
 * master of c->slot with a cluster, following its redirections). */
static int
subscribe_channel(offload_client_t *c)
{
    int          redirects = 0;
    redisReply  *reply;
    const char  *cmd = c->cluster.nseeds > 0 ? "SSUBSCRIBE" : "SUBSCRIBE";

    for ( ;; ) {
        c->sub = open_sub_conn(c);
        if (c->sub == NULL) {
            return -1;
        }

        reply = redisCommand(c->sub, "%s %s", cmd, c->channel);
        if (reply != NULL && reply->type == REDIS_REPLY_ARRAY) {
            freeReplyObject(reply);
            return 0;
        }

        fail(c, "Redis %s: %s", cmd,
             reply == NULL ? conn_error(c->sub)
             : reply->type == REDIS_REPLY_ERROR ? reply->str
             : "unexpected reply");
        drop_sub(c);

        if (c->cluster.nseeds > 0 && reply != NULL
            && reply->type == REDIS_REPLY_ERROR
            && offload_cluster_redirected(reply->str)
            && redirects++ < REDIRECTS_MAX
            && redirected(c, reply->str, redirects) == 0)
        {
            freeReplyObject(reply);
            c->failed = 0;
            continue;
        }

        freeReplyObject(reply);
        return -1;
    }
}


/* Whether the reply channel's connection is still open: what can be read
 * on it is read (messages, or the EOF of one the server closed). */
static int
sub_alive(redisContext *r)
{
    struct pollfd  pfd = { r->fd, POLLIN, 0 };

    return !r->err
           && (poll(&pfd, 1, 0) <= 0 || redisBufferRead(r) == REDIS_OK);
}


/* The reply channel subscribed, once; with a cluster, queue's own on its
 * master (moved there when the queue of the call is another). */
static int
subscribe(offload_client_t *c, const char *queue)
{
    char            channel[OFFLOAD_KEY_MAX];
    offload_addr_t  master;

    /* one the server closed (an idle reset, CLIENT KILL) is made again;
     * messages on their way before that stay in its reader */
    if (c->sub != NULL && !sub_alive(c->sub)) {
        drop_sub(c);
    }

    if (c->cluster.nseeds > 0) {
        offload_queue_reply_channel(channel, sizeof(channel), queue,
                                    strlen(queue), c->nonce,
                                    OFFLOAD_NONCE_LEN);

        if (c->sub != NULL
            && (strcmp(channel, c->channel) != 0
                || route(c, c->slot, &master) != 0
                || !same_master(&master, &c->sub_at)))
        {
            drop_sub(c);
        }

        memcpy(c->channel, channel, sizeof(channel));
    }

    return c->sub != NULL ? 0 : subscribe_channel(c);
}


/*
 * Writes a big payload to the job's body key (PROTOCOL.md, "Big payloads:
 * the body key"): MULTI, RPUSH of the first slice, PEXPIRE, EXEC, then an
 * RPUSHX per slice, BODY_IN_FLIGHT on their way at most, each answer
 * checked (the list's length so far).  RPUSHX: a key gone meanwhile (its
 * lifetime over, removed) is not made again, a partial body without a
 * lifetime.  The queue's stream must exist first: nothing is written for
 * a queue nobody serves.
 */
static int
write_body(offload_client_t *c, const char *queue, const char *stream,
    const char *body_key, const char *json, size_t len, int64_t life_ms)
{
    int            rc = OFFLOAD_CLIENT_ERROR;
    char           pexpire[24];
    size_t         slices, sent, got, off, n, i;
    redisReply    *reply;
    redisContext  *r;
    const char    *argv[3];
    size_t         argvlen[3];

    argv[0] = "EXISTS";
    argv[1] = stream;
    reply = command_argv(c, 2, argv, NULL);
    if (reply == NULL) {
        return OFFLOAD_CLIENT_ERROR;
    }
    n = reply->type == REDIS_REPLY_INTEGER ? (size_t) reply->integer : 0;
    freeReplyObject(reply);

    if (n == 0) {
        fail(c, "unknown queue \"%s\": no worker ever served it", queue);
        return OFFLOAD_CLIENT_NOT_FOUND;
    }

    r = cmd_conn(c);
    if (r == NULL) {
        return OFFLOAD_CLIENT_ERROR;
    }
    slices = (len + OFFLOAD_SLICE - 1) / OFFLOAD_SLICE;
    snprintf(pexpire, sizeof(pexpire), "%lld",
             (long long) (life_ms + OFFLOAD_BODY_GRACE_MS));

    argv[0] = "RPUSH";
    argv[1] = body_key;
    argvlen[0] = 5;
    argvlen[1] = strlen(body_key);

    redisAppendCommand(r, "MULTI");
    argv[2] = json;
    argvlen[2] = OFFLOAD_SLICE < len ? OFFLOAD_SLICE : len;
    redisAppendCommandArgv(r, 3, argv, argvlen);
    redisAppendCommand(r, "PEXPIRE %s %s", body_key, pexpire);
    redisAppendCommand(r, "EXEC");

    for (i = 0; i < 3; i++) {           /* MULTI's, the two QUEUEDs */
        if (redisGetReply(r, (void **) &reply) != REDIS_OK) {
            goto broken;
        }
        freeReplyObject(reply);
    }

    if (redisGetReply(r, (void **) &reply) != REDIS_OK) {
        goto broken;
    }
    n = reply->type == REDIS_REPLY_ARRAY && reply->elements == 2
        && reply->element[0]->type == REDIS_REPLY_INTEGER
        && reply->element[0]->integer == 1
        && reply->element[1]->type == REDIS_REPLY_INTEGER
        && reply->element[1]->integer == 1;
    freeReplyObject(reply);
    if (!n) {
        fail(c, "writing the body key %s: unexpected EXEC reply", body_key);
        goto unlink;
    }

    argv[0] = "RPUSHX";
    argvlen[0] = 6;

    for (sent = 1, got = 1; got < slices; ) {
        while (sent < slices && sent - got < BODY_IN_FLIGHT) {
            off = sent * OFFLOAD_SLICE;
            argv[2] = json + off;
            argvlen[2] = len - off < OFFLOAD_SLICE ? len - off
                                                  : OFFLOAD_SLICE;
            redisAppendCommandArgv(r, 3, argv, argvlen);
            sent++;
        }

        if (redisGetReply(r, (void **) &reply) != REDIS_OK) {
            goto broken;
        }
        got++;
        n = reply->type == REDIS_REPLY_INTEGER
            && (size_t) reply->integer == got;
        freeReplyObject(reply);

        if (!n) {
            /* its replies still on their way: this connection is done */
            fail(c, "writing the body key %s: it went while written",
                 body_key);
            redisFree(c->cmd);
            c->cmd = NULL;
            goto unlink;
        }
    }

    return OFFLOAD_CLIENT_OK;

broken:

    fail(c, "Redis: writing the body key %s: %s", body_key,
         conn_error(r));

unlink:

    /* what was written goes now, not when its lifetime ends */
    argv[0] = "UNLINK";
    reply = command_argv(c, 2, argv, NULL);
    freeReplyObject(reply);
    return rc;
}


int
offload_client_submit(offload_client_t *c, const char *queue,
    const char *json, size_t len, const offload_submit_opts_t *opts,
    char *id)
{
    int                    rc, argc;
    char                   stream[OFFLOAD_KEY_MAX], body_key[OFFLOAD_KEY_MAX];
    size_t                 offset, argvlen[OFFLOAD_JOB_ARGC];
    int64_t                now, deadline_ms;
    redisReply            *reply;
    const char            *argv[OFFLOAD_JOB_ARGC], *err;
    char                   tp[OFFLOAD_TRACEPARENT_LEN];
    char                   tag[OFFLOAD_SLOT_TAG_LEN];
    char                   why[sizeof(c->err)];
    offload_entry_t        job;
    offload_job_scratch_t  scratch;
    offload_submit_opts_t  none = { 0, 0, NULL, NULL };

    c->failed = 0;
    opts = opts ? opts : &none;

    if (c->nonce[0] == '\0') {
        return OFFLOAD_CLIENT_ERROR;    /* getrandom() failed: said so */
    }

    if (!offload_queue_name_valid(queue, strlen(queue))) {
        fail(c, "invalid queue name \"%s\": 1 to 64 of A-Z a-z 0-9 _ . -",
             queue);
        return OFFLOAD_CLIENT_INVALID;
    }

    if (len > OFFLOAD_BODY_MAX) {
        fail(c, "the payload is %zu bytes, over the %d a job takes", len,
             OFFLOAD_BODY_MAX);
        return OFFLOAD_CLIENT_INVALID;
    }

    if (offload_json_check_payload(json, len, &offset, &err) != 0) {
        fail(c, "the payload is not JSON: %s at byte %zu", err, offset);
        return OFFLOAD_CLIENT_INVALID;
    }

    if (opts->traceparent != NULL
        && offload_traceparent_check(opts->traceparent,
                                     strlen(opts->traceparent))
           != 0)
    {
        fail(c, "invalid traceparent \"%s\": wants <version>-<32 hex>-"
             "<16 hex>-<2 hex>, lowercase, non-zero ids",
             opts->traceparent);
        return OFFLOAD_CLIENT_INVALID;
    }

    /* the id names its queue's slot, as the module's do */
    offload_slot_tag(offload_key_slot(queue, strlen(queue)), tag);
    offload_job_id_format(id, c->nonce, tag, ++c->seq);
    id[OFFLOAD_JOB_ID_LEN] = '\0';

    c->slot = (int) offload_key_slot(queue, strlen(queue));

    if (opts->wait && subscribe(c, queue) != 0) {
        return OFFLOAD_CLIENT_ERROR;
    }

    offload_stream_key(stream, sizeof(stream), queue, strlen(queue));
    offload_body_key(body_key, sizeof(body_key), queue, strlen(queue), id,
                     OFFLOAD_JOB_ID_LEN);

    now = redis_now_ms(c);
    deadline_ms = clamp_ms(opts->deadline_ms);
    memset(&job, 0, sizeof(job));
    job.version = OFFLOAD_PROTO_VERSION;
    job.id.data = id;
    job.id.len = OFFLOAD_JOB_ID_LEN;
    job.submitted_ms = now;
    job.attempt = 1;
    job.deadline_ms = deadline_ms > 0 ? now + deadline_ms
                                      : OFFLOAD_NO_DEADLINE;
    job.request_id.data = opts->request_id ? opts->request_id : "";
    job.request_id.len = strlen(job.request_id.data);

    if (opts->traceparent != NULL) {
        /* a later version's first fields, as the version we speak */
        memcpy(tp, opts->traceparent, sizeof(tp));
        tp[0] = '0';
        tp[1] = '0';
        job.traceparent.data = tp;
        job.traceparent.len = sizeof(tp);
    }

    if (opts->wait) {
        job.reply.data = c->channel;
        job.reply.len = strlen(c->channel);
    }

    if (len > OFFLOAD_BODY_OVER) {
        rc = write_body(c, queue, stream, body_key, json, len,
                        deadline_ms > 0 ? deadline_ms
                                        : OFFLOAD_BODY_NO_DEADLINE_MS);
        if (rc != OFFLOAD_CLIENT_OK) {
            return rc;
        }
        job.body_len = (int64_t) len;
        job.payload.data = "";

    } else {
        job.payload.data = json;
        job.payload.len = len;
    }

    argc = offload_job_argv(&job, stream, &scratch, argv, argvlen);
    reply = command_argv(c, argc, argv, argvlen);

    if (reply == NULL && c->unanswered) {
        /* The XADD went and its answer did not come: the entry may be on
         * the stream, and then needs its body (kept to its lifetime) and
         * may be published to the channel (a wait hears it). */
        snprintf(why, sizeof(why), "%s", c->err);
        fail(c, "job %s may have been queued (no answer to its XADD: %s); "
             "look for its result later", id, why);
        if (opts->wait) {
            memcpy(c->last_waited, id, OFFLOAD_CLIENT_ID_SIZE);
        }
        return OFFLOAD_CLIENT_UNKNOWN;
    }

    if (reply == NULL || reply->type == REDIS_REPLY_NIL) {
        rc = OFFLOAD_CLIENT_ERROR;
        if (reply != NULL) {
            fail(c, "unknown queue \"%s\": no worker ever served it", queue);
            rc = OFFLOAD_CLIENT_NOT_FOUND;
        }
        freeReplyObject(reply);

        if (job.body_len > 0) {
            argv[0] = "UNLINK";
            argv[1] = body_key;
            freeReplyObject(command_argv(c, 2, argv, NULL));
        }
        return rc;
    }

    freeReplyObject(reply);

    if (opts->wait) {
        memcpy(c->last_waited, id, OFFLOAD_CLIENT_ID_SIZE);
    }

    return OFFLOAD_CLIENT_OK;
}


/* Takes an encoded result (header + body, malloc()ed, owned from now on)
 * apart into res.  The body moves to the buffer's start. */
static int
take_result(offload_client_t *c, const char *id, char *buf, size_t len,
    offload_client_result_t *res)
{
    const char        *err;
    offload_result_t   r;

    if (offload_result_decode(&r, buf, len, &err) != 0) {
        fail(c, "the result of job %s is not one: %s", id, err);
        free(buf);
        return OFFLOAD_CLIENT_ERROR;
    }

    if (r.id.len != OFFLOAD_JOB_ID_LEN
        || memcmp(r.id.data, id, OFFLOAD_JOB_ID_LEN) != 0)
    {
        fail(c, "the result of job %s names another job", id);
        free(buf);
        return OFFLOAD_CLIENT_ERROR;
    }

    res->status = r.status;
    res->queue_us = r.queue_us;
    res->run_us = r.run_us;
    res->body_len = r.body.len;
    memmove(buf, r.body.data, r.body.len);
    buf[r.body.len] = '\0';
    res->body = buf;
    return OFFLOAD_CLIENT_OK;
}


/* A result stored as a list (over 1 MB): LLEN, then LINDEX per element,
 * BODY_IN_FLIGHT on their way, joined. */
static int
read_result_list(offload_client_t *c, const char *key, const char *id,
    offload_client_result_t *res)
{
    char          *buf = NULL, *more, idx[24];
    size_t         len = 0, cap = 0;
    long long      elements, sent = 0, got = 0;
    redisReply    *reply;
    redisContext  *r;
    const char    *argv[3] = { "LLEN", key, NULL };

    reply = command_argv(c, 2, argv, NULL);
    if (reply == NULL) {
        return OFFLOAD_CLIENT_ERROR;
    }
    elements = reply->type == REDIS_REPLY_INTEGER ? reply->integer : -1;
    freeReplyObject(reply);

    if (elements == 0) {
        fail(c, "no result for job %s (unknown, not finished, or expired)",
             id);
        return OFFLOAD_CLIENT_NOT_FOUND;
    }

    if (elements < 0 || elements > RESULT_ELEMENTS_MAX) {
        fail(c, "the result list %s has %lld elements: not a result", key,
             elements);
        return OFFLOAD_CLIENT_ERROR;
    }

    r = cmd_conn(c);
    if (r == NULL) {
        c->lost = 1;
        return OFFLOAD_CLIENT_ERROR;
    }
    argv[0] = "LINDEX";
    argv[2] = idx;

    while (got < elements) {
        while (sent < elements && sent - got < BODY_IN_FLIGHT) {
            snprintf(idx, sizeof(idx), "%lld", sent++);
            redisAppendCommandArgv(r, 3, argv, NULL);
        }

        if (redisGetReply(r, (void **) &reply) != REDIS_OK) {
            fail(c, "Redis LINDEX: %s", conn_error(r));
            c->lost = 1;
            free(buf);
            return OFFLOAD_CLIENT_ERROR;
        }
        got++;

        if (reply->type != REDIS_REPLY_STRING
            || reply->len > OFFLOAD_SLICE)
        {
            fail(c, "the result list %s lost an element or holds one that "
                 "is not a result's", key);
            freeReplyObject(reply);
            free(buf);
            /* the replies of the LINDEXes still on their way */
            redisFree(c->cmd);
            c->cmd = NULL;
            return OFFLOAD_CLIENT_ERROR;
        }

        if (len + reply->len + 1 > cap) {
            cap = (len + reply->len + 1) * 2;
            more = realloc(buf, cap);
            if (more == NULL) {
                fail(c, "out of memory reading the result of job %s", id);
                freeReplyObject(reply);
                free(buf);
                redisFree(c->cmd);
                c->cmd = NULL;
                return OFFLOAD_CLIENT_ERROR;
            }
            buf = more;
        }

        memcpy(buf + len, reply->str, reply->len);
        len += reply->len;
        freeReplyObject(reply);
    }

    return take_result(c, id, buf, len, res);
}


int
offload_client_result(offload_client_t *c, const char *queue,
    const char *id, offload_client_result_t *res)
{
    int            klen;
    char           key[OFFLOAD_KEY_MAX], *buf;
    redisReply    *reply;
    const char    *argv[2] = { "GET", key };

    c->failed = 0;
    c->lost = 0;
    memset(res, 0, sizeof(*res));

    klen = offload_result_key(key, sizeof(key), queue, strlen(queue), id,
                              strlen(id));
    if (!offload_queue_name_valid(queue, strlen(queue)) || klen < 0
        || strlen(id) != OFFLOAD_JOB_ID_LEN)
    {
        fail(c, "invalid queue name or job id");
        return OFFLOAD_CLIENT_INVALID;
    }

    c->slot = (int) offload_key_slot(queue, strlen(queue));

    reply = run_command(c, 2, argv, NULL);
    if (reply == NULL) {
        return OFFLOAD_CLIENT_ERROR;
    }

    if (reply->type == REDIS_REPLY_ERROR
        && strncmp(reply->str, "WRONGTYPE", 9) == 0)
    {
        freeReplyObject(reply);
        return read_result_list(c, key, id, res);
    }

    if (reply->type == REDIS_REPLY_NIL) {
        freeReplyObject(reply);
        fail(c, "no result for job %s (unknown, not finished, or expired)",
             id);
        return OFFLOAD_CLIENT_NOT_FOUND;
    }

    if (reply->type != REDIS_REPLY_STRING) {
        fail(c, "Redis GET: %s", reply->type == REDIS_REPLY_ERROR
                                 ? reply->str : "unexpected reply");
        freeReplyObject(reply);
        return OFFLOAD_CLIENT_ERROR;
    }

    buf = malloc(reply->len + 1);
    if (buf == NULL) {
        freeReplyObject(reply);
        fail(c, "out of memory");
        return OFFLOAD_CLIENT_ERROR;
    }
    memcpy(buf, reply->str, reply->len);
    klen = (int) reply->len;
    freeReplyObject(reply);

    return take_result(c, id, buf, (size_t) klen, res);
}


/*
 * The next message on the reply channel for job id, within ms.  Returns
 * 1 with *msg set (the message's reply: free it), 0 when the time ran out,
 * -1 when the subscription broke (it is dropped).  Messages of other jobs
 * (one waited for earlier and given up) are skipped.
 */
static int
next_message(offload_client_t *c, const char *id, int64_t ms,
    redisReply **msg)
{
    int64_t         end = now_ms(CLOCK_MONOTONIC) + ms, left;
    void           *r;
    redisReply     *m, *payload;
    offload_str_t   nid;
    offload_result_t  res;
    const char     *err;
    struct pollfd   pfd;

    for ( ;; ) {
        if (redisReaderGetReply(c->sub->reader, &r) != REDIS_OK) {
            goto broken;
        }

        if (r == NULL) {
            left = end - now_ms(CLOCK_MONOTONIC);
            if (left <= 0) {
                return 0;
            }

            pfd.fd = c->sub->fd;
            pfd.events = POLLIN;
            if (poll(&pfd, 1, left < INT_MAX ? (int) left : INT_MAX) < 0
                && errno != EINTR)
            {
                goto broken;
            }

            if (pfd.revents && redisBufferRead(c->sub) != REDIS_OK) {
                goto broken;
            }
            continue;
        }

        m = r;
        payload = m->type == REDIS_REPLY_ARRAY && m->elements == 3
                  ? m->element[2] : NULL;

        if (payload != NULL && payload->type == REDIS_REPLY_INTEGER
            && m->element[0]->type == REDIS_REPLY_STRING
            && strcmp(m->element[0]->str, "sunsubscribe") == 0)
        {
            /* the channel's slot moved to another master */
            freeReplyObject(m);
            errno = 0;
            fail(c, "the reply channel's slot moved");
            drop_sub(c);
            return -1;
        }

        if (payload != NULL && payload->type == REDIS_REPLY_STRING
            && ((offload_result_decode(&res, payload->str, payload->len,
                                       &err) == 0
                 && res.id.len == OFFLOAD_JOB_ID_LEN
                 && memcmp(res.id.data, id, OFFLOAD_JOB_ID_LEN) == 0)
                || (offload_notice_decode(&nid, payload->str, payload->len)
                    == 0
                    && nid.len == OFFLOAD_JOB_ID_LEN
                    && memcmp(nid.data, id, OFFLOAD_JOB_ID_LEN) == 0)))
        {
            *msg = m;
            return 1;
        }

        freeReplyObject(m);
    }

broken:

    fail(c, "the reply channel's connection broke: %s",
         c->sub->errstr[0] ? conn_error(c->sub) : strerror(errno));
    drop_sub(c);
    return -1;
}


/* A look at the result key within a wait: OFFLOAD_CLIENT_NOT_FOUND too when
 * Redis could not be asked (a connection lost: that is not the job's
 * answer, and the wait goes on to its end). */
static int
look(offload_client_t *c, const char *queue, const char *id,
    offload_client_result_t *res)
{
    int  rc;

    rc = offload_client_result(c, queue, id, res);

    if (rc == OFFLOAD_CLIENT_NOT_FOUND
        || (rc == OFFLOAD_CLIENT_ERROR && c->lost))
    {
        c->failed = 0;          /* not yet: no error of the wait's */
        return OFFLOAD_CLIENT_NOT_FOUND;
    }

    return rc;
}


int
offload_client_wait(offload_client_t *c, const char *queue,
    const char *id, int64_t timeout_ms, offload_client_result_t *res)
{
    int          rc, pushed, resubscribe = 0;
    int64_t      end, left, pause = POLL_MIN_MS;
    char        *buf;
    redisReply  *msg, *payload;

    c->failed = 0;
    memset(res, 0, sizeof(*res));
    end = now_ms(CLOCK_MONOTONIC) + clamp_ms(timeout_ms);

    /* Pushed to us when this client submitted it to be waited for (its
     * channel was subscribed before the job was added, on the connection
     * still open: drop_sub()). */
    pushed = c->sub != NULL && strcmp(id, c->last_waited) == 0;

    for ( ;; ) {
        if (!pushed) {
            /* the job's channel subscribed again (on the master of its
             * queue's slot) before the key is looked at: a result stored
             * after that look is pushed */
            c->slot = (int) offload_key_slot(queue, strlen(queue));
            if (resubscribe && c->sub == NULL && subscribe_channel(c) != 0) {
                c->failed = 0;
            }

            rc = look(c, queue, id, res);
            if (rc != OFFLOAD_CLIENT_NOT_FOUND) {
                return rc;
            }

            if (resubscribe && c->sub != NULL && !c->lost) {
                memcpy(c->last_waited, id, OFFLOAD_CLIENT_ID_SIZE);
                resubscribe = 0;
                pushed = 1;
            }
        }

        left = end - now_ms(CLOCK_MONOTONIC);
        if (left <= 0) {
            break;
        }

        if (pushed) {
            rc = next_message(c, id, left, &msg);
            if (rc < 0) {
                /* subscribed again, or the result key looked at */
                resubscribe = 1;
                pushed = 0;
                continue;
            }

            if (rc == 0) {
                break;
            }

            payload = msg->element[2];
            if (payload->str[1] == 'N') {
                /* a notice: the result (over 1 MB) is in its key */
                freeReplyObject(msg);
                rc = offload_client_result(c, queue, id, res);
                if (rc != OFFLOAD_CLIENT_ERROR || !c->lost) {
                    return rc;
                }
                pushed = 0;             /* looked at again, until the end */
                continue;
            }

            buf = malloc(payload->len + 1);
            if (buf == NULL) {
                freeReplyObject(msg);
                fail(c, "out of memory");
                return OFFLOAD_CLIENT_ERROR;
            }
            memcpy(buf, payload->str, payload->len);
            rc = take_result(c, id, buf, payload->len, res);
            freeReplyObject(msg);
            return rc;
        }

        left = pause < left ? pause : left;
        nanosleep(&(struct timespec) { left / 1000,
                                       (left % 1000) * 1000000 }, NULL);
        pause = pause * 2 > POLL_MAX_MS ? POLL_MAX_MS : pause * 2;
    }

    /* a last look: a result stored while the subscription was away */
    rc = offload_client_result(c, queue, id, res);
    if (rc == OFFLOAD_CLIENT_NOT_FOUND) {
        fail(c, "no result for job %s within %lld ms", id,
             (long long) timeout_ms);
        return OFFLOAD_CLIENT_TIMEOUT;
    }

    return rc;
}
