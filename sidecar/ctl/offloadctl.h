/*
 * offloadctl.h -- what the offloadctl commands share: the Redis connection
 * (synchronous: a short-lived CLI may block), the sidecar configuration
 * when -c gave one, output helpers.  One file per group of commands:
 *
 *   offloadctl.c          options, dispatch, usage
 *   offloadctl_util.c     the helpers below
 *   offloadctl_merge.c    one view of the nodes of several Redis servers
 *   offloadctl_status.c   status, queues
 *   offloadctl_top.c      top (ncurses)
 *   offloadctl_events.c   events [-f]
 *   offloadctl_dead.c     dead, retry, purge
 *   offloadctl_replay.c   replay [--gdb]
 *   offloadctl_drain.c    drain, resume
 *   offloadctl_submit.c   submit, result (through liboffload)
 *   offloadctl_tty.c      control characters shown, not obeyed, on a
 *                         terminal
 */

#ifndef OFFLOADCTL_H
#define OFFLOADCTL_H

#include <stdint.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

#include "conf.h"

#define CTL_OK     0
#define CTL_FAIL   1        /* runtime error, or what was asked for is not
                               there */
#define CTL_USAGE  2
#define CTL_UNKNOWN  3      /* submit: the job's XADD went unanswered, it
                               may have been queued (its id printed) */

/* Every connect and command waits at most this long (SO_RCVTIMEO): a
 * Redis that stops answering ends the command with an error. */
#define CTL_TIMEOUT_S  2

/* Every -r, else every distinct Redis of the config's queues (sharding by
 * queue), else 127.0.0.1:6379. */
#define CTL_REDIS_MAX  16

typedef struct {
    redisContext              *redis;   /* NULL for submit and result */
    offload_redis_endpoint_t   ep;      /* strings: the config's */
    char                       name[300];
} ctl_redis_t;

typedef struct {
    /* The Redis a command talks to: ctl_use() picks one of servers. */
    redisContext          *redis;       /* NULL for submit and result */
    offload_conf_t        *conf;        /* from -c, else NULL */
    const offload_addr_t  *addr;        /* Redis, and how to log in */
    const char            *user;
    const char            *password;
    int                    db;
    const char            *redis_name;  /* "host:port", for headers */
    ctl_redis_t           *servers;
    size_t                 nservers;
    /* With a cluster: the connection to the master of the queue last
     * named to ctl_use_queue(), and its address. */
    redisContext          *queue_redis;
    offload_addr_t         queue_addr;
    int                    json;        /* --json */
    int                    argc;        /* the whole command line */
    char                 **argv;
} ctl_t;

/* A command's entry point: argv[0] is the command's name. */
typedef int (*ctl_command_pt)(ctl_t *ctl, int argc, char **argv);

/* Makes servers[i] the Redis later commands talk to. */
void ctl_use(ctl_t *ctl, size_t i);

/* As ctl_use(), for commands on queue's keys: with a cluster, the master
 * of the queue's slot (connected to now).  Returns CTL_OK or CTL_FAIL
 * (printed why). */
int ctl_use_queue(ctl_t *ctl, size_t i, const char *queue);

/* Connects to addr (logging in, selecting db); NULL with the reason
 * printed on stderr (name: the server's, for it). */
redisContext *ctl_connect(const offload_addr_t *addr, const char *user,
    const char *password, int db, const char *name);

/* The master of ep (its sentinels', or with a cluster that of ep->slot)
 * becomes ep->addr.  Returns 0 or -1 (printed why). */
int ctl_find_master(offload_redis_endpoint_t *ep);

/* The servers (their indexes, into index: CTL_REDIS_MAX of them) that
 * may hold queue: the config's Redis of the queue when it is one of
 * servers, else every one.  Returns how many. */
size_t ctl_queue_servers(ctl_t *ctl, const char *queue, size_t *index);

/* Whether queue's stream (key) is on servers[i], made the one: 1, 0, or
 * -1 on a Redis error (printed). */
int ctl_queue_on(ctl_t *ctl, size_t i, const char *queue, const char *key);

/* Makes the Redis holding queue the one: the config's Redis of it, else
 * the only server, else the one server where its stream key exists (with
 * a cluster: the master of the queue's slot, ctl_use_queue()).
 * Returns CTL_OK, CTL_FAIL (on none of them, or a Redis error) or
 * CTL_USAGE (on several: -r must name one), printed why. */
int ctl_find_queue(ctl_t *ctl, const char *cmd, const char *queue);

/* Merges into all (ctl_nodes() of one Redis) the view of another: one
 * document per node (a node serving queues on both lists them all), the
 * union of the queues, the workers sorted as the script sorts them (by
 * sort, then node, queue, slot) and cut to limit (0: all). */
void ctl_nodes_merge(json_t *all, json_t *more, const char *sort,
    int limit);

