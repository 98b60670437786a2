/*
 * offloadctl.c -- the operator's command line tool: talks to Redis
 * synchronously (it is a short-lived CLI, blocking is fine) and reads what
 * the sidecars publish there.
 *
 *   offloadctl [-r host:port|unix:/path] [-c sidecar.conf] ping|status [--json]
 *
 * Exit status: 0 ok, 1 runtime error (Redis unreachable...), 2 usage.
 */

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

#include "clock.h"
#include "conf.h"

#define EXIT_USAGE  2


static void
usage(FILE *out)
{
    fprintf(out,
        "usage: offloadctl [-r host:port|unix:/path] [-c sidecar.conf] "
        "<command>\n"
        "\n"
        "commands:\n"
        "  ping             check that Redis answers (prints PONG)\n"
        "  status [--json]  list the registered sidecar nodes, their queues\n"
        "                   (state ok or failed, restarts) and worker\n"
        "                   processes\n"
        "\n"
        "options:\n"
        "  -r, --redis ADDR    Redis address (default: from -c, else "
        "127.0.0.1:6379)\n"
        "  -c, --conf FILE     read redis, password and db from a sidecar "
        "config\n"
        "  -j, --json          status as a JSON array of node documents\n"
        "  -h, --help          this help\n");
}


static redisReply *
command(redisContext *c, const char *fmt, ...)
{
    va_list      ap;
    redisReply  *reply;

    va_start(ap, fmt);
    reply = redisvCommand(c, fmt, ap);
    va_end(ap);

    if (reply == NULL) {
        fprintf(stderr, "offloadctl: redis: %s\n", c->errstr);
        return NULL;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "offloadctl: redis: %s\n", reply->str);
        freeReplyObject(reply);
        return NULL;
    }

    return reply;
}


static redisContext *
connect_redis(const offload_addr_t *addr, const char *password, int db)
{
    redisReply      *reply;
    redisContext    *c;
    struct timeval   timeout = { 2, 0 };

    c = addr->is_unix ? redisConnectUnixWithTimeout(addr->host, timeout)
                      : redisConnectWithTimeout(addr->host, addr->port,
                                                timeout);
    if (c == NULL || c->err) {
        if (addr->is_unix) {
            fprintf(stderr, "offloadctl: cannot connect to unix:%s: %s\n",
                    addr->host, c ? c->errstr : "out of memory");
        } else {
            fprintf(stderr, "offloadctl: cannot connect to %s:%d: %s\n",
                    addr->host, addr->port, c ? c->errstr : "out of memory");
        }
        redisFree(c);
        return NULL;
    }

    redisSetTimeout(c, timeout);

    if (password != NULL) {
        reply = command(c, "AUTH %s", password);
        if (reply == NULL) {
            redisFree(c);
            return NULL;
        }
        freeReplyObject(reply);
    }

    if (db != 0) {
        reply = command(c, "SELECT %d", db);
        if (reply == NULL) {
            redisFree(c);
            return NULL;
        }
        freeReplyObject(reply);
    }

    return c;
}


static int
cmd_ping(redisContext *c)
{
    redisReply  *reply = command(c, "PING");

    if (reply == NULL) {
        return 1;
    }

    printf("%s\n", reply->str);
    freeReplyObject(reply);
    return 0;
}


static int
cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *) a, *(char *const *) b);
}


/* "3d4h", "5m12s", "42s", "0.3s": short and readable. */
static void
format_duration(char *buf, size_t size, int64_t ms)
{
    int64_t  s = ms / 1000;

    if (ms < 0) {
        snprintf(buf, size, "-");
    } else if (ms < 10000) {
        snprintf(buf, size, "%.1fs", ms / 1000.0);
    } else if (s < 3600) {
        snprintf(buf, size, "%lldm%02llds", (long long) (s / 60),
                 (long long) (s % 60));
    } else if (s < 86400) {
        snprintf(buf, size, "%lldh%02lldm", (long long) (s / 3600),
                 (long long) (s / 60 % 60));
    } else {
        snprintf(buf, size, "%lldd%02lldh", (long long) (s / 86400),
                 (long long) (s / 3600 % 24));
    }
}


/* A string member for display: "-" when missing or not a string. */
static const char *
text_of(json_t *obj, const char *key)
{
    const char  *s = json_string_value(json_object_get(obj, key));

    return s ? s : "-";
}


static void
print_node(json_t *doc, int64_t now_ms)
{
    char         up[32], beat[32];
    size_t       i;
    json_t      *queue, *workers, *worker;
    const char  *name;

    format_duration(up, sizeof(up),
        now_ms - json_integer_value(json_object_get(doc, "started")));
    format_duration(beat, sizeof(beat),
        now_ms - json_integer_value(json_object_get(doc, "heartbeat")));

    printf("%-20s %-8lld %-10s %s ago\n",
           text_of(doc, "node"),
           (long long) json_integer_value(json_object_get(doc, "pid")),
           up, beat);

    printf("  %-24s %-20s %-6s %-8s %s\n", "QUEUE", "HANDLER", "STATE",
           "RESTARTS", "WORKERS (slot:pid)");

    json_object_foreach(json_object_get(doc, "queues"), name, queue) {
        printf("  %-24s %-20s %-6s %-8lld", name, text_of(queue, "handler"),
               text_of(queue, "state"),
               (long long) json_integer_value(
                   json_object_get(queue, "restarts")));

        workers = json_object_get(queue, "workers");
        json_array_foreach(workers, i, worker) {
            if (json_is_integer(json_object_get(worker, "pid"))) {
                printf(" %lld:%lld",
                       (long long) json_integer_value(
                           json_object_get(worker, "slot")),
                       (long long) json_integer_value(
                           json_object_get(worker, "pid")));
            } else {
                printf(" %lld:-", (long long) json_integer_value(
                                      json_object_get(worker, "slot")));
            }
        }
        printf("\n");
    }
}


