/*
 * error_doc.c -- the error answer {"error": {"code", "message"}} built in
 * one place, so a handler's failure and a dead job read alike.
 */

#include <stdlib.h>
#include <string.h>

#include "error_doc.h"


json_t *
offload_error_doc(const char *code, const char *message)
{
    char    *ascii, *p;
    json_t  *doc;

    doc = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message",
                    message);
    if (doc != NULL) {
        return doc;
    }

    ascii = strdup(message);
    if (ascii == NULL) {
        return NULL;
    }

    for (p = ascii; *p; p++) {
        if ((unsigned char) *p >= 0x80) {
            *p = '?';
        }
    }

    doc = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message",
                    ascii);
    free(ascii);
    return doc;
}


json_t *
offload_error_doc_inner(json_t *doc)
{
    return json_object_get(doc, "error");
}
