
/*
 * ngx_http_offload_status_pack.c -- a nodes-script answer as the status
 * cache keeps it in its shared zone (ngx_http_offload_status.c), and read
 * back.
 *
 * The zone holds one answer per Redis, written by whichever worker
 * refreshed it and read by all: so it is one flat run of bytes with no
 * pointers, the script's seven elements packed (_pack()) after a check of
 * their shape (_packed_size(): an answer of another shape is not kept),
 * and each reader's copy of it is read back in place (_unpack()), without
 * parsing or copying again.  The nodes' documents are kept twice: as the
 * script answered them, and lean (without their queues' "workers"
 * arrays, which the flat workers list already holds), the default.
 */


#include "ngx_http_offload_module.h"


/* JSON's whitespace (RFC 8259): around the tokens of a document written by
 * hand, not by a sidecar */
#define ngx_http_offload_status_space(c)                                     \
    ((c) == ' ' || (c) == '\t' || (c) == '\n' || (c) == '\r')


/* past a JSON string: p is at its opening quote */

static u_char *
ngx_http_offload_status_skip_string(u_char *p, u_char *last)
{
    for (p++; p < last && *p != '"'; p++) {
        if (*p == '\\') {
            p++;
        }
    }

    return p < last ? p + 1 : last;
}


/* past one value: a string, an object or array, or a scalar */

static u_char *
ngx_http_offload_status_skip_value(u_char *p, u_char *last)
{
    ngx_uint_t  depth;

    while (p < last && ngx_http_offload_status_space(*p)) {
        p++;
    }

    if (p < last && *p == '"') {
        return ngx_http_offload_status_skip_string(p, last);
    }

    if (p < last && *p != '{' && *p != '[') {
        while (p < last && *p != ',' && *p != '}' && *p != ']') {
            p++;
        }

        return p;
    }

    depth = 0;

    while (p < last) {
        if (*p == '"') {
            p = ngx_http_offload_status_skip_string(p, last);
            continue;
        }

        if (*p == '{' || *p == '[') {
            depth++;

        } else if ((*p == '}' || *p == ']') && --depth == 0) {
            return p + 1;
        }

        p++;
    }

    return last;
}


/*
 * The nodes' documents (a run of JSON objects joined by commas, as the
 * script answers them) without the "workers" member of each queue (the
 * objects in a document's "queues"): copies src to dst, at most len
 * bytes, and returns what it wrote.  The documents are the sidecars'
 * (jansson's) JSON, so a scan that knows strings, nesting and whitespace
 * is enough; it never reads past src + len whatever the bytes are.
 */

size_t
ngx_http_offload_status_lean(u_char *dst, u_char *src, size_t len)
{
    u_char      *p, *q, *d, *last;
    size_t       n;
    ngx_uint_t   depth, queues;

    p = src;
    d = dst;
    last = src + len;
    depth = 0;
    queues = 0;        /* the depth inside a document's "queues", or 0 */

    while (p < last) {

        if (*p == '{' || *p == '[') {
            depth++;
            *d++ = *p++;
            continue;
        }

        if (*p == '}' || *p == ']') {
            if (depth == queues) {
                queues = 0;
            }

            depth -= (depth > 0);
            *d++ = *p++;
            continue;
        }

        if (*p != '"') {
            *d++ = *p++;
            continue;
        }

        q = ngx_http_offload_status_skip_string(p, last);
        n = q - p;

        while (q < last && ngx_http_offload_status_space(*q)) {
            q++;
        }

        if (q < last && *q == ':') {

            /* a key */

            if (depth == 1 && n == sizeof("\"queues\"") - 1
                && ngx_strncmp(p, "\"queues\"", n) == 0)
            {
                /* an object: the queues are inside it, at depth 2 */

                for (q++; q < last && ngx_http_offload_status_space(*q); q++)
                {
                    /* void */
                }

                queues = (q < last && *q == '{') ? 2 : 0;

            } else if (queues && depth == queues + 1
                       && n == sizeof("\"workers\"") - 1
                       && ngx_strncmp(p, "\"workers\"", n) == 0)
            {
                q = ngx_http_offload_status_skip_value(q + 1, last);

                /* and one of the commas around it, with the whitespace
                 * between */

                while (d > dst && ngx_http_offload_status_space(d[-1])) {
                    d--;
                }

                while (q < last && ngx_http_offload_status_space(*q)) {
                    q++;
                }

                if (d > dst && d[-1] == ',') {
                    d--;

                } else if (q < last && *q == ',') {
                    q++;
                }

                p = q;
                continue;
            }
        }

        d = ngx_cpymem(d, p, n);
        p += n;
    }

    return d - dst;
}


/*
 * The packed answer: five strings (nodes, queues, crashes, the nodes
 * without their workers, the malformed nodes); the workers:
 * their count, a record each (sort keys, where its text is), then their
 * text ",w0,w1,..." as one string; the Prometheus families: their count,
 * then a header and the samples of each.  A string is its length
 * (uint32_t) and its bytes.  Unaligned: memcpy in and out.
 */

