/*
 * offload_json_check.c -- is this buffer one well-formed JSON text?
 *
 * The module checks request bodies before they become jobs, on the nginx
 * request path, so this is a single pass over the bytes with a fixed-size
 * nesting stack: no allocation, no tree, linear time.  It checks UTF-8 only
 * as far as JSON's grammar needs (control characters in strings, escapes);
 * the handlers' parser is the judge of the rest.
 */

#include <string.h>

#include "offload_proto.h"


typedef struct {
    const char  *p;
    const char  *start;
    const char  *end;
    const char  *err;
    int          depth;
} json_scan_t;


static int
fail(json_scan_t *s, const char *err)
{
    s->err = err;
    return -1;
}


static void
skip_space(json_scan_t *s)
{
    while (s->p < s->end
           && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n'
               || *s->p == '\r'))
    {
        s->p++;
    }
}


static int
is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')
           || (c >= 'A' && c <= 'F');
}


static int
scan_string(json_scan_t *s)
{
    unsigned char  c;
    int            i;

    s->p++;                                  /* the opening quote */

    while (s->p < s->end) {
        c = (unsigned char) *s->p++;

        if (c == '"') {
            return 0;
        }

        if (c < 0x20) {
            return fail(s, "control character in string");
        }

        if (c != '\\') {
            continue;
        }

        if (s->p == s->end) {
            break;
        }

        c = (unsigned char) *s->p++;

        if (c == 'u') {
            for (i = 0; i < 4; i++) {
                if (s->p == s->end || !is_hex(*s->p)) {
                    return fail(s, "bad \\u escape");
                }
                s->p++;
            }

        } else if (strchr("\"\\/bfnrt", c) == NULL || c == '\0') {
            return fail(s, "bad escape");
        }
    }

    return fail(s, "unterminated string");
}


static int
scan_digits(json_scan_t *s)
{
    const char  *begin = s->p;

    while (s->p < s->end && *s->p >= '0' && *s->p <= '9') {
        s->p++;
    }

    return s->p == begin ? fail(s, "bad number") : 0;
}


static int
scan_number(json_scan_t *s)
{
    if (*s->p == '-') {
        s->p++;
    }

    if (s->p < s->end && *s->p == '0') {
        s->p++;

    } else if (scan_digits(s) != 0) {
        return -1;
    }

    if (s->p < s->end && *s->p == '.') {
        s->p++;
        if (scan_digits(s) != 0) {
            return -1;
        }
    }

    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        s->p++;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-')) {
            s->p++;
        }
        if (scan_digits(s) != 0) {
            return -1;
        }
    }

    return 0;
}


static int
scan_literal(json_scan_t *s, const char *lit)
{
    size_t  len = strlen(lit);

    if ((size_t) (s->end - s->p) < len || memcmp(s->p, lit, len) != 0) {
        return fail(s, "unexpected character");
    }

    s->p += len;
    return 0;
}


/* Scans one scalar, or the opening bracket of a container. */
static int
scan_value_start(json_scan_t *s, char *stack)
{
    skip_space(s);

    if (s->p == s->end) {
        return fail(s, "unexpected end of input");
    }

    switch (*s->p) {

    case '{':
    case '[':
        if (s->depth == OFFLOAD_JSON_MAX_DEPTH) {
            return fail(s, "nesting too deep");
        }
        stack[s->depth++] = *s->p++;
        return 1;

    case '"':
        return scan_string(s);

    case 't':
        return scan_literal(s, "true");

    case 'f':
        return scan_literal(s, "false");

    case 'n':
        return scan_literal(s, "null");

    default:
        if (*s->p == '-' || (*s->p >= '0' && *s->p <= '9')) {
            return scan_number(s);
        }
        return fail(s, "unexpected character");
    }
}


/* Expects a key and its colon inside an object. */
static int
scan_key(json_scan_t *s)
{
    skip_space(s);

    if (s->p == s->end || *s->p != '"') {
        return fail(s, "expected a string key");
    }

    if (scan_string(s) != 0) {
        return -1;
    }

    skip_space(s);

    if (s->p == s->end || *s->p != ':') {
        return fail(s, "expected ':'");
    }

    s->p++;
    return 0;
}


int
offload_json_check(const char *buf, size_t len, size_t *offset,
    const char **err)
{
    int          rc;
    char         open, stack[OFFLOAD_JSON_MAX_DEPTH];
    json_scan_t  s = { buf, buf, buf + len, NULL, 0 };

    for ( ;; ) {
        rc = scan_value_start(&s, stack);

        if (rc < 0) {
            goto failed;
        }

        if (rc == 1) {
            /* a container opened: empty, or its first member follows */
            skip_space(&s);
            open = stack[s.depth - 1];

            if (s.p < s.end && *s.p == (open == '{' ? '}' : ']')) {
                s.p++;
                s.depth--;

            } else {
                if (open == '{' && scan_key(&s) != 0) {
                    goto failed;
                }
                continue;
            }
        }

        /* a value ended: close containers or move to the next member */
        for ( ;; ) {
            if (s.depth == 0) {
                skip_space(&s);
                if (s.p != s.end) {
                    fail(&s, "trailing characters after JSON value");
                    goto failed;
                }
                return 0;
            }

            skip_space(&s);

            if (s.p == s.end) {
                fail(&s, "unexpected end of input");
                goto failed;
            }

            open = stack[s.depth - 1];

            if (*s.p == ',') {
                s.p++;
                if (open == '{' && scan_key(&s) != 0) {
                    goto failed;
                }
                break;
            }

            if (*s.p != (open == '{' ? '}' : ']')) {
                fail(&s, open == '{' ? "expected ',' or '}'"
                                     : "expected ',' or ']'");
                goto failed;
            }

            s.p++;
            s.depth--;
        }
    }

failed:

    *offset = (size_t) (s.p - s.start);
    *err = s.err;
    return -1;
}