static int
cmd_status(redisContext *c, int as_json)
{
    int            rc = 0;
    size_t         i;
    char         **names;
    json_t        *docs, *doc;
    redisReply    *members, *reply;
    json_error_t   jerr;

    members = command(c, "SMEMBERS %s", OFFLOAD_NODES_KEY);
    if (members == NULL) {
        return 1;
    }

    names = calloc(members->elements + 1, sizeof(char *));
    docs = json_array();
    if (names == NULL || docs == NULL) {
        fprintf(stderr, "offloadctl: out of memory\n");
        free(names);
        json_decref(docs);
        freeReplyObject(members);
        return 1;
    }

    for (i = 0; i < members->elements; i++) {
        names[i] = members->element[i]->str;
    }
    qsort(names, members->elements, sizeof(char *), cmp_names);

    for (i = 0; i < members->elements; i++) {
        reply = command(c, "GET " OFFLOAD_NODE_FMT, names[i]);
        if (reply == NULL) {
            rc = 1;
            break;
        }

        if (reply->type == REDIS_REPLY_NIL) {
            /* its key expired: the node is gone */
            freeReplyObject(reply);
            reply = command(c, "SREM %s %s", OFFLOAD_NODES_KEY, names[i]);
            freeReplyObject(reply);
            continue;
        }

        doc = json_loadb(reply->str, reply->len, 0, &jerr);
        freeReplyObject(reply);

        if (!json_is_object(doc)) {
            fprintf(stderr, "offloadctl: node %s: bad registry entry: %s\n",
                    names[i], doc ? "not an object" : jerr.text);
            json_decref(doc);
            continue;
        }

        json_array_append_new(docs, doc);
    }

    if (rc == 0) {
        if (as_json) {
            json_dumpf(docs, stdout, JSON_COMPACT);
            printf("\n");

        } else if (json_array_size(docs) == 0) {
            printf("no sidecar nodes registered\n");

        } else {
            printf("%-20s %-8s %-10s %s\n", "NODE", "PID", "UPTIME",
                   "HEARTBEAT");
            json_array_foreach(docs, i, doc) {
                if (i > 0) {
                    printf("\n");
                }
                print_node(doc, offload_wall_ms());
            }
        }
    }

    json_decref(docs);
    free(names);
    freeReplyObject(members);
    return rc;
}


int
main(int argc, char **argv)
{
    int              opt, rc, as_json = 0;
    char             err[OFFLOAD_CONF_ERR_MAX];
    const char      *redis = NULL, *conf_file = NULL, *cmd, *password = NULL;
    redisContext    *c;
    offload_addr_t   addr;
    offload_conf_t   conf;

    static const struct option  options[] = {
        { "redis", required_argument, NULL, 'r' },
        { "conf",  required_argument, NULL, 'c' },
        { "json",  no_argument,       NULL, 'j' },
        { "help",  no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };

    while ((opt = getopt_long(argc, argv, "r:c:jh", options, NULL)) != -1) {
        switch (opt) {
        case 'r':
            redis = optarg;
            break;
        case 'c':
            conf_file = optarg;
            break;
        case 'j':
            as_json = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }

    if (optind != argc - 1) {
        usage(stderr);
        return EXIT_USAGE;
    }
    cmd = argv[optind];

    if (strcmp(cmd, "ping") != 0 && strcmp(cmd, "status") != 0) {
        fprintf(stderr, "offloadctl: unknown command \"%s\"\n", cmd);
        usage(stderr);
        return EXIT_USAGE;
    }

    if (as_json && strcmp(cmd, "status") != 0) {
        fprintf(stderr, "offloadctl: --json goes with \"status\"\n");
        return EXIT_USAGE;
    }

    memset(&conf, 0, sizeof(conf));

    if (conf_file != NULL) {
        if (offload_conf_load(&conf, conf_file, err, sizeof(err)) != 0) {
            fprintf(stderr, "offloadctl: %s\n", err);
            return 1;
        }
        addr = conf.redis;
        password = conf.password;
    } else {
        offload_addr_parse(&addr, "127.0.0.1:6379", 14);
    }

    if (redis != NULL && offload_addr_parse(&addr, redis, strlen(redis)) != 0)
    {
        fprintf(stderr, "offloadctl: invalid redis address \"%s\"\n", redis);
        offload_conf_free(&conf);
        return EXIT_USAGE;
    }

    c = connect_redis(&addr, password, conf.db);
    if (c == NULL) {
        offload_conf_free(&conf);
        return 1;
    }

    rc = strcmp(cmd, "ping") == 0 ? cmd_ping(c) : cmd_status(c, as_json);

    redisFree(c);
    offload_conf_free(&conf);
    return rc;
}
