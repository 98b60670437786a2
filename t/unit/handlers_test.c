/*
 * handlers_test.c -- every built-in handler's output for known inputs and
 * every error path; SHA-256 against FIPS 180-4 test vectors.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "handlers.h"
#include "job.h"
#include "log.h"
#include "tap.h"


static offload_job_t  job;


/* Runs a built-in handler on a JSON text; returns its result (malloc'ed),
 * or NULL with job.message saying why. */
static char *
run(const char *name, const char *input)
{
    const offload_handler_t  *h = offload_builtin_find(name);

    if (h == NULL) {
        snprintf(job.message, sizeof(job.message), "no handler %s", name);
        return NULL;
    }

    offload_job_set(&job, "0123", 4, "", 0, 1, 0);

    if (offload_job_call(&job, h, input, strlen(input)) != OFFLOAD_OK
        || job.status != 200)
    {
        return NULL;
    }

    return strndup(job.result, job.result_len);
}


static void
expect(const char *name, const char *input, const char *want)
{
    char  *got = run(name, input);

    is_str(got, want, "%s %s", name, input);
    if (got == NULL) {
        printf("#   error: %s\n", job.message);
    }
    free(got);
}


static void
expect_error(const char *name, const char *input, const char *want)
{
    char  *got = run(name, input);

    ok(got == NULL, "%s %s fails", name, input);
    is_str(job.message, want, "%s %s: message", name, input);
    free(got);
}


static void
test_registry(void)
{
    const offload_handler_t  *echo = offload_builtin_find("echo");

    ok(echo != NULL && strcmp(echo->name, "echo") == 0, "find echo");
    ok(offload_builtin_find("events.aggregate") != NULL,
       "find events.aggregate");
    ok(offload_builtin_find("nope") == NULL, "unknown name");
    ok(offload_builtin_find("") == NULL, "empty name");
    ok(!offload_handler_is_fault(echo), "echo is no fault handler");
    ok(offload_handler_is_fault(offload_builtin_find("crash")),
       "crash is a fault handler");
}


/* Handlers that answer in each way offload.h allows, or misbehave. */
static int
answers_nothing(offload_job_t *j, const char *payload, size_t len)
{
    (void) j;
    (void) payload;
    (void) len;
    return OFFLOAD_OK;
}


/* Its payload back, whole or all but its last byte: only the very bytes
 * checked as the payload go unchecked. */
static int
answers_payload(offload_job_t *j, const char *payload, size_t len)
{
    return offload_job_result(j, payload, len);
}


static int
answers_payload_cut(offload_job_t *j, const char *payload, size_t len)
{
    return offload_job_result(j, payload, len - 1);
}


static int
answers_garbage(offload_job_t *j, const char *payload, size_t len)
{
    (void) payload;
    (void) len;
    offload_job_result(j, "{\"a\":", 5);
    return OFFLOAD_OK;
}


static int
fails_with_code(offload_job_t *j, const char *payload, size_t len)
{
    return offload_job_fail(j, len > 2 ? "no_text" : "bad code!",
                            "payload %.*s", (int) len, payload);
}


static int
retries_later(offload_job_t *j, const char *payload, size_t len)
{
    (void) payload;
    (void) len;
    return offload_job_retry(j, "busy", "try again in %d s", 2);
}


static int
returns_error(offload_job_t *j, const char *payload, size_t len)
{
    offload_job_result(j, payload, len);
    return OFFLOAD_ERROR;
}


static int
tells_all(offload_job_t *j, const char *payload, size_t len)
{
    char  buf[300];
    int   n;

    (void) payload;
    (void) len;
    n = snprintf(buf, sizeof(buf), "[\"%s\",\"%s\",%d,%lld]",
                 offload_job_id(j), offload_job_request_id(j),
                 offload_job_attempt(j), (long long) offload_job_deadline(j));
    return offload_job_result(j, buf, (size_t) n);
}


/* 200 two-byte characters: more than the message holds. */
static int
fails_long(offload_job_t *j, const char *payload, size_t len)
{
    char  e[401];
    int   i;

    (void) payload;
    (void) len;
    for (i = 0; i < 200; i++) {
        memcpy(e + 2 * i, "\xc3\xa9", 2);
    }
    e[400] = '\0';
    return offload_job_fail(j, "long", "%s", e);
}


static void
call(int (*run)(offload_job_t *, const char *, size_t), const char *payload)
{
    offload_handler_t  h = { "test", run, NULL, NULL };

    offload_job_set(&job, "abc", 3, "rid-1", 5, 2, 1700000000123LL);
    ok(offload_job_call(&job, &h, payload, strlen(payload)) == OFFLOAD_OK,
       "call on %s", payload);
}


