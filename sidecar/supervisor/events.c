/*
 * events.c -- appends events to offload:{ctl}:events, trimmed to about
 * OFFLOAD_EVENTS_MAXLEN entries (MAXLEN ~, so trimming stays cheap), and
 * keeps the latest crash reports in the short list offload:{ctl}:crashes, which
 * offload_status reads on every call instead of scanning the stream.
 */

#include <stdio.h>
#include <stdlib.h>

#include "events.h"
#include "log.h"

/*
 * The crash list's push and trim in one command, so the list never holds
 * more than it keeps, even with several nodes pushing at once.  A script,
 * not MULTI ... EXEC: one command leaves no transaction open on the link
 * should EXEC be refused (renamed away) or a command of it not be sent.
 */
static const char  keep_crash_script[] =
    "redis.call('LPUSH', KEYS[1], ARGV[1])\n"
    "redis.call('LTRIM', KEYS[1], 0, ARGV[2])\n";


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


/* XADDs the event; report_json (or NULL) is its report field. */
static void
event_add(offload_redis_conn_t *conn, const char *node, const char *type,
    const char *queue, const char *report_json)
{
    int          argc = 0;
    char         maxlen[16];
    const char  *argv[14];

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

    if (report_json != NULL) {
        argv[argc++] = "report";
        argv[argc++] = report_json;
    }

    if (offload_redis_command_argv(conn, event_cb, NULL, argc, argv, NULL)
        != REDIS_OK)
    {
        log_error("cannot send event %s", type);
    }
}


void
offload_event(offload_redis_conn_t *conn, const char *node, const char *type,
    const char *queue, json_t *report)
{
    char  *json = NULL;

    if (!conn->ready) {
        log_info("event %s not recorded: redis is not connected", type);
        json_decref(report);
        return;
    }

    if (report != NULL) {
        json = json_dumps(report, JSON_COMPACT);
    }

    event_add(conn, node, type, queue, json);

    free(json);
    json_decref(report);
}


void
offload_crash_event(offload_redis_conn_t *conn, const char *node,
    const char *queue, json_t *report)
{
    char  *json, keep[16];

    if (!conn->ready) {
        log_info("crash report not recorded: redis is not connected");
        json_decref(report);
        return;
    }

    json = json_dumps(report, JSON_COMPACT);
    json_decref(report);

    if (json == NULL) {
        log_error("cannot encode a crash report");
        return;
    }

    event_add(conn, node, "crash", queue, json);

    snprintf(keep, sizeof(keep), "%d", OFFLOAD_CRASHES_MAX - 1);

    if (offload_redis_command(conn, event_cb, NULL, "EVAL %s 1 %s %s %s",
                              keep_crash_script, OFFLOAD_CRASHES_KEY, json,
                              keep)
        != REDIS_OK)
    {
        log_error("cannot keep a crash report in %s", OFFLOAD_CRASHES_KEY);
    }

    free(json);
}
