/*
 * exec_frame.c -- the exec bridge's framing: how a job becomes one line of
 * JSON for a handler process, and how its answer line becomes the job's
 * result or failure.  Kept apart from the process (exec_bridge.c) so that
 * what a line may hold is tested alone (t/unit/exec_frame_test.c).
 *
 * An answer is checked to be one JSON text first (offload_json_check), so
 * its top-level members are then found by a scanner that only has to skip
 * values, not validate them; the result is passed on as the bytes the
 * process wrote.  Only "error" goes through jansson, to read its strings.
 */

#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "exec_frame.h"
#include "log.h"
#include "offload_proto.h"

#define QUOTE_MAX  60           /* bytes of a bad answer in messages */


/* s as a JSON string, at p (room: 6 bytes a byte + 2). */
static size_t
put_string(char *p, const char *s)
{
    char        *start = p;
    const char  *hex = "0123456789abcdef";

    *p++ = '"';

    for ( ; *s; s++) {
        if (*s == '"' || *s == '\\') {
            *p++ = '\\';
            *p++ = *s;

        } else if ((unsigned char) *s < 0x20) {
            p += sprintf(p, "\\u00%c%c", hex[(unsigned char) *s >> 4],
                         hex[*s & 0xf]);

        } else {
            *p++ = *s;
        }
    }

    *p++ = '"';
    return (size_t) (p - start);
}


/* Copies a JSON text without the whitespace between its tokens: one line
 * (a string holds no raw newline).  Returns the bytes written. */
static size_t
put_compact(char *p, const char *json, size_t len)
{
    int          in_string = 0;
    char        *start = p;
    const char  *end = json + len;

    for ( ; json < end; json++) {
        if (in_string) {
            if (*json == '\\' && json + 1 < end) {
                *p++ = *json++;
            } else if (*json == '"') {
                in_string = 0;
            }

        } else if (*json == ' ' || *json == '\t' || *json == '\n'
                   || *json == '\r')
        {
            continue;

        } else if (*json == '"') {
            in_string = 1;
        }

        *p++ = *json;
    }

    return (size_t) (p - start);
}


size_t
offload_exec_request(const offload_job_t *job, const char *payload,
    size_t len, char *out)
{
    char  *p = out;

    p += sprintf(p, "{\"id\":");
    p += put_string(p, job->id);
    p += sprintf(p, ",\"rid\":");
    p += put_string(p, job->request_id);
    p += sprintf(p, ",\"traceparent\":");
    p += put_string(p, job->traceparent);
    p += sprintf(p, ",\"tracestate\":");
    p += put_string(p, job->tracestate);
    p += sprintf(p, ",\"attempt\":%d,\"deadline\":%lld,%s\"payload\":",
                 job->attempt, (long long) job->deadline_ms,
                 job->ran_before ? "\"ran_before\":true," : "");
    p += put_compact(p, payload, len);
    *p++ = '}';
    *p++ = '\n';

    return (size_t) (p - out);
}


/* The end of the JSON value at p, in a text known to be well-formed (or
 * end, where the text checked ends first). */
static const char *
skip_value(const char *p, const char *end)
{
    int  depth = 0, in_string = 0;

    for ( ; p < end; p++) {
        if (in_string) {
            if (*p == '\\') {
                p++;
            } else if (*p == '"') {
                in_string = 0;
                if (depth == 0) {
                    return p + 1;
                }
            }
            continue;
        }

        switch (*p) {
        case '"':
            in_string = 1;
            break;
        case '{': case '[':
            depth++;
            break;
        case '}': case ']':
            if (depth == 0) {
                return p;
            }
            if (--depth == 0) {
                return p + 1;
            }
            break;
        case ',': case ' ': case '\t': case '\n': case '\r':
            if (depth == 0) {
                return p;
            }
            break;
        }
    }

    return p;
}


static const char *
skip_blank(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) {
        p++;
    }

    return p;
}


typedef struct {
    const char  *data;
    size_t       len;
} span_t;


/* Whether the JSON string at s (quotes included) is the job's id. */
static int
is_job_id(const span_t *s, const char *id)
{
    int      same;
    json_t  *v;

    if (s->len < 2 || s->data[0] != '"') {
        return 0;
    }

    if (memchr(s->data, '\\', s->len) == NULL) {
        return s->len - 2 == strlen(id)
               && memcmp(s->data + 1, id, s->len - 2) == 0;
    }

    v = json_loadb(s->data, s->len, JSON_DECODE_ANY, NULL);
    same = json_is_string(v) && strcmp(json_string_value(v), id) == 0;
    json_decref(v);
    return same;
}


