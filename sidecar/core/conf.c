/*
 * conf.c -- reads the sidecar's config file: an nginx-like tokenizer and a
 * table-driven parser of the few directives the sidecar knows.
 *
 * Syntax: directives end with ";", a "queue <name> { ... }" block holds a
 * queue's directives, "#" starts a comment, arguments may be quoted with
 * "..." or '...' (backslash escapes the next character).  Every error is
 * reported as "file:line: message" and leaves nothing allocated; the parser
 * never exits or crashes on bad input.
 */

#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <stddef.h>
#include <netdb.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "offload_slot.h"


#define CONF_MAX_ARGS  8

enum {
    TOK_WORD, TOK_SEMI, TOK_OPEN, TOK_CLOSE, TOK_EOF, TOK_ERROR
};

enum {
    CTX_MAIN = 1, CTX_QUEUE = 2
};

/* A directive of both contexts sets a field of the context's Redis
 * endpoint: the top level's, or the queue block's own. */
#define CTX_ENDPOINT  (CTX_MAIN | CTX_QUEUE)

#define CONF_BLOCK   1          /* takes a block, and may repeat */
#define CONF_REPEAT  2          /* may repeat */
#define CONF_OFF     4          /* "off" sets the field to 0 */
#define CONF_NOLIMIT 8          /* a number: 0 means no limit */

typedef struct conf_directive_s  conf_directive_t;

typedef struct {
    int     type;
    int     line;
    char   *text;             /* TOK_WORD: NUL-terminated copy */
} conf_token_t;

typedef struct {
    const char            *file;
    const char            *p;
    const char            *end;
    int                    line;
    char                  *err;
    size_t                 errlen;
    offload_conf_t        *conf;
    offload_conf_queue_t  *queue;       /* the block being parsed */
    /* Whether each directive of the table was seen, in the main context
     * and in the queue block being parsed. */
    unsigned char         *seen_main;
    unsigned char         *seen_queue;
    offload_conf_logins_t  logins;      /* the top level's */
} conf_parser_t;

struct conf_directive_s {
    const char  *name;
    int          ctx;
    int          min_args;
    int          max_args;   /* of the words after the name */
    int          flags;      /* CONF_BLOCK, CONF_REPEAT, CONF_OFF,
                                CONF_NOLIMIT */
    int        (*set)(conf_parser_t *ps, const conf_directive_t *d,
                      char **args, int nargs, int line);
    size_t       offset;     /* of the field set, in the context's struct */
    size_t       offset2;    /* of a second field (a range's maximum) */
    long long    min;        /* bounds of a number, or of a time in ms */
    long long    max;
};


/* A sidecar needs a queue to serve; offloadctl reads a file for its Redis
 * and user only (offload_conf_queues_optional()). */
static int  queues_required = 1;


static int
conf_error(conf_parser_t *ps, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
conf_error(conf_parser_t *ps, int line, const char *fmt, ...)
{
    int      n;
    va_list  ap;

    n = snprintf(ps->err, ps->errlen, "%s:%d: ", ps->file, line);
    if (n < 0 || (size_t) n >= ps->errlen) {
        return -1;
    }

    va_start(ap, fmt);
    vsnprintf(ps->err + n, ps->errlen - (size_t) n, fmt, ap);
    va_end(ap);

    return -1;
}


/* The tokenizer. */

static int
is_word_char(char c)
{
    return !(c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == ';'
             || c == '{' || c == '}' || c == '"' || c == '\'' || c == '\0');
}


static int
next_token(conf_parser_t *ps, conf_token_t *tok)
{
    const char  *start;
    char         quote, *out;
    size_t       len;

    tok->text = NULL;

    for ( ;; ) {
        while (ps->p < ps->end
               && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\r'
                   || *ps->p == '\n'))
        {
            if (*ps->p == '\n') {
                ps->line++;
            }
            ps->p++;
        }

        if (ps->p < ps->end && *ps->p == '#') {
            while (ps->p < ps->end && *ps->p != '\n') {
                ps->p++;
            }
            continue;
        }

        break;
    }

    tok->line = ps->line;

    if (ps->p == ps->end) {
        tok->type = TOK_EOF;
        return 0;
    }

    switch (*ps->p) {
    case ';':
        ps->p++;
        tok->type = TOK_SEMI;
        return 0;
    case '{':
        ps->p++;
        tok->type = TOK_OPEN;
        return 0;
    case '}':
        ps->p++;
        tok->type = TOK_CLOSE;
        return 0;
    case '\0':
        tok->type = TOK_ERROR;
        return conf_error(ps, ps->line, "unexpected NUL byte");
    }

    /* A word, or a quoted string: both become one TOK_WORD. */
    quote = (*ps->p == '"' || *ps->p == '\'') ? *ps->p++ : '\0';
    start = ps->p;

    out = malloc((size_t) (ps->end - start) + 1);
    if (out == NULL) {
        tok->type = TOK_ERROR;
        return conf_error(ps, ps->line, "out of memory");
    }
    len = 0;

    for ( ;; ) {
        if (ps->p == ps->end) {
            if (quote) {
                free(out);
                tok->type = TOK_ERROR;
                return conf_error(ps, tok->line, "unterminated string");
            }
            break;
        }

        if (quote) {
            if (*ps->p == quote) {
                ps->p++;
                break;
            }

            if (*ps->p == '\0') {
                free(out);
                tok->type = TOK_ERROR;
                return conf_error(ps, ps->line, "unexpected NUL byte");
            }

            if (*ps->p == '\\' && ps->p + 1 < ps->end && ps->p[1] != '\0') {
                ps->p++;
            }

            if (*ps->p == '\n') {
                ps->line++;
            }

        } else if (!is_word_char(*ps->p)) {
            break;
        }

        out[len++] = *ps->p++;
    }

    out[len] = '\0';
    tok->type = TOK_WORD;
    tok->text = out;
    return 0;
}


/* Value parsers. */

static int
parse_uint(const char *s, long long max, long long *out)
{
    long long  n = 0;

    if (*s == '\0') {
        return -1;
    }

    for ( ; *s; s++) {
        if (*s < '0' || *s > '9') {
            return -1;
        }
        n = n * 10 + (*s - '0');
        if (n > max) {
            return -1;
        }
    }

    *out = n;
    return 0;
}


