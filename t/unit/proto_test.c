/*
 * proto_test.c -- the wire protocol helpers of proto/: JSON check, job and
 * result encoding round trips, ids, addresses, queue names, keys.
 */

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "offload_proto.h"
#include "offload_redis_time.h"
#include "tap.h"


/* The checks below are of payloads (surrogate escapes only in pairs) while
 * this is set, else of any JSON text. */
static int  payloads;


static int
json_checked(const char *text, size_t len, size_t *off, const char **err)
{
    return payloads ? offload_json_check_payload(text, len, off, err)
                    : offload_json_check(text, len, off, err);
}


/* The same text fed one byte at a time: the same verdict, offset, error. */
static int
json_bytewise(const char *text, size_t len, size_t *off, const char **err)
{
    size_t               i;
    offload_json_scan_t  s;

    offload_json_scan_init(&s);
    s.pairs = payloads;

    for (i = 0; i < len; i++) {
        if (offload_json_scan(&s, text + i, 1) != 0) {
            break;
        }
    }

    if (i == len && offload_json_scan_end(&s) == 0) {
        return 0;
    }

    *off = s.offset;
    *err = s.err;
    return -1;
}


static void
json_good(const char *text)
{
    size_t       off = 0;
    const char  *err = NULL;

    ok(json_checked(text, strlen(text), &off, &err) == 0,
       "json ok: %s", text);
    ok(json_bytewise(text, strlen(text), &off, &err) == 0,
       "json ok byte by byte: %s", text);
}


static void
json_bad(const char *text, size_t len, size_t want_off, const char *want_err)
{
    size_t       off = 999;
    const char  *err = NULL;

    ok(json_checked(text, len, &off, &err) == -1 && off == want_off,
       "json bad: %.*s at %zu (got %zu)", (int) len, text, want_off, off);
    is_str(err, want_err, "json bad: %.*s: message", (int) len, text);

    off = 999;
    err = NULL;
    ok(json_bytewise(text, len, &off, &err) == -1 && off == want_off,
       "json bad byte by byte: %.*s at %zu (got %zu)", (int) len, text,
       want_off, off);
    is_str(err, want_err, "json bad byte by byte: %.*s: message", (int) len,
           text);
}


/* Every byte at every offset of a run of ordinary string bytes, the whole
 * text at once (the word-at-a-time path) against one byte at a time (the
 * byte path): the same verdict, offset and error. */
static void
test_json_runs(void)
{
    int          b, k, bad;
    char         text[32];
    size_t       off1, off2;
    const char  *err1, *err2;

    bad = 0;
    for (b = 0; b < 256; b++) {
        for (k = 0; k < 20; k++) {
            memset(text, 'a', sizeof(text));
            text[0] = '"';
            text[1 + k] = (char) b;
            text[sizeof(text) - 1] = '"';
            off1 = off2 = 0;
            err1 = err2 = NULL;
            if (offload_json_check(text, sizeof(text), &off1, &err1)
                != json_bytewise(text, sizeof(text), &off2, &err2)
                || off1 != off2 || (err1 != err2 && strcmp(err1, err2) != 0))
            {
                if (bad++ == 0) {
                    printf("# byte 0x%02x at %d: %zu %s, byte by byte "
                           "%zu %s\n", b, 1 + k, off1, err1 ? err1 : "ok",
                           off2, err2 ? err2 : "ok");
                }
            }
        }
    }
    ok(bad == 0, "any byte at any offset of a string: the word-at-a-time "
       "scan agrees with the byte path (%d differ)", bad);

    json_bad("\"abcdefghijklmno\x1f\"", 18, 17,
             "control character in string");
    json_bad("\"abcdefghijklmnop\xff\"", 19, 17, "invalid UTF-8");
    json_good("\"abcdefghijklmnop\xc3\xa9qrstuvwxyz\\\"0123456789\"");
    json_good("[\"abcdefgh\",\"ijklmnop\",\"\"]");
}


