/*
 * submit_bench.c -- the round trip of a job submitted through liboffload
 * and waited for (what `offloadctl submit --wait` does, without the
 * process start): n sequential submit + wait of a small echo job.
 *
 *   submit-bench <redis port> <queue> <n>
 *
 * Prints "submit_wait n=<n> p50_ms=<..> p99_ms=<..> max_ms=<..>"; exits 1
 * if a job fails.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_time.h"
#include "offload_client.h"


int
main(int argc, char **argv)
{
    int                      i, n;
    char                     id[OFFLOAD_CLIENT_ID_SIZE];
    double                  *ms, t0;
    offload_client_t        *c;
    offload_client_conf_t    conf;
    offload_client_result_t  res;
    offload_submit_opts_t    opts = { 1, 10000, NULL, NULL };
    static const char        job[] = "{\"message\":\"hi\"}";

    if (argc != 4 || (n = atoi(argv[3])) < 1) {
        fprintf(stderr, "usage: submit-bench <redis port> <queue> <n>\n");
        return 2;
    }

    memset(&conf, 0, sizeof(conf));
    conf.port = atoi(argv[1]);
    c = offload_client_connect(&conf);
    ms = malloc(sizeof(double) * (size_t) n);
    if (c == NULL || ms == NULL || offload_client_error(c)) {
        fprintf(stderr, "submit-bench: %s\n",
                c && offload_client_error(c) ? offload_client_error(c)
                                             : "out of memory");
        return 1;
    }

    for (i = 0; i < n; i++) {
        t0 = mono_ms();
        if (offload_client_submit(c, argv[2], job, sizeof(job) - 1, &opts,
                                  id)
            != OFFLOAD_CLIENT_OK
            || offload_client_wait(c, argv[2], id, 10000, &res)
               != OFFLOAD_CLIENT_OK)
        {
            fprintf(stderr, "submit-bench: job %d: %s\n", i,
                    offload_client_error(c));
            return 1;
        }
        ms[i] = mono_ms() - t0;

        if (res.status != 200) {
            fprintf(stderr, "submit-bench: job %d answered %d: %s\n", i,
                    res.status, res.body);
            return 1;
        }
        offload_client_result_free(&res);
    }

    qsort(ms, (size_t) n, sizeof(double), by_value);
    printf("submit_wait n=%d p50_ms=%.3f p99_ms=%.3f max_ms=%.3f\n", n,
           pctl(ms, n, 50), pctl(ms, n, 99), ms[n - 1]);

    free(ms);
    offload_client_free(c);
    return 0;
}