int
offload_conf_parse_time(const char *text, long long *ms)
{
    int          rank, last = 6;
    const char  *s = text;
    long long    total = 0, n, unit;

    /* Generous bound: no sidecar time needs more than a year. */
    static const long long  max_ms = 366LL * 24 * 3600 * 1000;

    if (*s == '\0') {
        return -1;
    }

    while (*s) {
        if (*s < '0' || *s > '9') {
            return -1;
        }

        n = 0;
        while (*s >= '0' && *s <= '9') {
            n = n * 10 + (*s++ - '0');
            if (n > max_ms) {
                return -1;
            }
        }

        if (s[0] == 'm' && s[1] == 's') {
            unit = 1;
            rank = 1;
            s += 2;
        } else if (*s == 's') {
            unit = 1000;
            rank = 2;
            s++;
        } else if (*s == '\0') {
            unit = 1000;            /* a trailing bare number: seconds */
            rank = 0;
        } else if (*s == 'm') {
            unit = 60 * 1000;
            rank = 3;
            s++;
        } else if (*s == 'h') {
            unit = 3600 * 1000;
            rank = 4;
            s++;
        } else if (*s == 'd') {
            unit = 24 * 3600 * 1000;
            rank = 5;
            s++;
        } else {
            return -1;
        }

        if (rank != 0 && rank >= last) {
            return -1;
        }
        last = rank;

        total += n * unit;
        if (total > max_ms) {
            return -1;
        }
    }

    *ms = total;
    return 0;
}


int
offload_conf_parse_size(const char *text, long long *bytes)
{
    size_t      len = strlen(text);
    long long   n, unit = 1;
    char        digits[24];

    if (len == 0 || len >= sizeof(digits)) {
        return -1;
    }

    switch (text[len - 1]) {
    case 'k': case 'K': unit = 1024; len--; break;
    case 'm': case 'M': unit = 1024 * 1024; len--; break;
    case 'g': case 'G': unit = 1024 * 1024 * 1024; len--; break;
    }

    memcpy(digits, text, len);
    digits[len] = '\0';

    /* Generous bound: 1 TiB. */
    if (parse_uint(digits, (1LL << 40) / unit, &n) != 0) {
        return -1;
    }

    *bytes = n * unit;
    return 0;
}


/*
 * The setters.  A directive's row names the field it sets by its offset
 * in the struct of its context (offload_conf_t in the main context,
 * offload_conf_queue_t in a queue block), as nginx's ngx_conf_set_*_slot
 * do; the generic setters below serve every directive that sets one
 * field from one kind of value, with the bounds of its row.
 */

static offload_redis_endpoint_t *
conf_endpoint(conf_parser_t *ps)
{
    return ps->queue ? &ps->queue->redis : &ps->conf->redis;
}


static void *
conf_field(conf_parser_t *ps, const conf_directive_t *d, size_t offset)
{
    char  *base;

    if (d->ctx == CTX_ENDPOINT) {
        return (char *) conf_endpoint(ps) + offset;
    }

    base = (d->ctx == CTX_QUEUE) ? (char *) ps->queue : (char *) ps->conf;
    return base + offset;
}


/* An int from d->min to d->max (0: no limit, with CONF_NOLIMIT). */
static int
conf_set_num_slot(conf_parser_t *ps, const conf_directive_t *d, char **args,
    int nargs, int line)
{
    long long  n;

    (void) nargs;

    if (parse_uint(args[0], d->max, &n) != 0 || n < d->min) {
        return conf_error(ps, line, "invalid \"%s\" value \"%s\" (expected "
                          "%lld..%lld%s)", d->name, args[0], d->min, d->max,
                          (d->flags & CONF_NOLIMIT) ? ", 0 for no limit"
                                                    : "");
    }

    *(int *) conf_field(ps, d, d->offset) = (int) n;
    return 0;
}


static int
parse_msec(conf_parser_t *ps, const conf_directive_t *d, const char *value,
    int line, long long *ms)
{
    if (offload_conf_parse_time(value, ms) != 0) {
        return conf_error(ps, line, "invalid time \"%s\" in \"%s\"", value,
                          d->name);
    }

    if (*ms < d->min || *ms > d->max) {
        return conf_error(ps, line, "\"%s\" must be %lldms..%llds", d->name,
                          d->min, d->max / 1000);
    }

    return 0;
}


/* An int of ms, a time from d->min to d->max ms; "off" is 0 with
 * CONF_OFF. */
static int
conf_set_msec_slot(conf_parser_t *ps, const conf_directive_t *d,
    char **args, int nargs, int line)
{
    long long  ms = 0;

    (void) nargs;

    if (!((d->flags & CONF_OFF) && strcmp(args[0], "off") == 0)
        && parse_msec(ps, d, args[0], line, &ms) != 0)
    {
        return -1;
    }

    *(int *) conf_field(ps, d, d->offset) = (int) ms;
    return 0;
}


/* An int of seconds, from a time of d->min to d->max ms rounded up (Redis
 * EX takes whole seconds). */
static int
conf_set_sec_slot(conf_parser_t *ps, const conf_directive_t *d, char **args,
    int nargs, int line)
{
    long long  ms;

    (void) nargs;

    if (parse_msec(ps, d, args[0], line, &ms) != 0) {
        return -1;
    }

    *(int *) conf_field(ps, d, d->offset) = (int) ((ms + 999) / 1000);
    return 0;
}


/* A backoff's "<min> <max>;": two times, the first not over the second,
 * into the ints of ms at d->offset and d->offset2. */
static int
conf_set_msec_range_slot(conf_parser_t *ps, const conf_directive_t *d,
    char **args, int nargs, int line)
{
    long long  min_ms, max_ms;

    (void) nargs;

    if (parse_msec(ps, d, args[0], line, &min_ms) != 0
        || parse_msec(ps, d, args[1], line, &max_ms) != 0)
    {
        return -1;
    }

    if (min_ms > max_ms) {
        return conf_error(ps, line, "\"%s\" minimum \"%s\" is greater than "
                          "its maximum \"%s\"", d->name, args[0], args[1]);
    }

    *(int *) conf_field(ps, d, d->offset) = (int) min_ms;
    *(int *) conf_field(ps, d, d->offset2) = (int) max_ms;
    return 0;
}


/* A long long of bytes, a size of at least d->min bytes (whole MiB; at
 * most 1 TiB); "off" is 0 with CONF_OFF. */
static int
conf_set_size_slot(conf_parser_t *ps, const conf_directive_t *d,
    char **args, int nargs, int line)
{
    long long  bytes = 0;

    (void) nargs;

    if (!((d->flags & CONF_OFF) && strcmp(args[0], "off") == 0)
        && (offload_conf_parse_size(args[0], &bytes) != 0
            || bytes < d->min))
    {
        return conf_error(ps, line, "invalid \"%s\" value \"%s\" (expected "
                          "%sa size of at least %lldm, like 256m)", d->name,
                          args[0], (d->flags & CONF_OFF) ? "off or " : "",
                          d->min / (1024 * 1024));
    }

    *(long long *) conf_field(ps, d, d->offset) = bytes;
    return 0;
}


