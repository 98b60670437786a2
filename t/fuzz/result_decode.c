/*
 * result_decode.c -- libFuzzer harness of offload_result_decode(), which
 * the module runs on every message of its reply channel and on every
 * result it reads back from Redis.
 *
 * A decoded result must hold what the decoder promises, point inside the
 * message, and encode (offload_result_header + body) to a message that
 * decodes to the same result.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "offload_proto.h"


static int
inside(offload_str_t s, const char *msg, size_t len)
{
    return s.data >= msg && s.data + s.len <= msg + len;
}


static void
check_round_trip(offload_result_t res)
{
    int                n;
    char              *msg;
    size_t             size;
    const char        *err = NULL;
    offload_result_t   again;

    /* A sidecar always sends its resource use; "-1" is only what the
     * decoder reports for a message of an older one. */
    if (res.cpu_us < 0) {
        res.cpu_us = 0;
        res.rss_kb = 0;
    }

    size = res.id.len + OFFLOAD_RESULT_HEADER_MAX + res.body.len;
    msg = malloc(size);
    check(msg != NULL, "memory");

    n = offload_result_header(msg, size, &res);
    check(n > 0, "header fits");
    memcpy(msg + n, res.body.data, res.body.len);

    check(offload_result_decode(&again, msg, (size_t) n + res.body.len, &err)
          == 0, "re-encoded result decodes");
    check(again.status == res.status && again.queue_us == res.queue_us
          && again.run_us == res.run_us && again.cpu_us == res.cpu_us
          && again.rss_kb == res.rss_kb && again.id.len == res.id.len
          && memcmp(again.id.data, res.id.data, res.id.len) == 0
          && again.body.len == res.body.len
          && memcmp(again.body.data, res.body.data, res.body.len) == 0,
          "round trip keeps the result");

    free(msg);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char        *msg = (const char *) data, *err = NULL;
    offload_result_t   res;

    if (offload_result_decode(&res, msg, size, &err) != 0) {
        check(err != NULL, "an error says why");
        return 0;
    }

    check(res.version == OFFLOAD_PROTO_VERSION, "version");
    check(res.status >= 100 && res.status <= 599, "status");
    check(res.queue_us >= 0 && res.run_us >= 0, "times");
    check((res.cpu_us == -1 && res.rss_kb == -1)
          || (res.cpu_us >= 0 && res.rss_kb >= 0), "resource use");
    check(res.id.len > 0 && inside(res.id, msg, size)
          && memchr(res.id.data, ' ', res.id.len) == NULL
          && memchr(res.id.data, '\n', res.id.len) == NULL, "id");
    check(inside(res.body, msg, size)
          && res.body.data + res.body.len == msg + size, "body");

    check_round_trip(res);
    return 0;
}