static void
test_json(void)
{
    char        *deep;
    size_t       i;
    const char  *err;

    json_good("{}");
    json_good("[]");
    json_good(" {\"a\" : [1, -2.5e+3, 0, true, false, null,"
              " \"x\\u00e9\\n\"]} ");
    json_good("\"just a string\"");
    json_good("0");
    json_good("-0.5E-2");
    json_good("{\"a\":{\"b\":{\"c\":[[],{}]}}}");
    json_good("[0,10,1.5e3,-0E+1,{\"k\":null}]");
    json_good(" { } ");

    /* UTF-8 in strings: every length, the edges of each range */
    json_good("\"\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xed\x9f\xbf "
              "\xef\xbf\xbf \xf4\x8f\xbf\xbf\"");
    json_good("{\"\xc3\xa9\":\"\xe0\xa0\x80\"}");
    json_bad("\"\xff\"", 3, 1, "invalid UTF-8");
    json_bad("\"a\x80\"", 4, 2, "invalid UTF-8");
    json_bad("\"\xc0\xaf\"", 4, 1, "invalid UTF-8");         /* overlong */
    json_bad("\"\xe0\x9f\xbf\"", 5, 2, "invalid UTF-8");     /* overlong */
    json_bad("\"\xed\xa0\x80\"", 5, 2, "invalid UTF-8");     /* surrogate */
    json_bad("\"\xf4\x90\x80\x80\"", 6, 2, "invalid UTF-8"); /* > 10FFFF */
    json_bad("\"\xc3\"", 3, 2, "invalid UTF-8");         /* cut short */
    json_bad("\"\xe2\x82", 3, 3, "unterminated string");
    json_bad("", 0, 0, "unexpected end of input");
    json_bad("   ", 3, 3, "unexpected end of input");
    json_bad("[1,]", 4, 3, "unexpected character");
    json_bad("{\"a\" 1}", 7, 5, "expected ':'");
    json_bad("{\"a\":1,}", 8, 7, "expected a string key");
    json_bad("{1:2}", 5, 1, "expected a string key");
    json_bad("[1 2]", 5, 3, "expected ',' or ']'");
    json_bad("{\"a\":1 \"b\"}", 11, 7, "expected ',' or '}'");
    json_bad("01", 2, 1, "trailing characters after JSON value");
    json_bad("{} x", 4, 3, "trailing characters after JSON value");
    json_bad("-", 1, 1, "bad number");
    json_bad("1.", 2, 2, "bad number");
    json_bad("1e", 2, 2, "bad number");
    json_bad("tru", 3, 0, "unexpected character");
    json_bad("nul", 3, 0, "unexpected character");
    json_bad("\"abc", 4, 4, "unterminated string");
    json_bad("\"a\x01\"", 4, 3, "control character in string");
    json_bad("\"\\x\"", 4, 3, "bad escape");
    json_bad("\"\\u12g4\"", 8, 5, "bad \\u escape");
    json_bad("[1", 2, 2, "unexpected end of input");
    json_bad("[1] ", 2, 2, "unexpected end of input");   /* length counts */
    json_bad("\"a\0b\"", 5, 3, "control character in string");
    json_bad("{", 1, 1, "expected a string key");
    json_bad("{\"a\"", 4, 4, "expected ':'");
    json_bad("\"\\u12", 5, 5, "bad \\u escape");

    /* in a payload, a surrogate escape only in a pair, high then low
     * (jansson, jq and Perl's JSON::PP refuse the text otherwise); in
     * anything else (a handler's answer) a lone one passes */
    json_good("\"a\\ud800b \\udc00\"");
    payloads = 1;
    json_good("\"\\ud83d\\ude00 \\uD83D\\uDE00 \\ud7ff \\ue000\"");
    json_bad("\"a\\ud800b\"", 10, 8, "a lone UTF-16 surrogate escape (many "
             "JSON parsers refuse the text)");
    json_bad("\"a\\udc00\"", 9, 2, "a lone UTF-16 surrogate escape (many "
             "JSON parsers refuse the text)");
    json_bad("\"\\ud800\\ud800\"", 14, 7, "a lone UTF-16 surrogate escape "
             "(many JSON parsers refuse the text)");
    json_bad("\"\\ud800\\n\"", 10, 8, "a lone UTF-16 surrogate escape (many "
             "JSON parsers refuse the text)");
    json_bad("\"\\ud800\\u0041\"", 14, 7, "a lone UTF-16 surrogate escape "
             "(many JSON parsers refuse the text)");
    json_bad("\"\\ud800", 7, 7, "unterminated string");
    json_bad("\"\\ud800\\", 8, 8, "unterminated string");
    payloads = 0;
    json_bad("1e+", 3, 3, "bad number");
    json_bad("[1.5x]", 6, 4, "expected ',' or ']'");

    deep = malloc(2 * OFFLOAD_JSON_MAX_DEPTH + 4);
    for (i = 0; i < OFFLOAD_JSON_MAX_DEPTH; i++) {
        deep[i] = '[';
        deep[2 * OFFLOAD_JSON_MAX_DEPTH - 1 - i] = ']';
    }
    ok(offload_json_check(deep, 2 * OFFLOAD_JSON_MAX_DEPTH, &i,
                          &(const char *) { NULL }) == 0,
       "nesting of exactly the maximum depth");

    for (i = 0; i <= OFFLOAD_JSON_MAX_DEPTH; i++) {
        deep[i] = '[';
    }
    json_bad(deep, OFFLOAD_JSON_MAX_DEPTH + 1, OFFLOAD_JSON_MAX_DEPTH,
             "nesting too deep");

    /* one level more in a frame; the error itself, for callers to tell */
    memset(deep, '[', OFFLOAD_JSON_MAX_DEPTH + 1);
    memset(deep + OFFLOAD_JSON_MAX_DEPTH + 1, ']', OFFLOAD_JSON_MAX_DEPTH + 1);
    ok(offload_json_check_framed(deep, 2 * OFFLOAD_JSON_MAX_DEPTH + 2, &i,
                                 &(const char *) { NULL }) == 0,
       "framed: nesting of the maximum depth and one");
    deep[OFFLOAD_JSON_MAX_DEPTH + 1] = '[';
    ok(offload_json_check_framed(deep, OFFLOAD_JSON_MAX_DEPTH + 2, &i,
                                 &err) == -1
       && err == offload_json_too_deep && i == OFFLOAD_JSON_MAX_DEPTH + 1,
       "framed: one more is too deep, at byte %zu", i);
    free(deep);
}


static void
test_result(void)
{
    int               n;
    char              buf[256];
    const char       *err;
    offload_str_t     id;
    offload_result_t  in, out;

    in.version = OFFLOAD_PROTO_VERSION;
    in.id.data = "0123456789abcdef0000000000000001";
    in.id.len = 32;
    in.status = 422;
    in.queue_us = 1234;
    in.run_us = 56789;
    in.cpu_us = 50001;
    in.rss_kb = 2048;

    n = offload_result_header(buf, sizeof(buf), &in);
    is_str(buf, "OR1 0123456789abcdef0000000000000001 422 1234 56789 50001 "
           "2048\n", "result header");
    ok(n == (int) strlen(buf), "header length returned");

    strcat(buf, "{\"x\":1}");
    ok(offload_result_decode(&out, buf, strlen(buf), &err) == 0,
       "round trip decodes");
    ok(out.version == 1 && out.status == 422 && out.queue_us == 1234
       && out.run_us == 56789 && out.cpu_us == 50001 && out.rss_kb == 2048,
       "round trip numbers");
    ok(out.id.len == 32 && memcmp(out.id.data, in.id.data, 32) == 0,
       "round trip id");
    ok(out.body.len == 7 && memcmp(out.body.data, "{\"x\":1}", 7) == 0,
       "round trip body");

    ok(offload_result_header(buf, 20, &in) == -1, "header too small a buffer");

#define BAD_RESULT(text, want)                                               \
    ok(offload_result_decode(&out, text, strlen(text), &err) == -1,          \
       "bad result: %s", text);                                              \
    is_str(err, want, "bad result message: %s", text)

    BAD_RESULT("", "not a result");
    BAD_RESULT("XX1 id 200 0 0\n{}", "not a result");
    BAD_RESULT("OR2 id 200 0 0\n{}", "unsupported protocol version");
    BAD_RESULT("ORx id 200 0 0\n{}", "bad version");
    BAD_RESULT("OR1  200 0 0\n{}", "bad id");
    BAD_RESULT("OR1 id 99 0 0\n{}", "bad status");
    BAD_RESULT("OR1 id 600 0 0\n{}", "bad status");
    BAD_RESULT("OR1 id 200 -1 0\n{}", "bad queue time");
    BAD_RESULT("OR1 id 200 0 x\n{}", "bad run time");
    BAD_RESULT("OR1 id 200 0 0", "bad run time");
    BAD_RESULT("OR1 id\n200 0 0\n{}", "bad id");
    /* found by t/fuzz/result_decode (t/fuzz/regress/result_decode) */
    ok(offload_result_decode(&out, "OR1 i\0d 200 0 0\n{}", 19, &err) == -1,
       "an id with a NUL byte");
    is_str(err, "bad id", "an id with a NUL byte: message");
    BAD_RESULT("OR1 id 200 0 0 1\n{}", "bad resource use");
    BAD_RESULT("OR1 id 200 0 0 1 x\n{}", "bad resource use");
    BAD_RESULT("OR1 id 200 0 0 1 2 3\n{}", "bad resource use");

    ok(offload_result_decode(&out, "OR1 id 200 0 0\n", 15, &err) == 0
       && out.body.len == 0, "empty body decodes");
    ok(offload_result_decode(&out, "OR1 id 200 5 7\n{}", 17, &err) == 0
       && out.run_us == 7 && out.cpu_us == -1 && out.rss_kb == -1,
       "an older sidecar's header (no resource use) decodes");

    ok(offload_notice_decode(&id, "ON1 ab12", 8) == 0 && id.len == 4
       && memcmp(id.data, "ab12", 4) == 0, "a notice gives its job id");
    ok(offload_notice_decode(&id, "OR1 ab12 200 0 0\n{}", 19) == -1,
       "a result is not a notice");
    ok(offload_notice_decode(&id, "ON2 ab12", 8) == -1,
       "a notice of another version is not decoded");
    ok(offload_notice_decode(&id, "ON1 ", 4) == -1
       && offload_notice_decode(&id, "ON1 a b", 7) == -1,
       "a notice needs one id");
}


