/*
 * resp.c -- a command's RESP text, written by hand (resp.h): two passes,
 * one to size the buffer exactly, one to fill it; lengths in decimal
 * without printf's format parsing.
 */

#include <string.h>

#include "resp.h"


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


/* <c><n>\r\n */
static char *
put_line(char *p, char c, size_t n)
{
    size_t  d = digits(n);
    char   *q;

    *p++ = c;
    q = p + d;

    do {
        *--q = (char) ('0' + n % 10);
        n /= 10;
    } while (n != 0);

    p += d;
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

    p = put_line(buf, '*', (size_t) argc);

    for (i = 0; i < argc; i++) {
        len = arg_len(argv, argvlen, i);
        p = put_line(p, '$', len);
        if (len > 0) {          /* an empty argument may have no bytes */
            memcpy(p, argv[i], len);
            p += len;
        }
        *p++ = '\r';
        *p++ = '\n';
    }

    *p = '\0';
}
