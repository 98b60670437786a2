/*
 * offloadctl_util.c -- the helpers every offloadctl command uses
 * (offloadctl.h).
 */

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "offload_slot.h"
#include "offloadctl.h"


static redisReply *
checked(ctl_t *ctl, redisReply *reply)
{
    if (reply == NULL) {
        /* hiredis says EAGAIN when the read timeout passed */
        if (ctl->redis->err == REDIS_ERR_IO && errno == EAGAIN) {
            fprintf(stderr, "offloadctl: redis: no answer within the %d s "
                    "deadline\n", CTL_TIMEOUT_S);
        } else {
            fprintf(stderr, "offloadctl: redis: %s\n", ctl->redis->errstr);
        }
        return NULL;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "offloadctl: redis: %s\n", reply->str);
        freeReplyObject(reply);
        return NULL;
    }

    return reply;
}


redisReply *
ctl_command(ctl_t *ctl, const char *fmt, ...)
{
    va_list      ap;
    redisReply  *reply;

    va_start(ap, fmt);
    reply = redisvCommand(ctl->redis, fmt, ap);
    va_end(ap);

    return checked(ctl, reply);
}


redisReply *
ctl_command_argv(ctl_t *ctl, int argc, const char **argv,
    const size_t *argvlen)
{
    return checked(ctl, redisCommandArgv(ctl->redis, argc, argv, argvlen));
}


void
ctl_use(ctl_t *ctl, size_t i)
{
    ctl_redis_t  *s = &ctl->servers[i];

    ctl->redis = s->redis;
    ctl->addr = &s->ep.addr;
    ctl->user = s->ep.user;
    ctl->password = s->ep.password;
    ctl->db = s->ep.db;
    ctl->redis_name = s->name;
}


int
ctl_use_queue(ctl_t *ctl, size_t i, const char *queue)
{
    ctl_redis_t               *s = &ctl->servers[i];
    offload_redis_endpoint_t   ep;

    ctl_use(ctl, i);

    if (s->ep.nseeds == 0) {
        return CTL_OK;
    }

    ep = s->ep;
    ep.slot = (int) offload_key_slot(queue, strlen(queue));

    if (ctl_find_master(&ep) != 0) {
        return CTL_FAIL;
    }

    redisFree(ctl->queue_redis);
    ctl->queue_redis = ctl_connect(&ep.addr, ep.user, ep.password, ep.db,
                                   s->name);
    if (ctl->queue_redis == NULL) {
        return CTL_FAIL;
    }

    ctl->queue_addr = ep.addr;
    ctl->redis = ctl->queue_redis;
    ctl->addr = &ctl->queue_addr;
    return CTL_OK;
}


/* servers' index of the Redis the config gives queue, or -1 (no config,
 * no such queue, or its Redis is not one of servers). */
static int
conf_server(ctl_t *ctl, const char *queue)
{
    size_t  q, i;

    for (q = 0; ctl->conf != NULL && q < ctl->conf->nqueues; q++) {
        if (strcmp(ctl->conf->queues[q].name, queue) != 0) {
            continue;
        }

        for (i = 0; i < ctl->nservers; i++) {
            /* a cluster's: whatever the slot (the server's is the
             * control slot's) */
            if (offload_redis_endpoint_same_keys(&ctl->servers[i].ep,
                                                 &ctl->conf->queues[q].redis))
            {
                return (int) i;
            }
        }
    }

    return -1;
}


size_t
ctl_queue_servers(ctl_t *ctl, const char *queue, size_t *index)
{
    int     i = conf_server(ctl, queue);
    size_t  n;

    if (i >= 0) {
        index[0] = (size_t) i;
        return 1;
    }

    for (n = 0; n < ctl->nservers; n++) {
        index[n] = n;
    }

    return n;
}


int
ctl_queue_on(ctl_t *ctl, size_t i, const char *queue, const char *key)
{
    int          on;
    redisReply  *reply;

    if (ctl_use_queue(ctl, i, queue) != CTL_OK) {
        return -1;
    }

    reply = ctl_command(ctl, "EXISTS %s", key);
    if (reply == NULL) {
        return -1;
    }

    on = reply->type == REDIS_REPLY_INTEGER && reply->integer > 0;
    freeReplyObject(reply);
    return on;
}


