
/*
 * ngx_http_offload_gzip.c -- gzip'd answers whose bulk is compressed once
 * and whose head changes per request: the status and metrics reports are
 * this nginx's live figures (a few KB) followed by the nodes' part
 * rendered once per refresh (tens or hundreds of KB).
 *
 * A gzip member (RFC 1952) is a header, one deflate stream (RFC 1951) and
 * a trailer (the CRC-32 and length of the whole text).  A deflate stream
 * is a run of blocks that may be made apart: the head goes in "stored"
 * blocks (5 bytes of header, then the bytes as they are: deflating a few
 * KB per request would cost more CPU than sending them, 17 us for 1.6 KB
 * at zlib's level 1 against 0.6 us for its CRC), then the rendered part,
 * deflated once on its own with its last block final, follows as it is
 * (its back references never reach before its start).  A head answered
 * many times (each worker keeps its last answers a short while) is
 * deflated once instead, its blocks flushed to a byte's end.  The
 * trailer's CRC-32 is combined from the two pieces' (crc32_combine).
 *
 * Accept-Encoding is parsed here rather than with ngx_http_gzip_ok(): that
 * one belongs to nginx's gzip modules, follows their directives
 * (gzip_http_version 1.1, gzip_proxied off: no gzip behind a proxy that
 * adds Via) and does not count "*".
 */


#include "ngx_http_offload_module.h"

#include <zlib.h>


#define NGX_HTTP_OFFLOAD_GZIP_LEVEL   Z_DEFAULT_COMPRESSION
#define NGX_HTTP_OFFLOAD_GZIP_STORED  65535   /* a stored block at most */


static ngx_int_t ngx_http_offload_gzip_weight(u_char **pp, u_char *end);
static ngx_int_t ngx_http_offload_gzip_qvalue(u_char **pp, u_char *end);
static void ngx_http_offload_gzip_trailer(u_char *p, uLong crc,
    size_t text_len, ngx_http_offload_gzip_tail_t *tail);


/* magic, deflate, no flags, no time, no extra flags, Unix */
static u_char  ngx_http_offload_gzip_header[10] = {
    0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3
};


/*
 * Whether the client takes gzip: its Accept-Encoding names gzip (or
 * x-gzip) with a weight above 0, or, naming neither, "*" with one.  A
 * coding without q= weighs 1; a malformed weight counts as 0.
 */

ngx_uint_t
ngx_http_offload_gzip_accepted(ngx_http_request_t *r)
{
    u_char           *p, *end, *name;
    size_t            len;
    ngx_int_t         q, gzip, any;
    ngx_table_elt_t  *ae;

    ae = r->headers_in.accept_encoding;

    if (ae == NULL) {
        return 0;
    }

    gzip = -1;
    any = -1;
    p = ae->value.data;
    end = p + ae->value.len;

    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ',')) {
            p++;
        }

        name = p;

        while (p < end && *p != ',' && *p != ';' && *p != ' '
               && *p != '\t')
        {
            p++;
        }

        len = p - name;
        q = ngx_http_offload_gzip_weight(&p, end);

        if ((len == 4 && ngx_strncasecmp(name, (u_char *) "gzip", 4) == 0)
            || (len == 6
                && ngx_strncasecmp(name, (u_char *) "x-gzip", 6) == 0))
        {
            gzip = ngx_max(gzip, q);

        } else if (len == 1 && *name == '*') {
            any = ngx_max(any, q);
        }
    }

    return gzip >= 0 ? gzip > 0 : any > 0;
}


/* A coding's parameters, up to its comma: its q in thousandths (1000
 * without one, 0 when malformed). */

static ngx_int_t
ngx_http_offload_gzip_weight(u_char **pp, u_char *end)
{
    u_char     *p;
    ngx_int_t   q;

    p = *pp;
    q = 1000;

    while (p < end && *p != ',') {
        if (*p != ';') {
            if (*p != ' ' && *p != '\t') {
                q = 0;
            }

            p++;
            continue;
        }

        do {
            p++;
        } while (p < end && (*p == ' ' || *p == '\t'));

        if (end - p >= 2 && (*p == 'q' || *p == 'Q') && p[1] == '=') {
            p += 2;
            q = ngx_http_offload_gzip_qvalue(&p, end);
            continue;
        }

        /* another parameter: skipped */

        while (p < end && *p != ',' && *p != ';') {
            p++;
        }
    }

    *pp = p;

    return q;
}


/* qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ), in
 * thousandths; 0 when malformed */