/* tp and ts, which test_trace adds */
#define TRACE_FIELDS  4

/* Whether the XADD argv has the field name with the value "%lld" makes
 * of n. */
static int
job_number(const char **argv, const size_t *argvlen, int argc,
    const char *name, long long n)
{
    int   i;
    char  want[24];

    snprintf(want, sizeof(want), "%lld", n);

    for (i = OFFLOAD_JOB_FIELDS_AT; i + 1 < argc; i += 2) {
        if (argvlen[i] == strlen(name)
            && memcmp(argv[i], name, argvlen[i]) == 0)
        {
            return argvlen[i + 1] == strlen(want)
                   && memcmp(argv[i + 1], want, argvlen[i + 1]) == 0
                   && argv[i + 1][argvlen[i + 1]] == '\0';
        }
    }

    return 0;
}


/* An entry with only what every job has: a version, an id, "{}". */
static void
small_entry(offload_entry_t *in)
{
    memset(in, 0, sizeof(*in));
    in->version = 1;
    in->id.data = "0123456789abcdef00000000000000ff";
    in->id.len = 32;
    in->payload.data = "{}";
    in->payload.len = 2;
}


/* A job's numbers are written by hand: as "%lld" writes them, at the
 * edges too. */
static void
test_job_numbers(void)
{
    int                    argc, good, i;
    const char            *argv[OFFLOAD_JOB_ARGC];
    size_t                 argvlen[OFFLOAD_JOB_ARGC];
    offload_entry_t        in;
    offload_job_scratch_t  scratch;

    static const long long  n[] = {
        0, 1, 9, 10, 99, 100, 1700000005000LL, -1, -10,
        INT64_MAX - 1, INT64_MIN
    };
    static const int  attempts[] = { 1, 9, 10, 2147483647, -2147483647 - 1 };

    small_entry(&in);
    good = 1;

    for (i = 0; i < (int) (sizeof(n) / sizeof(n[0])); i++) {
        in.deadline_ms = n[i];
        in.submitted_ms = n[i] ? n[i] : 1;
        in.body_len = n[i] > 0 ? n[i] : 1;
        in.record_ttl_ms = n[i] > 0 ? n[i] : 1;
        in.attempt = attempts[i % (sizeof(attempts) / sizeof(attempts[0]))];

        argc = offload_job_argv(&in, "offload:{q}:jobs", &scratch, argv,
                                argvlen);

        good = good
               && job_number(argv, argvlen, argc, OFFLOAD_F_DEADLINE,
                             in.deadline_ms)
               && job_number(argv, argvlen, argc, OFFLOAD_F_SUBMITTED,
                             in.submitted_ms)
               && job_number(argv, argvlen, argc, OFFLOAD_F_ATTEMPT,
                             in.attempt)
               && job_number(argv, argvlen, argc, OFFLOAD_F_BODY,
                             in.body_len)
               && job_number(argv, argvlen, argc, OFFLOAD_F_RECORD,
                             in.record_ttl_ms);
    }

    ok(good, "a job's numbers as %%lld writes them, 0 to the edges of "
       "int64");
}