int
ctl_find_queue(ctl_t *ctl, const char *cmd, const char *queue)
{
    int     on;
    char    key[OFFLOAD_KEY_MAX], names[CTL_REDIS_MAX * 302];
    size_t  index[CTL_REDIS_MAX], i, n, found = 0, at = 0, len = 0;

    n = ctl_queue_servers(ctl, queue, index);
    if (n == 1) {
        return ctl_use_queue(ctl, index[0], queue);
    }

    if (offload_stream_key(key, sizeof(key), queue, strlen(queue)) < 0) {
        return ctl_usage_error(cmd, "invalid queue name \"%s\"", queue);
    }

    names[0] = '\0';

    for (i = 0; i < n; i++) {
        on = ctl_queue_on(ctl, index[i], queue, key);
        if (on < 0) {
            return CTL_FAIL;
        }

        if (on) {
            at = index[i];
            len += (size_t) snprintf(names + len, sizeof(names) - len,
                                     "%s%s", found++ ? ", " : "",
                                     ctl->redis_name);
        }
    }

    if (found == 0) {
        fprintf(stderr, "offloadctl %s: queue %s is on none of the %zu "
                "Redis servers (no %s)\n", cmd, queue, n, key);
        return CTL_FAIL;
    }

    if (found > 1) {
        return ctl_usage_error(cmd, "queue %s is on several Redis servers "
                               "(%s): name the one with -r", queue, names);
    }

    return ctl_use_queue(ctl, at, queue);
}


static json_t *
nodes_of(ctl_t *ctl, const char *sort, int limit)
{
    char          lim[16], *text;
    json_t       *doc;
    redisReply   *reply;
    json_error_t  jerr;

    snprintf(lim, sizeof(lim), "%d", limit);

    reply = ctl_command(ctl, "EVAL %s 3 %s %s %s json %s %s %s",
                        offload_nodes_script, OFFLOAD_NODES_KEY,
                        OFFLOAD_CRASHES_KEY, OFFLOAD_QUEUES_KEY, sort,
                        limit > 0 ? lim : "", OFFLOAD_NODE_PREFIX);
    if (reply == NULL) {
        return NULL;
    }

    /* the script answers the inside of an object */
    text = malloc(reply->len + 3);
    if (text == NULL) {
        freeReplyObject(reply);
        fprintf(stderr, "offloadctl: out of memory\n");
        return NULL;
    }

    text[0] = '{';
    memcpy(text + 1, reply->str, reply->len);
    text[reply->len + 1] = '}';
    text[reply->len + 2] = '\0';
    freeReplyObject(reply);

    doc = json_loads(text, 0, &jerr);
    free(text);

    if (doc == NULL) {
        fprintf(stderr, "offloadctl: bad node documents: %s\n", jerr.text);
    }

    return doc;
}


json_t *
ctl_nodes(ctl_t *ctl, const char *sort, int limit)
{
    size_t   i;
    json_t  *all = NULL, *more;

    for (i = 0; i < ctl->nservers; i++) {
        ctl_use(ctl, i);
        more = nodes_of(ctl, sort, limit);

        if (more == NULL) {
            json_decref(all);
            all = NULL;
            break;
        }

        if (all == NULL) {
            all = more;
        } else {
            ctl_nodes_merge(all, more, sort, limit);
            json_decref(more);
        }
    }

    ctl_use(ctl, 0);
    return all;
}


static int
cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *) a, *(char *const *) b);
}


char **
ctl_queue_names(ctl_t *ctl)
{
    size_t       i, n;
    char       **names;
    json_t      *nodes, *queues, *q;
    const char  *name;

    if (ctl->conf != NULL) {
        names = calloc(ctl->conf->nqueues + 1, sizeof(char *));
        for (i = 0; names != NULL && i < ctl->conf->nqueues; i++) {
            names[i] = strdup(ctl->conf->queues[i].name);
        }
        return names;
    }

    nodes = ctl_nodes(ctl, "", 0);
    if (nodes == NULL) {
        return NULL;
    }

    queues = json_object_get(nodes, "queues");
    names = calloc(json_object_size(queues) + 1, sizeof(char *));
    n = 0;

    json_object_foreach(queues, name, q) {
        if (names != NULL) {
            names[n++] = strdup(name);
        }
    }

    json_decref(nodes);

    if (names != NULL) {
        qsort(names, n, sizeof(char *), cmp_names);
    }

    return names;
}


void
ctl_free_names(char **names)
{
    size_t  i;

    for (i = 0; names != NULL && names[i] != NULL; i++) {
        free(names[i]);
    }

    free(names);
}


int
ctl_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list  ap;

    fprintf(stderr, "offloadctl %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(offloadctl --help tells the usage)\n");

    return CTL_USAGE;
}


int
ctl_count(const char *cmd, char opt, const char *text, int *n)
{
    char  *end;
    long   v;

    errno = 0;
    v = strtol(text, &end, 10);

    /* a digit first: no sign, no space, something read */
    if (!isdigit((unsigned char) text[0]) || *end != '\0' || errno != 0
        || v > INT_MAX)
    {
        return ctl_usage_error(cmd, "-%c wants a whole number, not \"%s\"",
                               opt, text);
    }

    *n = (int) v;
    return 0;
}