/* An int, 1 for "on" and 0 for "off". */
static int
conf_set_flag_slot(conf_parser_t *ps, const conf_directive_t *d,
    char **args, int nargs, int line)
{
    int  *flag = conf_field(ps, d, d->offset);

    (void) nargs;

    if (strcmp(args[0], "on") == 0) {
        *flag = 1;

    } else if (strcmp(args[0], "off") == 0) {
        *flag = 0;

    } else {
        return conf_error(ps, line, "invalid value \"%s\" in \"%s\" "
                          "(expected on or off)", args[0], d->name);
    }

    return 0;
}


/* A char * the conf owns (offload_conf_free()), not empty. */
static int
conf_set_str_slot(conf_parser_t *ps, const conf_directive_t *d, char **args,
    int nargs, int line)
{
    (void) nargs;

    if (args[0][0] == '\0') {
        return conf_error(ps, line, "empty %s", d->name);
    }

    *(char **) conf_field(ps, d, d->offset) = args[0];
    args[0] = NULL;             /* the conf owns it now */
    return 0;
}


/* The directives that parse more than one kind of value, or more than
 * fill a field. */

/* redis <address> [wait_replicas=<n>|all]: the address, a Redis or the
 * sentinels of one (redis_endpoint.c). */
static int
set_redis(conf_parser_t *ps, const conf_directive_t *d, char **args,
    int nargs, int line)
{
    int                        i;
    char                       err[OFFLOAD_CONF_ERR_MAX];
    long long                  n;
    offload_redis_endpoint_t  *ep = conf_endpoint(ps);

    (void) d;

    if (offload_redis_endpoint_parse(ep, args[0], err, sizeof(err)) != 0) {
        return conf_error(ps, line, "%s", err);
    }

    for (i = 1; i < nargs; i++) {
        if (strcmp(args[i], "wait_replicas=all") == 0) {
            ep->wait_replicas = OFFLOAD_WAIT_ALL;
            continue;
        }

        if (strncmp(args[i], "wait_replicas=", 14) != 0
            || parse_uint(args[i] + 14, OFFLOAD_WAIT_REPLICAS_MAX, &n) != 0)
        {
            return conf_error(ps, line, "invalid redis parameter \"%s\" "
                              "(expected wait_replicas=0..%d or all)",
                              args[i], OFFLOAD_WAIT_REPLICAS_MAX);
        }

        ep->wait_replicas = (int) n;
    }

    *(ps->queue ? &ps->queue->redis_line : &ps->conf->redis_line) = line;
    return 0;
}


/* redis_user (the Redis ACL user, Redis 6+: AUTH <redis_user> <password>;
 * named so that it is not mistaken for "user", the Unix user),
 * sentinel_user and sentinel_password (the sentinels' own login, Redis
 * 6.2+, sent to every sentinel before it is asked anything): the string,
 * and its line at offset2 of the context's logins, for the checks made
 * once the file is read (check_logins). */
static int
set_login(conf_parser_t *ps, const conf_directive_t *d, char **args,
    int nargs, int line)
{
    offload_conf_logins_t  *logins;

    if (conf_set_str_slot(ps, d, args, nargs, line) != 0) {
        return -1;
    }

    logins = ps->queue ? &ps->queue->logins : &ps->logins;
    *(int *) ((char *) logins + d->offset2) = line;
    return 0;
}


static int
set_node_name(conf_parser_t *ps, const conf_directive_t *d, char **args,
    int nargs, int line)
{
    size_t  len = strlen(args[0]);

    (void) d;
    (void) nargs;

    if (len > OFFLOAD_NODE_NAME_MAX || !offload_queue_name_valid(args[0], len))
    {
        return conf_error(ps, line, "invalid node name \"%s\" (expected 1..64 "
                          "of A-Z a-z 0-9 _ . -)", args[0]);
    }

    memcpy(ps->conf->node_name, args[0], len + 1);
    return 0;
}


static int
set_log(conf_parser_t *ps, const conf_directive_t *d, char **args, int nargs,
    int line)
{
    int          i, level = OFFLOAD_LOG_INFO, leveled = 0, formatted = 0;
    const char  *path;

    (void) d;

    if (args[0][0] == '\0') {
        return conf_error(ps, line, "empty log target");
    }

    if (offload_log_syslog_path(args[0], &path) == -1) {
        return conf_error(ps, line, "invalid log target \"%s\" (expected "
                          "syslog or syslog:server=unix:/path, the path "
                          "absolute, under 108 bytes, without nginx's "
                          "other parameters)", args[0]);
    }

    /* log <target> [level] [json | text], in either order, each once */
    for (i = 1; i < nargs; i++) {
        if (strcmp(args[i], "json") == 0 || strcmp(args[i], "text") == 0) {
            if (formatted++) {
                return conf_error(ps, line, "log format given twice "
                                  "(\"%s\")", args[i]);
            }
            ps->conf->log_json = args[i][0] == 'j';
            continue;
        }

        level = offload_log_level_parse(args[i]);
        if (level < 0) {
            return conf_error(ps, line, "invalid log level or format \"%s\" "
                              "(expected debug, info, notice, warn, error, "
                              "json or text)", args[i]);
        }

        if (leveled++) {
            return conf_error(ps, line, "log level given twice (\"%s\")",
                              args[i]);
        }
    }

    ps->conf->log_target = args[0];
    args[0] = NULL;
    ps->conf->log_level = level;
    return 0;
}


/* user <name> [<group>]: as nginx's, the user and group the sidecar runs
 * as once it has opened its log (privs.c); the group defaults to the
 * user's primary group.  Names are resolved here, so "-t" reports a user
 * or group that does not exist. */
static int
set_user(conf_parser_t *ps, const conf_directive_t *d, char **args, int nargs,
    int line)
{
    struct group   *gr;
    struct passwd  *pw;

    (void) d;

    pw = getpwnam(args[0]);
    if (pw == NULL) {
        return conf_error(ps, line, "unknown user \"%s\" in \"user\"",
                          args[0]);
    }

    ps->conf->uid = pw->pw_uid;
    ps->conf->gid = pw->pw_gid;

    if (nargs == 2) {
        gr = getgrnam(args[1]);
        if (gr == NULL) {
            return conf_error(ps, line, "unknown group \"%s\" in \"user\"",
                              args[1]);
        }
        ps->conf->gid = gr->gr_gid;
    }

    ps->conf->user = args[0];
    args[0] = NULL;
    return 0;
}


