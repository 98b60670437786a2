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

#include "cluster_map.h"
#include "offloadctl.h"
#include "sentinel_sync.h"

#define DEFAULT_CONF  "/etc/offload/sidecar.conf"


static int ctl_ping(ctl_t *ctl, int argc, char **argv);


static const struct {
    const char      *name;
    ctl_command_pt   run;
} commands[] = {
    { "ping",    ctl_ping },
    { "status",  ctl_status },
    { "queues",  ctl_queues },
    { "top",     ctl_top },
    { "events",  ctl_events },
    { "dead",    ctl_dead },
    { "retry",   ctl_retry },
    { "purge",   ctl_purge },
    { "replay",  ctl_replay },
    { "drain",   ctl_drain },
    { "resume",  ctl_resume },
    { "submit",  ctl_submit },
    { "result",  ctl_result },
    { NULL, NULL }
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
        "  top [-s SORT] [-d SECS] [-n N] [-b]\n"
        "                              refreshing worker table; keys m c h "
        "r j sort by\n"
        "                              memory, cpu, held jobs, restarts, "
        "jobs; q quits;\n"
        "                              -b prints N frames (batch mode)\n"
        "  events [-f] [-n N]          the last N (20) crashes, restarts, "
        "pool failures...;\n"
        "                              -f follows until interrupted\n"
        "  dead QUEUE                  the queue's dead letters (on every "
        "Redis)\n"
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
        "--deadline;\n"
        "                              --traceparent TP: the job's W3C "
        "trace context;\n"
        "                              exit 3: Redis did not answer its "
        "XADD, the job\n"
        "                              (its id printed) may have been "
        "queued\n"
        "  result QUEUE JOB            a job's stored result (exit 1 unless "
        "2xx, or\n"
        "                              none: unknown, not finished, "
        "expired)\n"
        "\n"
        "options:\n"
        "  -r, --redis ADDR    Redis address (or sentinel://host:port,.../"
        "master,\n"
        "                      cluster://host:port,...),\n"
        "                      repeatable: status, queues, top, events "
        "and dead\n"
        "                      read every one; retry, purge and replay the "
        "one\n"
        "                      holding the queue (default: every Redis of "
        "the\n"
        "                      config's queues, else 127.0.0.1:6379)\n"
        "  -c, --conf FILE     the sidecar's config: Redis address, "
        "redis_user,\n"
        "                      password, db, queues and handlers "
        "(default:\n"
        "                      $OFFLOAD_CONF, else " DEFAULT_CONF " if it "
        "exists)\n"
        "  -j, --json          status, queues, events and dead print JSON\n"
        "  -h, --help          this help\n"
        "\n"
        "exit status: 0 ok, 1 error or not found, 2 usage, 3 submit's "
        "outcome unknown,\n"
        "             4 replay's handler process died or answered wrong\n");
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