void
ctl_duration(char *buf, size_t size, int64_t ms)
{
    int64_t  s = ms / 1000;

    if (ms < 0) {
        snprintf(buf, size, "-");
    } else if (ms < 10000) {
        snprintf(buf, size, "%.1fs", ms / 1000.0);
    } else if (s < 3600) {
        snprintf(buf, size, "%lldm%02llds", (long long) (s / 60),
                 (long long) (s % 60));
    } else if (s < 86400) {
        snprintf(buf, size, "%lldh%02lldm", (long long) (s / 3600),
                 (long long) (s / 60 % 60));
    } else {
        snprintf(buf, size, "%lldd%02lldh", (long long) (s / 86400),
                 (long long) (s / 3600 % 24));
    }
}


void
ctl_run_time(char *buf, size_t size, double ms)
{
    if (ms < 0) {
        snprintf(buf, size, "-");
    } else if (ms < 1) {
        snprintf(buf, size, "%.0fus", ms * 1000);
    } else if (ms < 10) {
        snprintf(buf, size, "%.3fms", ms);
    } else if (ms < 100) {
        snprintf(buf, size, "%.2fms", ms);
    } else if (ms < 1000) {
        snprintf(buf, size, "%.1fms", ms);
    } else if (ms < 10000) {
        snprintf(buf, size, "%.3fs", ms / 1000);
    } else {
        snprintf(buf, size, "%.2fs", ms / 1000);
    }
}


void
ctl_bytes(char *buf, size_t size, long long bytes)
{
    if (bytes < 0) {
        snprintf(buf, size, "-");
    } else if (bytes >= 10LL << 30) {
        snprintf(buf, size, "%lldG", bytes >> 30);
    } else if (bytes >= 1LL << 30) {
        snprintf(buf, size, "%.1fG", bytes / 1073741824.0);
    } else if (bytes >= 1LL << 20) {
        snprintf(buf, size, "%.1fM", bytes / 1048576.0);
    } else {
        snprintf(buf, size, "%lldK", bytes >> 10);
    }
}


void
ctl_figure(char *buf, size_t size, long long v, int width)
{
    int          u;
    double       x = (double) v;
    const char  *units = "kMGTPE";

    if (v < 0) {
        snprintf(buf, size, "-");
        return;
    }

    if (snprintf(buf, size, "%lld", v) <= width) {
        return;
    }

    for (u = 0; units[u + 1] != '\0'; u++) {
        x /= 1000;
        if (snprintf(buf, size, "%.1f%c", x, units[u]) <= width
            || snprintf(buf, size, "%.0f%c", x, units[u]) <= width)
        {
            return;
        }
    }

    snprintf(buf, size, "%.0f%c", x / 1000, units[u]);
}


void
ctl_entry_time(char *buf, size_t size, const char *entry_id)
{
    time_t     secs;
    long long  ms = atoll(entry_id);
    struct tm  tm;

    secs = (time_t) (ms / 1000);
    gmtime_r(&secs, &tm);
    snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03lldZ",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, ms % 1000);
}


int
ctl_keys_width(json_t *obj, int min)
{
    int          width = min;
    json_t      *value;
    const char  *key;

    json_object_foreach(obj, key, value) {
        if ((int) strlen(key) > width) {
            width = (int) strlen(key);
        }
    }

    return width;
}


const char *
ctl_text(json_t *obj, const char *key)
{
    const char  *s = json_string_value(json_object_get(obj, key));

    return s ? s : "-";
}


/* A figure of a document, or -1 for none: also one no figure can be
 * (CTL_FIGURE_MAX). */
long long
ctl_int(json_t *obj, const char *key)
{
    double   n;
    json_t  *v = json_object_get(obj, key);

    if (!json_is_number(v)) {
        return -1;
    }

    n = json_number_value(v);

    return n >= -CTL_FIGURE_MAX && n <= CTL_FIGURE_MAX ? (long long) n : -1;
}


long long
ctl_worker_jobs(json_t *w)
{
    size_t              i;
    long long           n, sum = 0;
    static const char  *results[] = {
        "jobs_ok", "jobs_failed", "jobs_crashed", "jobs_cancelled",
        "jobs_expired"
    };

    for (i = 0; i < sizeof(results) / sizeof(results[0]); i++) {
        n = ctl_int(w, results[i]);
        sum += n > 0 ? n : 0;
    }

    return sum;
}


double
ctl_num(json_t *obj, const char *key)
{
    json_t  *v = json_object_get(obj, key);

    return json_is_number(v) ? json_number_value(v) : -1;
}


json_t *
ctl_entry_fields(const redisReply *fields)
{
    size_t   i;
    json_t  *obj = json_object();

    for (i = 0; obj != NULL && fields->type == REDIS_REPLY_ARRAY
                && i + 1 < fields->elements; i += 2)
    {
        json_object_set_new(obj, fields->element[i]->str,
                            json_stringn(fields->element[i + 1]->str,
                                         fields->element[i + 1]->len));
    }

    return obj;
}