static void
test_job(void)
{
    int                    argc, i;
    char                   stream[OFFLOAD_KEY_MAX];
    const char            *argv[OFFLOAD_JOB_ARGC], *err;
    size_t                 argvlen[OFFLOAD_JOB_ARGC];
    offload_str_t          fields[OFFLOAD_JOB_ARGC];
    offload_entry_t        in, out;
    offload_job_scratch_t  scratch;

    memset(&in, 0, sizeof(in));
    in.version = 1;
    in.id.data = "0123456789abcdef00000000000000ff";
    in.id.len = 32;
    in.payload.data = "{\"a\":\"b\0c\"}";   /* binary-safe */
    in.payload.len = 11;
    in.reply.data = "offload:reply:0123456789abcdef";
    in.reply.len = strlen(in.reply.data);
    in.request_id.data = "rid-1";
    in.request_id.len = 5;
    in.deadline_ms = 1700000005000LL;
    in.submitted_ms = 1700000000000LL;
    in.attempt = 1;

    offload_stream_key(stream, sizeof(stream), "echo", 4);
    argc = offload_job_argv(&in, stream, &scratch, argv, argvlen);
    ok(argc == OFFLOAD_JOB_ARGC - 4 - TRACE_FIELDS,
       "XADD argc, no body nor rec field, no trace context");
    ok(argvlen[0] == 4 && memcmp(argv[0], "XADD", 4) == 0
       && strcmp(argv[1], "offload:{echo}:jobs") == 0
       && argvlen[2] == 10 && memcmp(argv[2], "NOMKSTREAM", 10) == 0
       && argvlen[3] == 1 && argv[3][0] == '*', "XADD key NOMKSTREAM *");

    for (i = OFFLOAD_JOB_FIELDS_AT; i < argc; i++) {
        fields[i - OFFLOAD_JOB_FIELDS_AT].data = argv[i];
        fields[i - OFFLOAD_JOB_FIELDS_AT].len = argvlen[i];
    }

    ok(offload_job_decode(&out, fields,
                          (size_t) (argc - OFFLOAD_JOB_FIELDS_AT), &err)
       == 0,
       "job round trip decodes");
    ok(out.version == 1 && out.deadline_ms == in.deadline_ms
       && out.submitted_ms == in.submitted_ms && out.attempt == 1,
       "job round trip numbers");
    ok(out.id.len == 32 && memcmp(out.id.data, in.id.data, 32) == 0
       && out.payload.len == 11
       && memcmp(out.payload.data, in.payload.data, 11) == 0
       && out.reply.len == in.reply.len
       && out.request_id.len == 5 && out.body_len == 0,
       "job round trip strings");

    in.payload.len = 0;
    in.body_len = 64 * 1024 * 1024;
    argc = offload_job_argv(&in, stream, &scratch, argv, argvlen);
    ok(argc == OFFLOAD_JOB_ARGC - 2 - TRACE_FIELDS && argvlen[argc - 2] == 4
       && memcmp(argv[argc - 2], "body", 4) == 0
       && argvlen[argc - 1] == 8 && memcmp(argv[argc - 1], "67108864", 8) == 0,
       "a big job's XADD ends with body <length>");

    in.record_ttl_ms = 3600000;
    argc = offload_job_argv(&in, stream, &scratch, argv, argvlen);
    ok(argc == OFFLOAD_JOB_ARGC - TRACE_FIELDS && argvlen[argc - 2] == 3
       && memcmp(argv[argc - 2], "rec", 3) == 0
       && argvlen[argc - 1] == 7 && memcmp(argv[argc - 1], "3600000", 7) == 0,
       "an async job's XADD ends with rec <record TTL>");
    for (i = OFFLOAD_JOB_FIELDS_AT; i < argc; i++) {
        fields[i - OFFLOAD_JOB_FIELDS_AT].data = argv[i];
        fields[i - OFFLOAD_JOB_FIELDS_AT].len = argvlen[i];
    }
    ok(offload_job_decode(&out, fields,
                          (size_t) (argc - OFFLOAD_JOB_FIELDS_AT), &err)
       == 0 && out.record_ttl_ms == 3600000,
       "rec round trips");
    fields[argc - OFFLOAD_JOB_FIELDS_AT - 1].data = "1h";
    fields[argc - OFFLOAD_JOB_FIELDS_AT - 1].len = 2;
    ok(offload_job_decode(&out, fields,
                          (size_t) (argc - OFFLOAD_JOB_FIELDS_AT), &err)
       == -1 && strcmp(err, "bad record TTL") == 0,
       "a rec that is no number: not a job");
    in.record_ttl_ms = 0;
    argc = offload_job_argv(&in, stream, &scratch, argv, argvlen);

    ok(strcmp(offload_record_status(200, NULL), "done") == 0
       && strcmp(offload_record_status(422, "handler_error"), "failed") == 0
       && strcmp(offload_record_status(500, "bad_result"), "failed") == 0
       && strcmp(offload_record_status(502, "worker_crashed"), "dead") == 0
       && strcmp(offload_record_status(502, "out_of_memory"), "dead") == 0
       && strcmp(offload_record_status(504, "expired"), "expired") == 0
       && strcmp(offload_record_status(504, "job_timeout"), "failed") == 0,
       "a record's end status from the result's status and code");

    for (i = OFFLOAD_JOB_FIELDS_AT; i < argc; i++) {
        fields[i - OFFLOAD_JOB_FIELDS_AT].data = argv[i];
        fields[i - OFFLOAD_JOB_FIELDS_AT].len = argvlen[i];
    }

    ok(offload_job_decode(&out, fields,
                          (size_t) (argc - OFFLOAD_JOB_FIELDS_AT), &err)
       == 0 && out.body_len == in.body_len && out.payload.len == 0,
       "a big job round trip: body length, empty payload");

#define DECODE(arr, n) offload_job_decode(&out, arr, n, &err)
#define S(lit) { lit, sizeof(lit) - 1 }
    {
        offload_str_t  odd[] = { S("v"), S("1"), S("id") };
        offload_str_t  nover[] = { S("id"), S("x") };
        offload_str_t  v2[] = { S("v"), S("2") };
        offload_str_t  badv[] = { S("v"), S("one") };
        offload_str_t  missing[] = { S("v"), S("1"), S("id"), S("x") };
        offload_str_t  badid[] = { S("v"), S("1"), S("id"), S("") };
        offload_str_t  baddl[] = { S("v"), S("1"), S("deadline"), S("-5") };
        offload_str_t  badsub[] = { S("v"), S("1"), S("submitted"), S("1x") };
        offload_str_t  secdl[] = {
            S("v"), S("1"), S("deadline"), S("1700000060")
        };
        offload_str_t  secsub[] = {
            S("v"), S("1"), S("submitted"), S("1700000000")
        };
        offload_str_t  badatt[] = { S("v"), S("1"), S("attempt"), S("0") };
        offload_str_t  body0[] = {
            S("v"), S("1"), S("id"), S("i"), S("payload"), S(""),
            S("reply"), S("offload:reply:r"), S("deadline"), S("1700000060000"),
            S("submitted"), S("1700000000000"), S("attempt"), S("3"),
            S("body"), S("0")
        };
        offload_str_t  both[] = {
            S("v"), S("1"), S("id"), S("i"), S("payload"), S("{}"),
            S("reply"), S("offload:reply:r"), S("deadline"), S("1700000060000"),
            S("submitted"), S("1700000000000"), S("attempt"), S("3"),
            S("body"), S("2")
        };
        offload_str_t  extra[] = {
            S("v"), S("1"), S("id"), S("i"), S("payload"), S("{}"),
            S("reply"), S("offload:reply:r"), S("deadline"), S("1700000060000"),
            S("submitted"), S("1700000000000"), S("attempt"), S("3"),
            S("future"), S("ignored")
        };

        ok(DECODE(odd, 3) == -1, "odd field count");
        is_str(err, "odd number of fields", "odd: message");
        ok(DECODE(nover, 2) == -1, "no version");
        is_str(err, "no version", "no version: message");
        ok(DECODE(v2, 2) == -1, "version 2");
        is_str(err, "unsupported protocol version", "version 2: message");
        ok(DECODE(badv, 2) == -1, "bad version");
        is_str(err, "bad version", "bad version: message");
        ok(DECODE(missing, 4) == -1, "missing fields");
        is_str(err, "missing field", "missing: message");
        ok(DECODE(badid, 4) == -1, "empty id");
        is_str(err, "bad id", "empty id: message");
        ok(DECODE(baddl, 4) == -1, "negative deadline");
        is_str(err, "bad deadline", "deadline: message");
        ok(DECODE(badsub, 4) == -1, "bad submitted");
        is_str(err, "bad submitted time", "submitted: message");
        ok(DECODE(secdl, 4) == -1, "a deadline in seconds");
        is_str(err, "bad deadline: before 2001, in seconds? (ms since the "
               "epoch)", "deadline in seconds: message");
        ok(DECODE(secsub, 4) == -1, "a submit time in seconds");
        is_str(err, "bad submitted time: before 2001, in seconds? (ms "
               "since the epoch)", "submitted in seconds: message");
        ok(DECODE(badatt, 4) == -1, "attempt 0");
        is_str(err, "bad attempt", "attempt: message");
        ok(DECODE(body0, 16) == -1, "body length 0");
        is_str(err, "bad body length", "body 0: message");
        ok(DECODE(both, 16) == -1, "a payload and a body");
        is_str(err, "both a payload and a body", "both: message");
        ok(DECODE(extra, 16) == 0 && out.attempt == 3
           && out.request_id.len == 0, "unknown fields ignored, rid optional");
    }
    {
        /* a job a program submits itself: fire and forget */
        offload_str_t  minimal[] = {
            S("v"), S("1"), S("id"), S("i"), S("payload"), S("{}")
        };
        offload_str_t  aside[] = {
            S("v"), S("1"), S("id"), S("i"), S("body"), S("5")
        };

        ok(DECODE(minimal, 6) == 0 && out.reply.len == 0
           && out.deadline_ms == OFFLOAD_NO_DEADLINE
           && out.submitted_ms == 0 && out.attempt == 1,
           "v, id and payload make a job: no reply, no deadline, "
           "attempt 1");
        ok(DECODE(aside, 6) == 0 && out.body_len == 5
           && out.payload.len == 0, "a body without a payload field too");
    }
    {
        /* a job with a record has a hex id: its record key gives it back */
        offload_str_t  rec[] = {
            S("v"), S("1"), S("id"), S("0123456789a}bcde"),
            S("payload"), S("{}"), S("rec"), S("60000")
        };

        ok(DECODE(rec, 8) == -1, "a record's id with a '}': refused");
        is_str(err, "bad id", "bad record id: message");
        rec[3] = (offload_str_t) S("0123456789abcdef");
        ok(DECODE(rec, 8) == 0 && out.record_ttl_ms == 60000,
           "a record's hex id: a job");

        in.payload.len = 2;
        in.body_len = 0;
        in.reply.len = 0;
        in.deadline_ms = OFFLOAD_NO_DEADLINE;
        in.submitted_ms = 0;
        argc = offload_job_argv(&in, stream, &scratch, argv, argvlen);
        ok(argc == OFFLOAD_JOB_ARGC - 10 - TRACE_FIELDS,
           "no reply, deadline, submitted, body: four fields fewer");
        for (i = OFFLOAD_JOB_FIELDS_AT; i < argc; i++) {
            fields[i - OFFLOAD_JOB_FIELDS_AT].data = argv[i];
            fields[i - OFFLOAD_JOB_FIELDS_AT].len = argvlen[i];
        }
        ok(offload_job_decode(&out, fields,
                              (size_t) (argc - OFFLOAD_JOB_FIELDS_AT), &err)
           == 0 && out.reply.len == 0
           && out.deadline_ms == OFFLOAD_NO_DEADLINE,
           "which round trips");
    }
}