static void
test_job(void)
{
    char  *text;

    call(answers_nothing, "{}");
    ok(job.status == 500 && strcmp(job.code, "bad_result") == 0,
       "no answer: 500 bad_result (%d %s)", job.status, job.code);

    call(answers_garbage, "{}");
    ok(job.status == 500 && strcmp(job.code, "bad_result") == 0,
       "a result that is not JSON: 500 bad_result");
    is_str(job.message, "the handler's result is not JSON: unexpected end "
           "of input at byte 5", "bad result: message");

    call(answers_payload, "{\"a\":[1]}");
    ok(job.status == 200 && job.result_len == 9
       && memcmp(job.result, "{\"a\":[1]}", 9) == 0,
       "its payload back: 200 with the same bytes");

    call(answers_payload_cut, "{\"a\":[1]}");
    ok(job.status == 500 && strcmp(job.code, "bad_result") == 0,
       "part of its payload, not JSON: 500 bad_result");

    call(fails_with_code, "[1]");
    ok(job.status == 422 && strcmp(job.code, "no_text") == 0,
       "fail: 422 with the handler's code");
    is_str(job.message, "payload [1]", "fail: the handler's message");

    {
        /* its log line, once a worker (the log keeps the path: static;
         * the file is the log's for the rest of the test, unlinked) */
        static char  path[] = "/tmp/handlers_test_XXXXXX";
        char         said[512] = "";
        int          fd = mkstemp(path);
        FILE        *f;

        ok(fd >= 0 && offload_log_open(path, OFFLOAD_LOG_INFO, 0, "t") == 0,
           "log to a file");
        call(fails_with_code, "1");
        call(fails_with_code, "2");
        f = fopen(path, "r");
        ok(f != NULL && fread(said, 1, sizeof(said) - 1, f) > 0,
           "read the log");
        ok(strstr(said, "with the code \"bad code!\", which is not") != NULL
           && strstr(strstr(said, "bad code!") + 1, "bad code!") == NULL,
           "an invalid code is said, once");
        if (f != NULL) {
            fclose(f);
        }
        unlink(path);
        if (fd >= 0) {
            close(fd);
        }
    }
    is_str(job.code, "handler_error", "an invalid code: handler_error");
    ok(!job.retry, "offload_job_fail: not to be retried");

    call(retries_later, "{}");
    ok(job.status == 422 && job.retry && strcmp(job.code, "busy") == 0,
       "offload_job_retry: 422 with its code, to be retried");
    is_str(job.message, "try again in 2 s", "retry: the handler's message");

    call(tells_all, "{}");
    ok(job.status == 200 && !job.retry, "the next job starts afresh");

    call(fails_long, "{}");
    ok(strlen(job.message) == 254 && strncmp(job.message + 252, "\xc3\xa9", 2)
       == 0, "a long message is cut at a character boundary (%zu bytes)",
       strlen(job.message));

    call(returns_error, "[2]");
    ok(job.status == 422 && strcmp(job.code, "handler_error") == 0,
       "a result, then OFFLOAD_ERROR without a message: 422");
    is_str(job.message, "the handler failed (its run returned -1 without "
           "offload_job_fail())", "the message says what run did");

    call(tells_all, "{\"x\": [1, {}]}");
    ok(job.status == 200, "accessors: 200");
    text = strndup(job.result, job.result_len);
    is_str(text, "[\"abc\",\"rid-1\",2,1700000000123]", "accessors");
    free(text);

    call(tells_all, "{\"x\": ");
    ok(job.status == 422 && strncmp(job.message, "invalid JSON payload: ",
                                    22) == 0,
       "a payload that is not JSON never reaches the handler: %s",
       job.message);

    offload_job_trim(&job, 0);
    ok(job.result == NULL && job.result_cap == 0, "trim frees the result");
}


static void
test_echo(void)
{
    expect("echo", "{\"a\":[1,2.5,\"x\",null,true]}",
           "{\"a\":[1,2.5,\"x\",null,true]}");
    expect("echo", "42", "42");
    expect("echo", "\"s\"", "\"s\"");
    expect("echo", "[]", "[]");
}


static void
test_sha256(void)
{
    char  *million, *input;

    /* FIPS 180-2 vectors, through the handler */
    expect("sha256", "{\"data\":\"abcdbcdecdefdefgefghfghighijhijkijkljklmklm"
           "nlmnomnopnopq\"}",
           "{\"hex\":\"248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd4"
           "19db06c1\"}");

    million = malloc(1000000 + 32);
    input = million;
    input += sprintf(input, "{\"data\":\"");
    memset(input, 'a', 1000000);
    strcpy(input + 1000000, "\"}");
    expect("sha256", million,
           "{\"hex\":\"cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39cc"
           "c7112cd0\"}");
    free(million);

    expect("sha256", "{\"data\":\"abc\"}",
           "{\"hex\":\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61"
           "f20015ad\"}");
    expect("sha256", "{\"data\":\"\",\"rounds\":1}",
           "{\"hex\":\"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b"
           "7852b855\"}");

    /* 3 rounds: hash "abc", then the raw digest twice (python3 hashlib) */
    expect("sha256", "{\"data\":\"abc\",\"rounds\":3}",
           "{\"hex\":\"f2a778f1a6ed3d5bc59a5d79104c598f3f07093f240ca4e91333fb09"
           "ed4f36da\"}");

    expect_error("sha256", "[]", "input must be an object {\"data\": string, "
                 "\"rounds\": n}");
    expect_error("sha256", "{}", "\"data\" must be a string");
    expect_error("sha256", "{\"data\":5}", "\"data\" must be a string");
    expect_error("sha256", "{\"data\":\"a\",\"rounds\":0}",
                 "\"rounds\" must be 1..10000000");
    expect_error("sha256", "{\"data\":\"a\",\"rounds\":10000001}",
                 "\"rounds\" must be 1..10000000");
    expect_error("sha256", "{\"data\":\"a\",\"rounds\":1.5}",
                 "\"rounds\" must be an integer");
}


