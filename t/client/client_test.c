/*
 * client_test.c -- liboffload against a live stack: t/46-submit.t starts
 * Redis and a sidecar serving "echo", makes the stream of "idle" (a queue
 * no worker serves), and runs this with the Redis port.  Prints TAP.
 *
 *   client_test <redis port> <a closed port>
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "offload_client.h"
#include "tap.h"


static long long
mono_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


static int
is_result(const offload_client_result_t *res, int status, const char *body,
    size_t len)
{
    return res->status == status && res->body_len == len
           && memcmp(res->body, body, len) == 0 && res->body[len] == '\0';
}


/* A client given conf cannot connect, nor submit, saying expect. */
static void
refused(const offload_client_conf_t *conf, const char *what,
    const char *expect)
{
    char                   id[OFFLOAD_CLIENT_ID_SIZE];
    offload_client_t      *c;
    offload_submit_opts_t  wait = { 1, 1000, NULL, NULL };

    c = offload_client_connect(conf);
    ok(c && offload_client_error(c)
       && strstr(offload_client_error(c), expect),
       "%s: the connect says why (%s)", what,
       c && offload_client_error(c) ? offload_client_error(c) : "no error");
    ok(c && offload_client_submit(c, "echo", "{}", 2, &wait, id)
            == OFFLOAD_CLIENT_ERROR
       && strstr(offload_client_error(c), expect),
       "%s: and a submit through it fails, saying so", what);
    offload_client_free(c);
}


