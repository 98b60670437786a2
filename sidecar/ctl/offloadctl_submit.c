/*
 * offloadctl_submit.c -- submit and result: a job from the command line,
 * through liboffload (include/offload_client.h), as any program would
 * submit one; and a job's stored result.
 *
 *   submit QUEUE JSON|@FILE|- [--wait [--timeout T]] [--deadline T]
 *          [--traceparent TP]
 *   result QUEUE JOB
 *
 * Exit status: 0 for a 2xx result (or a job submitted without --wait),
 * 1 for another result, a timeout, no result or an error, 2 for usage
 * (and for a payload that is not JSON, a queue name or job id that cannot
 * be one, a traceparent nginx would not accept), 3 when Redis did not
 * answer the job's XADD (OFFLOAD_CLIENT_UNKNOWN): it may have been
 * queued, its id is printed for `result` (submitted again, it may run
 * twice).
 */

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "offload_client.h"
#include "offloadctl.h"

#define DEFAULT_TIMEOUT_MS  30000


static offload_client_t *
client(ctl_t *ctl)
{
    offload_client_t       *c;
    offload_client_conf_t   conf;

    memset(&conf, 0, sizeof(conf));
    if (ctl->addr->is_unix) {
        conf.unix_path = ctl->addr->host;
    } else {
        conf.host = ctl->addr->host;
        conf.port = ctl->addr->port;
    }
    conf.user = ctl->user;
    conf.password = ctl->password;
    conf.db = ctl->db;
    conf.connect_timeout_ms = CTL_TIMEOUT_S * 1000;
    conf.command_timeout_ms = CTL_TIMEOUT_S * 1000;

    c = offload_client_connect(&conf);
    if (c == NULL || offload_client_error(c)) {
        fprintf(stderr, "offloadctl: %s\n",
                c ? offload_client_error(c) : "out of memory");
        offload_client_free(c);
        return NULL;
    }

    return c;
}


/* The payload: the argument itself, @file's contents, or stdin's ("-"). */
static char *
read_input(const char *arg, size_t *len)
{
    FILE    *f;
    char    *buf = NULL, *more;
    size_t   cap = 0, n;

    if (arg[0] != '@' && strcmp(arg, "-") != 0) {
        *len = strlen(arg);
        return strdup(arg);
    }

    f = arg[0] == '@' ? fopen(arg + 1, "r") : stdin;
    if (f == NULL) {
        fprintf(stderr, "offloadctl submit: cannot open %s: %s\n", arg + 1,
                strerror(errno));
        return NULL;
    }

    *len = 0;
    for ( ;; ) {
        if (*len == cap) {
            cap = cap ? cap * 2 : 65536;
            more = realloc(buf, cap);
            if (more == NULL) {
                fprintf(stderr, "offloadctl submit: out of memory\n");
                break;
            }
            buf = more;
        }

        n = fread(buf + *len, 1, cap - *len, f);
        *len += n;
        if (n == 0) {
            if (!ferror(f)) {
                if (f != stdin) {
                    fclose(f);
                }
                return buf;
            }
            fprintf(stderr, "offloadctl submit: reading %s: %s\n", arg,
                    strerror(errno));
            break;
        }
    }

    if (f != stdin) {
        fclose(f);
    }
    free(buf);
    return NULL;
}


/* Prints a result's body; 0 for 2xx, CTL_FAIL otherwise. */
static int
print_result(const char *id, offload_client_result_t *res)
{
    fwrite(res->body, 1, res->body_len, stdout);
    putchar('\n');

    if (res->status < 200 || res->status > 299) {
        fprintf(stderr, "offloadctl: job %s answered %d\n", id, res->status);
        return CTL_FAIL;
    }

    return CTL_OK;
}


static int
parse_time(const char *cmd, const char *what, const char *text,
    long long *ms)
{
    if (offload_conf_parse_time(text, ms) != 0 || *ms <= 0) {
        return ctl_usage_error(cmd, "invalid %s \"%s\" (a time such as "
                               "500ms, 30s, 2m)", what, text);
    }

    return 0;
}