static int
set_queue(conf_parser_t *ps, const conf_directive_t *d, char **args,
    int nargs, int line)
{
    size_t                 i, len = strlen(args[0]);
    offload_conf_t        *conf = ps->conf;
    offload_conf_queue_t  *q;

    (void) d;
    (void) nargs;

    if (!offload_queue_name_valid(args[0], len)) {
        return conf_error(ps, line, "invalid queue name \"%s\" (expected 1..64 "
                          "of A-Z a-z 0-9 _ . -)", args[0]);
    }

    for (i = 0; i < conf->nqueues; i++) {
        if (strcmp(conf->queues[i].name, args[0]) == 0) {
            return conf_error(ps, line, "duplicate queue \"%s\" (first "
                              "defined at line %d)", args[0],
                              conf->queues[i].line);
        }
    }

    q = realloc(conf->queues, (conf->nqueues + 1) * sizeof(*q));
    if (q == NULL) {
        return conf_error(ps, line, "out of memory");
    }
    conf->queues = q;

    q = &conf->queues[conf->nqueues++];
    memset(q, 0, sizeof(*q));
    memcpy(q->name, args[0], len + 1);
    q->workers = 1;
    q->prefetch = 1;
    q->max_restarts = 5;
    q->restart_period_ms = 10 * 1000;
    q->restart_cooldown_ms = 30 * 1000;
    q->backoff_min_ms = 10;
    q->backoff_max_ms = 5 * 1000;
    q->max_attempts = 2;
    q->retry_base_ms = 1000;
    q->retry_max_ms = 5 * 60 * 1000;
    q->timeout_ms = 60 * 1000;
    q->init_timeout_ms = 60 * 1000;
    q->nice = 10;
    q->redis.db = -1;               /* inherited unless the block says */
    q->line = line;

    ps->queue = q;
    return 0;
}


