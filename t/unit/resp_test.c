/*
 * resp_test.c -- a command's RESP text written by hand
 * (proto/offload_resp.c) is byte for byte what hiredis' redisFormatCommandArgv() makes:
 * empty, binary and long arguments, lengths at the edges of a digit, and
 * argv's strlen()s when argvlen is NULL; printed as TAP.
 */

#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "offload_resp.h"
#include "tap.h"


/* Whether the two formatters agree on argv. */
static int
same(int argc, const char **argv, const size_t *argvlen)
{
    int     agree;
    char   *want, *got;
    size_t  size;
    int     wlen;

    wlen = redisFormatCommandArgv(&want, argc, argv, argvlen);
    size = offload_resp_size(argc, argv, argvlen);
    got = malloc(size + 2);
    if (wlen < 0 || got == NULL) {
        return 0;
    }

    got[size + 1] = 'X';        /* nothing written past the NUL */
    offload_resp_write(got, argc, argv, argvlen);
    agree = (size_t) wlen == size && memcmp(got, want, size) == 0
            && got[size] == '\0' && got[size + 1] == 'X';

    free(got);
    redisFreeCommand(want);
    return agree;
}


int
main(void)
{
    int          i, n;
    char        *big;
    size_t       len[12];
    const char  *argv[12];
    static const size_t  edges[] = { 0, 1, 9, 10, 99, 100, 999, 1000,
                                     65535, 65536, 1000000 };

    argv[0] = "PING";
    ok(same(1, argv, NULL), "one argument, argvlen NULL");

    argv[0] = "SET";
    argv[1] = "key";
    argv[2] = "";
    ok(same(3, argv, NULL), "an empty argument");

    argv[2] = "a\0b\r\nc";
    len[0] = 3;
    len[1] = 3;
    len[2] = 7;
    ok(same(3, argv, len), "binary bytes (NUL, CRLF) with argvlen");

    big = malloc(1000000);
    if (big == NULL) {
        return 1;
    }
    memset(big, 'x', 1000000);

    for (i = 0; i < (int) (sizeof(edges) / sizeof(edges[0])); i++) {
        argv[1] = big;
        len[0] = 3;
        len[1] = edges[i];
        ok(same(2, argv, len), "an argument of %zu bytes", edges[i]);
    }

    /* argc of 10 and more: two digits in the array's header */
    for (n = 9; n <= 12; n++) {
        for (i = 0; i < n; i++) {
            argv[i] = big;
            len[i] = (size_t) i * 7;
        }
        ok(same(n, argv, len), "%d arguments", n);
    }

    free(big);
    return done_testing();
}
