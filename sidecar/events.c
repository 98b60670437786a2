/*
 * events.c -- appends events to offload:events, trimmed to about
 * OFFLOAD_EVENTS_MAXLEN entries (MAXLEN ~, so trimming stays cheap).
 */

#include <stdio.h>
#include <stdlib.h>

#include "events.h"
#include "log.h"


static void
event_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply  *reply = r;

    (void) ac;
    (void) privdata;

    if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
        log_error("cannot record an event: %s", reply->str);
    }
}


void
offload_event(offload_redis_conn_t *conn, const char *node, const char *type,
    const char *queue, json_t *report)
{
    int          argc = 0;
    char        *json = NULL, maxlen[16];
    const char  *argv[14];

    if (!conn->ready) {
        log_info("event %s not recorded: redis is not connected", type);
        json_decref(report);
        return;
    }

    snprintf(maxlen, sizeof(maxlen), "%d", OFFLOAD_EVENTS_MAXLEN);

    argv[argc++] = "XADD";
    argv[argc++] = OFFLOAD_EVENTS_KEY;
    argv[argc++] = "MAXLEN";
    argv[argc++] = "~";
    argv[argc++] = maxlen;
    argv[argc++] = "*";
    argv[argc++] = "type";
    argv[argc++] = type;
    argv[argc++] = "node";
    argv[argc++] = node;

    if (queue != NULL) {
        argv[argc++] = "queue";
        argv[argc++] = queue;
    }

    if (report != NULL) {
        json = json_dumps(report, JSON_COMPACT);
        if (json != NULL) {
            argv[argc++] = "report";
            argv[argc++] = json;
        }
    }

    if (redisAsyncCommandArgv(conn->ac, event_cb, NULL, argc, argv, NULL)
        != REDIS_OK)
    {
        log_error("cannot send event %s", type);
    }

    free(json);
    json_decref(report);
}