int
offload_conf_handler_name_valid(const char *name)
{
    size_t  n = strlen(name);

    return n > 0 && n <= OFFLOAD_HANDLER_NAME_MAX
           && strspn(name, "abcdefghijklmnopqrstuvwxyz"
                           "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
              == n;
}


/* Which handlers exist is known only once the plugins are loaded. */
static int
set_handler(conf_parser_t *ps, const conf_directive_t *d, char **args,
    int nargs, int line)
{
    (void) nargs;

    (void) d;
    if (!offload_conf_handler_name_valid(args[0])) {
        return conf_error(ps, line, "invalid handler name \"%s\"", args[0]);
    }

    strcpy(ps->queue->handler_name, args[0]);
    ps->queue->handler_line = line;
    return 0;
}


/*
 * Splits a command into words as a shell splits simple ones, without
 * running a shell: blanks separate words; '...' keeps what it holds as it
 * is; "..." too, but a backslash in it escapes the next character, as it
 * does outside quotes.  No variables, globs, pipes or redirections:
 * `command "/bin/sh -c '...'";` asks for a shell.  Stores the words into
 * buf (as long as text) and their starts into words.  Returns their
 * number, or -1 with *why.
 */
static int
split_command(const char *text, char *buf, char **words, int max,
    const char **why)
{
    int          n = 0, in_word = 0;
    char         quote = '\0';
    const char  *p;

    for (p = text; *p != '\0'; p++) {
        if (quote == '\0' && (*p == ' ' || *p == '\t' || *p == '\n'
                              || *p == '\r'))
        {
            if (in_word) {
                *buf++ = '\0';
                in_word = 0;
            }
            continue;
        }

        if (!in_word) {
            if (n == max) {
                *why = "too many words";
                return -1;
            }
            words[n++] = buf;
            in_word = 1;
        }

        if (quote != '\0' && *p == quote) {
            quote = '\0';

        } else if (quote == '\0' && (*p == '\'' || *p == '"')) {
            quote = *p;

        } else if (*p == '\\' && quote != '\'' && p[1] != '\0') {
            *buf++ = *++p;

        } else {
            *buf++ = *p;
        }
    }

    if (quote != '\0') {
        *why = "unterminated quote";
        return -1;
    }

    if (in_word) {
        *buf = '\0';
    }

    if (n == 0) {
        *why = "no program";
        return -1;
    }

    return n;
}


static int
set_wait_ready(conf_parser_t *ps, const conf_directive_t *d, char **args,
    int nargs, int line)
{
    ps->queue->wait_ready_line = line;
    return conf_set_flag_slot(ps, d, args, nargs, line);
}


/* One argument is split into words (split_command); several are the
 * words themselves.  Both become one allocation: the NULL-terminated
 * pointers, then the words. */
static int
set_command(conf_parser_t *ps, const conf_directive_t *d, char **args,
    int nargs, int line)
{
    int                    i, n;
    char                 **argv, *buf;
    size_t                 len = 0;
    const char            *why;
    offload_conf_queue_t  *q = ps->queue;

    (void) d;
    for (i = 0; i < nargs; i++) {
        len += strlen(args[i]) + 1;
    }

    q->command_text = malloc(len);
    argv = malloc((OFFLOAD_COMMAND_ARGS_MAX + 1) * sizeof(char *) + len);
    if (q->command_text == NULL || argv == NULL) {
        free(argv);
        return conf_error(ps, line, "out of memory");
    }

    q->command = argv;
    q->command_line = line;
    buf = (char *) (argv + OFFLOAD_COMMAND_ARGS_MAX + 1);

    for (i = 0, len = 0; i < nargs; i++) {
        len += sprintf(q->command_text + len, "%s%s", i ? " " : "",
                       args[i]);
    }

    if (nargs == 1) {
        n = split_command(args[0], buf, argv, OFFLOAD_COMMAND_ARGS_MAX, &why);
        if (n < 0) {
            return conf_error(ps, line, "invalid \"command\" \"%s\": %s",
                              args[0], why);
        }

    } else {
        for (n = 0; n < nargs; n++) {
            argv[n] = strcpy(buf, args[n]);
            buf += strlen(buf) + 1;
        }
    }

    argv[n] = NULL;
    return 0;
}


/* A relative path is taken from the config file's folder, so that a
 * config and its plugins can move together ("./" for a config in the
 * current folder: dlopen() searches the library path for a bare name). */
static int
set_load_module(conf_parser_t *ps, const conf_directive_t *d, char **args,
    int nargs, int line)
{
    char                   *path;
    size_t                  size;
    const char             *slash;
    offload_conf_module_t  *m;

    (void) d;
    (void) nargs;

    if (args[0][0] == '\0') {
        return conf_error(ps, line, "empty path in \"load_module\"");
    }

    m = realloc(ps->conf->modules,
                (ps->conf->nmodules + 1) * sizeof(offload_conf_module_t));
    if (m == NULL) {
        return conf_error(ps, line, "out of memory");
    }
    ps->conf->modules = m;

    slash = strrchr(ps->file, '/');
    size = strlen(ps->file) + strlen(args[0]) + 3;

    path = malloc(size);
    if (path == NULL) {
        return conf_error(ps, line, "out of memory");
    }

    if (args[0][0] == '/') {
        snprintf(path, size, "%s", args[0]);
    } else if (slash == NULL) {
        snprintf(path, size, "./%s", args[0]);
    } else {
        snprintf(path, size, "%.*s%s", (int) (slash - ps->file + 1),
                 ps->file, args[0]);
    }

    m[ps->conf->nmodules].path = path;
    m[ps->conf->nmodules].line = line;
    ps->conf->nmodules++;
    return 0;
}


/* Times of the restart directives: up to a day, which fits an int of ms. */
#define RESTART_TIME_MAX_MS  (86400 * 1000LL)


/* max_restarts <count> <period>: the row's bounds are the period's. */
static int
set_max_restarts(conf_parser_t *ps, const conf_directive_t *d, char **args,
    int nargs, int line)
{
    long long  n, ms;

    (void) nargs;

    if (parse_uint(args[0], OFFLOAD_RESTARTS_MAX, &n) != 0) {
        return conf_error(ps, line, "invalid \"max_restarts\" value \"%s\" "
                          "(expected 0..%d)", args[0], OFFLOAD_RESTARTS_MAX);
    }

    if (parse_msec(ps, d, args[1], line, &ms) != 0) {
        return -1;
    }

    ps->queue->max_restarts = (int) n;
    ps->queue->restart_period_ms = (int) ms;
    return 0;
}


#define MAIN(field)      offsetof(offload_conf_t, field)
#define QUEUE(field)     offsetof(offload_conf_queue_t, field)
#define ENDPOINT(field)  offsetof(offload_redis_endpoint_t, field)
#define LOGIN(field)     offsetof(offload_conf_logins_t, field)

/* A directive is one row: name, context, argument counts, flags, setter,
 * the field(s) it sets and the bounds of its value. */
static const conf_directive_t  directives[] = {
    /* Top level, or a queue's own Redis (CTX_ENDPOINT: both) */
    { "redis", CTX_MAIN | CTX_QUEUE, 1, 2, 0, set_redis, 0, 0, 0, 0 },
    { "redis_user", CTX_MAIN | CTX_QUEUE, 1, 1, 0, set_login,
      ENDPOINT(user), LOGIN(user), 0, 0 },
    { "password", CTX_MAIN | CTX_QUEUE, 1, 1, 0, conf_set_str_slot,
      ENDPOINT(password), 0, 0, 0 },
    { "db", CTX_MAIN | CTX_QUEUE, 1, 1, 0, conf_set_num_slot, ENDPOINT(db),
      0, 0, OFFLOAD_DB_MAX },
    { "sentinel_user", CTX_MAIN | CTX_QUEUE, 1, 1, 0, set_login,
      ENDPOINT(sentinel_user), LOGIN(sentinel_user), 0, 0 },
    { "sentinel_password", CTX_MAIN | CTX_QUEUE, 1, 1, 0, set_login,
      ENDPOINT(sentinel_password), LOGIN(sentinel_password), 0, 0 },
    { "redis_timeout", CTX_MAIN, 1, 1, 0, conf_set_msec_slot,
      MAIN(redis.timeout_ms), 0, 500, 600 * 1000 },
    { "node_name", CTX_MAIN, 1, 1, 0, set_node_name, 0, 0, 0, 0 },
    { "log", CTX_MAIN, 1, 3, 0, set_log, 0, 0, 0, 0 },
    { "heartbeat", CTX_MAIN, 1, 1, 0, conf_set_msec_slot,
      MAIN(heartbeat_ms), 0, 10, 3600 * 1000 },
    { "result_ttl", CTX_MAIN, 1, 1, 0, conf_set_sec_slot,
      MAIN(result_ttl_s), 0, 1000, 30LL * 86400 * 1000 },
    { "shutdown_timeout", CTX_MAIN, 1, 1, 0, conf_set_msec_slot,
      MAIN(shutdown_timeout_ms), 0, 0, 3600 * 1000 },
    { "claim_idle", CTX_MAIN, 1, 1, 0, conf_set_msec_slot,
      MAIN(claim_idle_ms), 0, 100, 3600 * 1000 },
    { "fault_handlers", CTX_MAIN, 1, 1, 0, conf_set_flag_slot,
      MAIN(fault_handlers), 0, 0, 0 },
    { "user", CTX_MAIN, 1, 2, 0, set_user, 0, 0, 0, 0 },
    { "pid", CTX_MAIN, 1, 1, 0, conf_set_str_slot, MAIN(pid_file), 0, 0,
      0 },
    { "load_module", CTX_MAIN, 1, 1, CONF_REPEAT, set_load_module,
      0, 0, 0, 0 },
    { "queue", CTX_MAIN, 1, 1, CONF_BLOCK, set_queue, 0, 0, 0, 0 },
    { "handler", CTX_QUEUE, 1, 1, 0, set_handler, 0, 0, 0, 0 },
    { "command", CTX_QUEUE, 1, CONF_MAX_ARGS, 0, set_command, 0, 0, 0, 0 },
    { "wait_ready", CTX_QUEUE, 1, 1, 0, set_wait_ready, QUEUE(wait_ready),
      0, 0, 0 },
    { "workers", CTX_QUEUE, 1, 1, 0, conf_set_num_slot,
      QUEUE(workers), 0, 1, OFFLOAD_WORKERS_MAX },
    { "prefetch", CTX_QUEUE, 1, 1, 0, conf_set_num_slot,
      QUEUE(prefetch), 0, 1, OFFLOAD_PREFETCH_MAX },
    { "max_restarts", CTX_QUEUE, 2, 2, 0, set_max_restarts,
      0, 0, 10, RESTART_TIME_MAX_MS },
    { "restart_cooldown", CTX_QUEUE, 1, 1, 0, conf_set_msec_slot,
      QUEUE(restart_cooldown_ms), 0, 0, RESTART_TIME_MAX_MS },
    { "restart_backoff", CTX_QUEUE, 2, 2, 0, conf_set_msec_range_slot,
      QUEUE(backoff_min_ms), QUEUE(backoff_max_ms), 1,
      RESTART_TIME_MAX_MS },
    { "max_attempts", CTX_QUEUE, 1, 1, 0, conf_set_num_slot,
      QUEUE(max_attempts), 0, 1, OFFLOAD_ATTEMPTS_MAX },
    { "retry_backoff", CTX_QUEUE, 2, 2, 0, conf_set_msec_range_slot,
      QUEUE(retry_base_ms), QUEUE(retry_max_ms), 1, RESTART_TIME_MAX_MS },
    { "timeout", CTX_QUEUE, 1, 1, CONF_OFF, conf_set_msec_slot,
      QUEUE(timeout_ms), 0, 1, RESTART_TIME_MAX_MS },
    { "init_timeout", CTX_QUEUE, 1, 1, CONF_OFF, conf_set_msec_slot,
      QUEUE(init_timeout_ms), 0, 1, RESTART_TIME_MAX_MS },
    { "memory_limit", CTX_QUEUE, 1, 1, CONF_OFF, conf_set_size_slot,
      QUEUE(memory_limit), 0, 1024 * 1024, 0 },
    { "max_jobs_per_worker", CTX_QUEUE, 1, 1, CONF_NOLIMIT, conf_set_num_slot,
      QUEUE(max_jobs), 0, 0, INT_MAX },
    /* Workers run below nginx and Redis (nice 10 by default): when their
     * jobs saturate the CPUs, the HTTP edge still answers at once. */
    { "nice", CTX_QUEUE, 1, 1, 0, conf_set_num_slot, QUEUE(nice), 0, 0, 19 },
};

#define NDIRECTIVES  (sizeof(directives) / sizeof(directives[0]))


static void
free_args(char **args, int nargs)
{
    int  i;

    for (i = 0; i < nargs && i < CONF_MAX_ARGS + 1; i++) {
        free(args[i]);
    }
}


static int parse_block(conf_parser_t *ps, int ctx, int open_line);


/* "command" goes with "handler exec", and only with it; "wait_ready" only
 * with it. */
static int
check_command(conf_parser_t *ps)
{
    offload_conf_queue_t  *q = ps->queue;
    int                    is_exec;

    is_exec = strcmp(q->handler_name, OFFLOAD_EXEC_HANDLER) == 0;

    if (is_exec && q->command == NULL) {
        return conf_error(ps, q->handler_line, "queue \"%s\": \"handler "
                          "exec\" needs a \"command\"", q->name);
    }

    if (!is_exec && q->command != NULL) {
        return conf_error(ps, q->command_line, "queue \"%s\": \"command\" "
                          "needs \"handler exec\" (its handler is \"%s\")",
                          q->name, q->handler_name);
    }

    if (!is_exec && q->wait_ready) {
        return conf_error(ps, q->wait_ready_line, "queue \"%s\": "
                          "\"wait_ready\" needs \"handler exec\" (its handler "
                          "is \"%s\")", q->name, q->handler_name);
    }

    return 0;
}


/* Checks and runs one directive; args[0] is its name. */
static int
run_directive(conf_parser_t *ps, int ctx, char **args, int nargs, int line,
    int has_block)
{
    size_t                   i;
    unsigned char           *seen;
    const conf_directive_t  *d = NULL;

    for (i = 0; i < sizeof(directives) / sizeof(directives[0]); i++) {
        if (strcmp(directives[i].name, args[0]) == 0) {
            d = &directives[i];
            break;
        }
    }

    if (d == NULL) {
        return conf_error(ps, line, "unknown directive \"%s\"", args[0]);
    }

    if (!(d->ctx & ctx)) {
        return conf_error(ps, line, "\"%s\" directive is not allowed here",
                          d->name);
    }

    if (nargs - 1 < d->min_args || nargs - 1 > d->max_args) {
        return conf_error(ps, line, "invalid number of arguments in \"%s\" "
                          "directive", d->name);
    }

    if ((d->flags & CONF_BLOCK) && !has_block) {
        return conf_error(ps, line, "directive \"%s\" has no opening \"{\"",
                          d->name);
    }

    if (!(d->flags & CONF_BLOCK) && has_block) {
        return conf_error(ps, line, "directive \"%s\" takes no block",
                          d->name);
    }

    seen = (ctx == CTX_MAIN) ? ps->seen_main : ps->seen_queue;

    if (!(d->flags & (CONF_BLOCK | CONF_REPEAT))) {
        if (seen[i]) {
            return conf_error(ps, line, "\"%s\" directive is duplicate",
                              d->name);
        }
        seen[i] = 1;
    }

    if (d->set(ps, d, args + 1, nargs - 1, line) != 0) {
        return -1;
    }

    if (!has_block) {
        return 0;
    }

    memset(ps->seen_queue, 0, NDIRECTIVES);

    if (parse_block(ps, CTX_QUEUE, line) != 0) {
        return -1;
    }

    if (ps->queue->handler_name[0] == '\0') {
        return conf_error(ps, line, "queue \"%s\" has no \"handler\"",
                          ps->queue->name);
    }

    if (check_command(ps) != 0) {
        return -1;
    }

    ps->queue = NULL;
    return 0;
}


/* Parses directives until the end of the block (ctx CTX_QUEUE, a "}") or
 * of the file (CTX_MAIN). */
static int
parse_block(conf_parser_t *ps, int ctx, int open_line)
{
    int            nargs, line, rc;
    char          *args[CONF_MAX_ARGS + 1];
    conf_token_t   tok;

    for ( ;; ) {
        nargs = 0;
        line = 0;

        for ( ;; ) {
            if (next_token(ps, &tok) != 0) {
                free_args(args, nargs);
                return -1;
            }

            if (tok.type != TOK_WORD) {
                break;
            }

            if (nargs == 0) {
                line = tok.line;
            }

            if (nargs == CONF_MAX_ARGS + 1) {
                rc = conf_error(ps, line, "too many arguments in \"%s\" "
                                "directive", args[0]);
                free(tok.text);
                free_args(args, nargs);
                return rc;
            }

            args[nargs++] = tok.text;
        }

        if (nargs == 0) {
            switch (tok.type) {
            case TOK_EOF:
                if (ctx == CTX_MAIN) {
                    return 0;
                }
                return conf_error(ps, tok.line, "unexpected end of file, "
                                  "expecting \"}\" to close the block "
                                  "opened at line %d", open_line);
            case TOK_CLOSE:
                if (ctx == CTX_QUEUE) {
                    return 0;
                }
                return conf_error(ps, tok.line, "unexpected \"}\"");
            case TOK_OPEN:
                return conf_error(ps, tok.line, "unexpected \"{\"");
            default:
                return conf_error(ps, tok.line, "unexpected \";\"");
            }
        }

        if (tok.type == TOK_EOF || tok.type == TOK_CLOSE) {
            rc = conf_error(ps, line, "directive \"%s\" is not terminated by "
                            "\";\"", args[0]);
            free_args(args, nargs);
            return rc;
        }

        rc = run_directive(ps, ctx, args, nargs, line, tok.type == TOK_OPEN);
        free_args(args, nargs);

        if (rc != 0) {
            return -1;
        }
    }
}


/* A string of the top level's endpoint that the queue's does not give. */
static int
inherit_str(char **dst, const char *top)
{
    return *dst == NULL && top != NULL && (*dst = strdup(top)) == NULL
           ? -1 : 0;
}


/* "redis_user" needs "password", "sentinel_user" "sentinel_password", and
 * the sentinels' login needs sentinels (nsentinels: of the endpoint, or of
 * any that inherits it). */
static int
check_logins(conf_parser_t *ps, const offload_redis_endpoint_t *ep,
    int nsentinels, const offload_conf_logins_t *lines, int line)
{
    if (ep->user != NULL && ep->password == NULL) {
        return conf_error(ps, lines->user, "\"redis_user\" needs "
                          "\"password\"");
    }

    if (ep->sentinel_user != NULL && ep->sentinel_password == NULL) {
        return conf_error(ps, lines->sentinel_user, "\"sentinel_user\" needs "
                          "\"sentinel_password\"");
    }

    /* a queue's inherited one is the block's fault (line) */
    if (ep->sentinel_password != NULL && nsentinels == 0) {
        return conf_error(ps, lines->sentinel_password
                              ? lines->sentinel_password : line,
                          "\"sentinel_password\" needs a "
                          "\"redis sentinel://...\"");
    }

    return 0;
}


/* A cluster has only db 0.  (wait_replicas works as with one master: a
 * worker's link is to its queue's master, where its completions and their
 * WAIT go; "all" counts that master's replicas with ROLE.) */
static int
check_cluster(conf_parser_t *ps, const offload_redis_endpoint_t *ep,
    int line)
{
    if (ep->nseeds > 0 && ep->db != 0) {
        return conf_error(ps, line, "\"db\" %d with a \"redis cluster://"
                          "...\": a Redis Cluster has only db 0", ep->db);
    }

    return 0;
}


/* Every seed list of one cluster names the same seeds (in any order):
 * two lists sharing a seed would make two links to its control shard,
 * each overwriting the node document the other writes. */
static int
check_seed_lists(conf_parser_t *ps, const offload_conf_t *conf)
{
    size_t                           i, j;
    const offload_redis_endpoint_t  *a, *b;

    for (i = 0; i < conf->nqueues; i++) {
        a = &conf->queues[i].redis;

        for (j = 0; j <= i; j++) {
            b = j < i ? &conf->queues[j].redis : &conf->redis;

            if (offload_redis_seeds_overlap(a, b)) {
                return conf_error(ps, conf->queues[i].redis_line,
                                  "queue \"%s\": its cluster seeds differ "
                                  "from %s%s%s's but share a seed: every "
                                  "seed list of one cluster must name the "
                                  "same seeds", conf->queues[i].name,
                                  j < i ? "queue \"" : "the top level",
                                  j < i ? conf->queues[j].name : "",
                                  j < i ? "\"" : "");
            }
        }
    }

    return 0;
}


/* A queue's Redis: each of redis, redis_user, password, db and the
 * sentinels' login the block does not give is the top level's (as nginx
 * inherits directives); redis_timeout is always the top level's. */
static int
inherit_redis(conf_parser_t *ps, offload_conf_queue_t *q)
{
    int                              own;
    const offload_redis_endpoint_t  *top = &ps->conf->redis;

    /* the block's own sentinel_password is for the block's sentinels */
    own = q->redis.sentinel_password != NULL;

    if (q->redis_line == 0) {
        q->redis.addr = top->addr;
        memcpy(q->redis.sentinels, top->sentinels, sizeof(top->sentinels));
        q->redis.nsentinels = top->nsentinels;
        memcpy(q->redis.master, top->master, sizeof(top->master));
        memcpy(q->redis.seeds, top->seeds, sizeof(top->seeds));
        q->redis.nseeds = top->nseeds;
        q->redis.wait_replicas = top->wait_replicas;
    }

    /* with a cluster, the queue's connections go to its slot's master */
    q->redis.slot = (int) offload_key_slot(q->name, strlen(q->name));

    if (inherit_str(&q->redis.user, top->user) != 0
        || inherit_str(&q->redis.password, top->password) != 0
        || inherit_str(&q->redis.sentinel_user, top->sentinel_user) != 0
        || inherit_str(&q->redis.sentinel_password, top->sentinel_password)
           != 0)
    {
        return conf_error(ps, q->line, "out of memory");
    }

    if (q->redis.db < 0) {
        q->redis.db = top->db;
    }

    q->redis.timeout_ms = top->timeout_ms;

    if (check_cluster(ps, &q->redis, q->redis_line ? q->redis_line : q->line)
        != 0)
    {
        return -1;
    }

    return check_logins(ps, &q->redis, own ? q->redis.nsentinels : 1,
                        &q->logins, q->line);
}


static int
set_defaults(conf_parser_t *ps)
{
    int             nsentinels;
    size_t          i;
    char            host[256];
    size_t          len;
    offload_conf_t  *conf = ps->conf;

    if (conf->node_name[0] == '\0') {
        if (gethostname(host, sizeof(host)) != 0) {
            return conf_error(ps, ps->line, "gethostname() failed: %s; set "
                              "\"node_name\"", strerror(errno));
        }
        host[sizeof(host) - 1] = '\0';
        len = strlen(host);

        if (len > OFFLOAD_NODE_NAME_MAX || !offload_queue_name_valid(host, len))
        {
            return conf_error(ps, ps->line, "host name \"%s\" is not a valid "
                              "node name; set \"node_name\"", host);
        }
        memcpy(conf->node_name, host, len + 1);
    }

    if (conf->log_target == NULL) {
        conf->log_target = strdup("stderr");
        if (conf->log_target == NULL) {
            return conf_error(ps, ps->line, "out of memory");
        }
    }

    if (conf->nqueues == 0 && queues_required) {
        return conf_error(ps, ps->line, "no \"queue\" defined");
    }

    nsentinels = conf->redis.nsentinels;

    for (i = 0; i < conf->nqueues; i++) {
        nsentinels += conf->queues[i].redis.nsentinels;
    }

    if (check_logins(ps, &conf->redis, nsentinels, &ps->logins, ps->line)
        != 0
        || check_cluster(ps, &conf->redis, conf->redis_line
                                           ? conf->redis_line : ps->line)
           != 0)
    {
        return -1;
    }

    for (i = 0; i < conf->nqueues; i++) {
        if (inherit_redis(ps, &conf->queues[i]) != 0) {
            return -1;
        }
    }

    return check_seed_lists(ps, conf);
}


int
offload_conf_parse(offload_conf_t *conf, const char *file, const char *text,
    size_t len, char *err, size_t errlen)
{
    unsigned char  seen[2][NDIRECTIVES];
    conf_parser_t  ps;

    memset(conf, 0, sizeof(*conf));
    offload_addr_parse(&conf->redis.addr, "127.0.0.1:6379", 14);
    conf->log_level = OFFLOAD_LOG_INFO;
    conf->redis.timeout_ms = 2 * 1000;
    conf->heartbeat_ms = 1000;
    conf->result_ttl_s = 60;
    conf->shutdown_timeout_ms = 10 * 1000;
    conf->claim_idle_ms = 5 * 1000;

    memset(&ps, 0, sizeof(ps));
    ps.file = file;
    ps.p = text;
    ps.end = text + len;
    ps.line = 1;
    ps.err = err;
    ps.errlen = errlen;
    ps.conf = conf;
    memset(seen, 0, sizeof(seen));
    ps.seen_main = seen[0];
    ps.seen_queue = seen[1];

    if (parse_block(&ps, CTX_MAIN, 0) != 0 || set_defaults(&ps) != 0) {
        offload_conf_free(conf);
        return -1;
    }

    conf->file = strdup(file);
    if (conf->file == NULL) {
        offload_conf_free(conf);
        snprintf(err, errlen, "%s: out of memory", file);
        return -1;
    }

    return 0;
}


/*
 * hiredis resolves a host name with a blocking getaddrinfo() at every
 * connect, inside the event loop of the supervisor and of each worker.
 * Resolved once here instead, as nginx does for offload_redis, every
 * connection goes to an address; following a DNS change takes a restart.
 * Not in the parser itself, which must stay free of the network.
 */
static int
resolve_addr(offload_addr_t *addr, int line, const char *file, char *err,
    size_t errlen)
{
    int               rc;
    struct addrinfo   hints, *res;

    if (addr->is_unix) {
        return 0;
    }

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;

    rc = getaddrinfo(addr->host, NULL, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "%s:%d: cannot resolve redis host \"%s\": %s",
                 file, line, addr->host, gai_strerror(rc));
        return -1;
    }

    rc = getnameinfo(res->ai_addr, res->ai_addrlen, addr->host,
                     sizeof(addr->host), NULL, 0, NI_NUMERICHOST);
    freeaddrinfo(res);

    if (rc != 0) {
        snprintf(err, errlen, "%s:%d: cannot use the address of redis host: "
                 "%s", file, line, gai_strerror(rc));
        return -1;
    }

    return 0;
}


