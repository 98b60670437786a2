/*
 * ngx_directives.c -- libFuzzer harness of the directive arguments the
 * nginx module parses with its own code rather than nginx's helpers:
 *
 *   offload_redis <address> ...  offload_addr_parse() (the sidecar's
 *                                "redis" directive shares it)
 *   offload_pass <queue>         offload_queue_name_valid() on a literal
 *                                queue name
 *
 * The input is one argument, any bytes (nginx's tokenizer lets a quoted
 * argument hold spaces and control bytes).  An address the parser accepts
 * must say exactly what was written: no byte dropped or ignored.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "offload_proto.h"


/* The value of a port written as 1 to 7 decimal digits, or -1. */
static long
port_value(const char *s, size_t len)
{
    size_t  i;
    long    n = 0;

    if (len == 0 || len > 7) {
        return -1;
    }

    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        n = n * 10 + (s[i] - '0');
    }

    return n;
}


static void
check_address(const char *text, size_t len)
{
    size_t          hlen;
    const char     *colon, *host, *bracket;
    offload_addr_t  addr;

    if (offload_addr_parse(&addr, text, len) != 0) {
        return;
    }

    check(memchr(addr.host, '\0', sizeof(addr.host)) != NULL, "host ends");

    if (addr.is_unix) {
        check(len >= 6 && memcmp(text, "unix:/", 6) == 0, "unix prefix");
        check(strlen(addr.host) == len - 5
              && memcmp(addr.host, text + 5, len - 5) == 0, "socket path");
        return;
    }

    if (text[0] == '[') {
        /* "[v6]" or "[v6]:port": the host is what the brackets hold */
        bracket = memchr(text, ']', len);
        check(bracket != NULL, "closing bracket");
        host = text + 1;
        hlen = (size_t) (bracket - host);
        check(memchr(host, ':', hlen) != NULL, "an IPv6 host has a colon");
        colon = bracket + 1 < text + len ? bracket + 1 : NULL;
        check(colon == NULL || *colon == ':', "port after the bracket");

    } else {
        host = text;
        colon = memchr(text, ':', len);
        hlen = colon ? (size_t) (colon - text) : len;
    }

    check(hlen > 0 && strlen(addr.host) == hlen
          && memcmp(addr.host, host, hlen) == 0, "host");
    check(addr.port >= 1 && addr.port <= 65535, "port range");

    if (colon == NULL) {
        check(addr.port == 6379, "default port");
        return;
    }

    check(port_value(colon + 1, len - (size_t) (colon + 1 - text))
          == addr.port, "port is what was written");
}


static void
check_queue_name(const char *text, size_t len)
{
    size_t  i;
    int     valid = len >= 1 && len <= OFFLOAD_QUEUE_NAME_MAX;

    for (i = 0; valid && i < len; i++) {
        valid = strchr("abcdefghijklmnopqrstuvwxyz"
                       "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-", text[i])
                != NULL && text[i] != '\0';
    }

    check(offload_queue_name_valid(text, len) == valid, "queue name");
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_address((const char *) data, size);
    check_queue_name((const char *) data, size);
    return 0;
}
