/*
 * offload_resp.c -- a command's RESP text, written by hand
 * (offload_resp.h), for the sidecar and the module alike: two passes, one
 * to size the buffer exactly, one to fill it; lengths in decimal without
 * printf's format parsing.
 */

#include <string.h>

#include "offload_proto.h"
#include "offload_resp.h"


/* how many digits offload_decimal() writes for n */
static size_t
digits(size_t n)
{
    size_t  d = 1;

    while (n >= 10) {
        n /= 10;
        d++;
    }

    return d;
}


char *
offload_resp_line(char *p, char type, size_t n)
{
    *p++ = type;
    p = offload_decimal(p, n);
    *p++ = '\r';
    *p++ = '\n';

    return p;
}


static size_t
arg_len(const char **argv, const size_t *argvlen, int i)
{
    return argvlen != NULL ? argvlen[i] : strlen(argv[i]);
}


size_t
offload_resp_size(int argc, const char **argv, const size_t *argvlen)
{
    int     i;
    size_t  len, size;

    size = 1 + digits((size_t) argc) + 2;

    for (i = 0; i < argc; i++) {
        len = arg_len(argv, argvlen, i);
        size += 1 + digits(len) + 2 + len + 2;
    }

    return size;
}


void
offload_resp_write(char *buf, int argc, const char **argv,
    const size_t *argvlen)
{
    int     i;
    char   *p;
    size_t  len;

    p = offload_resp_line(buf, '*', (size_t) argc);

    for (i = 0; i < argc; i++) {
        len = arg_len(argv, argvlen, i);
        p = offload_resp_line(p, '$', len);
        if (len > 0) {          /* an empty argument may have no bytes */
            memcpy(p, argv[i], len);
            p += len;
        }
        *p++ = '\r';
        *p++ = '\n';
    }

    *p = '\0';
}
