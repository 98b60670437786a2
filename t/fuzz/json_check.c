/*
 * json_check.c -- libFuzzer harness of offload_json_check(), the module's
 * check of request bodies on the nginx request path.
 *
 * Besides memory errors, it holds the checker to jansson (the handlers'
 * parser) on the grammar both implement: a text one accepts the other must
 * accept too, except where the checker knowingly leaves the judgement to
 * jansson (UTF-8, lone surrogates, numbers too big for a C type), where
 * nesting passes the checker's depth limit, or where jansson 2.14 takes a
 * NUL byte right after a number for the end of the text ("2\0"): the
 * checker rejects that byte, as RFC 8259 wants.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "offload_proto.h"


/* The differences the checker's comment promises: jansson judges these. */
static int
jansson_only(const json_error_t *jerr)
{
    return json_error_code(jerr) == json_error_invalid_utf8
           || json_error_code(jerr) == json_error_numeric_overflow
           || strstr(jerr->text, "invalid Unicode") != NULL;
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
