/*
 * offloadctl_replay.c -- `replay <job-id> [--queue Q] [--gdb]`: finds a
 * job's payload (its dead letter, else its entry still in the queue) and
 * runs the queue's handler on it here, in the foreground, so a crash in
 * production is reproduced with one command.  If the handler crashes, so
 * does offloadctl: that is the point.  --gdb runs the same under gdb.
 * A job whose payload is in its body key is read from there, an element
 * of the list per LINDEX, as a worker does.  The handler's init and fini
 * run around the job; an exec queue's command runs as offloadctl's child,
 * and a process that dies or answers wrong exits offloadctl as it would
 * its worker (status 4, the reason on stderr).
 */

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exec_bridge.h"
#include "handlers.h"
#include "job.h"
#include "offloadctl.h"
#include "privs.h"


typedef struct {
    char    *payload;
    size_t   len;
    char     queue[OFFLOAD_QUEUE_NAME_MAX + 1];
    char     where[16];
    int      attempt;                 /* the entry's: as its last run saw */
    int      interrupted;             /* a stop cut a run of it short */
} found_t;


/* The job's body from its body key (a list of slices: LLEN, then an
 * LINDEX per element, never the whole list in one reply), or NULL (with a
 * message). */
static char *
read_body(ctl_t *ctl, const char *queue, const char *id, long long len)
{
    char         key[OFFLOAD_KEY_MAX + 64], *body = NULL;
    long long    i, elements, got = 0;
    redisReply  *reply;

    offload_body_key(key, sizeof(key), queue, strlen(queue), id,
                     strlen(id));

    if (len <= 0) {
        fprintf(stderr, "offloadctl replay: the job's body length is not a "
                "number\n");
        return NULL;
    }

    reply = ctl_command(ctl, "LLEN %s", key);
    if (reply == NULL) {
        return NULL;
    }

    elements = reply->type == REDIS_REPLY_INTEGER ? reply->integer : -1;
    if (elements <= 0) {
        fprintf(stderr, "offloadctl replay: the job's body is gone (expired "
                "or deleted): %s%s%s\n", key,
                elements == 0 ? " does not exist" : ": ",
                reply->type == REDIS_REPLY_ERROR ? reply->str : "");
        freeReplyObject(reply);
        return NULL;
    }
    freeReplyObject(reply);

    body = malloc((size_t) len);
    if (body == NULL) {
        fprintf(stderr, "offloadctl replay: no memory for a body of %lld "
                "bytes\n", len);
        return NULL;
    }

    for (i = 0; i < elements; i++) {
        reply = ctl_command(ctl, "LINDEX %s %lld", key, i);
        if (reply == NULL) {
            free(body);
            return NULL;
        }

        if (reply->type != REDIS_REPLY_STRING
            || (long long) reply->len > len - got)
        {
            fprintf(stderr, "offloadctl replay: the job's body is gone or "
                    "changed: %s is not %lld bytes\n", key, len);
            freeReplyObject(reply);
            free(body);
            return NULL;
        }

        memcpy(body + got, reply->str, reply->len);
        got += (long long) reply->len;
        freeReplyObject(reply);
    }

    if (got != len) {
        fprintf(stderr, "offloadctl replay: the job's body does not match "
                "its entry: %s holds %lld bytes, not %lld\n", key, got, len);
        free(body);
        return NULL;
    }

    return body;
}


static int
take_payload(ctl_t *ctl, const char *queue, const char *key,
    const redisReply *entry, void *data)
{
    found_t     *found = data;
    const char  *payload = ctl_entry_field(entry, OFFLOAD_F_PAYLOAD);
    const char  *body = ctl_entry_field(entry, OFFLOAD_F_BODY);
    const char  *id = ctl_entry_field(entry, OFFLOAD_F_ID);
    const char  *attempt = ctl_entry_field(entry, OFFLOAD_F_ATTEMPT);
    const char  *interrupted = ctl_entry_field(entry, OFFLOAD_F_INTERRUPTED);

    (void) key;

    if (found->payload != NULL || payload == NULL || id == NULL) {
        return 0;
    }

    if (body != NULL) {
        found->len = (size_t) strtoll(body, NULL, 10);
        found->payload = read_body(ctl, queue, id, (long long) found->len);
        if (found->payload == NULL) {
            return -1;
        }

    } else {
        found->len = strlen(payload);
        found->payload = strdup(payload);
    }

    snprintf(found->queue, sizeof(found->queue), "%s", queue);
    found->attempt = attempt ? atoi(attempt) : 1;
    if (found->attempt < 1) {
        found->attempt = 1;
    }
    found->interrupted = interrupted != NULL;
    return 0;
}


