/*
 * node_lease.c -- one sidecar at a time under a node_name.
 *
 * Workers are named by node, queue and slot, and a new worker first reads
 * its consumer's pending entries: a second sidecar started under the name
 * of a live one (a unit started twice, a deploy's overlap, two hosts with
 * one host name) ran the other's jobs again while they ran.  So a node
 * holds a lease in each Redis that keeps its node-level keys,
 * offload:{ctl}:lease:<name> = "<instance> <pid> <host>", taken with the
 * script below and kept every heartbeat for as long as its node document
 * lives.  Until it holds it, its workers start (and load what they load)
 * but read nothing, and it writes no node document (registry.c); a lease
 * another sidecar holds is waited for.  One whose holder ran on this host
 * and is gone (a SIGKILLed sidecar: its workers died with it) is taken at
 * once, not at its expiry.  A clean stop gives it up, so a successor
 * waiting for it starts at its next heartbeat.
 */

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "node_lease.h"

/* KEYS[1] the lease; ARGV[1] this process's value, ARGV[2] its ttl in ms,
 * ARGV[3] a value whose holder is known gone (or "").  Returns 1 when the
 * lease is this process's now, else the holder's value. */
/* Kept by PEXPIRE, which a Redis at its maxmemory still runs; a free
 * lease it refuses to SET is taken all the same (2): nobody holds it, and
 * a node restarted against a full Redis must read its own jobs. */
static const char  lease_script[] =
    "local v = redis.call('GET', KEYS[1])\n"
    "if v == ARGV[1] then\n"
    "  redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
    "  return 1\n"
    "end\n"
    "if v and v ~= ARGV[3] then return v end\n"
    "if redis.pcall('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]).err then\n"
    "  return 2\n"
    "end\n"
    "return 1\n";

/* KEYS[1] the lease, KEYS[2..3] the node's document and runs, KEYS[4]
 * the set of node names; ARGV[1] this process's value, ARGV[2] the name:
 * all of it goes only while the lease is this process's. */
static const char  release_script[] =
    "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end\n"
    "redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])\n"
    "return redis.call('SREM', KEYS[4], ARGV[2])\n";

typedef struct {
    offload_redis_conn_t  *rc;
    char                  *key;
    char                  *name;
    int                    ttl_ms;
    offload_lease_pt       done;
    void                  *data;
} lease_ask_t;

static char  me[400];           /* "<instance> <pid> <host> <boot>" */
static char  host[256];
static char  boot[80];          /* boot id and pid namespace: where a pid
                                   means this very process */
static int   waiting;           /* said so: another holds it */
static int   refusing;          /* said so: Redis refuses the script */


/* "<boot id>/<pid namespace inode>": two processes with one host name
 * (two hosts, containers sharing a UTS namespace) see each other's pids
 * only when both match. */
static void
where_pids_are(char *buf, size_t size)
{
    FILE         *f;
    char          id[64];
    struct stat   ns;

    f = fopen("/proc/sys/kernel/random/boot_id", "r");
    if (f == NULL) {
        snprintf(buf, size, "?");
        return;
    }

    if (fscanf(f, "%63s", id) != 1 || stat("/proc/self/ns/pid", &ns) != 0) {
        snprintf(buf, size, "?");
    } else {
        snprintf(buf, size, "%s/%lu", id, (unsigned long) ns.st_ino);
    }

    fclose(f);
}


static const char *
lease_value(void)
{
    unsigned long long  instance;

    if (me[0] == '\0') {
        if (gethostname(host, sizeof(host)) != 0) {
            strcpy(host, "?");
        }
        host[sizeof(host) - 1] = '\0';

        where_pids_are(boot, sizeof(boot));

        if (getrandom(&instance, sizeof(instance), 0)
            != (ssize_t) sizeof(instance))
        {
            instance = ((unsigned long long) random() << 32)
                       ^ (unsigned long long) random();
        }
        snprintf(me, sizeof(me), "%016llx %d %s %s", instance,
                 (int) getpid(), host, boot);
    }

    return me;
}


