/*
 * offload_json_check.c -- is this input one well-formed JSON text?
 *
 * The module checks request bodies before they become jobs, on the nginx
 * request path, so this is a state machine over the bytes with a fixed-size
 * nesting stack: no allocation, no tree, linear time, and resumable at any
 * byte, so a big body is checked in slices across turns of the event loop
 * (or over buffers as they come).  Strings must be well-formed UTF-8
 * (RFC 8259 section 8.1: no overlong forms, no surrogates, nothing past
 * U+10FFFF): a worker may answer a payload's bytes as they are (echo), and
 * what nginx sends as application/json must be JSON.  In a payload (the
 * scan's pairs), a \u escape of a UTF-16 surrogate must be one of a pair,
 * high then low: RFC 8259 allows a lone one, but jansson, jq and Perl's
 * JSON::PP refuse the whole text, and a handler that cannot read its job
 * cannot answer it.  A handler's answer may hold one (Python's json writes
 * it): it goes to the client as written.
 */

#include <stdint.h>
#include <string.h>

#include "offload_proto.h"


enum {
    ST_VALUE = 0,       /* a value is expected */
    ST_FIRST_ARRAY,     /* after '[': a value or ']' */
    ST_FIRST_OBJECT,    /* after '{': a key or '}' */
    ST_KEY,             /* after ',' in an object */
    ST_COLON,           /* after a key */
    ST_AFTER,           /* a value ended */
    ST_STRING,
    ST_ESCAPE,          /* after a backslash in a string */
    ST_HEX,             /* in \uXXXX: sub is how many digits are left,
                           hex the value so far */
    ST_LOW_ESCAPE,      /* after a high surrogate's \uXXXX: its low's
                           backslash */
    ST_LOW_U,           /* ... then its 'u' */
    ST_UTF8,            /* in a UTF-8 sequence: sub is how many bytes are
                           left, the next one in utf8_lo..utf8_hi */
    ST_LITERAL,         /* true, false, null: sub is how many bytes matched */
    ST_MINUS,           /* number states: what may come next */
    ST_ZERO,
    ST_INT,
    ST_DOT,
    ST_FRAC,
    ST_EXP,
    ST_EXP_SIGN,
    ST_EXP_DIGITS
};


const char  offload_json_too_deep[] = "nesting too deep";

static const char  lone_surrogate[] = "a lone UTF-16 surrogate escape (many "
                                      "JSON parsers refuse the text)";


void
offload_json_scan_init(offload_json_scan_t *s)
{
    memset(s, 0, sizeof(*s));
    s->max_depth = OFFLOAD_JSON_MAX_DEPTH;
    s->state = ST_VALUE;
}


static int
is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}


static int
is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}


/* The value of a hex digit, or -1. */
static int
hex_digit(unsigned char c)
{
    if (is_digit(c)) {
        return c - '0';
    }

    c |= 0x20;

    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}


/* Does the word hold a byte that ends a run of ordinary string bytes: a
 * control character, a byte of a UTF-8 sequence, '"' or '\\'?  Byte-wise
 * tests on eight bytes at once (the "has less than" and "has zero" tricks
 * of Bit Twiddling Hacks): a borrow can flag bytes beyond one that really
 * matches, never a word where none does, whatever the byte order. */
static int
has_run_end(uint64_t w)
{
    const uint64_t  ones = 0x0101010101010101ULL;
    const uint64_t  high = 0x8080808080808080ULL;
    uint64_t        quote = w ^ (ones * '"');
    uint64_t        slash = w ^ (ones * '\\');
    uint64_t        end;

    end = ((w - ones * 0x20) & ~w)          /* a byte under 0x20 */
          | w                               /* a byte of 0x80 or more */
          | ((quote - ones) & ~quote)       /* '"' */
          | ((slash - ones) & ~slash);      /* '\\' */

    return (end & high) != 0;
}


/* How many bytes from p on are ordinary string bytes: printable ASCII but
 * '"' and '\\'.  A 64 MB body is mostly such bytes, so eight at a time. */
static size_t
plain_run(const unsigned char *p, size_t n)
{
    size_t    i;
    uint64_t  w;

    for (i = 0; i + sizeof(w) <= n; i += sizeof(w)) {
        memcpy(&w, p + i, sizeof(w));
        if (has_run_end(w)) {
            break;
        }
    }

    while (i < n && p[i] >= 0x20 && p[i] < 0x80 && p[i] != '"'
           && p[i] != '\\')
    {
        i++;
    }

    return i;
}


static int
fail(offload_json_scan_t *s, size_t at, const char *err)
{
    s->offset = at;
    s->err = err;
    return -1;
}


/* The lead byte of a UTF-8 sequence in a string: how many bytes follow and
 * the range of the first (Unicode 15, table 3-7), or -1. */