/* Looks for the job in each queue's dead letters, then in its stream, on
 * the queue's own Redis (every -r when that is none of them). */
static int
find_job(ctl_t *ctl, const char *only, const char *job_id, found_t *found)
{
    int           pass;
    char          key[OFFLOAD_KEY_MAX];
    size_t        i, s, index[CTL_REDIS_MAX], nindex;
    const char   *name;

    for (pass = 0; pass < 2; pass++) {
        for (i = 0; i < ctl->conf->nqueues; i++) {
            name = ctl->conf->queues[i].name;
            if (only != NULL && strcmp(name, only) != 0) {
                continue;
            }

            if (pass == 0) {
                offload_dead_key(key, sizeof(key), name, strlen(name));
            } else {
                offload_stream_key(key, sizeof(key), name, strlen(name));
            }

            nindex = ctl_queue_servers(ctl, name, index);

            for (s = 0; s < nindex; s++) {
                if (ctl_use_queue(ctl, index[s], name) != CTL_OK) {
                    return -1;
                }

                if (ctl_each_entry(ctl, name, key, job_id, take_payload,
                                   found)
                    < 0)
                {
                    return -1;
                }

                if (found->payload != NULL) {
                    snprintf(found->where, sizeof(found->where), "%s",
                             pass == 0 ? "dead letter" : "queue");
                    return 0;
                }
            }
        }
    }

    return 0;
}


static const offload_conf_queue_t *
conf_queue(const offload_conf_t *conf, const char *name)
{
    size_t  i;

    for (i = 0; i < conf->nqueues; i++) {
        if (strcmp(conf->queues[i].name, name) == 0) {
            return &conf->queues[i];
        }
    }

    return NULL;
}


/* gdb -q [-batch] -ex run --args offloadctl <the same, without --gdb> */
static int
exec_gdb(int argc, char **argv)
{
    int       i, n = 0;
    char    **args, self[4096];
    ssize_t   len;

    /* our own path: gdb's /proc/self/exe would be gdb */
    len = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (len <= 0) {
        fprintf(stderr, "offloadctl replay: cannot find myself: %m\n");
        return CTL_FAIL;
    }
    self[len] = '\0';

    args = calloc((size_t) argc + 8, sizeof(char *));
    if (args == NULL) {
        fprintf(stderr, "offloadctl: out of memory\n");
        return CTL_FAIL;
    }

    args[n++] = "gdb";
    args[n++] = "-q";
    if (!isatty(STDIN_FILENO)) {
        args[n++] = "-batch";       /* run, report, exit: no prompt */
    }
    args[n++] = "-ex";
    args[n++] = "run";
    args[n++] = "--args";
    args[n++] = self;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--gdb") != 0) {
            args[n++] = argv[i];
        }
    }

    fflush(NULL);
    execvp("gdb", args);

    fprintf(stderr, "offloadctl replay: cannot run gdb: %m (is it "
            "installed?)\n");
    free(args);
    return CTL_FAIL;
}


static int  replaying;       /* in the handler's call */


static void
handler_exited(int status, void *name)
{
    if (replaying) {
        fprintf(stderr, "offloadctl replay: handler %s called exit(%d) "
                "(in a worker: a crash of the worker, 502 worker_crashed)\n",
                (const char *) name, status);
    }
}