/* The top level's address, then each queue's own (a queue that names none
 * has the top level's, resolved once). */
static int
resolve_endpoint(offload_redis_endpoint_t *ep, int line, const char *file,
    char *err, size_t errlen)
{
    int  i;

    for (i = 0; i < ep->nseeds; i++) {
        if (resolve_addr(&ep->seeds[i], line, file, err, errlen) != 0) {
            return -1;
        }
    }

    if (ep->nsentinels == 0) {
        return ep->nseeds > 0 ? 0 : resolve_addr(&ep->addr, line, file, err,
                                                  errlen);
    }

    for (i = 0; i < ep->nsentinels; i++) {
        if (resolve_addr(&ep->sentinels[i], line, file, err, errlen) != 0) {
            return -1;
        }
    }

    return 0;
}


static int
resolve_redis(offload_conf_t *conf, const char *file, char *err,
    size_t errlen)
{
    size_t                 i;
    offload_conf_queue_t  *q;

    if (resolve_endpoint(&conf->redis, conf->redis_line, file, err, errlen)
        != 0)
    {
        return -1;
    }

    for (i = 0; i < conf->nqueues; i++) {
        q = &conf->queues[i];

        if (q->redis_line == 0) {
            q->redis.addr = conf->redis.addr;
            memcpy(q->redis.sentinels, conf->redis.sentinels,
                   sizeof(conf->redis.sentinels));
            memcpy(q->redis.seeds, conf->redis.seeds,
                   sizeof(conf->redis.seeds));

        } else if (resolve_endpoint(&q->redis, q->redis_line, file, err,
                                    errlen)
                   != 0)
        {
            return -1;
        }
    }

    return 0;
}


