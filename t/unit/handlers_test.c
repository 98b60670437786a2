/*
 * handlers_test.c -- every built-in handler's output for known inputs and
 * every error path; SHA-256 against FIPS 180-4 test vectors.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handler.h"
#include "tap.h"


static offload_handler_error_t  herr;


/* Runs a handler on a JSON text; returns its output as compact JSON
 * (malloc'ed), or NULL with herr set. */
static char *
run(const char *name, const char *input)
{
    int                       rc;
    char                     *text;
    json_t                   *in, *out = NULL;
    json_error_t              jerr;
    const offload_handler_t  *h = offload_handler_find(name);

    herr.message = NULL;

    if (h == NULL) {
        return NULL;
    }

    in = json_loads(input, JSON_DECODE_ANY, &jerr);
    if (in == NULL) {
        printf("# bad test input %s: %s\n", input, jerr.text);
        return NULL;
    }

    rc = h->run(in, &out, &herr);
    json_decref(in);

    if (rc != 0) {
        json_decref(out);
        return NULL;
    }

    text = json_dumps(out, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(out);
    return text;
}


static void
expect(const char *name, const char *input, const char *want)
{
    char  *got = run(name, input);

    is_str(got, want, "%s %s", name, input);
    if (got == NULL) {
        printf("#   error: %s\n", herr.message ? herr.message : "-");
    }
    free(got);
}


static void
expect_error(const char *name, const char *input, const char *want)
{
    char  *got = run(name, input);

    ok(got == NULL, "%s %s fails", name, input);
    is_str(herr.message, want, "%s %s: message", name, input);
    free(got);
}


static void
test_registry(void)
{
    ok(offload_handler_find("echo") == &offload_handler_echo, "find echo");
    ok(offload_handler_find("events.aggregate") == &offload_handler_aggregate,
       "find events.aggregate");
    ok(offload_handler_find("nope") == NULL, "unknown name");
    ok(offload_handler_find("") == NULL, "empty name");
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
    test_echo();
    test_sha256();
    test_spin_sleep();
    test_aggregate();
    return done_testing();
}