size_t
ngx_http_offload_status_packed_size(redisReply *reply, size_t lean)
{
    size_t       size;
    ngx_uint_t   i, j;
    redisReply  *e;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 7
        || reply->element[6]->type != REDIS_REPLY_STRING
        || reply->element[3]->type != REDIS_REPLY_ARRAY
        || reply->element[5]->type != REDIS_REPLY_ARRAY
        || reply->element[5]->elements
           != reply->element[3]->elements * NGX_HTTP_OFFLOAD_NSORT)
    {
        return 0;
    }

    for (j = 0; j < reply->element[5]->elements; j++) {
        if (reply->element[5]->element[j]->type != REDIS_REPLY_INTEGER) {
            return 0;
        }
    }

    size = 2 * sizeof(uint32_t) + lean + reply->element[6]->len;

    for (i = 0; i < 5; i++) {
        e = reply->element[i];

        if (i < 3) {
            if (e->type != REDIS_REPLY_STRING) {
                return 0;
            }

            size += sizeof(uint32_t) + e->len;
            continue;
        }

        if (e->type != REDIS_REPLY_ARRAY
            || (i == 4 && e->elements % 2 != 0))
        {
            return 0;
        }

        size += 2 * sizeof(uint32_t);

        for (j = 0; j < e->elements; j++) {
            if (e->element[j]->type != REDIS_REPLY_STRING) {
                return 0;
            }

            size += e->element[j]->len + (i == 3
                    ? 1 + sizeof(ngx_http_offload_status_record_t)
                    : sizeof(uint32_t));
        }
    }

    return size;
}


static u_char *
ngx_http_offload_status_put(u_char *p, u_char *s, size_t len)
{
    uint32_t  n = len;

    p = ngx_cpymem(p, &n, sizeof(uint32_t));
    return ngx_cpymem(p, s, len);
}


void
ngx_http_offload_status_pack(u_char *p, redisReply *reply, ngx_str_t *lean)
{
    u_char                            *text;
    uint32_t                           n, off;
    ngx_uint_t                         i, k;
    redisReply                        *w, *f, **key;
    ngx_http_offload_status_record_t   rec;

    for (i = 0; i < 3; i++) {
        p = ngx_http_offload_status_put(p, (u_char *) reply->element[i]->str,
                                        reply->element[i]->len);
    }

    p = ngx_http_offload_status_put(p, lean->data, lean->len);
    p = ngx_http_offload_status_put(p, (u_char *) reply->element[6]->str,
                                    reply->element[6]->len);

    w = reply->element[3];
    n = w->elements;
    p = ngx_cpymem(p, &n, sizeof(uint32_t));

    /* the text follows the records: its length once it is written */

    text = p + n * sizeof(ngx_http_offload_status_record_t)
           + sizeof(uint32_t);
    off = 0;

    key = reply->element[5]->element;

    for (i = 0; i < w->elements; i++) {
        for (k = 0; k < NGX_HTTP_OFFLOAD_NSORT; k++) {
            rec.key[k] = (*key++)->integer;
        }

        rec.off = off;
        rec.len = 1 + w->element[i]->len;
        p = ngx_cpymem(p, &rec, sizeof(rec));

        text[off] = ',';
        ngx_memcpy(text + off + 1, w->element[i]->str, w->element[i]->len);
        off += rec.len;
    }

    p = ngx_cpymem(p, &off, sizeof(uint32_t));
    p += off;

    f = reply->element[4];
    n = f->elements / 2;
    p = ngx_cpymem(p, &n, sizeof(uint32_t));

    for (i = 0; i < f->elements; i++) {
        p = ngx_http_offload_status_put(p, (u_char *) f->element[i]->str,
                                        f->element[i]->len);
    }
}


/* the next string of a packed run */

u_char *
ngx_http_offload_status_get(u_char *p, ngx_str_t *s)
{
    uint32_t  n;

    ngx_memcpy(&n, p, sizeof(uint32_t));
    s->len = n;
    s->data = p + sizeof(uint32_t);

    return s->data + n;
}


/* Unpacks a reader's copy (made by _pack(), so well formed). */

void
ngx_http_offload_status_unpack(u_char *p,
    ngx_http_offload_status_packed_t *packed)
{
    uint32_t     n;
    ngx_uint_t   i;

    for (i = 0; i < 5; i++) {
        p = ngx_http_offload_status_get(p, &packed->part[i]);
    }

    ngx_memcpy(&n, p, sizeof(uint32_t));
    p += sizeof(uint32_t);
    packed->nworkers = n;
    packed->records = p;
    p += n * sizeof(ngx_http_offload_status_record_t);
    p = ngx_http_offload_status_get(p, &packed->text);

    ngx_memcpy(&n, p, sizeof(uint32_t));
    packed->nfams = n;
    packed->fams = p + sizeof(uint32_t);
}