static void
test_ids(void)
{
    char      id[OFFLOAD_JOB_ID_LEN + 1];
    uint64_t  seq;

    char      rec[OFFLOAD_KEY_MAX];

    offload_job_id_format(id, "0123456789abcdef", "5a7e1",
                          0xfedcba9876543210ULL);
    id[OFFLOAD_JOB_ID_LEN] = '\0';
    is_str(id, "0123456789a5a7e1fedcba9876543210", "id format: 11 of the "
           "nonce, the tag, the sequence");
    ok(offload_job_id_seq(id, 32, &seq) == 0 && seq == 0xfedcba9876543210ULL,
       "id seq round trip");

    offload_job_id_format(id, "aaaaaaaaaaaaaaaa", "00000", 1);
    is_str(id, "aaaaaaaaaaa000000000000000000001", "id of seq 1");

    ok(offload_job_record_key(rec, sizeof(rec), "0123456789a5a7e1fedcba98"
                              "76543210", 32) > 0, "record key fits");
    is_str(rec, "offload:job:{5a7e1}:0123456789a5a7e1fedcba9876543210",
           "the record key has the id's tag");
    offload_job_record_key(rec, sizeof(rec), "abc", 3);
    is_str(rec, "offload:job:{}:abc", "a short id: an empty tag, as Lua's "
           "string.sub");
    offload_job_record_key(rec, sizeof(rec), "0123456789abcd", 14);
    is_str(rec, "offload:job:{bcd}:0123456789abcd", "a 14-char id: 3 of tag");

    ok(offload_job_id_seq(id, 31, &seq) == -1, "short id");
    ok(offload_job_id_seq("0123456789ABCDEF0000000000000001", 32, &seq) == -1,
       "upper case id");
    ok(offload_job_id_seq("0123456789abcdef000000000000000g", 32, &seq) == -1,
       "non-hex id");
}


static void
test_addr_names_keys(void)
{
    char            buf[OFFLOAD_KEY_MAX], q64[65];
    offload_addr_t  a;

    ok(offload_addr_parse(&a, "127.0.0.1:6380", 14) == 0
       && strcmp(a.host, "127.0.0.1") == 0 && a.port == 6380 && !a.is_unix,
       "host:port");
    ok(offload_addr_parse(&a, "redis", 5) == 0 && a.port == 6379,
       "host alone, port 6379");
    ok(offload_addr_parse(&a, "unix:/tmp/r.sock", 16) == 0 && a.is_unix
       && strcmp(a.host, "/tmp/r.sock") == 0, "unix:/path");
    ok(offload_addr_parse(&a, "unix:r.sock", 11) == -1, "relative unix path");
    ok(offload_addr_parse(&a, "unix:", 5) == -1, "empty unix path");
    ok(offload_addr_parse(&a, ":6379", 5) == -1, "no host");
    ok(offload_addr_parse(&a, "h:", 2) == -1, "no port");
    ok(offload_addr_parse(&a, "h:0", 3) == -1, "port 0");
    ok(offload_addr_parse(&a, "h:65536", 7) == -1, "port 65536");
    ok(offload_addr_parse(&a, "h:12x", 5) == -1, "port with junk");
    ok(offload_addr_parse(&a, "h:6379", 3) == 0 && a.port == 6,
       "length is honoured");
    ok(offload_addr_parse(&a, "h:0006379", 9) == 0 && a.port == 6379,
       "port with leading zeros");
    ok(offload_addr_parse(&a, "h:00006379", 10) == -1, "port of 8 chars");
    /* found by t/fuzz/ngx_directives.c (t/fuzz/regress/ngx_directives) */
    ok(offload_addr_parse(&a, "h:+6379", 7) == -1, "port with a sign");
    ok(offload_addr_parse(&a, "h: 6379", 7) == -1, "port after a space");
    ok(offload_addr_parse(&a, "h:63\0", 5) == -1, "NUL in the port");
    ok(offload_addr_parse(&a, "h\0st:6379", 9) == -1, "NUL in the host");
    ok(offload_addr_parse(&a, "unix:/a\0b", 9) == -1, "NUL in the path");

#define ADDR(text)  offload_addr_parse(&a, text, sizeof(text) - 1)
    ok(ADDR("[::1]:6380") == 0 && strcmp(a.host, "::1") == 0
       && a.port == 6380 && !a.is_unix, "[ipv6]:port, host kept bare");
    ok(ADDR("[2001:db8::7]") == 0 && strcmp(a.host, "2001:db8::7") == 0
       && a.port == 6379, "[ipv6] alone, port 6379");
    ok(ADDR("[fe80::1%lo]:7000") == 0 && strcmp(a.host, "fe80::1%lo") == 0
       && a.port == 7000, "[ipv6%%zone]:port");
    ok(ADDR("::1") == -1, "bare ipv6 without brackets");
    ok(ADDR("::1:6379") == -1, "bare ipv6 with a port");
    ok(ADDR("fe80::1") == -1, "bare ipv6 starting with a hex group");
    ok(ADDR("[::1") == -1, "no closing bracket");
    ok(ADDR("[]:6379") == -1, "empty brackets");
    ok(ADDR("[localhost]:6379") == -1, "brackets around a name");
    ok(ADDR("[::1]:") == -1, "[ipv6]: without a port");
    ok(ADDR("[::1]6379") == -1, "[ipv6] then junk");
    ok(ADDR("[::1]:0") == -1, "[ipv6]:0");
    ok(offload_addr_parse(&a, "[::1]:6380", 5) == 0 && a.port == 6379,
       "[ipv6] length is honoured");
#undef ADDR

    {
        char  buf[300];

        offload_addr_parse(&a, "[::1]:6380", 10);
        offload_addr_format(&a, buf, sizeof(buf));
        is_str(buf, "[::1]:6380", "format: ipv6 in brackets");
        offload_addr_parse(&a, "127.0.0.1", 9);
        offload_addr_format(&a, buf, sizeof(buf));
        is_str(buf, "127.0.0.1:6379", "format: host:port");
        offload_addr_parse(&a, "unix:/r.sock", 12);
        offload_addr_format(&a, buf, sizeof(buf));
        is_str(buf, "unix:/r.sock", "format: unix");
    }

    memset(q64, 'q', 64);
    q64[64] = '\0';
    ok(offload_queue_name_valid("echo", 4), "queue echo");
    ok(offload_queue_name_valid("events.aggregate_v-2", 20), "queue . _ -");
    ok(offload_queue_name_valid(q64, 64), "64 chars");
    ok(!offload_queue_name_valid(q64, 0), "empty");
    ok(!offload_queue_name_valid("q{x}", 4), "braces (hash tag)");
    ok(!offload_queue_name_valid("a b", 3), "space");
    ok(!offload_queue_name_valid("a:b", 3), "colon");

    ok(offload_stream_key(buf, sizeof(buf), "echo", 4) == 19
       && strcmp(buf, "offload:{echo}:jobs") == 0, "stream key");
    ok(offload_result_key(buf, sizeof(buf), "echo", 4, "abc", 3) > 0
       && strcmp(buf, "offload:{echo}:result:abc") == 0, "result key");
    ok(offload_body_key(buf, sizeof(buf), "echo", 4, "abc", 3) > 0
       && strcmp(buf, "offload:{echo}:body:abc") == 0, "body key");
    ok(offload_stage_key(buf, sizeof(buf), "echo", 4, "abc", 3, "n:echo:0")
       > 0 && strcmp(buf, "offload:{echo}:stage:abc:n:echo:0") == 0,
       "staging key");
    ok(offload_reply_channel(buf, sizeof(buf), "0123456789abcdef", 16) > 0
       && strcmp(buf, "offload:reply:0123456789abcdef") == 0, "reply channel");
    ok(offload_queue_reply_channel(buf, sizeof(buf), "echo", 4,
                                   "0123456789abcdef", 16) > 0
       && strcmp(buf, "offload:{echo}:reply:0123456789abcdef") == 0,
       "a queue's (sharded) reply channel");
    ok(offload_stream_key(buf, 10, "echo", 4) == -1, "key does not fit");
    ok(offload_stream_key(buf, 19, "echo", 4) == -1
       && offload_stream_key(buf, 20, "echo", 4) == 19
       && strcmp(buf, "offload:{echo}:jobs") == 0,
       "stream key: its NUL must fit too");
    ok(offload_stream_key(buf, sizeof(buf), "ec\0ho", 5) == 17
       && strcmp(buf, "offload:{ec}:jobs") == 0,
       "stream key: the queue ends at a NUL, as with %%.*s");
    ok(offload_dead_key(buf, sizeof(buf), "echo", 4) == 19
       && strcmp(buf, "offload:{echo}:dead") == 0, "dead-letter key");
}