/* A command, or NULL with the reason printed on stderr. */
redisReply *ctl_command(ctl_t *ctl, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
redisReply *ctl_command_argv(ctl_t *ctl, int argc, const char **argv,
    const size_t *argvlen);

/* Every live node's documents, merged queues and sorted workers
 * (offload_nodes_script, "json"), over every Redis of servers: an object,
 * or NULL (printed why). */
json_t *ctl_nodes(ctl_t *ctl, const char *sort, int limit);

/* The queue names to look at: from -c, else from the live nodes.  A
 * NULL-terminated array to free with ctl_free_names. */
char **ctl_queue_names(ctl_t *ctl);
void ctl_free_names(char **names);

/* Prints a usage error for cmd and returns CTL_USAGE. */
int ctl_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Reads text, all of it, as a whole number from 0 to INT_MAX into *n.
 * Returns 0, or CTL_USAGE with a usage error naming cmd's option opt. */
int ctl_count(const char *cmd, char opt, const char *text, int *n);

/* "3d4h", "5m12s", "42s", "0.3s"; "-" when negative. */
void ctl_duration(char *buf, size_t size, int64_t ms);

/* A run-time quantile (ms, a fraction) to four significant digits
 * (1.302s, 260.1ms, 4.250ms, 40us: the figure is within 2% of the truth,
 * and rounding adds at most 0.05%); "-" when negative (no jobs). */
void ctl_run_time(char *buf, size_t size, double ms);

/* "12.5M", "980K": a byte count in 6 columns or fewer. */
void ctl_bytes(char *buf, size_t size, long long bytes);

/* A count in at most width characters (a table's column): whole while it
 * fits, else in thousands, millions... (1235k, 12.3M), as top prints; "-"
 * for none (negative: never -1, which a script may feed kill). */
void ctl_figure(char *buf, size_t size, long long v, int width);

/* An entry id's time ("1700000000000-0") as ISO 8601 UTC with ms. */
void ctl_entry_time(char *buf, size_t size, const char *entry_id);

/* More than any figure of a document can be (ms since the epoch, counts,
 * bytes): a document written by hand (1e300, -9223372036854775807) would
 * overflow the arithmetic done with it. */
#define CTL_FIGURE_MAX  1e15

/* A member of obj: its string ("-" when not a string), its integer (-1
 * when not a number, or beyond CTL_FIGURE_MAX either way), its number. */
const char *ctl_text(json_t *obj, const char *key);
long long ctl_int(json_t *obj, const char *key);
double ctl_num(json_t *obj, const char *key);

/* A table's name column: as wide as the longest of obj's keys, at least
 * min (a longer name widens the column, not shifts its row). */
int ctl_keys_width(json_t *obj, int min);

/* The jobs a worker slot w finished, whatever their result (a count a
 * node does not report, from an older sidecar, as 0). */
long long ctl_worker_jobs(json_t *w);

/* Calls visit for every entry of the stream key whose "id" field is
 * job_id (every one when job_id is NULL), oldest first, up to the last
 * one when called (not those visits add), stopping at the first non-zero
 * return.  Returns how many were visited, or -1 (a Redis
 * error, or visit failed). */
typedef int (*ctl_visit_pt)(ctl_t *ctl, const char *queue, const char *key,
    const redisReply *entry, void *data);

long ctl_each_entry(ctl_t *ctl, const char *queue, const char *key,
    const char *job_id, ctl_visit_pt visit, void *data);

/* A stream entry's id ([id, fields]), or NULL when it is no entry. */
const char *ctl_entry_id(const redisReply *entry);

/* The value of a field of a stream entry, or NULL. */
const char *ctl_entry_field(const redisReply *entry, const char *name);

/* A stream entry's field/value array as an object of strings. */
json_t *ctl_entry_fields(const redisReply *fields);

/* Makes standard output and error print control characters as '?' when
 * they are a terminal (offloadctl_tty.c). */
void ctl_tty_guard(void);

int ctl_status(ctl_t *ctl, int argc, char **argv);
int ctl_queues(ctl_t *ctl, int argc, char **argv);
int ctl_top(ctl_t *ctl, int argc, char **argv);
int ctl_events(ctl_t *ctl, int argc, char **argv);
int ctl_dead(ctl_t *ctl, int argc, char **argv);
int ctl_retry(ctl_t *ctl, int argc, char **argv);
int ctl_purge(ctl_t *ctl, int argc, char **argv);
int ctl_replay(ctl_t *ctl, int argc, char **argv);
int ctl_drain(ctl_t *ctl, int argc, char **argv);
int ctl_resume(ctl_t *ctl, int argc, char **argv);
int ctl_submit(ctl_t *ctl, int argc, char **argv);
int ctl_result(ctl_t *ctl, int argc, char **argv);

#endif /* OFFLOADCTL_H */
