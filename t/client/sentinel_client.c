/*
 * sentinel_client.c -- one liboffload client on Redis Sentinel, driven
 * line by line by t/46-submit-sentinel.t, so that the same client meets a
 * failover between two lines.
 *
 *   sentinel_client <host:port,...> <master> <sentinel password or "">
 *                   [<user> <password>]    (the master's login)
 *
 * Prints "connect ok" or "connect error <why>" with the ms it took, then
 * for each line "<json>" on stdin submits it to the queue "echo" to be
 * waited for (10 s) and prints "ok <status> <body> <ms>" or
 * "error <rc> <why> <ms>".
 */

#include <stdio.h>
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


int
main(int argc, char **argv)
{
    int                      rc;
    char                     line[4096], id[OFFLOAD_CLIENT_ID_SIZE];
    size_t                   len;
    long long                t0;
    offload_client_t        *c;
    offload_client_conf_t    conf;
    offload_client_result_t  res;
    offload_submit_opts_t    wait = { 1, 10000, "sentinel-test", NULL };

    if (argc != 4 && argc != 6) {
        fprintf(stderr, "usage: sentinel_client <sentinels> <master> "
                "<sentinel password> [<user> <password>]\n");
        return 2;
    }

    memset(&conf, 0, sizeof(conf));
    conf.sentinels = argv[1];
    conf.master_name = argv[2];
    conf.sentinel_password = argv[3][0] ? argv[3] : NULL;
    conf.user = argc == 6 ? argv[4] : NULL;
    conf.password = argc == 6 ? argv[5] : NULL;
    conf.connect_timeout_ms = 500;
    conf.command_timeout_ms = 500;

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
        len = strcspn(line, "\n");
        t0 = mono_ms();
        rc = offload_client_submit(c, "echo", line, len, &wait, id);
        if (rc == OFFLOAD_CLIENT_OK) {
            rc = offload_client_wait(c, "echo", id, 10000, &res);
        }

        if (rc == OFFLOAD_CLIENT_OK) {
            printf("ok %d %s %lld\n", res.status, res.body,
                   mono_ms() - t0);
            offload_client_result_free(&res);
        } else {
            printf("error %d %s %lld\n", rc, offload_client_error(c),
                   mono_ms() - t0);
        }
        fflush(stdout);
    }

    offload_client_free(c);
    return 0;
}
