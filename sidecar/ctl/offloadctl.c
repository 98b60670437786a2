/*
 * offloadctl.c -- the operator's command line tool: reads what the sidecars
 * publish in Redis and acts on queues and nodes.  Options, dispatch and
 * usage live here; each group of commands has its own offloadctl_*.c
 * (offloadctl.h lists them).
 *
 * Exit status: 0 ok, 1 runtime error or not found, 2 usage.
 */

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "offloadctl.h"

#define DEFAULT_CONF  "/etc/offload/sidecar.conf"


static int ctl_ping(ctl_t *ctl, int argc, char **argv);


/* own_redis: the command connects through liboffload itself. */
static const struct {
    const char      *name;
    ctl_command_pt   run;
    int              own_redis;
} commands[] = {
    { "ping",    ctl_ping,   0 },
    { "status",  ctl_status, 0 },
    { "queues",  ctl_queues, 0 },
    { "top",     ctl_top,    0 },
    { "events",  ctl_events, 0 },
    { "dead",    ctl_dead,   0 },
    { "retry",   ctl_retry,  0 },
    { "purge",   ctl_purge,  0 },
    { "replay",  ctl_replay, 0 },
    { "drain",   ctl_drain,  0 },
    { "resume",  ctl_resume, 0 },
    { "submit",  ctl_submit, 1 },
    { "result",  ctl_result, 1 },
    { NULL, NULL, 0 }
};


static void
usage(FILE *out)
{
    fprintf(out,
        "usage: offloadctl [-r host:port|unix:/path] [-c sidecar.conf] "
        "[--json] <command>\n"
        "\n"
        "commands:\n"
        "  ping                        check that Redis answers\n"
        "  status                      live sidecar nodes, their queues and "
        "workers\n"
        "  queues                      every queue: state, workers, backlog, "
        "pending,\n"
        "                              oldest waiting job, jobs/s, run p50/"
        "p99, dead,\n"
        "                              retrying\n"
        "  top [-s SORT] [-d SECS] [-b [-n N]]\n"
        "                              refreshing worker table; keys m c h "
        "r j sort by\n"
        "                              memory, cpu, held jobs, restarts, "
        "jobs; q quits;\n"
        "                              -b prints N frames (batch mode)\n"
        "  events [-f] [-n N]          the last N (20) crashes, restarts, "
        "pool failures...;\n"
        "                              -f follows until interrupted\n"
        "  dead QUEUE                  the queue's dead letters\n"
        "  retry QUEUE JOB|--all       put dead letters back on the queue\n"
        "  purge QUEUE JOB...|--all    delete dead letters\n"
        "  replay JOB [--queue Q] [--gdb]\n"
        "                              run a dead or queued job's handler "
        "here, in the\n"
        "                              foreground (needs -c), under gdb "
        "with --gdb\n"
        "  drain [-t SECS] NODE        the node's workers finish their jobs "
        "and take no\n"
        "                              more; waits SECS (30) for it, 0: no "
        "wait\n"
        "  resume [-t SECS] NODE       the node takes jobs again\n"
        "  submit QUEUE JSON|@FILE|- [--wait [--timeout T]] [--deadline T]\n"
        "                              submit a job; prints its id, or with "
        "--wait its\n"
        "                              result (exit 1 unless 2xx); --timeout "
        "(30s) is\n"
        "                              the wait and by default the job's "
        "deadline;\n"
        "                              without --wait no deadline unless "
        "--deadline\n"
        "  result QUEUE JOB            a job's stored result (exit 1 unless "
        "2xx, or\n"
        "                              none: unknown, not finished, "
        "expired)\n"
        "\n"
        "options:\n"
        "  -r, --redis ADDR    Redis address (default: from the config, "
        "else\n"
        "                      127.0.0.1:6379)\n"
        "  -c, --conf FILE     the sidecar's config: Redis address, "
        "redis_user,\n"
        "                      password, db, queues and handlers "
        "(default:\n"
        "                      $OFFLOAD_CONF, else " DEFAULT_CONF " if it "
        "exists)\n"
        "  -j, --json          status, queues, events and dead print JSON\n"
        "  -h, --help          this help\n"
        "\n"
        "exit status: 0 ok, 1 error or not found, 2 usage\n");
}


static int
ctl_ping(ctl_t *ctl, int argc, char **argv)
{
    redisReply  *reply;

    if (argc > 1) {
        return ctl_usage_error(argv[0], "unexpected argument \"%s\"",
                               argv[1]);
    }

    reply = ctl_command(ctl, "PING");
    if (reply == NULL) {
        return CTL_FAIL;
    }

    printf("%s\n", reply->str);
    freeReplyObject(reply);
    return CTL_OK;
}