void
offload_conf_queues_optional(void)
{
    queues_required = 0;
}


int
offload_conf_load(offload_conf_t *conf, const char *file, char *err,
    size_t errlen)
{
    int      rc;
    char    *text;
    long     size;
    FILE    *fp;

    fp = fopen(file, "rb");
    if (fp == NULL) {
        snprintf(err, errlen, "%s: cannot open: %s", file, strerror(errno));
        return -1;
    }

    if (fseek(fp, 0, SEEK_END) != 0 || (size = ftell(fp)) < 0
        || fseek(fp, 0, SEEK_SET) != 0)
    {
        snprintf(err, errlen, "%s: cannot read: %s", file, strerror(errno));
        fclose(fp);
        return -1;
    }

    if (size > 1024 * 1024) {
        snprintf(err, errlen, "%s: file too large", file);
        fclose(fp);
        return -1;
    }

    text = malloc((size_t) size + 1);
    if (text == NULL) {
        snprintf(err, errlen, "%s: out of memory", file);
        fclose(fp);
        return -1;
    }

    if (fread(text, 1, (size_t) size, fp) != (size_t) size) {
        snprintf(err, errlen, "%s: cannot read: %s", file,
                 ferror(fp) ? strerror(errno) : "short read");
        free(text);
        fclose(fp);
        return -1;
    }
    fclose(fp);

    rc = offload_conf_parse(conf, file, text, (size_t) size, err, errlen);
    free(text);

    if (rc == 0 && resolve_redis(conf, file, err, errlen) != 0) {
        offload_conf_free(conf);
        return -1;
    }

    return rc;
}


void
offload_conf_free(offload_conf_t *conf)
{
    size_t  i;

    for (i = 0; i < conf->nmodules; i++) {
        free(conf->modules[i].path);
    }

    free(conf->modules);
    free(conf->file);
    free(conf->redis.password);
    free(conf->redis.user);
    free(conf->redis.sentinel_user);
    free(conf->redis.sentinel_password);
    free(conf->user);
    free(conf->log_target);
    free(conf->pid_file);

    for (i = 0; i < conf->nqueues; i++) {
        free(conf->queues[i].command);
        free(conf->queues[i].command_text);
        free(conf->queues[i].redis.user);
        free(conf->queues[i].redis.password);
        free(conf->queues[i].redis.sentinel_user);
        free(conf->queues[i].redis.sentinel_password);
    }

    free(conf->queues);
    memset(conf, 0, sizeof(*conf));
}