int
ctl_submit(ctl_t *ctl, int argc, char **argv)
{
    int                      opt, rc, have_timeout = 0;
    char                    *json, id[OFFLOAD_CLIENT_ID_SIZE];
    size_t                   len;
    long long                timeout_ms = DEFAULT_TIMEOUT_MS, deadline_ms = 0;
    offload_client_t        *c;
    offload_submit_opts_t    opts;
    offload_client_result_t  res;

    static const struct option  options[] = {
        { "wait",     no_argument,       NULL, 'w' },
        { "timeout",  required_argument, NULL, 't' },
        { "deadline", required_argument, NULL, 'd' },
        { "traceparent", required_argument, NULL, 'p' },
        { NULL, 0, NULL, 0 }
    };

    memset(&opts, 0, sizeof(opts));
    optind = 0;         /* 0: glibc starts afresh, options may follow
                           the arguments (main's scan stopped at "+") */
    while ((opt = getopt_long(argc, argv, "wt:d:", options, NULL)) != -1) {
        switch (opt) {
        case 'w':
            opts.wait = 1;
            break;
        case 't':
            if (parse_time(argv[0], "timeout", optarg, &timeout_ms) != 0) {
                return CTL_USAGE;
            }
            have_timeout = 1;
            break;
        case 'd':
            if (parse_time(argv[0], "deadline", optarg, &deadline_ms) != 0) {
                return CTL_USAGE;
            }
            break;
        case 'p':
            opts.traceparent = optarg;
            break;
        default:
            return CTL_USAGE;
        }
    }

    if (optind != argc - 2) {
        return ctl_usage_error(argv[0], "wants a queue and a payload (JSON, "
                               "@file or -)");
    }

    if (have_timeout && !opts.wait) {
        return ctl_usage_error(argv[0], "--timeout goes with --wait");
    }

    /* A job waited for is of no use after the wait: by default it expires
     * with it, as an nginx request's job does. */
    opts.deadline_ms = deadline_ms ? deadline_ms
                                   : opts.wait ? timeout_ms : 0;
    opts.request_id = "offloadctl";

    json = read_input(argv[optind + 1], &len);
    if (json == NULL) {
        return CTL_FAIL;
    }

    rc = ctl_find_queue(ctl, argv[0], argv[optind]);
    if (rc != CTL_OK) {
        free(json);
        return rc;
    }

    c = client(ctl);
    if (c == NULL) {
        free(json);
        return CTL_FAIL;
    }

    rc = offload_client_submit(c, argv[optind], json, len, &opts, id);
    free(json);

    if (rc == OFFLOAD_CLIENT_OK && !opts.wait) {
        printf("%s\n", id);
        offload_client_free(c);
        return CTL_OK;
    }

    if (rc == OFFLOAD_CLIENT_UNKNOWN) {
        printf("%s\n", id);
        fprintf(stderr, "offloadctl submit: %s (offloadctl result %s %s)\n",
                offload_client_error(c), argv[optind], id);
        offload_client_free(c);
        return CTL_UNKNOWN;
    }

    if (rc == OFFLOAD_CLIENT_OK) {
        rc = offload_client_wait(c, argv[optind], id, timeout_ms, &res);
        if (rc == OFFLOAD_CLIENT_OK) {
            rc = print_result(id, &res);
            offload_client_result_free(&res);
            offload_client_free(c);
            return rc;
        }
    }

    fprintf(stderr, "offloadctl submit: %s\n", offload_client_error(c));

    /* what a wait that ran out cannot tell by itself */
    if (rc == OFFLOAD_CLIENT_TIMEOUT && opts.deadline_ms <= timeout_ms) {
        fprintf(stderr, "offloadctl submit: the job's deadline passed with "
                "the wait: if no worker took it, it is not run (a "
                "--deadline longer than --timeout keeps it queued); "
                "`offloadctl queues` tells whether a node serves %s (state "
                "unserved: none does)\n", argv[optind]);

    } else if (rc == OFFLOAD_CLIENT_TIMEOUT) {
        fprintf(stderr, "offloadctl submit: the job may still wait in the "
                "queue: `offloadctl queues` tells whether a node serves %s "
                "(state unserved: none does), `offloadctl result %s %s` "
                "reads its result later\n", argv[optind], argv[optind], id);
    }

    offload_client_free(c);
    return rc == OFFLOAD_CLIENT_INVALID ? CTL_USAGE : CTL_FAIL;
}


int
ctl_result(ctl_t *ctl, int argc, char **argv)
{
    int                      rc;
    offload_client_t        *c;
    offload_client_result_t  res;

    if (argc != 3) {
        return ctl_usage_error(argv[0], "wants a queue and a job id");
    }

    rc = ctl_find_queue(ctl, argv[0], argv[1]);
    if (rc != CTL_OK) {
        return rc;
    }

    c = client(ctl);
    if (c == NULL) {
        return CTL_FAIL;
    }

    rc = offload_client_result(c, argv[1], argv[2], &res);
    if (rc == OFFLOAD_CLIENT_OK) {
        rc = print_result(argv[2], &res);
        offload_client_result_free(&res);
    } else {
        fprintf(stderr, "offloadctl result: %s\n", offload_client_error(c));
        rc = rc == OFFLOAD_CLIENT_INVALID ? CTL_USAGE : CTL_FAIL;
    }

    offload_client_free(c);
    return rc;
}
