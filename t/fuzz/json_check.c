/*
 * json_check.c -- libFuzzer harness of offload_json_check(), the module's
 * check of request bodies on the nginx request path, and of the same
 * check fed in pieces (offload_json_scan), as big bodies are.
 *
 * Besides memory errors, it holds the checker to jansson (the handlers'
 * parser) on the grammar both implement: a text one accepts the other must
 * accept too, except where the checker knowingly leaves the judgement to
 * jansson (lone surrogates, numbers too big for a C type), where
 * jansson does not take what RFC 8259 allows ("\u0000" in an object key:
 * the worker then answers 422), where nesting passes the checker's depth
 * limit, or where jansson 2.14 takes a NUL byte right after a number for
 * the end of the text ("2\0"): the checker rejects that byte, as RFC 8259
 * wants.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "check.h"
#include "offload_proto.h"


/* The differences the checker's comment promises: jansson judges these. */
static int
jansson_only(const json_error_t *jerr)
{
    return json_error_code(jerr) == json_error_numeric_overflow
           || json_error_code(jerr) == json_error_null_byte_in_key
           || strstr(jerr->text, "invalid Unicode") != NULL;
}


/* The module checks a big body slice by slice, as its buffers come: fed in
 * pieces of 1 to 8 bytes (the first byte says how many), the scanner must
 * reach the same verdict at the same offset as in one go. */
static void
check_pieces(const uint8_t *data, size_t size, int rc, size_t offset)
{
    int                  prc = 0;
    size_t               at, piece, n;
    offload_json_scan_t  s;

    piece = size > 0 ? (size_t) (data[0] % 8) + 1 : 1;

    offload_json_scan_init(&s);

    for (at = 0; at < size && prc == 0; at += n) {
        n = size - at < piece ? size - at : piece;
        prc = offload_json_scan(&s, (const char *) data + at, n);
    }

    if (prc == 0) {
        prc = offload_json_scan_end(&s);
    }

    check((prc == 0) == (rc == 0), "the same verdict in pieces");
    check(rc == 0 || s.offset == offset, "the same offset in pieces");
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int           rc;
    size_t        offset = (size_t) -1;
    json_t       *json;
    const char   *err = NULL;
    json_error_t  jerr;

    rc = offload_json_check((const char *) data, size, &offset, &err);

    if (rc != 0 && (rc != -1 || err == NULL || offset > size)) {
        fprintf(stderr, "bad failure: rc %d, offset %zu of %zu\n", rc,
                offset, size);
        abort();
    }

    check_pieces(data, size, rc, offset);

    json = json_loadb((const char *) data, size,
                      JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);

    if (rc == 0 && json == NULL && !jansson_only(&jerr)) {
        fprintf(stderr, "checker accepts, jansson rejects: %s\n", jerr.text);
        abort();
    }

    if (rc != 0 && json != NULL && strcmp(err, "nesting too deep") != 0
        && !(offset < size && data[offset] == '\0'))
    {
        fprintf(stderr, "jansson accepts, checker rejects at %zu: %s\n",
                offset, err);
        abort();
    }

    json_decref(json);
    return 0;
}
