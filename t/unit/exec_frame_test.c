/*
 * exec_frame_test.c -- the exec bridge's framing: a request is one line
 * whatever the payload's layout, ids are escaped; an answer is taken only
 * when it is one JSON object with the job's id and one of result and
 * error, and the reason says what is wrong otherwise.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "exec_frame.h"
#include "tap.h"

#define ID  "0123456789abcdef0123456789abcdef"


static offload_job_t  job;
static char           why[256];


static void
request_is(const char *payload, const char *want, const char *what)
{
    char    out[1024];
    size_t  n;

    n = offload_exec_request(&job, payload, strlen(payload), out);
    out[n] = '\0';
    is_str(out, want, "%s", what);
}


static void
test_request(void)
{
    offload_str_t  tp, ts;

    offload_job_set(&job, ID, 32, "rid-1", 5, 2, 1764600000000LL);

    request_is("{ \"a\" :\n [1, 2,\t3],\r\n \"s\": \"x y\\n\\\" z\" }\n",
               "{\"id\":\"" ID "\",\"rid\":\"rid-1\",\"traceparent\":\"\","
               "\"tracestate\":\"\",\"attempt\":2,"
               "\"deadline\":1764600000000,\"ran_before\":true,"
               "\"payload\":{\"a\":[1,2,3],"
               "\"s\":\"x y\\n\\\" z\"}}\n",
               "whitespace between tokens goes, strings stay as they are; "
               "an attempt after the first ran_before");

    offload_job_set(&job, ID, 32, "a\"b\\c\x01", 6, 1, 0);
    request_is("42", "{\"id\":\"" ID "\",\"rid\":\"a\\\"b\\\\c\\u0001\","
               "\"traceparent\":\"\",\"tracestate\":\"\","
               "\"attempt\":1,\"deadline\":0,\"payload\":42}\n",
               "a request id is escaped; no deadline is 0; a first run "
               "has no ran_before");

    job.ran_before = 1;                 /* a run a stop cut short */
    request_is("7", "{\"id\":\"" ID "\",\"rid\":\"a\\\"b\\\\c\\u0001\","
               "\"traceparent\":\"\",\"tracestate\":\"\","
               "\"attempt\":1,\"deadline\":0,\"ran_before\":true,"
               "\"payload\":7}\n",
               "ran_before on its first attempt, handed back");
    job.ran_before = 0;

    tp.data = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    tp.len = OFFLOAD_TRACEPARENT_LEN;
    ts.data = "a=\"b\"";
    ts.len = 5;
    offload_job_set_trace(&job, &tp, &ts);
    request_is("1", "{\"id\":\"" ID "\",\"rid\":\"a\\\"b\\\\c\\u0001\","
               "\"traceparent\":\"00-4bf92f3577b34da6a3ce929d0e0e4736-"
               "00f067aa0ba902b7-01\",\"tracestate\":\"a=\\\"b\\\"\","
               "\"attempt\":1,\"deadline\":0,\"payload\":1}\n",
               "the trace context, escaped");
}


/* The answer line as the process wrote it: its result or error, or -1. */
static int
answer(const char *line)
{
    why[0] = '\0';
    offload_job_set(&job, ID, 32, "", 0, 1, 0);
    return offload_exec_answer(&job, line, strlen(line), why, sizeof(why));
}


static void
bad(const char *line, const char *want, const char *what)
{
    ok(answer(line) == -1, "refused: %s", what);
    ok(strstr(why, want) != NULL, "why: %s (%s)", what, why);
}


/* A result as deep as a payload may be: its answer line is one deeper.
 * A deeper one fails its job, the process goes on (before: "not JSON",
 * the process killed, its job rerun). */