static ngx_int_t
ngx_http_offload_gzip_qvalue(u_char **pp, u_char *end)
{
    u_char     *p;
    ngx_int_t   q, scale;

    p = *pp;

    if (p == end || (*p != '0' && *p != '1')) {
        return 0;
    }

    q = (*p++ - '0') * 1000;

    if (p < end && *p == '.') {
        p++;

        for (scale = 100; p < end && *p >= '0' && *p <= '9'; scale /= 10) {
            if (scale == 0) {
                return 0;
            }

            q += (*p++ - '0') * scale;
        }
    }

    *pp = p;

    return q <= 1000 ? q : 0;
}


/*
 * The rendered part of an answer, deflated once, its last block final:
 * at zlib's default level, as it is sent many times.
 */

ngx_int_t
ngx_http_offload_gzip_tail(ngx_http_offload_gzip_tail_t *tail,
    ngx_str_t *text, ngx_log_t *log)
{
    int        rc;
    u_char    *buf;
    size_t     size;
    z_stream   zs;

    ngx_memzero(&zs, sizeof(z_stream));

    if (deflateInit2(&zs, NGX_HTTP_OFFLOAD_GZIP_LEVEL, Z_DEFLATED,
                     -MAX_WBITS, 8, Z_DEFAULT_STRATEGY)
        != Z_OK)
    {
        ngx_log_error(NGX_LOG_ALERT, log, 0, "deflateInit2() failed");
        return NGX_ERROR;
    }

    size = deflateBound(&zs, text->len);

    buf = ngx_alloc(size, log);
    if (buf == NULL) {
        deflateEnd(&zs);
        return NGX_ERROR;
    }

    zs.next_in = text->data;
    zs.avail_in = text->len;
    zs.next_out = buf;
    zs.avail_out = size;

    rc = deflate(&zs, Z_FINISH);
    deflateEnd(&zs);

    if (rc != Z_STREAM_END) {
        ngx_log_error(NGX_LOG_ALERT, log, 0, "deflate() failed: %d", rc);
        ngx_free(buf);
        return NGX_ERROR;
    }

    /* kept at its size, not at the bound's */

    tail->data = ngx_alloc(size - zs.avail_out, log);
    if (tail->data == NULL) {
        ngx_free(buf);
        return NGX_ERROR;
    }

    tail->len = size - zs.avail_out;
    ngx_memcpy(tail->data, buf, tail->len);
    ngx_free(buf);

    tail->text_len = text->len;
    tail->crc = crc32(crc32(0, Z_NULL, 0), text->data, text->len);

    return NGX_OK;
}


void
ngx_http_offload_gzip_tail_free(ngx_http_offload_gzip_tail_t *tail)
{
    if (tail->data) {
        ngx_free(tail->data);
        tail->data = NULL;
    }
}


/*
 * The frame of a gzip member whose head is head_len bytes: the gzip
 * header, the head in stored blocks, then the 8 bytes of the trailer;
 * the tail goes between the blocks and the trailer.
 */

size_t
ngx_http_offload_gzip_frame_size(size_t head_len)
{
    return sizeof(ngx_http_offload_gzip_header) + head_len
           + 5 * ((head_len + NGX_HTTP_OFFLOAD_GZIP_STORED - 1)
                  / NGX_HTTP_OFFLOAD_GZIP_STORED)
           + 8;
}


/* Writes the frame of head (a chain of memory buffers) and tail into buf,
 * of ngx_http_offload_gzip_frame_size() bytes. */

void
ngx_http_offload_gzip_frame(u_char *buf, ngx_chain_t *head,
    ngx_http_offload_gzip_tail_t *tail)
{
    u_char       *p, *from;
    size_t        n, room, left, text_len;
    uLong         crc;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    text_len = 0;

    for (cl = head; cl; cl = cl->next) {
        text_len += cl->buf->last - cl->buf->pos;
    }

    p = ngx_cpymem(buf, ngx_http_offload_gzip_header,
                   sizeof(ngx_http_offload_gzip_header));

    crc = crc32(0, Z_NULL, 0);
    room = 0;
    left = text_len;

    for (cl = head; cl; cl = cl->next) {
        b = cl->buf;
        crc = crc32(crc, b->pos, b->last - b->pos);

        for (from = b->pos; from < b->last; from += n) {

            if (room == 0) {

                /* not final, stored (3 bits, then up to the byte's end),
                 * LEN and its complement, little-endian */

                room = ngx_min(left, NGX_HTTP_OFFLOAD_GZIP_STORED);
                left -= room;

                *p++ = 0;
                *p++ = (u_char) room;
                *p++ = (u_char) (room >> 8);
                *p++ = (u_char) ~room;
                *p++ = (u_char) (~room >> 8);
            }

            n = ngx_min(room, (size_t) (b->last - from));
            p = ngx_cpymem(p, from, n);
            room -= n;
        }
    }

    ngx_http_offload_gzip_trailer(p, crc, text_len, tail);
}


