/*
 * offloadctl_events.c -- `events [-f] [-n N]`: the latest entries of
 * offload:{ctl}:events (crash reports, restarts, recycles, pool failures,
 * reclaims, reloads), oldest first, one line each; -f then follows the
 * stream as `tail -f` does, until SIGINT or SIGTERM.  Over several Redis
 * servers (queues sharded by queue), the latest of all of them, in the
 * order of their ids' times; -f then looks at each in turn.
 */

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "offloadctl.h"

static volatile sig_atomic_t  stop;


static void
on_signal(int signo)
{
    (void) signo;
    stop = 1;
}


/* "crash t1 echo slot 0 pid 123 signal SIGSEGV job <id> at <frame>",
 * "crash t1 py slot 0 pid 123 exit 1: <what its handler process did>",
 * "pool_failed t1 echo 6 restarts in 10s, cooling down 30s" */
static void
print_report(json_t *report)
{
    json_t      *frames = json_object_get(report, "backtrace");
    const char  *frame = json_string_value(json_array_get(frames, 0));
    int          exit_code = json_object_get(report, "exit_code") != NULL;

    if (json_object_get(report, "slot") != NULL) {
        printf(" slot %lld", ctl_int(report, "slot"));
    }
    if (json_object_get(report, "pid") != NULL) {
        printf(" pid %lld", ctl_int(report, "pid"));
    }
    /* reason "exit" with its code: "exit 3", not "exit exit 3" */
    if (json_object_get(report, "reason") != NULL
        && !(exit_code && strcmp(ctl_text(report, "reason"), "exit") == 0))
    {
        printf(" %s", ctl_text(report, "reason"));
    }
    if (json_object_get(report, "signal") != NULL) {
        printf(" %s", ctl_text(report, "signal"));
    } else if (exit_code) {
        printf(" exit %lld", ctl_int(report, "exit_code"));
    }
    if (json_object_get(report, "restarts") != NULL) {
        printf(" %lld restarts in %gs, cooling down %gs",
               ctl_int(report, "restarts"),
               ctl_int(report, "period_ms") / 1000.0,
               ctl_int(report, "cooldown_ms") / 1000.0);
    }
    if (json_object_get(report, "job_id") != NULL) {
        printf(" job %s", ctl_text(report, "job_id"));
    }
    if (frame != NULL) {
        printf(" at %s", frame);
    }
    /* an exec handler's process that died: the worker only followed it */
    if (json_is_string(json_object_get(report, "handler_error"))) {
        printf(": %s", ctl_text(report, "handler_error"));
    }
}


static void
print_event(ctl_t *ctl, const redisReply *entry)
{
    char          at[40];
    json_t       *fields, *report;
    json_error_t  jerr;

    fields = ctl_entry_fields(entry->element[1]);
    if (fields == NULL) {
        return;
    }

    report = json_loads(ctl_text(fields, "report"), 0, &jerr);

    if (ctl->json) {
        json_object_set_new(fields, "id", json_string(entry->element[0]->str));
        if (report != NULL) {
            json_object_set(fields, "report", report);
        }
        json_dumpf(fields, stdout, JSON_COMPACT);

    } else {
        ctl_entry_time(at, sizeof(at), entry->element[0]->str);
        printf("%s %-14s %s %s", at, ctl_text(fields, "type"),
               ctl_text(fields, "node"), ctl_text(fields, "queue"));
        if (report != NULL) {
            print_report(report);
        }
    }

    printf("\n");
    fflush(stdout);
    json_decref(report);
    json_decref(fields);
}


static int
follow(ctl_t *ctl, char (*last)[64])
{
    int          block = ctl->nservers > 1 ? 200 : 1000;
    size_t       i, s;
    redisReply  *reply, *entries;

    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);

    while (!stop) {
        for (s = 0; s < ctl->nservers && !stop; s++) {
            ctl_use(ctl, s);
            reply = ctl_command(ctl, "XREAD COUNT 100 BLOCK %d STREAMS %s %s",
                                block, OFFLOAD_EVENTS_KEY, last[s]);
            if (reply == NULL) {
                return stop ? CTL_OK : CTL_FAIL;
            }

            if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 1) {
                entries = reply->element[0]->element[1];
                for (i = 0; i < entries->elements; i++) {
                    print_event(ctl, entries->element[i]);
                    snprintf(last[s], 64, "%s",
                             entries->element[i]->element[0]->str);
                }
            }

            freeReplyObject(reply);
        }
    }

    return CTL_OK;
}


