/*
 * offloadctl_status.c -- `status`: every live node with its queues and
 * workers; `queues`: every queue, merged over the nodes, with what Redis
 * holds of it.  Both read the nodes through offload_nodes_script, as
 * offload_status does, so the CLI and the HTTP status never disagree.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "offload_redis_time.h"
#include "offloadctl.h"
#include "redis_clock.h"


static void
print_node(json_t *doc, int node_width, int64_t now_ms)
{
    int          width;
    char         up[32], beat[32], rss[16];
    long long    offset, lost;
    size_t       i;
    json_t      *queues, *queue, *worker;
    const char  *name;

    ctl_duration(up, sizeof(up), now_ms - ctl_int(doc, "started"));
    ctl_duration(beat, sizeof(beat), now_ms - ctl_int(doc, "heartbeat"));

    printf("%-*s %-8lld %-10s %s ago%s\n", node_width, ctl_text(doc, "node"),
           ctl_int(doc, "pid"), up, beat,
           json_is_true(json_object_get(doc, "drained")) ? "  DRAINED" : "");

    /* its jobs are read by Redis' clock, its own timestamps are not */
    offset = ctl_int(doc, "clock_offset_ms");
    if (llabs(offset) >= OFFLOAD_CLOCK_WARN_MS) {
        printf("  CLOCK %.3f s %s Redis'\n", llabs(offset) / 1000.0,
               offset > 0 ? "behind" : "ahead of");
    }

    /* the log cannot say it lost lines while its target refuses them */
    lost = ctl_int(doc, "log_lines_lost");
    if (lost > 0) {
        printf("  LOG %lld line%s lost (a full disk, a reader that stopped "
               "reading)\n", lost, lost == 1 ? "" : "s");
    }

    queues = json_object_get(doc, "queues");
    width = ctl_keys_width(queues, 16);

    printf("  %-*s %-12s %-7s %-8s %s\n", width, "QUEUE", "HANDLER", "STATE",
           "RESTARTS", "WORKERS (slot:pid state rss)");

    json_object_foreach(queues, name, queue) {
        printf("  %-*s %-12s %-7s %-8lld", width, name,
               ctl_text(queue, "handler"), ctl_text(queue, "state"),
               ctl_int(queue, "restarts"));

        json_array_foreach(json_object_get(queue, "workers"), i, worker) {
            ctl_bytes(rss, sizeof(rss), ctl_int(worker, "rss"));
            if (ctl_int(worker, "pid") > 0) {
                printf(" %lld:%lld %s %s", ctl_int(worker, "slot"),
                       ctl_int(worker, "pid"), ctl_text(worker, "state"),
                       rss);
            } else {
                printf(" %lld:- down", ctl_int(worker, "slot"));
            }
        }
        printf("\n");
    }
}


/* Reads the nodes for a command that takes no argument.  With --json it
 * prints what json_of() makes of them and returns NULL with *rc CTL_OK;
 * NULL with another *rc is an error. */
static json_t *
read_nodes(ctl_t *ctl, int argc, char **argv, json_t *(*json_of)(json_t *),
    int *rc)
{
    json_t  *all, *out;

    *rc = CTL_FAIL;

    if (argc > 1) {
        *rc = ctl_usage_error(argv[0], "unexpected argument \"%s\"",
                              argv[1]);
        return NULL;
    }

    all = ctl_nodes(ctl, "", 0);
    if (all == NULL || !ctl->json) {
        return all;
    }

    out = json_of(all);
    json_decref(all);

    if (out == NULL) {
        fprintf(stderr, "offloadctl: out of memory\n");
        return NULL;
    }

    /* 15 digits: a figure of the registry as it was written (0.004, not
     * the 0.0040000000000000001 of all 17) */
    json_dumpf(out, stdout, JSON_COMPACT | JSON_REAL_PRECISION(15));
    printf("\n");
    json_decref(out);
    *rc = CTL_OK;
    return NULL;
}


/* Now by Redis' clock, which the nodes stamp their documents by (ours
 * when TIME fails: said on stderr). */
static int64_t
redis_ms(ctl_t *ctl)
{
    int64_t      us;
    redisReply  *reply;

    reply = ctl_command(ctl, "TIME");
    us = offload_redis_time_us(reply);
    freeReplyObject(reply);

    return us >= 0 ? us / 1000 : offload_wall_ms();
}