static redisContext *
connect_redis(const offload_addr_t *addr, const char *user,
    const char *password, int db, char *name, size_t size)
{
    redisReply      *reply;
    redisContext    *c;
    struct timeval   timeout = { CTL_TIMEOUT_S, 0 };

    offload_addr_format(addr, name, size);

    if (addr->is_unix) {
        c = redisConnectUnixWithTimeout(addr->host, timeout);
    } else {
        c = redisConnectWithTimeout(addr->host, addr->port, timeout);
    }

    if (c == NULL || c->err) {
        fprintf(stderr, "offloadctl: cannot connect to %s: %s\n", name,
                c ? c->errstr : "out of memory");
        redisFree(c);
        return NULL;
    }

    redisSetTimeout(c, timeout);
    if (!addr->is_unix) {
        redisEnableKeepAlive(c);
    }

    reply = NULL;
    if (password != NULL) {
        reply = user != NULL ? redisCommand(c, "AUTH %s %s", user, password)
                             : redisCommand(c, "AUTH %s", password);
    }
    if ((password == NULL || (reply && reply->type != REDIS_REPLY_ERROR))
        && db != 0)
    {
        freeReplyObject(reply);
        reply = redisCommand(c, "SELECT %d", db);
    }

    if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "offloadctl: redis: %s\n", reply->str);
        freeReplyObject(reply);
        redisFree(c);
        return NULL;
    }

    if (reply == NULL && (password != NULL || db != 0)) {
        fprintf(stderr, "offloadctl: redis: %s\n", c->errstr);
        redisFree(c);
        return NULL;
    }

    freeReplyObject(reply);
    return c;
}


int
main(int argc, char **argv)
{
    int              opt, rc, i, k, n;
    char             err[OFFLOAD_CONF_ERR_MAX], name[300];
    ctl_t            ctl;
    const char      *redis = NULL, *conf_file = NULL, *password = NULL;
    offload_addr_t   addr;
    offload_conf_t   conf;

    static const struct option  options[] = {
        { "redis", required_argument, NULL, 'r' },
        { "conf",  required_argument, NULL, 'c' },
        { "json",  no_argument,       NULL, 'j' },
        { "help",  no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };

    memset(&ctl, 0, sizeof(ctl));
    ctl.argc = argc;
    ctl.argv = argv;

    /* "+": options end at the command, which has options of its own */
    while ((opt = getopt_long(argc, argv, "+r:c:jh", options, NULL)) != -1) {
        switch (opt) {
        case 'r':
            redis = optarg;
            break;
        case 'c':
            conf_file = optarg;
            break;
        case 'j':
            ctl.json = 1;
            break;
        case 'h':
            usage(stdout);
            return CTL_OK;
        default:
            usage(stderr);
            return CTL_USAGE;
        }
    }

    if (optind >= argc) {
        usage(stderr);
        return CTL_USAGE;
    }

    for (i = 0; commands[i].name; i++) {
        if (strcmp(commands[i].name, argv[optind]) == 0) {
            break;
        }
    }

    if (commands[i].name == NULL) {
        fprintf(stderr, "offloadctl: unknown command \"%s\"\n", argv[optind]);
        usage(stderr);
        return CTL_USAGE;
    }

    /* --json may also follow the command: "offloadctl status --json" */
    for (k = optind + 1, n = optind + 1; k < argc; k++) {
        if (strcmp(argv[k], "--json") == 0 || strcmp(argv[k], "-j") == 0) {
            ctl.json = 1;
        } else {
            argv[n++] = argv[k];
        }
    }
    argc = n;
    ctl.argc = argc;

    memset(&conf, 0, sizeof(conf));

    /* Without -c or -r: $OFFLOAD_CONF, else the systemd unit's config when
     * this host has one, as the sidecar it runs beside would read it. */
    if (conf_file == NULL && redis == NULL) {
        conf_file = getenv("OFFLOAD_CONF");
        if (conf_file == NULL && access(DEFAULT_CONF, R_OK) == 0) {
            conf_file = DEFAULT_CONF;
        }
    }

    if (conf_file != NULL) {
        if (offload_conf_load(&conf, conf_file, err, sizeof(err)) != 0) {
            fprintf(stderr, "offloadctl: %s\n", err);
            return CTL_FAIL;
        }
        ctl.conf = &conf;
        addr = conf.redis.addr;
        password = conf.redis.password;
    } else {
        offload_addr_parse(&addr, "127.0.0.1:6379", 14);
    }

    if (redis != NULL && offload_addr_parse(&addr, redis, strlen(redis)) != 0)
    {
        fprintf(stderr, "offloadctl: invalid redis address \"%s\"\n", redis);
        offload_conf_free(&conf);
        return CTL_USAGE;
    }

    ctl.addr = &addr;
    ctl.user = conf.redis.user;
    ctl.password = password;
    ctl.db = conf.redis.db;

    if (!commands[i].own_redis) {
        ctl.redis = connect_redis(&addr, conf.redis.user, password,
                                  conf.redis.db, name, sizeof(name));
        if (ctl.redis == NULL) {
            offload_conf_free(&conf);
            return CTL_FAIL;
        }
        ctl.redis_name = name;
    }

    rc = commands[i].run(&ctl, argc - optind, argv + optind);

    redisFree(ctl.redis);
    offload_conf_free(&conf);
    return rc;
}