static int
utf8_lead(offload_json_scan_t *s, unsigned char c)
{
    s->utf8_lo = 0x80;
    s->utf8_hi = 0xbf;

    if (c >= 0xc2 && c <= 0xdf) {
        s->sub = 1;

    } else if (c >= 0xe0 && c <= 0xef) {
        s->sub = 2;
        if (c == 0xe0) {
            s->utf8_lo = 0xa0;          /* no overlong form */
        } else if (c == 0xed) {
            s->utf8_hi = 0x9f;          /* no surrogate */
        }

    } else if (c >= 0xf0 && c <= 0xf4) {
        s->sub = 3;
        if (c == 0xf0) {
            s->utf8_lo = 0x90;
        } else if (c == 0xf4) {
            s->utf8_hi = 0x8f;          /* nothing past U+10FFFF */
        }

    } else {
        return -1;
    }

    s->state = ST_UTF8;
    return 0;
}


/* a value ended: what may follow depends on the enclosing container */
static int
value_ended(offload_json_scan_t *s)
{
    s->state = ST_AFTER;
    return 0;
}


int
offload_json_scan(offload_json_scan_t *s, const char *buf, size_t len)
{
    int             digit;
    size_t          i, at;
    unsigned char   c, open;

    if (s->err != NULL) {
        return -1;
    }

    for (i = 0; i < len; i++) {
        c = (unsigned char) buf[i];
        at = s->offset + i;

        switch (s->state) {

        case ST_STRING:
            /* the bulk of most bodies: ordinary string bytes */
            i += plain_run((const unsigned char *) buf + i, len - i);
            if (i == len) {
                goto done;
            }
            c = (unsigned char) buf[i];
            at = s->offset + i;

            if (c == '"') {
                s->state = s->in_key ? ST_COLON : ST_AFTER;

            } else if (c == '\\') {
                s->state = ST_ESCAPE;

            } else if (c >= 0x80) {
                if (utf8_lead(s, c) != 0) {
                    return fail(s, at, "invalid UTF-8");
                }

            } else {
                return fail(s, at + 1, "control character in string");
            }
            break;

        case ST_UTF8:
            if (c < s->utf8_lo || c > s->utf8_hi) {
                return fail(s, at, "invalid UTF-8");
            }

            s->utf8_lo = 0x80;
            s->utf8_hi = 0xbf;

            if (--s->sub == 0) {
                s->state = ST_STRING;
            }
            break;

        case ST_ESCAPE:
            if (c == 'u') {
                s->state = ST_HEX;
                s->sub = 4;
                s->hex = 0;

            } else if (c == '\0' || strchr("\"\\/bfnrt", c) == NULL) {
                return fail(s, at + 1, "bad escape");

            } else {
                s->state = ST_STRING;
            }
            break;

        case ST_HEX:
            digit = hex_digit(c);
            if (digit < 0) {
                return fail(s, at, "bad \\u escape");
            }
            s->hex = s->hex << 4 | (unsigned) digit;

            if (--s->sub > 0) {
                break;
            }

            if (!s->pairs) {
                s->state = ST_STRING;
                break;
            }

            if (s->hex >= 0xd800 && s->hex <= 0xdbff && !s->low) {
                s->state = ST_LOW_ESCAPE;
                break;
            }

            if ((s->hex >= 0xdc00 && s->hex <= 0xdfff) != s->low) {
                return fail(s, at - 5, lone_surrogate);
            }

            s->low = 0;
            s->state = ST_STRING;
            break;

        case ST_LOW_ESCAPE:
        case ST_LOW_U:
            if (c != (s->state == ST_LOW_ESCAPE ? '\\' : 'u')) {
                return fail(s, at, lone_surrogate);
            }

            if (s->state == ST_LOW_ESCAPE) {
                s->state = ST_LOW_U;

            } else {
                s->state = ST_HEX;
                s->sub = 4;
                s->hex = 0;
                s->low = 1;
            }
            break;

        case ST_LITERAL:
            if (c != (unsigned char) s->literal[s->sub]) {
                return fail(s, s->literal_at, "unexpected character");
            }
            if (s->literal[++s->sub] == '\0') {
                value_ended(s);
            }
            break;

        case ST_FIRST_ARRAY:
            if (is_space(c)) {
                break;
            }
            if (c == ']') {
                s->depth--;
                value_ended(s);
                break;
            }
            s->state = ST_VALUE;
            /* fall through */

        case ST_VALUE:
            if (is_space(c)) {
                break;
            }

            switch (c) {

            case '[':
            case '{':
                if (s->depth == s->max_depth) {
                    return fail(s, at, offload_json_too_deep);
                }
                s->stack[s->depth++] = (char) c;
                s->state = c == '[' ? ST_FIRST_ARRAY : ST_FIRST_OBJECT;
                break;

            case '"':
                s->state = ST_STRING;
                s->in_key = 0;
                break;

            case 't':
            case 'f':
            case 'n':
                s->literal = c == 't' ? "true" : c == 'f' ? "false" : "null";
                s->literal_at = at;
                s->sub = 1;
                s->state = ST_LITERAL;
                break;

            case '-':
                s->state = ST_MINUS;
                break;

            case '0':
                s->state = ST_ZERO;
                break;

            default:
                if (!is_digit(c)) {
                    return fail(s, at, "unexpected character");
                }
                s->state = ST_INT;
            }
            break;

        case ST_FIRST_OBJECT:
            if (c == '}') {
                s->depth--;
                value_ended(s);
                break;
            }
            /* fall through */

        case ST_KEY:
            if (is_space(c)) {
                break;
            }
            if (c != '"') {
                return fail(s, at, "expected a string key");
            }
            s->state = ST_STRING;
            s->in_key = 1;
            break;

        case ST_COLON:
            if (is_space(c)) {
                break;
            }
            if (c != ':') {
                return fail(s, at, "expected ':'");
            }
            s->state = ST_VALUE;
            break;

        case ST_MINUS:
            if (!is_digit(c)) {
                return fail(s, at, "bad number");
            }
            s->state = c == '0' ? ST_ZERO : ST_INT;
            break;

        case ST_INT:
            if (is_digit(c)) {
                break;
            }
            /* fall through */

        case ST_ZERO:
            if (c == '.') {
                s->state = ST_DOT;
                break;
            }
            /* fall through */

        case ST_FRAC:
            if (s->state == ST_FRAC && is_digit(c)) {
                break;
            }
            if (c == 'e' || c == 'E') {
                s->state = ST_EXP;
                break;
            }
            goto after;

        case ST_DOT:
            if (!is_digit(c)) {
                return fail(s, at, "bad number");
            }
            s->state = ST_FRAC;
            break;

        case ST_EXP:
            if (c == '+' || c == '-') {
                s->state = ST_EXP_SIGN;
                break;
            }
            /* fall through */

        case ST_EXP_SIGN:
            if (!is_digit(c)) {
                return fail(s, at, "bad number");
            }
            s->state = ST_EXP_DIGITS;
            break;

        case ST_EXP_DIGITS:
            if (is_digit(c)) {
                break;
            }
            /* the number ended at this byte: it belongs to what follows */
            goto after;

        case ST_AFTER:
        after:
            s->state = ST_AFTER;

            if (is_space(c)) {
                break;
            }

            if (s->depth == 0) {
                return fail(s, at, "trailing characters after JSON value");
            }

            open = (unsigned char) s->stack[s->depth - 1];

            if (c == ',') {
                s->state = open == '{' ? ST_KEY : ST_VALUE;

            } else if (c == (open == '{' ? '}' : ']')) {
                s->depth--;

            } else {
                return fail(s, at, open == '{' ? "expected ',' or '}'"
                                               : "expected ',' or ']'");
            }
            break;
        }
    }

done:

    s->offset += len;
    return 0;
}