/* One object, so that a program also learns of the registry entries left
 * out (a bare array of nodes had no room for them). */
static json_t *
status_json(json_t *all)
{
    return json_pack("{s:O,s:O}", "nodes", json_object_get(all, "nodes"),
                     "malformed_nodes",
                     json_object_get(all, "malformed_nodes"));
}


int
ctl_status(ctl_t *ctl, int argc, char **argv)
{
    int      rc, width = 20;
    size_t   i;
    json_t  *all, *nodes, *doc, *bad;
    int64_t  now;

    all = read_nodes(ctl, argc, argv, status_json, &rc);
    if (all == NULL) {
        return rc;
    }

    nodes = json_object_get(all, "nodes");

    if (json_array_size(nodes) == 0) {
        printf("no sidecar nodes registered\n");

    } else {
        json_array_foreach(nodes, i, doc) {
            if ((int) strlen(ctl_text(doc, "node")) > width) {
                width = (int) strlen(ctl_text(doc, "node"));
            }
        }

        printf("%-*s %-8s %-10s %s\n", width, "NODE", "PID", "UPTIME",
               "HEARTBEAT");
        now = redis_ms(ctl);
        json_array_foreach(nodes, i, doc) {
            if (i > 0) {
                printf("\n");
            }
            print_node(doc, width, now);
        }
    }

    /* registry entries the script left out (another program's, another
     * version's) */

    json_array_foreach(json_object_get(all, "malformed_nodes"), i, bad) {
        printf("\n%-20s malformed registry entry, left out: %s\n",
               ctl_text(bad, "node"), ctl_text(bad, "error"));
    }

    json_decref(all);
    return CTL_OK;
}


static json_t *
queues_json(json_t *all)
{
    return json_incref(json_object_get(all, "queues"));
}


/* A figure of the merged queue, or "-" when no node knows it yet: a
 * count, an age (ms), or a run time (ms, with a fraction). */
enum { COUNT, AGE, RUN };

static const char *
figure(char *buf, size_t size, json_t *q, const char *key, int kind)
{
    double  v = ctl_num(q, key);

    if (v < 0 || v > CTL_FIGURE_MAX) {
        return "-";
    }

    if (kind == AGE) {
        ctl_duration(buf, size, (int64_t) v);
    } else if (kind == RUN) {
        ctl_run_time(buf, size, v);
    } else if (v == (long long) v) {
        snprintf(buf, size, "%lld", (long long) v);
    } else {
        snprintf(buf, size, "%.1f", v);
    }

    return buf;
}


int
ctl_queues(ctl_t *ctl, int argc, char **argv)
{
    int          rc, width;
    char         b[9][32];
    json_t      *all, *queues, *q;
    const char  *name;

    all = read_nodes(ctl, argc, argv, queues_json, &rc);
    if (all == NULL) {
        return rc;
    }

    queues = json_object_get(all, "queues");

    if (json_object_size(queues) == 0) {
        printf("no queues: no sidecar nodes registered\n");
        json_decref(all);
        return CTL_OK;
    }

    width = ctl_keys_width(queues, 16);

    printf("%-*s %-8s %7s %7s %7s %7s %7s %7s %7s %6s %6s\n", width, "QUEUE",
           "STATE", "WORKERS", "BACKLOG", "PENDING", "OLDEST", "JOBS/S",
           "RUN-P50", "RUN-P99", "DEAD", "RETRY");

    json_object_foreach(queues, name, q) {
        printf("%-*s %-8s %7lld %7s %7s %7s %7s %7s %7s %6s %6s\n", width,
               name, ctl_text(q, "state"), ctl_int(q, "workers"),
               figure(b[0], sizeof(b[0]), q, "backlog", COUNT),
               figure(b[1], sizeof(b[1]), q, "pending", COUNT),
               figure(b[2], sizeof(b[2]), q, "oldest_ms", AGE),
               figure(b[3], sizeof(b[3]), q, "jobs_per_s", COUNT),
               figure(b[4], sizeof(b[4]), q, "run_p50_ms", RUN),
               figure(b[5], sizeof(b[5]), q, "run_p99_ms", RUN),
               figure(b[6], sizeof(b[6]), q, "dead", COUNT),
               figure(b[7], sizeof(b[7]), q, "retrying", COUNT));
    }

    json_decref(all);
    return CTL_OK;
}
