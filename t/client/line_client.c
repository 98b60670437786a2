/*
 * line_client.c -- one liboffload client on Redis Sentinel or Redis
 * Cluster, driven line by line by t/46-submit-sentinel.t and
 * t/37-cluster-client.t, so that the same client meets a failover or a
 * slot moved between two lines.
 *
 *   line_client <host:port,...> <master> <sentinel password or "">
 *               [<user> <password>]    (the master's login)
 *   line_client cluster://<host:port,...> [<user> <password>]
 *
 * Prints "connect ok" or "connect error <why>" with the ms it took, then
 * for each line "[<queue> ]<json>" on stdin submits the JSON to the queue
 * ("echo" when none is given) to be waited for (10 s) and prints
 * "ok <status> <body> <ms>" or "error <rc> <why> <ms>".  A line
 * "<queue> big <n>" submits {"big":"aaa..."} of n bytes, and prints
 * "ok <status> big <length> <ms>" when the body answered is the payload
 * (an echo), "ok <status> other <length> <ms>" when not.
 *
 *   line_client redis://<host>:<port> [<command timeout ms>]
 *                                          (one Redis, t/46-submit-lost.t)
 *
 * A line "submit <queue> <json>" (or "submit <queue> big <n>") only
 * submits (to be waited for) and prints "submitted <id>", "unknown <id>
 * <why> <ms>" (OFFLOAD_CLIENT_UNKNOWN: it may have been queued) or "error
 * <rc> <why> <ms>"; "wait <queue> <id> <ms>" then waits for it, printing
 * as above.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "offload_client.h"


static long long
mono_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


/* "ok <status> <body> <ms>" or "error <rc> <why> <ms>"; a success whose
 * client still says an error (the header: NULL after a call that
 * succeeded) ends "error left: <it>" */
static void
report(offload_client_t *c, int rc, offload_client_result_t *res,
    long long t0)
{
    if (rc == OFFLOAD_CLIENT_OK) {
        printf("ok %d %s %lld", res->status, res->body, mono_ms() - t0);
        if (offload_client_error(c) != NULL) {
            printf(" error left: %s", offload_client_error(c));
        }
        printf("\n");
        offload_client_result_free(res);
    } else {
        printf("error %d %s %lld\n", rc, offload_client_error(c),
               mono_ms() - t0);
    }
    fflush(stdout);
}


/* The payload of a line's json: itself, or for "big <n>" {"big":"aaa..."}
 * of n bytes in *big (malloc()ed, the last one freed).  NULL: out of
 * memory, or n too small. */
static char *
payload(char *json, size_t *len, char **big)
{
    *len = strlen(json);
    if (strncmp(json, "big ", 4) != 0) {
        return json;
    }

    *len = strtoul(json + 4, NULL, 10);
    free(*big);
    *big = malloc(*len + 1);
    if (*big == NULL || *len < 10) {
        return NULL;
    }
    memset(*big, 'a', *len);
    memcpy(*big, "{\"big\":\"", 8);
    memcpy(*big + *len - 2, "\"}", 3);
    return *big;
}


int
main(int argc, char **argv)
{
    int                      rc;
    char                     line[4096], id[OFFLOAD_CLIENT_ID_SIZE];
    char                    *json, *big = NULL, qbuf[64];
    const char              *queue;
    size_t                   len;
    long long                t0;
    offload_client_t        *c;
    offload_client_conf_t    conf;
    offload_client_result_t  res;
    offload_submit_opts_t    wait = { 1, 10000, "line-client", NULL };

    memset(&conf, 0, sizeof(conf));

    conf.connect_timeout_ms = 500;
    conf.command_timeout_ms = 500;

    if ((argc == 2 || argc == 3) && strncmp(argv[1], "redis://", 8) == 0
        && strrchr(argv[1], ':') > argv[1] + 8)
    {
        conf.command_timeout_ms = argc == 3 ? atoi(argv[2]) : 500;
        conf.host = argv[1] + 8;
        conf.port = atoi(strrchr(argv[1], ':') + 1);
        *strrchr(argv[1], ':') = '\0';

    } else if ((argc == 2 || argc == 4)
               && strncmp(argv[1], "cluster://", 10) == 0)
    {
        conf.cluster = argv[1] + 10;
        conf.user = argc == 4 ? argv[2] : NULL;
        conf.password = argc == 4 ? argv[3] : NULL;

    } else if (argc == 4 || argc == 6) {
        conf.sentinels = argv[1];
        conf.master_name = argv[2];
        conf.sentinel_password = argv[3][0] ? argv[3] : NULL;
        conf.user = argc == 6 ? argv[4] : NULL;
        conf.password = argc == 6 ? argv[5] : NULL;

    } else {
        fprintf(stderr, "usage: line_client <sentinels> <master> "
                "<sentinel password> [<user> <password>]\n"
                "       line_client cluster://<seeds> [<user> "
                "<password>]\n"
                "       line_client redis://<host>:<port> [<command "
                "timeout ms>]\n");
        return 2;
    }

    t0 = mono_ms();
    c = offload_client_connect(&conf);
    if (c == NULL) {
        return 1;
    }
    printf("connect %s %lld\n", offload_client_error(c)
                                ? offload_client_error(c) : "ok",
           mono_ms() - t0);
    fflush(stdout);

    while (fgets(line, sizeof(line), stdin) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        t0 = mono_ms();

        if (strncmp(line, "submit ", 7) == 0 && strchr(line + 7, ' ')) {
            queue = line + 7;
            json = strchr(queue, ' ');
            *json++ = '\0';
            json = payload(json, &len, &big);
            if (json == NULL) {
                return 1;
            }
            rc = offload_client_submit(c, queue, json, len, &wait, id);
            if (rc == OFFLOAD_CLIENT_OK) {
                printf("submitted %s\n", id);
            } else if (rc == OFFLOAD_CLIENT_UNKNOWN) {
                printf("unknown %s %s %lld\n", id, offload_client_error(c),
                       mono_ms() - t0);
            } else {
                printf("error %d %s %lld\n", rc, offload_client_error(c),
                       mono_ms() - t0);
            }
            fflush(stdout);
            continue;
        }

        if (strncmp(line, "wait ", 5) == 0
            && sscanf(line + 5, "%63s %32s", qbuf, id) == 2)
        {
            rc = offload_client_wait(c, qbuf, id,
                                     atoll(line + 5 + strlen(qbuf)
                                           + strlen(id) + 2),
                                     &res);
            report(c, rc, &res, t0);
            continue;
        }

        queue = "echo";
        json = line;
        if (line[0] != '{' && strchr(line, ' ') != NULL) {
            queue = line;
            json = strchr(line, ' ');
            *json++ = '\0';
        }
        json = payload(json, &len, &big);
        if (json == NULL) {
            return 1;
        }

        rc = offload_client_submit(c, queue, json, len, &wait, id);
        if (rc == OFFLOAD_CLIENT_OK) {
            rc = offload_client_wait(c, queue, id, 10000, &res);
        }

        if (rc == OFFLOAD_CLIENT_OK && json == big) {
            printf("ok %d %s %zu %lld\n", res.status,
                   res.body_len == len && memcmp(res.body, big, len) == 0
                   ? "big" : "other", res.body_len, mono_ms() - t0);
            offload_client_result_free(&res);
            fflush(stdout);
        } else {
            report(c, rc, &res, t0);
        }
    }

    free(big);
    offload_client_free(c);
    return 0;
}