static void
test_deep(void)
{
    int     d;
    char   *line, *p;
    size_t  head;

    line = malloc(64 + 2 * (OFFLOAD_JSON_MAX_DEPTH + 1));
    if (line == NULL) {
        abort();
    }

    for (d = OFFLOAD_JSON_MAX_DEPTH; d <= OFFLOAD_JSON_MAX_DEPTH + 1; d++) {
        head = (size_t) sprintf(line, "{\"id\":\"" ID "\",\"result\":");
        p = line + head;
        memset(p, '[', d);
        memset(p + d, ']', d);
        strcpy(p + 2 * d, "}");

        if (d == OFFLOAD_JSON_MAX_DEPTH) {
            ok(answer(line) == OFFLOAD_OK && job.status == 200
               && job.result_len == (size_t) 2 * d,
               "a result %d deep (its line %d): 200", d, d + 1);
        } else {
            ok(answer(line) == OFFLOAD_OK && job.status == 500,
               "a result %d deep: 500, the process kept", d);
            is_str(job.code, "bad_result", "bad_result");
            ok(strstr(job.message, "nests deeper than 512") != NULL,
               "which says why (%s)", job.message);
        }
    }

    /* too deep, and not this job's result: a broken answer, as before */
    memset(line, '[', OFFLOAD_JSON_MAX_DEPTH + 2);
    strcpy(line + OFFLOAD_JSON_MAX_DEPTH + 2, "\n");
    ok(answer(line) == -1, "too deep: a line of brackets is refused");
    ok(strstr(why, "nesting too deep") != NULL, "as not JSON (%s)", why);

    for (d = 0; d < 3; d++) {
        head = (size_t) sprintf(line, "%s", d == 0
                   ? "{\"id\":\"0123456789abcdef0123456789abcdee\",\"result\":"
                   : d == 1 ? "{\"result\":"
                   : "{\"id\":\"" ID "\",\"error\":");
        memset(line + head, '[', OFFLOAD_JSON_MAX_DEPTH + 1);
        line[head + OFFLOAD_JSON_MAX_DEPTH + 1] = '\0';
        ok(answer(line) == -1, "too deep: %s is a broken answer",
           d == 0 ? "another job's result" : d == 1 ? "a result before any id"
                  : "an error");
    }

    free(line);
}


static void
test_answer(void)
{
    char  result[64];

    ok(answer("{\"id\":\"" ID "\",\"result\": {\"a\" : [1, 2]} }")
       == OFFLOAD_OK && job.status == 200, "a result: 200");
    snprintf(result, sizeof(result), "%.*s", (int) job.result_len,
             job.result);
    is_str(result, "{\"a\" : [1, 2]}", "the result as the process wrote it");

    ok(answer(" {\"extra\":{\"id\":\"x\"},\"result\":\"}\",\"id\":\"" ID
              "\"} ") == OFFLOAD_OK && job.status == 200,
       "members in any order; unknown ones ignored, nested ids too");
    snprintf(result, sizeof(result), "%.*s", (int) job.result_len,
             job.result);
    is_str(result, "\"}\"", "a string result holding a brace");

    ok(answer("{\"id\":\"0123456789abcdef0123456789abcde\\u0066\","
              "\"result\":null}") == OFFLOAD_OK && job.status == 200,
       "an id written with an escape is the same id");

    ok(answer("{\"id\":\"" ID "\",\"error\":{\"code\":\"bad_input\","
              "\"message\":\"no \\\"text\\\"\"}}") == OFFLOAD_OK
       && job.status == 422, "an error: 422");
    is_str(job.code, "bad_input", "its code");
    is_str(job.message, "no \"text\"", "its message");
    ok(!job.retry, "an error is for good");

    ok(answer("{\"id\":\"" ID "\",\"error\":{\"code\":\"busy\","
              "\"message\":\"later\",\"retry\":true}}") == OFFLOAD_OK
       && job.status == 422 && job.retry, "\"retry\": true: for now");
    is_str(job.code, "busy", "a retry's code");

    /* a message that is not a string is given as its JSON text (before:
     * an empty message) */
    ok(answer("{\"id\":\"" ID "\",\"error\":{\"code\":\"bad_input\","
              "\"message\":{\"email\": \"taken\"}}}") == OFFLOAD_OK
       && job.status == 422, "an error whose message is an object: 422");
    is_str(job.message, "{\"email\":\"taken\"}", "its JSON text the message");
    ok(answer("{\"id\":\"" ID "\",\"error\":{\"code\":\"bad_input\","
              "\"message\":42}}") == OFFLOAD_OK && job.status == 422,
       "an error whose message is a number: 422");
    is_str(job.message, "42", "its text the message");
    ok(answer("{\"id\":\"" ID "\",\"error\":{\"code\":\"bad_input\","
              "\"message\":null}}") == OFFLOAD_OK && job.status == 422,
       "an error whose message is null: 422");
    is_str(job.message, "", "no message");

    /* what Python's json and JSON.stringify write for "a\0b" and for a
     * lone surrogate: the job fails, the process goes on (before: both
     * were "not an object", so the process was killed and the job rerun) */
    ok(answer("{\"id\":\"" ID "\",\"error\":{\"code\":\"bad_input\","
              "\"message\":\"a\\u0000b\"}}") == OFFLOAD_OK
       && job.status == 422, "an error whose message holds \\u0000: 422");
    is_str(job.code, "bad_input", "with its code");
    ok(answer("{\"id\":\"" ID "\",\"error\":{\"code\":\"bad_input\","
              "\"message\":\"key \\ud800\"}}") == OFFLOAD_OK
       && job.status == 422, "an error holding a lone surrogate: 422");
    is_str(job.code, "handler_error", "a handler_error");
    ok(strstr(job.message, "lone surrogate") != NULL, "which says why");

    ok(answer("{\"id\":\"" ID "\",\"error\":{\"code\":\"no way\"}}")
       == OFFLOAD_OK && job.status == 422, "an error with a bad code");
    is_str(job.code, "handler_error", "is a handler_error");

    test_deep();

    bad("{\"id\": oops}", "answered a line that is not JSON (", "not JSON");
    bad("{\"id\":\"" ID "\",\"result\":1} {}", "not JSON", "two texts");
    bad("[\"" ID "\"]", "answered JSON that is not an object: [\"0123",
        "an array");
    bad("{\"result\":1}", "answered without an \"id\"", "no id");
    bad("{\"id\":\"other\",\"result\":1}",
        "answered for id \"other\" while running job " ID, "another id");
    bad("{\"id\":7,\"result\":1}", "answered for id 7", "an id not a string");
    bad("{\"id\":\"" ID "\",\"result\":1,\"error\":{}}",
        "answered both of \"result\" and \"error\"", "both");
    bad("{\"id\":\"" ID "\"}", "answered neither of \"result\" and \"error\"",
        "neither");
    bad("{\"id\":\"" ID "\",\"error\":\"bad\"}",
        "answered an \"error\" that is not an object", "error not an object");
    bad("\x1b[31m{\"id\": \xff}", "not JSON", "control bytes");
    ok(strchr(why, '\x1b') == NULL && strchr(why, '\xff') == NULL,
       "are not quoted as they are (%s)", why);
}


