/*
 * offloadctl_drain.c -- `drain <node>` / `resume <node>`: sets or deletes
 * offload:drain:<node>.  The node reads the flag every heartbeat; drained,
 * its workers finish what they hold and read no new jobs (state "paused"),
 * while every other node goes on.  The command waits (-t seconds, default
 * 30; 0: do not wait) until the node's registry document shows the change
 * on every live worker.
 */

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "offloadctl.h"


/* The node's document on the first Redis that has one (its workers'
 * states are the node's, whichever Redis lists them). */
static json_t *
node_doc(ctl_t *ctl, const char *node)
{
    size_t        s;
    json_t       *doc = NULL;
    redisReply   *reply;
    json_error_t  jerr;

    for (s = 0; doc == NULL && s < ctl->nservers; s++) {
        ctl_use(ctl, s);

        reply = ctl_command(ctl, "GET " OFFLOAD_NODE_FMT, node);
        if (reply == NULL) {
            break;
        }

        doc = reply->type == REDIS_REPLY_STRING
              ? json_loadb(reply->str, reply->len, 0, &jerr) : NULL;
        freeReplyObject(reply);
    }

    ctl_use(ctl, 0);
    return doc;
}


/* Whether the document shows the node drained (every live worker paused)
 * or resumed (none paused); counts the live workers. */
static int
settled(json_t *doc, int drained, int *nworkers)
{
    size_t       i;
    json_t      *q, *w;
    const char  *name, *state;

    if (json_is_true(json_object_get(doc, "drained")) != drained) {
        return 0;
    }

    *nworkers = 0;

    json_object_foreach(json_object_get(doc, "queues"), name, q) {
        json_array_foreach(json_object_get(q, "workers"), i, w) {
            state = ctl_text(w, "state");
            if (strcmp(state, "down") == 0) {
                continue;
            }
            (*nworkers)++;
            if ((strcmp(state, "paused") == 0) != drained) {
                return 0;
            }
        }
    }

    return 1;
}


static int
set_drained(ctl_t *ctl, int argc, char **argv, int drained)
{
    int          opt, wait_s = 30, n = 0, done = 0;
    char         key[OFFLOAD_KEY_MAX];
    size_t       s;
    json_t      *doc;
    int64_t      deadline;
    redisReply  *reply;
    const char  *node;

    optind = 1;
    while ((opt = getopt(argc, argv, "+t:")) != -1) {
        if (opt != 't') {
            return CTL_USAGE;
        }
        wait_s = atoi(optarg);
    }

    if (optind != argc - 1 || wait_s < 0) {
        return ctl_usage_error(argv[0], "wants [-t seconds] and one node");
    }

    node = argv[optind];

    doc = node_doc(ctl, node);
    if (doc == NULL) {
        fprintf(stderr, "offloadctl %s: no live node named \"%s\"\n",
                argv[0], node);
        return CTL_FAIL;
    }
    json_decref(doc);

    /* on every Redis: the node is drained while any one says so */
    snprintf(key, sizeof(key), OFFLOAD_DRAIN_FMT, node);

    for (s = 0; s < ctl->nservers; s++) {
        ctl_use(ctl, s);
        reply = drained ? ctl_command(ctl, "SET %s 1", key)
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
        doc = node_doc(ctl, node);
        done = doc != NULL && settled(doc, drained, &n);
        json_decref(doc);
        if (!done) {
            usleep(100 * 1000);
        }
    }

    if (!done) {
        fprintf(stderr, "offloadctl %s: node %s did not %s within %d s\n",
                argv[0], node, drained ? "drain" : "resume", wait_s);
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