/*
 * The frame of a head kept for many answers (see
 * ngx_http_offload_gzip_frame()), in memory of its own: the head deflated
 * at zlib's fastest level, its blocks not final and flushed to a byte's
 * end, so that the tail follows as it is.  Once per kept head, not per
 * request, this pays: this nginx's part of the Prometheus text is hundreds
 * of KB with tens of queues counted.
 */

ngx_int_t
ngx_http_offload_gzip_frame_deflated(ngx_str_t *frame, ngx_str_t *head,
    ngx_http_offload_gzip_tail_t *tail, ngx_log_t *log)
{
    int        rc;
    u_char    *buf, *p;
    size_t     size;
    z_stream   zs;

    ngx_memzero(&zs, sizeof(z_stream));

    if (deflateInit2(&zs, Z_BEST_SPEED, Z_DEFLATED, -MAX_WBITS, 8,
                     Z_DEFAULT_STRATEGY)
        != Z_OK)
    {
        ngx_log_error(NGX_LOG_ALERT, log, 0, "deflateInit2() failed");
        return NGX_ERROR;
    }

    /* the bound of a finished stream, and room for the flush's empty
     * stored block */

    size = sizeof(ngx_http_offload_gzip_header)
           + deflateBound(&zs, head->len) + 16 + 8;

    buf = ngx_alloc(size, log);
    if (buf == NULL) {
        deflateEnd(&zs);
        return NGX_ERROR;
    }

    p = ngx_cpymem(buf, ngx_http_offload_gzip_header,
                   sizeof(ngx_http_offload_gzip_header));

    zs.next_in = head->data;
    zs.avail_in = head->len;
    zs.next_out = p;
    zs.avail_out = size - sizeof(ngx_http_offload_gzip_header) - 8;

    rc = deflate(&zs, Z_SYNC_FLUSH);
    deflateEnd(&zs);

    if (rc != Z_OK || zs.avail_in != 0 || zs.avail_out == 0) {
        ngx_log_error(NGX_LOG_ALERT, log, 0, "deflate() failed: %d", rc);
        ngx_free(buf);
        return NGX_ERROR;
    }

    p = zs.next_out;

    ngx_http_offload_gzip_trailer(p, crc32(crc32(0, Z_NULL, 0), head->data,
                                           head->len),
                                  head->len, tail);

    frame->data = buf;
    frame->len = p + 8 - buf;

    return NGX_OK;
}


/* The trailer: the CRC-32 and length of the whole text, of a head's crc
 * and text_len followed by the tail. */

static void
ngx_http_offload_gzip_trailer(u_char *p, uLong crc, size_t text_len,
    ngx_http_offload_gzip_tail_t *tail)
{
    crc = crc32_combine(crc, tail->crc, tail->text_len);
    text_len += tail->text_len;

    p[0] = (u_char) crc;
    p[1] = (u_char) (crc >> 8);
    p[2] = (u_char) (crc >> 16);
    p[3] = (u_char) (crc >> 24);
    p[4] = (u_char) text_len;
    p[5] = (u_char) (text_len >> 8);
    p[6] = (u_char) (text_len >> 16);
    p[7] = (u_char) (text_len >> 24);
}


/* The member: a frame of len bytes split around the tail.  *size is the
 * member's length. */

ngx_chain_t *
ngx_http_offload_gzip_chain(ngx_pool_t *pool, u_char *frame, size_t len,
    ngx_http_offload_gzip_tail_t *tail, off_t *size)
{
    ngx_chain_t  *first, *cl, *end;

    first = ngx_http_offload_chain_of(pool, frame, len - 8);
    cl = ngx_http_offload_chain_of(pool, tail->data, tail->len);
    end = ngx_http_offload_chain_of(pool, frame + len - 8, 8);

    if (first == NULL || cl == NULL || end == NULL) {
        return NULL;
    }

    first->next = cl;
    cl->next = end;

    *size = len + tail->len;

    return first;
}