static int
metric(const char *line)
{
    why[0] = '\0';
    return offload_exec_metric(&job, line, strlen(line), why, sizeof(why));
}


/* Metric lines before the answer: recorded into the job's table. */
static void
test_metric(void)
{
    int                  i;
    json_t              *doc;
    offload_hm_table_t  *t = offload_hm_map();

    job.metrics = t;
    ok(metric("{\"metric\":\"a.b\",\"count\":3}") == 1, "a count line");
    ok(metric(" { \"metric\" : \"a.b\", \"observe\": 2.5 }") == 1,
       "an observe line, with blanks");
    for (i = 0; i < OFFLOAD_HM_NAMES && t->entry[i].count == 0; i++) {
        /* the entry a_b hashed to */
    }
    ok(i < OFFLOAD_HM_NAMES && t->entry[i].count == 3
       && t->entry[i].observations == 1
       && strcmp(t->entry[i].name, "a_b") == 0, "both recorded under a_b");
    ok(metric("{\"id\":\"" ID "\",\"result\":{\"metric\":1}}") == 0,
       "an answer is no metric line");
    ok(metric("{\"metric\":\"a\",\"count\":-1}") == -1
       && strstr(why, "not {\"metric\"") != NULL,
       "a negative count breaks the framing");
    ok(metric("{\"metric\":\"a\",\"count\":1,\"observe\":1}") == -1,
       "count and observe: broken");
    ok(metric("{\"metric\":\"a\"") == -1, "not JSON: broken");
    ok(metric("{\"metric\":\"bad name\",\"count\":1}") == 1,
       "a bad name: not fatal");
    ok(metric("{\"metric\":\"a\\u0000b\",\"count\":1}") == 1,
       "a name holding \\u0000: a bad name, not fatal");
    ok(metric("{\"metric\":\"a\\udc00\",\"count\":1}") == 1,
       "a name holding a lone surrogate: a bad name, not fatal");
    ok(metric("{\"metric\":\"a.b.count\",\"observe\":1}") == 1,
       "observed, a name ending as a histogram's series: a bad name");
    doc = offload_hm_json(t);
    ok(json_object_size(doc) == 1, "and not recorded");
    json_decref(doc);
    job.metrics = NULL;
    offload_hm_unmap(t);
}


int
main(void)
{
    test_request();
    test_answer();
    test_metric();
    offload_job_trim(&job, 0);
    return done_testing();
}