int
offload_json_scan_end(offload_json_scan_t *s)
{
    size_t  at = s->offset;

    if (s->err != NULL) {
        return -1;
    }

    switch (s->state) {

    case ST_ZERO:
    case ST_INT:
    case ST_FRAC:
    case ST_EXP_DIGITS:
    case ST_AFTER:
        if (s->depth == 0) {
            return 0;
        }
        return fail(s, at, "unexpected end of input");

    case ST_FIRST_OBJECT:
    case ST_KEY:
        return fail(s, at, "expected a string key");

    case ST_COLON:
        return fail(s, at, "expected ':'");

    case ST_STRING:
    case ST_ESCAPE:
    case ST_UTF8:
    case ST_LOW_ESCAPE:
    case ST_LOW_U:
        return fail(s, at, "unterminated string");

    case ST_HEX:
        return fail(s, at, "bad \\u escape");

    case ST_LITERAL:
        return fail(s, s->literal_at, "unexpected character");

    case ST_MINUS:
    case ST_DOT:
    case ST_EXP:
    case ST_EXP_SIGN:
        return fail(s, at, "bad number");

    default:
        return fail(s, at, "unexpected end of input");
    }
}


static int
check(offload_json_scan_t *s, const char *buf, size_t len, size_t *offset,
    const char **err)
{
    if (offload_json_scan(s, buf, len) == 0 && offload_json_scan_end(s) == 0)
    {
        return 0;
    }

    *offset = s->offset;
    *err = s->err;
    return -1;
}


int
offload_json_check(const char *buf, size_t len, size_t *offset,
    const char **err)
{
    offload_json_scan_t  s;

    offload_json_scan_init(&s);
    return check(&s, buf, len, offset, err);
}


int
offload_json_check_payload(const char *buf, size_t len, size_t *offset,
    const char **err)
{
    offload_json_scan_t  s;

    offload_json_scan_init(&s);
    s.pairs = 1;
    return check(&s, buf, len, offset, err);
}


int
offload_json_check_framed(const char *buf, size_t len, size_t *offset,
    const char **err)
{
    offload_json_scan_t  s;

    offload_json_scan_init(&s);
    s.max_depth = OFFLOAD_JSON_MAX_DEPTH + 1;
    return check(&s, buf, len, offset, err);
}