/*
 * offload_result_header() and offload_result_key() are written by hand:
 * what snprintf() wrote with these formats, byte for byte with its NUL, -1
 * when that does not fit (one byte short), and never a byte past size.
 */
#define OLD_HEADER_FMT      "OR%d %.*s %d %lld %lld %lld %lld\n"
#define OLD_RESULT_KEY_FMT  "offload:{%.*s}:result:%.*s"
#define GUARD               0x5a

typedef int (*format_pt)(char *buf, size_t size, const void *arg);

typedef struct {
    const char  *queue;
    size_t       qlen;
    const char  *id;
    size_t       idlen;
} key_arg_t;


static int
format_header(char *buf, size_t size, const void *arg)
{
    return offload_result_header(buf, size, arg);
}


static int
format_key(char *buf, size_t size, const void *arg)
{
    const key_arg_t  *k = arg;

    return offload_result_key(buf, size, k->queue, k->qlen, k->id, k->idlen);
}


/* 0 if format() gives want (wlen bytes and a NUL) in every size of buffer
 * around it, else 1 with why on the TAP output */
static int
as_snprintf(format_pt format, const void *arg, const char *want, int wlen)
{
    int     n;
    char    buf[1024];
    size_t  i, k, size, sizes[4];

    sizes[0] = sizeof(buf);
    sizes[1] = (size_t) wlen + 1;       /* exactly big enough */
    sizes[2] = (size_t) wlen;           /* one byte short */
    sizes[3] = 0;

    for (k = 0; k < 4; k++) {
        size = sizes[k];
        memset(buf, GUARD, sizeof(buf));
        n = format(buf, size, arg);

        if (size > (size_t) wlen
            ? n != wlen || memcmp(buf, want, (size_t) wlen + 1) != 0
            : n != -1)
        {
            for (i = 0; i < (size_t) wlen && buf[i] == want[i]; i++) {
                /* void */
            }

            printf("# size %zu: returned %d, expected %d; byte %zu differs "
                   "from '%.*s'\n", size, n,
                   size > (size_t) wlen ? wlen : -1, i,
                   (int) strcspn(want, "\n"), want);
            return 1;
        }

        for (i = size; i < sizeof(buf); i++) {
            if ((unsigned char) buf[i] != GUARD) {
                printf("# size %zu: wrote byte %zu of '%s'\n", size, i,
                       want);
                return 1;
            }
        }
    }

    return 0;
}


static int
header_as_snprintf(const offload_result_t *res)
{
    int   wlen;
    char  want[1024];

    wlen = snprintf(want, sizeof(want), OLD_HEADER_FMT,
                    OFFLOAD_PROTO_VERSION, (int) res->id.len, res->id.data,
                    res->status, (long long) res->queue_us,
                    (long long) res->run_us, (long long) res->cpu_us,
                    (long long) res->rss_kb);

    return as_snprintf(format_header, res, want, wlen);
}