int
ctl_replay(ctl_t *ctl, int argc, char **argv)
{
    int                          opt, gdb = 0, rc;
    char                         err[OFFLOAD_CONF_ERR_MAX];
    found_t                      found;
    const char                  *only = NULL;
    offload_job_t                job;
    offload_slot_t               slot;
    const offload_conf_queue_t  *q;

    static const struct option  options[] = {
        { "queue", required_argument, NULL, 'q' },
        { "gdb",   no_argument,       NULL, 'g' },
        { NULL, 0, NULL, 0 }
    };

    optind = 0;         /* 0: glibc starts afresh, options may follow
                           the job id ("replay <id> --gdb") */
    while ((opt = getopt_long(argc, argv, "q:", options, NULL)) != -1) {
        switch (opt) {
        case 'q':
            only = optarg;
            break;
        case 'g':
            gdb = 1;
            break;
        default:
            return CTL_USAGE;
        }
    }

    if (optind != argc - 1) {
        return ctl_usage_error(argv[0], "wants one job id");
    }

    if (ctl->conf == NULL) {
        return ctl_usage_error(argv[0], "needs the sidecar's config (-c): "
                               "it names each queue's handler");
    }

    if (gdb) {
        return exec_gdb(ctl->argc, ctl->argv);
    }

    /* The plugins too: a job of theirs is replayed with their code,
     * loaded as the sidecar loads them, before it becomes its user. */
    if (offload_handlers_resolve(ctl->conf, err, sizeof(err)) != 0) {
        fprintf(stderr, "offloadctl replay: %s\n", err);
        return CTL_FAIL;
    }

    /* The job runs as the sidecar's workers run it: as root, as the
     * configuration's user (a payload anyone could submit is never run as
     * root here either). */
    if (offload_privs_replay(ctl->conf) != 0) {
        return CTL_FAIL;
    }

    memset(&found, 0, sizeof(found));

    if (find_job(ctl, only, argv[optind], &found) != 0) {
        free(found.payload);
        return CTL_FAIL;
    }

    if (found.payload == NULL) {
        fprintf(stderr, "offloadctl replay: job %s is neither a dead letter "
                "nor queued%s%s\n", argv[optind], only ? " in queue " : "",
                only ? only : "");
        return CTL_FAIL;
    }

    q = conf_queue(ctl->conf, found.queue);

    fprintf(stderr, "replaying job %s (%s of queue %s, attempt %d) with "
            "handler %s\n", argv[optind], found.where, found.queue,
            found.attempt, q->handler->name);

    /* at the attempt its entry says, as the run that failed saw it (its
     * attempt; ran_before also when a stop cut a run short) */
    memset(&job, 0, sizeof(job));
    offload_job_set(&job, argv[optind], strlen(argv[optind]), "", 0,
                    found.attempt, 0);
    job.ran_before |= found.interrupted;

    /* An exec queue's command runs here, as a child of offloadctl; its
     * stderr comes out as log lines on offloadctl's stderr. */
    if (offload_exec_is(q->handler)) {
        offload_exec_attach(NULL, q, NULL, "offloadctl replay", NULL, NULL);
    }

    /* As in a worker: init first, fini after (slot 0 of the queue). */
    slot.queue = q->name;
    slot.index = 0;

    if (q->handler->init != NULL && q->handler->init(&slot) != 0) {
        fprintf(stderr, "offloadctl replay: the init of handler %s "
                "failed\n", q->handler->name);
        free(found.payload);
        return CTL_FAIL;
    }

    /* a handler that calls exit() ends offloadctl too: said, not silent */
    on_exit(handler_exited, (void *) q->handler->name);
    replaying = 1;

    rc = offload_job_call(&job, q->handler, found.payload, found.len);
    replaying = 0;
    free(found.payload);

    if (q->handler->fini != NULL) {
        q->handler->fini(&slot);
    }

    if (rc == OFFLOAD_NOMEM) {
        fprintf(stderr, "the handler ran out of memory%s%s\n",
                job.message[0] ? ": " : "", job.message);
        return CTL_FAIL;
    }

    if (job.status != 200) {
        fprintf(stderr, "handler error (%d %s): %s\n", job.status, job.code,
                job.message);
        return CTL_FAIL;
    }

    printf("%.*s\n", (int) job.result_len, job.result);
    offload_job_trim(&job, 0);

    return CTL_OK;
}