redisContext *
ctl_connect(const offload_addr_t *addr, const char *user,
    const char *password, int db, const char *name)
{
    redisReply      *reply;
    redisContext    *c;
    struct timeval   timeout = { CTL_TIMEOUT_S, 0 };

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
ctl_find_master(offload_redis_endpoint_t *ep)
{
    char  err[640];

    if ((ep->nseeds > 0
         ? offload_cluster_find_master(ep, CTL_TIMEOUT_S * 1000,
                                       CTL_TIMEOUT_S * 1000, err,
                                       sizeof(err))
         : offload_sentinel_find_master(ep, CTL_TIMEOUT_S * 1000,
                                        CTL_TIMEOUT_S * 1000, NULL, NULL,
                                        err, sizeof(err)))
        != 0)
    {
        fprintf(stderr, "offloadctl: %s\n", err);
        return -1;
    }

    return 0;
}


/* The Redis servers to read: each -r (logging in as the config says),
 * else each distinct one of the config's queues, else the default. */
static int
find_servers(ctl_t *ctl, offload_conf_t *conf, const char **redis,
    int nredis)
{
    int           r;
    char          err[OFFLOAD_CONF_ERR_MAX];
    size_t                    q, s;
    ctl_redis_t              *srv;
    offload_redis_endpoint_t  ep;

    for (r = 0; r < nredis; r++) {
        srv = &ctl->servers[ctl->nservers++];
        srv->ep = conf->redis;

        if (offload_redis_endpoint_parse(&srv->ep, redis[r], err,
                                         sizeof(err))
            != 0)
        {
            fprintf(stderr, "offloadctl: %s\n", err);
            return -1;
        }
    }

    for (q = 0; nredis == 0 && q < conf->nqueues; q++) {
        /* a cluster is read on its control shard (the node documents);
         * a queue's own commands go to its master (ctl_use_queue()) */
        ep = conf->queues[q].redis;
        ep.slot = offload_redis_control_slot();

        for (s = 0; s < ctl->nservers; s++) {
            if (offload_redis_endpoint_same(&ctl->servers[s].ep, &ep)) {
                break;
            }
        }

        if (s == ctl->nservers && ctl->nservers < CTL_REDIS_MAX) {
            ctl->servers[ctl->nservers++].ep = ep;
        }
    }

    if (ctl->nservers == 0) {
        ctl->servers[ctl->nservers++].ep = conf->redis;
    }

    for (s = 0; s < ctl->nservers; s++) {
        srv = &ctl->servers[s];
        offload_redis_endpoint_name(&srv->ep, srv->name, sizeof(srv->name));
    }

    return 0;
}


static int
find_masters(ctl_t *ctl)
{
    size_t        s;
    ctl_redis_t  *srv;

    for (s = 0; s < ctl->nservers; s++) {
        srv = &ctl->servers[s];

        if ((srv->ep.nsentinels > 0 || srv->ep.nseeds > 0)
            && ctl_find_master(&srv->ep) != 0)
        {
            return -1;
        }
    }

    return 0;
}


int
main(int argc, char **argv)
{
    int              opt, rc, i, k, n, nredis = 0;
    size_t           s;
    char             err[OFFLOAD_CONF_ERR_MAX];
    ctl_t            ctl;
    ctl_redis_t      servers[CTL_REDIS_MAX];
    const char      *redis[CTL_REDIS_MAX], *conf_file = NULL;
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
            if (nredis == CTL_REDIS_MAX) {
                fprintf(stderr, "offloadctl: more than %d -r\n",
                        CTL_REDIS_MAX);
                return CTL_USAGE;
            }
            redis[nredis++] = optarg;
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

    /* "offloadctl submit --help": the usage, as git's commands answer,
     * not an unknown option after a connect; -h only right after the
     * command (not an option's value) */
    for (k = optind + 1; k < argc && strcmp(argv[k], "--") != 0; k++) {
        if (strcmp(argv[k], "--help") == 0
            || (k == optind + 1 && strcmp(argv[k], "-h") == 0))
        {
            usage(stdout);
            return CTL_OK;
        }
    }

    /* top draws on the terminal through ncurses, and guards its -b */
    if (commands[i].run != ctl_top) {
        ctl_tty_guard();
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
    if (conf_file == NULL && nredis == 0) {
        conf_file = getenv("OFFLOAD_CONF");
        if (conf_file == NULL && access(DEFAULT_CONF, R_OK) == 0) {
            conf_file = DEFAULT_CONF;
        }
    }

    if (conf_file != NULL) {
        offload_conf_queues_optional();

        if (offload_conf_load(&conf, conf_file, err, sizeof(err)) != 0) {
            fprintf(stderr, "offloadctl: %s\n", err);
            return CTL_FAIL;
        }
        ctl.conf = &conf;
    } else {
        offload_addr_parse(&conf.redis.addr, "127.0.0.1:6379", 14);
    }

    memset(servers, 0, sizeof(servers));
    ctl.servers = servers;

    if (find_servers(&ctl, &conf, redis, nredis) != 0) {
        offload_conf_free(&conf);
        return CTL_USAGE;
    }

    if (find_masters(&ctl) != 0) {
        offload_conf_free(&conf);
        return CTL_FAIL;
    }

    for (s = 0; s < ctl.nservers; s++) {
        servers[s].redis = ctl_connect(&servers[s].ep.addr,
                                       servers[s].ep.user,
                                       servers[s].ep.password,
                                       servers[s].ep.db, servers[s].name);
        if (servers[s].redis == NULL) {
            rc = CTL_FAIL;
            goto done;
        }
    }

    ctl_use(&ctl, 0);
    rc = commands[i].run(&ctl, argc - optind, argv + optind);

done:

    for (s = 0; s < ctl.nservers; s++) {
        redisFree(servers[s].redis);
    }

    redisFree(ctl.queue_redis);

    offload_conf_free(&conf);
    return rc;
}