/* Stream entries in the order of their ids: "<ms>-<seq>". */
static int
cmp_entries(const void *a, const void *b)
{
    char                *end;
    unsigned long long   x, y;
    const char          *ia = (*(redisReply *const *) a)->element[0]->str;
    const char          *ib = (*(redisReply *const *) b)->element[0]->str;

    x = strtoull(ia, &end, 10);
    y = strtoull(ib, &end, 10);
    if (x != y) {
        return x < y ? -1 : 1;
    }

    x = strtoull(strchr(ia, '-') ? strchr(ia, '-') + 1 : "0", NULL, 10);
    y = strtoull(strchr(ib, '-') ? strchr(ib, '-') + 1 : "0", NULL, 10);
    return (x > y) - (x < y);
}


int
ctl_events(ctl_t *ctl, int argc, char **argv)
{
    int           opt, n = 20, follows = 0, rc = CTL_OK;
    char          last[CTL_REDIS_MAX][64];
    size_t        i, s, total = 0;
    redisReply   *reply[CTL_REDIS_MAX], **list;

    static const struct option  options[] = {
        { "follow", no_argument, NULL, 'f' },
        { NULL, 0, NULL, 0 }
    };

    optind = 1;
    while ((opt = getopt_long(argc, argv, "+fn:", options, NULL)) != -1) {
        switch (opt) {
        case 'f':
            follows = 1;
            break;
        case 'n':
            if (ctl_count(argv[0], 'n', optarg, &n) != 0) {
                return CTL_USAGE;
            }
            break;
        default:
            return CTL_USAGE;
        }
    }

    if (optind != argc) {
        return ctl_usage_error(argv[0], "unexpected argument \"%s\"",
                               argv[optind]);
    }

    memset(reply, 0, sizeof(reply));

    for (s = 0; s < ctl->nservers; s++) {
        ctl_use(ctl, s);
        snprintf(last[s], sizeof(last[s]), "0-0");

        /* one at least: the last id, where -f goes on (-n 0 prints
         * none of them) */
        reply[s] = ctl_command(ctl, "XREVRANGE %s + - COUNT %d",
                               OFFLOAD_EVENTS_KEY, n > 0 ? n : 1);
        if (reply[s] == NULL) {
            rc = CTL_FAIL;
            goto done;
        }

        if (reply[s]->type != REDIS_REPLY_ARRAY
            || (reply[s]->elements > 0
                && ctl_entry_id(reply[s]->element[0]) == NULL))
        {
            fprintf(stderr, "offloadctl: %s: XREVRANGE answered no entry "
                    "id\n", OFFLOAD_EVENTS_KEY);
            rc = CTL_FAIL;
            goto done;
        }

        if (reply[s]->elements > 0) {
            snprintf(last[s], sizeof(last[s]), "%s",
                     ctl_entry_id(reply[s]->element[0]));
        }

        total += reply[s]->elements;
    }

    list = malloc((total + 1) * sizeof(redisReply *));
    if (list == NULL) {
        fprintf(stderr, "offloadctl: out of memory\n");
        rc = CTL_FAIL;
        goto done;
    }

    total = 0;
    for (s = 0; s < ctl->nservers; s++) {
        for (i = 0; i < reply[s]->elements; i++) {
            list[total++] = reply[s]->element[i];
        }
    }

    qsort(list, total, sizeof(redisReply *), cmp_entries);

    for (i = total > (size_t) n ? total - (size_t) n : 0; i < total; i++) {
        print_event(ctl, list[i]);
    }

    free(list);

done:

    for (s = 0; s < ctl->nservers; s++) {
        freeReplyObject(reply[s]);
    }

    ctl_use(ctl, 0);

    return rc == CTL_OK && follows ? follow(ctl, last) : rc;
}