static void
test_result_bytes(void)
{
    int               bad, tried;
    char              want[1024], longid[300];
    size_t            i, j, s, v, nv;
    uint64_t          x;
    key_arg_t         k;
    offload_result_t  res;

    static const int      status[] = { 0, 100, 200, 422, 599, -1, INT_MIN,
                                       INT_MAX };
    static const int64_t  val[] = { 0, 1, 9, 10, 99, 100, 999, 1000,
                                    123456789, 9999999999LL, -1, -9, -10,
                                    -1000, 1000000000000000000LL,
                                    -1000000000000000000LL, INT64_MAX,
                                    INT64_MAX - 1, INT64_MIN,
                                    INT64_MIN + 1 };
    offload_str_t         ids[] = {
        { "", 0 }, { "a", 1 }, { "0123456789abcdef0000000000000001", 32 },
        { longid, OFFLOAD_JOB_ID_MAX }, { longid, sizeof(longid) },
        { "ab\0cd", 5 }
    };
    static const key_arg_t  keys[] = {
        { "echo", 4, "abc", 3 }, { "", 0, "", 0 }, { "echo", 4, "", 0 },
        { "q", 1, "0123456789abcdef0000000000000001", 32 },
        { "ec\0ho", 5, "abc", 3 }, { "echo", 4, "ab\0c", 4 },
        { "echo", 2, "abc", 1 }
    };

    memset(longid, 'i', sizeof(longid));
    memset(&res, 0, sizeof(res));
    res.version = OFFLOAD_PROTO_VERSION;

    res.id = ids[2];
    res.status = 200;
    res.queue_us = INT64_MIN;
    res.run_us = INT64_MAX;
    res.cpu_us = 0;
    res.rss_kb = -1;
    ok(offload_result_header(want, sizeof(want), &res) == 87
       && strcmp(want, "OR1 0123456789abcdef0000000000000001 200 "
                 "-9223372036854775808 9223372036854775807 0 -1\n") == 0,
       "result header: INT64_MIN, INT64_MAX, 0, -1");

    /* each id and status, each value in each place */
    bad = 0;
    tried = 0;
    nv = sizeof(val) / sizeof(val[0]);

    for (i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        for (s = 0; s < sizeof(status) / sizeof(status[0]); s++) {
            for (v = 0; v < nv; v++) {
                res.id = ids[i];
                res.status = status[s];
                res.queue_us = val[v];
                res.run_us = val[(v + 1) % nv];
                res.cpu_us = val[(v + 5) % nv];
                res.rss_kb = val[(v + 11) % nv];
                bad += header_as_snprintf(&res);
                tried++;
            }
        }
    }

    /* numbers of every length and sign, from a fixed seed */
    x = 88172645463325252ULL;
    res.id = ids[2];

    for (j = 0; j < 2000; j++) {
        int64_t  *f[] = { &res.queue_us, &res.run_us, &res.cpu_us,
                          &res.rss_kb };

        for (i = 0; i < 4; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *f[i] = (int64_t) (x >> (x % 64));
        }
        res.status = (int) (x >> 40);
        bad += header_as_snprintf(&res);
        tried++;
    }

    ok(bad == 0, "result header: %d of %d inputs not as snprintf() wrote "
       "them, in a roomy, exact, one byte short and empty buffer", bad,
       tried);

    bad = 0;
    for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        k = keys[i];
        bad += as_snprintf(format_key, &k, want,
                           snprintf(want, sizeof(want), OLD_RESULT_KEY_FMT,
                                    (int) k.qlen, k.queue, (int) k.idlen,
                                    k.id));
    }

    ok(bad == 0, "result key: %d of %zu inputs not as snprintf() wrote "
       "them", bad, sizeof(keys) / sizeof(keys[0]));
}


/* The longest result key of the longest queue and job id fits. */
static void
test_key_room(void)
{
    char  key[OFFLOAD_KEY_MAX], q[OFFLOAD_QUEUE_NAME_MAX];
    char  id[OFFLOAD_JOB_ID_MAX];

    memset(q, 'q', sizeof(q));
    memset(id, 'i', sizeof(id));
    ok(offload_result_key(key, sizeof(key), q, sizeof(q), id, sizeof(id)) > 0
       && offload_body_key(key, sizeof(key), q, sizeof(q), id, sizeof(id))
          > 0, "longest result and body keys fit OFFLOAD_KEY_MAX");
}


static void
test_reconnect_delay(void)
{
    unsigned  first, last;

    first = offload_reconnect_delay_ms(0, 0);
    last = offload_reconnect_delay_ms(0, 1000000);
    ok(first >= OFFLOAD_RECONNECT_MIN_MS * 3 / 4
       && last <= OFFLOAD_RECONNECT_MIN_MS * 5 / 4,
       "first retry: the minimum +-25%% (%u..%u)", first, last);
    ok(offload_reconnect_delay_ms(1, 0) == 150, "doubles (150 = 200 - 25%%)");
    first = offload_reconnect_delay_ms(100, 0);
    last = offload_reconnect_delay_ms(100, OFFLOAD_RECONNECT_MAX_MS / 2);
    ok(first == OFFLOAD_RECONNECT_MAX_MS * 3 / 4
       && last == OFFLOAD_RECONNECT_MAX_MS * 5 / 4,
       "capped at the maximum +-25%% (%u..%u)", first, last);
}


static void
test_str_copy(void)
{
    char  dst[4];

    offload_str_copy(dst, sizeof(dst), "abcdef", 6);
    is_str(dst, "abc", "cut to fit");
    offload_str_copy(dst, sizeof(dst), NULL, 5);
    is_str(dst, "", "no field");
}


static void
test_trace(void)
{
    size_t                 i;
    int                    argc;
    const char            *argv[OFFLOAD_JOB_ARGC], *err;
    size_t                 argvlen[OFFLOAD_JOB_ARGC];
    offload_str_t          fields[OFFLOAD_JOB_ARGC];
    offload_entry_t        in, out;
    offload_job_scratch_t  scratch;

#define TID "4bf92f3577b34da6a3ce929d0e0e4736"
#define PID "00f067aa0ba902b7"
    static const struct {
        const char  *tp;
        int          rc;
    } cases[] = {
        { "00-" TID "-" PID "-01", 0 },
        { "00-" TID "-" PID "-00", 0 },
        { "cc-" TID "-" PID "-01", 0 },             /* a later version */
        { "cc-" TID "-" PID "-01-what-follows", 0 },
        { "cc-" TID "-" PID "-01what", -1 },
        { "00-" TID "-" PID "-01-", -1 },           /* 00 is 55 exactly */
        { "00-" TID "-" PID "-1", -1 },
        { "ff-" TID "-" PID "-01", -1 },
        { "00-4BF92F3577B34DA6A3CE929D0E0E4736-" PID "-01", -1 },
        { "00-00000000000000000000000000000000-" PID "-01", -1 },
        { "00-" TID "-0000000000000000-01", -1 },
        { "00_" TID "_" PID "_01", -1 },
        { "0g-" TID "-" PID "-01", -1 },
        { "00-" TID "-" PID "-0x", -1 },
        { "", -1 },
    };

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ok(offload_traceparent_check(cases[i].tp, strlen(cases[i].tp))
           == cases[i].rc, "traceparent '%s': %s", cases[i].tp,
           cases[i].rc ? "invalid" : "valid");
    }

    ok(offload_tracestate_check("congo=t61rcWkgMzE", 17) == 0
       && offload_tracestate_check("", 0) == -1
       && offload_tracestate_check("a=\x01", 3) == -1,
       "tracestate: printable ASCII, not empty");

    small_entry(&in);
    in.deadline_ms = OFFLOAD_NO_DEADLINE;
    in.attempt = 1;
    in.traceparent.data = "00-" TID "-" PID "-01";
    in.traceparent.len = OFFLOAD_TRACEPARENT_LEN;
    in.tracestate.data = "a=b";
    in.tracestate.len = 3;

    argc = offload_job_argv(&in, "offload:{q}:jobs", &scratch, argv,
                            argvlen);
    ok(argvlen[argc - 4] == 2 && memcmp(argv[argc - 4], "tp", 2) == 0
       && argvlen[argc - 2] == 2 && memcmp(argv[argc - 2], "ts", 2) == 0,
       "an XADD ends with tp and ts");

    for (i = OFFLOAD_JOB_FIELDS_AT; i < (size_t) argc; i++) {
        fields[i - OFFLOAD_JOB_FIELDS_AT].data = argv[i];
        fields[i - OFFLOAD_JOB_FIELDS_AT].len = argvlen[i];
    }

    ok(offload_job_decode(&out, fields, argc - OFFLOAD_JOB_FIELDS_AT, &err)
       == 0 && out.traceparent.len == OFFLOAD_TRACEPARENT_LEN
       && out.tracestate.len == 3, "tp and ts round trip");

    fields[argc - OFFLOAD_JOB_FIELDS_AT - 3].data = "00-" TID "-" PID "-0";
    fields[argc - OFFLOAD_JOB_FIELDS_AT - 3].len = 54;
    ok(offload_job_decode(&out, fields, argc - OFFLOAD_JOB_FIELDS_AT, &err)
       == 0 && out.traceparent.len == 0 && out.tracestate.len == 0,
       "a bad tp is dropped with its ts, the job decodes");

    ok(offload_job_decode(&out, fields,
                          argc - OFFLOAD_JOB_FIELDS_AT - 4, &err)
       == 0 && out.traceparent.len == 0,
       "an entry without tp has no trace context");