int
main(int argc, char **argv)
{
    int                      rc;
    char                     id[OFFLOAD_CLIENT_ID_SIZE];
    char                     id2[OFFLOAD_CLIENT_ID_SIZE], *big, seed[32];
    size_t                   i, big_len = 3 * 1024 * 1024 + 17;
    long long                t0;
    offload_client_t        *c, *down;
    offload_client_conf_t    conf;
    offload_client_result_t  res;
    offload_submit_opts_t    wait = { 1, 30000, "client-test", NULL };
    offload_submit_opts_t    forget = { 0, 0, NULL, NULL };
    offload_submit_opts_t    far = { 1, INT64_MAX, "client-test", NULL };
    static const char        job[] = "{\"hello\":[1,2,3]}";

    if (argc != 3) {
        fprintf(stderr, "usage: client_test <redis port> <closed port>\n");
        return 2;
    }

    memset(&conf, 0, sizeof(conf));
    conf.port = atoi(argv[2]);
    conf.connect_timeout_ms = 500;
    down = offload_client_connect(&conf);
    ok(down && offload_client_error(down)
       && strstr(offload_client_error(down), "cannot connect"),
       "a closed port: the connect says why (%s)",
       down ? offload_client_error(down) : "no client");
    ok(offload_client_submit(down, "echo", "{}", 2, &wait, id)
       == OFFLOAD_CLIENT_ERROR, "and a submit through it fails");
    offload_client_free(down);

    /* a cluster: a plain Redis as its seed, a bad seed, a db */
    snprintf(seed, sizeof(seed), "127.0.0.1:%s", argv[1]);
    conf.cluster = seed;
    refused(&conf, "a plain Redis as a cluster seed",
            "names no master of slot");
    conf.cluster = "127.0.0.1:6379/1";
    refused(&conf, "a cluster seed with a db", "invalid cluster seed");
    conf.cluster = seed;
    conf.db = 1;
    refused(&conf, "a cluster and a db", "only db 0");
    conf.cluster = NULL;
    conf.db = 0;

    conf.port = atoi(argv[1]);
    c = offload_client_connect(&conf);
    ok(c && offload_client_error(c) == NULL, "connects");

    rc = offload_client_submit(c, "echo", "{\"a\":", 5, &wait, id);
    ok(rc == OFFLOAD_CLIENT_INVALID
       && strstr(offload_client_error(c), "not JSON"),
       "invalid JSON is refused: %s", offload_client_error(c));
    ok(offload_client_submit(c, "no such", "{}", 2, &wait, id)
       == OFFLOAD_CLIENT_INVALID, "so is an invalid queue name");
    ok(offload_client_submit(c, "nosuch", "{}", 2, &wait, id)
       == OFFLOAD_CLIENT_NOT_FOUND
       && strstr(offload_client_error(c), "unknown queue"),
       "a queue nobody serves: not found (%s)", offload_client_error(c));

    rc = offload_client_submit(c, "echo", job, strlen(job), &wait, id);
    ok(rc == OFFLOAD_CLIENT_OK && strlen(id) == 32
       && strspn(id, "0123456789abcdef") == 32, "submit: a 32-hex id %s "
       "(%s)", id, rc ? offload_client_error(c) : "ok");
    rc = offload_client_wait(c, "echo", id, 10000, &res);
    ok(rc == OFFLOAD_CLIENT_OK && is_result(&res, 200, job, strlen(job)),
       "wait: the echo's result, 200");
    offload_client_result_free(&res);

    rc = offload_client_submit(c, "echo", job, strlen(job), &forget, id2);
    ok(rc == OFFLOAD_CLIENT_OK && strcmp(id, id2) != 0,
       "fire and forget: another id");
    rc = offload_client_wait(c, "echo", id2, 10000, &res);
    ok(rc == OFFLOAD_CLIENT_OK && is_result(&res, 200, job, strlen(job)),
       "its result, looked for in its key");
    offload_client_result_free(&res);

    rc = offload_client_result(c, "echo", id, &res);
    ok(rc == OFFLOAD_CLIENT_OK && is_result(&res, 200, job, strlen(job)),
       "result: the stored result");
    offload_client_result_free(&res);
    rc = offload_client_result(c, "echo", "0123456789abcdef0123456789abcdef",
                               &res);
    ok(rc == OFFLOAD_CLIENT_NOT_FOUND, "an unknown job has none: %s",
       offload_client_error(c));

    big = malloc(big_len);
    big[0] = '"';
    for (i = 1; i + 1 < big_len; i++) {
        big[i] = (char) ('a' + i % 26);
    }
    big[big_len - 1] = '"';
    rc = offload_client_submit(c, "echo", big, big_len, &wait, id);
    ok(rc == OFFLOAD_CLIENT_OK, "a 3 MB payload goes (body key): %s",
       offload_client_error(c) ? offload_client_error(c) : "ok");
    rc = offload_client_wait(c, "echo", id, 30000, &res);
    ok(rc == OFFLOAD_CLIENT_OK && is_result(&res, 200, big, big_len),
       "and its 3 MB result comes back whole (notice, list)");
    offload_client_result_free(&res);

    /* times past OFFLOAD_CLIENT_MS_MAX count as it: no clock or lifetime
     * overflows (a deadline in the past, a body key's negative PEXPIRE,
     * a wait ended before it began) */
    rc = offload_client_submit(c, "echo", job, strlen(job), &far, id);
    ok(rc == OFFLOAD_CLIENT_OK
       && offload_client_wait(c, "echo", id, INT64_MAX, &res)
          == OFFLOAD_CLIENT_OK && is_result(&res, 200, job, strlen(job)),
       "a deadline and a wait of INT64_MAX ms: the job runs, its result "
       "comes (%s)", offload_client_error(c) ? offload_client_error(c)
                                             : "ok");
    offload_client_result_free(&res);
    big[1499999] = '"';
    rc = offload_client_submit(c, "echo", big, 1500000, &far, id);
    ok(rc == OFFLOAD_CLIENT_OK, "a 1.5 MB payload with a deadline of "
       "INT64_MAX ms: its body key written (%s)",
       offload_client_error(c) ? offload_client_error(c) : "ok");
    rc = offload_client_wait(c, "echo", id, 30000, &res);
    ok(rc == OFFLOAD_CLIENT_OK && is_result(&res, 200, big, 1500000),
       "and its result comes");
    offload_client_result_free(&res);
    free(big);

    rc = offload_client_submit(c, "idle", job, strlen(job), &wait, id);
    t0 = mono_ms();
    ok(rc == OFFLOAD_CLIENT_OK
       && offload_client_wait(c, "idle", id, 300, &res)
          == OFFLOAD_CLIENT_TIMEOUT,
       "a queue without workers: timeout");
    ok(mono_ms() - t0 >= 290 && mono_ms() - t0 < 2000,
       "after the time given (%lld ms)", mono_ms() - t0);

    rc = offload_client_submit(c, "echo", job, strlen(job), &wait, id);
    ok(rc == OFFLOAD_CLIENT_OK
       && offload_client_wait(c, "echo", id, 10000, &res)
          == OFFLOAD_CLIENT_OK && is_result(&res, 200, job, strlen(job)),
       "the next wait after a timeout skips the late messages");
    offload_client_result_free(&res);

    offload_client_free(c);
    return done_testing();
}