static void
test_spin_sleep(void)
{
    int    i, ms, want;
    char  *got, input[32];

    /* at least the time asked for; a loaded host may add a few ms */
    for (i = 0; i < 4; i++) {
        want = (i & 2) ? 20 : 0;
        snprintf(input, sizeof(input), "{\"ms\":%d}", want);
        got = run((i & 1) ? "sleep" : "spin", input);
        ok(got != NULL && sscanf(got, "{\"ms\":%d}", &ms) == 1 && ms >= want
           && ms < want + 1000, "%s %d ms: %s", (i & 1) ? "sleep" : "spin",
           want, got);
        free(got);
    }

    expect_error("spin", "{}", "\"ms\" is required");
    expect_error("spin", "5", "input must be an object {\"ms\": n}");
    expect_error("spin", "{\"ms\":-1}", "\"ms\" must be 0..600000");
    expect_error("spin", "{\"ms\":600001}", "\"ms\" must be 0..600000");
    expect_error("sleep", "{}", "\"ms\" is required");
    expect_error("sleep", "null", "input must be an object {\"ms\": n}");
    expect_error("sleep", "{\"ms\":\"5\"}", "\"ms\" must be an integer");
    expect_error("sleep", "{\"ms\":600001}", "\"ms\" must be 0..600000");
}


static void
test_aggregate(void)
{
    int      i;
    char    *big, *p, *got;
    size_t   size;

    /* values 1..20 for "a": nearest rank p50 = 10th, p95 = 19th,
     * p99 = 20th value. */
    size = 64 * 20 + 64;
    big = malloc(size);
    p = big;
    p += sprintf(p, "[");
    for (i = 20; i >= 1; i--) {
        p += sprintf(p, "%s{\"type\":\"a\",\"value\":%d,\"ts\":%d}",
                     i == 20 ? "" : ",", i, i);
    }
    sprintf(p, "]");
    expect("events.aggregate", big,
           "{\"count\":20,\"types\":{\"a\":{\"count\":20,\"sum\":210.0,"
           "\"min\":1.0,\"max\":20.0,\"mean\":10.5,\"p50\":10.0,\"p95\":19.0,"
           "\"p99\":20.0}}}");
    free(big);

    expect("events.aggregate",
           "{\"events\":[{\"type\":\"x\",\"value\":2.5,\"ts\":1.5}]}",
           "{\"count\":1,\"types\":{\"x\":{\"count\":1,\"sum\":2.5,"
           "\"min\":2.5,\"max\":2.5,\"mean\":2.5,\"p50\":2.5,\"p95\":2.5,"
           "\"p99\":2.5}}}");
    expect("events.aggregate", "[]", "{\"count\":0,\"types\":{}}");

    expect_error("events.aggregate", "5", "input must be an array of events "
                 "or {\"events\": [...]}");
    expect_error("events.aggregate", "{\"x\":[]}", "input must be an array of "
                 "events or {\"events\": [...]}");
    expect_error("events.aggregate",
                 "[{\"type\":\"a\",\"value\":1,\"ts\":1},3]",
                 "event 1: not an object");
    expect_error("events.aggregate", "[{\"value\":1,\"ts\":1}]",
                 "event 0: \"type\" must be a string");
    expect_error("events.aggregate", "[{\"type\":\"a\",\"value\":\"1\","
                 "\"ts\":1}]", "event 0: \"value\" must be a number");
    expect_error("events.aggregate", "[{\"type\":\"a\",\"value\":1}]",
                 "event 0: \"ts\" must be a number");

    /* Many types and many events: the table grows, values sort. */
    size = 200000 * 48;
    big = malloc(size);
    p = big;
    p += sprintf(p, "[");
    for (i = 0; i < 200000; i++) {
        p += sprintf(p, "%s{\"type\":\"t%d\",\"value\":%d,\"ts\":0}",
                     i ? "," : "", i % 1000, i);
    }
    sprintf(p, "]");
    got = run("events.aggregate", big);
    ok(got != NULL && strncmp(got, "{\"count\":200000,", 16) == 0
       && strstr(got, "\"t999\":{\"count\":200,\"sum\":") != NULL,
       "200000 events over 1000 types");
    free(got);
    free(big);
}


int
main(void)
{
    test_registry();
    test_job();
    test_echo();
    test_sha256();
    test_spin_sleep();
    test_aggregate();
    return done_testing();
}