#undef TID
#undef PID
}


/* Redis' own words: which EXEC errors leave a MULTI open on the link */
static void
test_exec_left_multi_open(void)
{
    ok(offload_exec_left_multi_open("ERR unknown command 'EXEC', with args "
                                    "beginning with: "),
       "EXEC renamed away: MULTI left open");
    ok(offload_exec_left_multi_open("NOPERM this user has no permissions "
                                    "to run the 'exec' command or its "
                                    "subcommand"),
       "EXEC refused by a Redis 6 ACL: MULTI left open");
    ok(!offload_exec_left_multi_open("EXECABORT Transaction discarded "
                                     "because of previous errors."),
       "EXECABORT: the transaction discarded");
    ok(!offload_exec_left_multi_open("EXECABORT Transaction discarded "
                                     "because of: NOPERM this user has no "
                                     "permissions to run the 'exec' "
                                     "command"),
       "EXEC refused by a Redis 7 ACL: the transaction discarded");
    ok(!offload_exec_left_multi_open("ERR EXEC without MULTI"),
       "EXEC without MULTI: none open");
    ok(!offload_exec_left_multi_open("MOVED 3999 127.0.0.1:6381"),
       "MOVED: the transaction discarded");
    ok(!offload_exec_left_multi_open("ASK 3999 127.0.0.1:6381"),
       "ASK: the transaction discarded");
    ok(!offload_exec_left_multi_open("TRYAGAIN Multiple keys request "
                                     "during rehashing of slot"),
       "TRYAGAIN: the transaction discarded");
    ok(!offload_exec_left_multi_open("CLUSTERDOWN The cluster is down"),
       "CLUSTERDOWN: the transaction discarded");
    ok(offload_redirect("MOVED 3999 127.0.0.1:6381")
       && offload_redirect("ASK 3999 127.0.0.1:6381")
       && !offload_redirect("ERR unknown command 'EXEC'")
       && !offload_redirect("MOVEDX"),
       "a cluster's redirects are MOVED and ASK");
}


/* The reply channels a job may name: the two the ACL users are given. */
static void
test_reply_channel(void)
{
    size_t         i;
    offload_str_t  ch;

    static const struct {
        const char  *channel;
        int          ok;
    } cases[] = {
        { "offload:reply:0123456789abcdef", 1 },
        { "offload:{echo}:reply:0123", 1 },
        { "offload:{other}:reply:x", 1 },   /* another slot: PUBLISHed */
        { "offload:reply:", 0 },            /* no nonce */
        { "offload:{echo}:reply:", 0 },
        { "offload:{}:reply:x", 0 },        /* no tag */
        { "offload:{echo:reply:x", 0 },     /* no closing brace */
        { "offload:{echo}:jobs", 0 },
        { "offload:{", 0 },
        { "offload:", 0 },
        { "nope:1", 0 },
        { "OFFLOAD:reply:x", 0 },
        { "", 0 }
    };

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ch.data = cases[i].channel;
        ch.len = strlen(cases[i].channel);
        ok(offload_reply_channel_ok(&ch) == cases[i].ok,
           "reply channel \"%s\": %s", cases[i].channel,
           cases[i].ok ? "a job's" : "refused");
    }
}


/* A TIME answer of two strings (NULL: the element is an integer). */
static int64_t
time_of(const char *sec, const char *usec)
{
    redisReply   e[2], a, *el[2] = { &e[0], &e[1] };
    const char  *v[2] = { sec, usec };
    int          i;

    memset(e, 0, sizeof(e));
    memset(&a, 0, sizeof(a));

    for (i = 0; i < 2; i++) {
        e[i].type = v[i] ? REDIS_REPLY_STRING : REDIS_REPLY_INTEGER;
        e[i].str = (char *) v[i];
        e[i].len = v[i] ? strlen(v[i]) : 0;
    }

    a.type = REDIS_REPLY_ARRAY;
    a.elements = 2;
    a.element = el;

    return offload_redis_time_us(&a);
}


/* Redis' TIME as every side reads it: anything but a plausible time reads
 * as no answer, never as a time whose arithmetic overflows. */
static void
test_redis_time(void)
{
    redisReply  err, one;

    ok(time_of("1796485385", "12345") == 1796485385012345LL,
       "TIME: seconds and microseconds");
    ok(time_of("95617583999", "999999") == 95617583999999999LL,
       "TIME: the last second before year 5000");

    ok(time_of("95617584000", "0") == -1
       && time_of("99999999999999999999", "0") == -1
       && time_of("18446744073709551617", "0") == -1,
       "TIME: seconds past year 5000, or past 64 bits, are no answer");
    ok(time_of("0", "0") == -1 && time_of("-5", "0") == -1
       && time_of("", "0") == -1 && time_of("17e8", "0") == -1
       && time_of(" 1796485385", "0") == -1,
       "TIME: seconds not a positive number of digits are no answer");
    ok(time_of("1796485385", "1000000") == -1
       && time_of("1796485385", "-1") == -1
       && time_of("1796485385", "") == -1
       && time_of("1796485385", "1.5") == -1,
       "TIME: microseconds not 0 to 999999 are no answer");
    ok(time_of(NULL, "0") == -1 && time_of("1796485385", NULL) == -1,
       "TIME: elements that are not strings are no answer");

    memset(&err, 0, sizeof(err));
    err.type = REDIS_REPLY_ERROR;
    err.str = "NOPERM this user has no permissions to run the 'time' command";
    err.len = strlen(err.str);
    memset(&one, 0, sizeof(one));
    one.type = REDIS_REPLY_ARRAY;
    one.elements = 0;
    ok(offload_redis_time_us(&err) == -1 && offload_redis_time_us(&one) == -1
       && offload_redis_time_us(NULL) == -1,
       "TIME: an error, an empty array, no reply are no answer");
}


int
main(void)
{
    test_json();
    test_json_runs();
    test_result();
    test_job();
    test_job_numbers();
    test_trace();
    test_ids();
    test_addr_names_keys();
    test_result_bytes();
    test_key_room();
    test_reconnect_delay();
    test_str_copy();
    test_exec_left_multi_open();
    test_reply_channel();
    test_redis_time();
    return done_testing();
}