/* Whether the holder a lease value names ran where this process's pids
 * are its (host, boot, pid namespace) and is gone.  Anything unknown or
 * different: not known gone, the lease is waited out. */
static int
holder_gone(const char *value)
{
    int          pid;
    char         their_host[256], their_boot[80];
    const char  *p = strchr(value, ' ');

    if (p == NULL
        || sscanf(p + 1, "%d %255s %79s", &pid, their_host, their_boot) != 3
        || strcmp(their_host, host) != 0 || strcmp(their_boot, boot) != 0
        || strcmp(boot, "?") == 0 || pid <= 0)
    {
        return 0;
    }

    return kill(pid, 0) != 0 && errno == ESRCH;
}


static void send_ask(lease_ask_t *a, const char *gone);


static void
free_ask(lease_ask_t *a)
{
    free(a->key);
    free(a->name);
    free(a);
}


static void
lease_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    lease_ask_t  *a = privdata;
    redisReply   *reply = r;
    int           held = -1;

    (void) ac;

    /* 1, or 2: free, not written (maxmemory) */
    if (reply != NULL && reply->type == REDIS_REPLY_INTEGER) {
        if (waiting) {
            log_notice("%s: node_name lease taken: workers read jobs",
                       a->name);
            waiting = 0;
        }
        held = 1;

    } else if (reply != NULL && reply->type == REDIS_REPLY_STRING) {
        if (holder_gone(reply->str)) {
            log_notice("%s: node_name lease of gone process %s taken over",
                       a->name, reply->str);
            send_ask(a, reply->str);
            return;
        }

        if (!waiting) {
            log_warn("%s: node_name is held by another sidecar (instance, "
                     "pid, host: %s): this one's workers read nothing until "
                     "it stops or its lease lapses", a->name, reply->str);
            waiting = 1;
        }
        held = 0;

    } else if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
        if (!refusing) {
            log_warn("%s: node_name lease refused: %s (logged again when "
                     "it is taken)", a->name, reply->str);
            refusing = 1;
        }
    }

    if (held != -1 && refusing) {
        log_info("%s: node_name lease taken again", a->name);
        refusing = 0;
    }

    a->done(a->data, held);
    free_ask(a);
}


static void
send_ask(lease_ask_t *a, const char *gone)
{
    char  ttl[16];

    snprintf(ttl, sizeof(ttl), "%d", a->ttl_ms);

    if (offload_redis_command(a->rc, lease_cb, a, "EVAL %s 1 %s %s %s %s",
                              lease_script, a->key, lease_value(), ttl,
                              gone)
        != REDIS_OK)
    {
        a->done(a->data, -1);
        free_ask(a);
    }
}


int
offload_lease_keep(offload_redis_conn_t *rc, const char *key, int ttl_ms,
    const char *name, offload_lease_pt done, void *data)
{
    lease_ask_t  *a;

    if (!rc->ready) {
        return -1;
    }

    a = calloc(1, sizeof(lease_ask_t));
    if (a == NULL) {
        return -1;
    }

    a->rc = rc;
    a->key = strdup(key);
    a->name = strdup(name);
    a->ttl_ms = ttl_ms;
    a->done = done;
    a->data = data;

    if (a->key == NULL || a->name == NULL) {
        free_ask(a);
        return -1;
    }

    send_ask(a, "");
    return 0;
}


int
offload_lease_release(offload_redis_conn_t *rc, const char *key,
    const char *doc_key, const char *runs_key, const char *nodes_key,
    const char *name, redisCallbackFn *done, void *data)
{
    if (!rc->ready) {
        return -1;
    }

    return offload_redis_command(rc, done, data, "EVAL %s 4 %s %s %s %s %s %s",
                                 release_script, key, doc_key, runs_key,
                                 nodes_key, lease_value(), name)
           == REDIS_OK ? 0 : -1;
}
