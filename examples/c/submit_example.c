/*
 * submit_example.c -- submits one job straight through Redis with
 * liboffload and waits for its result (docs/HANDLERS.md, "Submit jobs
 * without HTTP"):
 *
 *   submit_example <redis port> <queue> <json>
 *
 * prints the result's status and body; exits 0 on a 2xx result.  Build:
 *
 *   cc -I sidecar/include examples/c/submit_example.c build/liboffload.a \
 *       -o submit_example -lhiredis
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "offload_client.h"


int
main(int argc, char **argv)
{
    int                      rc;
    char                     id[OFFLOAD_CLIENT_ID_SIZE];
    offload_client_t        *c;
    offload_client_conf_t    conf;
    offload_submit_opts_t    opts;
    offload_client_result_t  res;

    if (argc != 4) {
        fprintf(stderr, "usage: submit_example <redis port> <queue> "
                "<json>\n");
        return 2;
    }

    memset(&conf, 0, sizeof(conf));
    conf.port = atoi(argv[1]);

    c = offload_client_connect(&conf);
    if (c == NULL) {
        return 1;
    }

    memset(&opts, 0, sizeof(opts));
    opts.wait = 1;                      /* the result is pushed to us */
    opts.deadline_ms = 10000;           /* not run at all after 10 s */

    rc = offload_client_submit(c, argv[2], argv[3], strlen(argv[3]), &opts,
                               id);
    /* _UNKNOWN: Redis did not answer the XADD, the job may be queued; a
     * result, if one comes, says it was (submitted again, it could run
     * twice) */
    if (rc == OFFLOAD_CLIENT_OK || rc == OFFLOAD_CLIENT_UNKNOWN) {
        rc = offload_client_wait(c, argv[2], id, 10000, &res);
    }

    if (rc != OFFLOAD_CLIENT_OK) {
        fprintf(stderr, "submit_example: %s\n",
                offload_client_error(c) ? offload_client_error(c)
                                        : "no result within 10 s");
        offload_client_free(c);
        return 1;
    }

    printf("%d %s\n", res.status, res.body);
    rc = res.status / 100 == 2 ? 0 : 1;

    offload_client_result_free(&res);
    offload_client_free(c);
    return rc;
}