/*
 * Whether text jansson refused is well-formed JSON all the same: a lone
 * surrogate escape ("\ud800"), which Python's json and JavaScript's
 * JSON.stringify write, from a handler that repeats its input.  Such an
 * answer fails its job, not the process (which would rerun the job, and
 * a few of them stop the pool).
 */
static int
is_json(const char *data, size_t len)
{
    size_t       offset;
    const char  *err;

    return offload_json_check(data, len, &offset, &err) == 0;
}


/* {"code": "...", "message": "...", "retry": true}: the job fails with
 * them (422), for now when "retry" is true (offload_job_retry).  A message
 * that is not a string (an object of field errors, a number) is given as
 * its JSON text, not lost; null is none. */
static int
answer_error(offload_job_t *job, const span_t *s, char *why, size_t size)
{
    char        *text = NULL;
    json_t      *v, *m;
    const char  *code, *message;

    v = json_loadb(s->data, s->len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (v == NULL && is_json(s->data, s->len)) {
        offload_job_fail(job, "handler_error", "the handler's error is not "
                         "valid Unicode (a lone surrogate escape)");
        return 0;
    }

    if (!json_is_object(v)) {
        json_decref(v);
        snprintf(why, size, "answered an \"error\" that is not an object");
        return -1;
    }

    code = json_string_value(json_object_get(v, "code"));
    m = json_object_get(v, "message");
    message = json_string_value(m);
    if (message == NULL && m != NULL && !json_is_null(m)) {
        text = json_dumps(m, JSON_COMPACT | JSON_ENCODE_ANY);
        message = text;
    }

    if (json_is_true(json_object_get(v, "retry"))) {
        offload_job_retry(job, code, "%s", message ? message : "");
    } else {
        offload_job_fail(job, code, "%s", message ? message : "");
    }

    free(text);
    json_decref(v);
    return 0;
}


/* The top-level members of an answer line that matter, as spans. */
typedef struct {
    int     has_id;         /* an "id" member, the job's */
    span_t  id;             /* the first "id" that is not the job's */
    span_t  result;
    span_t  error;
    span_t  open;           /* the member whose value runs past the end */
} members_t;


/*
 * Walks the members of the object a line holds, up to end: the line's end
 * (the line checked whole) or where the check of it stopped (the part
 * before is well-formed: a value that runs past it is the member open).
 * Returns 0; -1 when the line holds no object, -2 at an "id" that is not
 * the job's (m->id).
 */
static int
members(const offload_job_t *job, const char *line, const char *end,
    members_t *m)
{
    span_t       key, value;
    const char  *p;

    memset(m, 0, sizeof(*m));

    p = skip_blank(line, end);
    if (p == end || *p != '{') {
        return -1;
    }

    for (p = skip_blank(p + 1, end); p < end && *p == '"'; ) {
        key.data = p;
        p = skip_value(p, end);
        key.len = (size_t) (p - key.data);
        p = skip_blank(p, end);
        if (p >= end || *p != ':') {
            return 0;
        }

        value.data = skip_blank(p + 1, end);
        p = skip_value(value.data, end);
        if (p >= end) {
            m->open = key;
            return 0;
        }
        value.len = (size_t) (p - value.data);

        if (key.len == 4 && memcmp(key.data, "\"id\"", 4) == 0) {
            if (!is_job_id(&value, job->id)) {
                m->id = value;
                return -2;
            }
            m->has_id = 1;

        } else if (key.len == 8 && memcmp(key.data, "\"result\"", 8) == 0) {
            m->result = value;

        } else if (key.len == 7 && memcmp(key.data, "\"error\"", 7) == 0) {
            m->error = value;
        }

        p = skip_blank(p, end);
        if (p < end && *p == ',') {
            p = skip_blank(p + 1, end);
        }
    }

    return 0;
}


/* Up to QUOTE_MAX bytes of what the process wrote, for a message: not
 * NUL-terminated, maybe not UTF-8; anything but printable ASCII is '?'. */
static const char *
quote(char *buf, const char *data, size_t len)
{
    size_t  i;

    if (len > QUOTE_MAX) {
        len = QUOTE_MAX;
    }

    for (i = 0; i < len; i++) {
        buf[i] = (data[i] >= 0x20 && data[i] < 0x7f) ? data[i] : '?';
    }

    buf[len] = '\0';
    return buf;
}


int
offload_exec_answer(offload_job_t *job, const char *line, size_t len,
    char *why, size_t size)
{
    int          rc;
    char        *buf;
    char         q[QUOTE_MAX + 1];
    size_t       offset;
    members_t    m;
    const char  *err;

    /* A result as deep as a payload may be, framed by the answer; one
     * deeper fails its job, as a plugin's would: the process keeps step
     * (a handler that nests its input would else be made to crash, its
     * job rerun and its pool stopped, by any client's deep payload).  It
     * is this job's answer when the part before the depth limit is an
     * object with the job's "id" first and the limit inside "result" (as
     * the SDKs write it); anything else is a broken answer. */
    if (offload_json_check_framed(line, len, &offset, &err) != 0) {
        if (err == offload_json_too_deep
            && members(job, line, line + offset, &m) == 0 && m.has_id
            && m.open.len == 8 && memcmp(m.open.data, "\"result\"", 8) == 0)
        {
            offload_job_bad_result(job, err, offset);
            return 0;
        }

        snprintf(why, size, "answered a line that is not JSON (%s at byte "
                 "%zu): %s", err, offset, quote(q, line, len));
        return -1;
    }

    rc = members(job, line, line + len, &m);

    if (rc == -1) {
        snprintf(why, size, "answered JSON that is not an object: %s",
                 quote(q, line, len));
        return -1;
    }

    if (rc == -2) {
        snprintf(why, size, "answered for id %s while running job %s",
                 quote(q, m.id.data, m.id.len), job->id);
        return -1;
    }

    if (!m.has_id) {
        snprintf(why, size, "answered without an \"id\": %s",
                 quote(q, line, len));
        return -1;
    }

    if ((m.result.data == NULL) == (m.error.data == NULL)) {
        snprintf(why, size, "answered %s of \"result\" and \"error\"",
                 m.result.data ? "both" : "neither");
        return -1;
    }

    if (m.error.data != NULL) {
        return answer_error(job, &m.error, why, size);
    }

    /* checked already, with the line: a value at most as deep as a payload
     * (the line one deeper, an object) */
    buf = offload_job_result_room(job, m.result.len);
    if (buf == NULL) {
        return OFFLOAD_NOMEM;
    }

    memcpy(buf, m.result.data, m.result.len);
    return OFFLOAD_OK;
}


/* A metric line with a bad name (or unreadable: a lone surrogate) is
 * ignored, logged once per worker */
static void
ignore_bad_name(const char *line, size_t len)
{
    char        q[QUOTE_MAX + 1];
    static int  logged;

    if (!logged) {
        logged = 1;
        log_warn("handler metric with a bad name ignored (logged once per "
                 "worker): %s", quote(q, line, len));
    }
}


int
offload_exec_metric(offload_job_t *job, const char *line, size_t len,
    char *why, size_t size)
{
    char           q[QUOTE_MAX + 1], exported[OFFLOAD_HM_NAME_MAX];
    json_t        *v, *count, *observe;
    const char    *p, *end = line + len, *name;

    p = skip_blank(line, end);
    if (p == end || *p != '{') {
        return 0;
    }

    p = skip_blank(p + 1, end);
    if ((size_t) (end - p) < 8 || memcmp(p, "\"metric\"", 8) != 0) {
        return 0;
    }

    v = json_loadb(line, len, JSON_ALLOW_NUL, NULL);
    if (v == NULL && is_json(line, len)) {
        ignore_bad_name(line, len);
        return 1;
    }

    name = json_string_value(json_object_get(v, "metric"));
    count = json_object_get(v, "count");
    observe = json_object_get(v, "observe");

    if (name == NULL || (count == NULL) == (observe == NULL)
        || (count != NULL
            && (!json_is_integer(count) || json_integer_value(count) < 0))
        || (observe != NULL && !json_is_number(observe)))
    {
        json_decref(v);
        snprintf(why, size, "wrote a metric line that is not {\"metric\": "
                 "name, \"count\": n} or {\"metric\": name, \"observe\": "
                 "x}: %s", quote(q, line, len));
        return -1;
    }

    /* a name past the queue's last is logged by the table, once; one
     * holding a NUL is a bad name, not the part before it */
    if (strlen(name) != json_string_length(json_object_get(v, "metric"))
        || offload_hm_name(name, exported) != 0
        || (observe != NULL && !offload_hm_observable(exported)))
    {
        ignore_bad_name(line, len);

    } else if (count != NULL) {
        offload_metric_count(job, name, (uint64_t) json_integer_value(count));

    } else {
        offload_metric_observe(job, name, json_number_value(observe));
    }

    json_decref(v);
    return 1;
}
