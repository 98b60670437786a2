/*
 * offloadctl_drain.c -- `drain <node>` / `resume <node>`: sets or deletes
 * offload:{ctl}:drain:<node>.  The node reads the flag every heartbeat;
 * drained, its workers finish what they hold and read no new jobs (state
 * "paused"), while every other node goes on.  The command waits (-t
 * seconds, default 30; 0: do not wait) until the node's registry documents
 * (one on each Redis it uses) show the change on every live worker.
 */

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "offloadctl.h"


/* The node's document on servers[s] into doc (NULL: none); -1 on a
 * Redis error (printed). */
static int
node_doc(ctl_t *ctl, size_t s, const char *node, json_t **doc)
{
    redisReply   *reply;
    json_error_t  jerr;

    ctl_use(ctl, s);

    *doc = NULL;
    reply = ctl_command(ctl, "GET " OFFLOAD_NODE_FMT, node);
    if (reply == NULL) {
        return -1;
    }

    if (reply->type == REDIS_REPLY_STRING) {
        *doc = json_loadb(reply->str, reply->len, 0, &jerr);
    }

    freeReplyObject(reply);
    return 0;
}


/* Whether one document shows the node drained (every live worker paused
 * or starting) or resumed (none paused); adds its live workers to
 * nworkers. */
static int
doc_settled(json_t *doc, int drained, int *nworkers)
{
    size_t       i;
    json_t      *q, *w;
    const char  *name, *state;

    if (json_is_true(json_object_get(doc, "drained")) != drained) {
        return 0;
    }

    json_object_foreach(json_object_get(doc, "queues"), name, q) {
        json_array_foreach(json_object_get(q, "workers"), i, w) {
            state = ctl_text(w, "state");
            if (strcmp(state, "down") == 0) {
                continue;
            }
            (*nworkers)++;
            /* starting (an init, a load: wait_ready): it reads no job
             * before it has looked at the drain */
            if (drained && strcmp(state, "starting") == 0) {
                continue;
            }
            if ((strcmp(state, "paused") == 0) != drained) {
                return 0;
            }
        }
    }

    return 1;
}


/* How many Redis servers hold a document of the node; with settled, also
 * whether every one of them shows the change (a node's document on each
 * Redis lists only the queues that live there), counting the workers: not
 * while a Redis does not answer (its workers are unseen). */
static size_t
node_docs(ctl_t *ctl, const char *node, int drained, int *settled,
    int *nworkers)
{
    size_t   s, found = 0;
    json_t  *doc;

    if (settled) {
        *settled = 1;
        *nworkers = 0;
    }

    for (s = 0; s < ctl->nservers; s++) {
        if (node_doc(ctl, s, node, &doc) != 0) {
            if (settled) {
                *settled = 0;
            }
            continue;
        }

        if (doc == NULL) {
            continue;
        }

        found++;
        if (settled && !doc_settled(doc, drained, nworkers)) {
            *settled = 0;
        }
        json_decref(doc);
    }

    ctl_use(ctl, 0);
    return found;
}


static int
set_drained(ctl_t *ctl, int argc, char **argv, int drained)
{
    int          opt, wait_s = 30, n = 0, done = 0, settled;
    char         key[OFFLOAD_KEY_MAX];
    size_t       s;
    int64_t      deadline;
    redisReply  *reply;
    const char  *node;

    optind = 0;         /* 0: glibc starts afresh, options may follow
                           the node ("drain alpha -t 5") */
    while ((opt = getopt(argc, argv, "t:")) != -1) {
        if (opt != 't') {
            return CTL_USAGE;
        }
        if (ctl_count(argv[0], 't', optarg, &wait_s) != 0) {
            return CTL_USAGE;
        }
    }

    if (optind != argc - 1) {
        return ctl_usage_error(argv[0], "wants [-t seconds] and one node");
    }

    node = argv[optind];

    if (node_docs(ctl, node, drained, NULL, NULL) == 0) {
        fprintf(stderr, "offloadctl %s: no live node named \"%s\"\n",
                argv[0], node);
        return CTL_FAIL;
    }

    /* on every Redis: the node is drained while any one says so */
    snprintf(key, sizeof(key), OFFLOAD_DRAIN_FMT, node);

    for (s = 0; s < ctl->nservers; s++) {
        ctl_use(ctl, s);
        reply = drained ? ctl_command(ctl, "SET %s 1 EX %d", key,
                                      OFFLOAD_DRAIN_TTL_S)
                        : ctl_command(ctl, "DEL %s", key);
        if (reply == NULL) {
            return CTL_FAIL;
        }
        freeReplyObject(reply);
    }

    ctl_use(ctl, 0);

    if (wait_s == 0) {
        printf("node %s: %s asked\n", node, drained ? "drain" : "resume");
        return CTL_OK;
    }

    deadline = offload_mono_us() + (int64_t) wait_s * 1000000;

    while (!done && offload_mono_us() < deadline) {
        done = node_docs(ctl, node, drained, &settled, &n) > 0 && settled;
        if (!done) {
            usleep(100 * 1000);
        }
    }

    if (!done) {
        /* the flag is set: the node goes on, this only stops watching */
        fprintf(stderr, "offloadctl %s: node %s did not %s within %d s "
                "(%s asked: it goes on; `offloadctl status` shows it)\n",
                argv[0], node, drained ? "drain" : "resume", wait_s,
                drained ? "the drain is" : "the resume is");
        return CTL_FAIL;
    }

    printf("node %s %s: %d worker%s %s\n", node,
           drained ? "drained" : "resumed", n, n == 1 ? "" : "s",
           drained ? "paused" : "taking jobs");
    return CTL_OK;
}


int
ctl_drain(ctl_t *ctl, int argc, char **argv)
{
    return set_drained(ctl, argc, argv, 1);
}


int
ctl_resume(ctl_t *ctl, int argc, char **argv)
{
    return set_drained(ctl, argc, argv, 0);
}
