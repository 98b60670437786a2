/*
 * error_doc.h -- the sidecar's one builder of the error answer a client
 * gets, {"error": {"code": ..., "message": ...}}, for a handler's failure
 * (worker.c) and a job out of attempts (fail_attempt.c, which adds its own
 * members to the inner object).
 */

#ifndef OFFLOAD_ERROR_DOC_H
#define OFFLOAD_ERROR_DOC_H

#include <jansson.h>

/* {"error": {"code": code, "message": message}}, or NULL when out of
 * memory.  A message that is not UTF-8 (a handler's) has its other bytes
 * made '?' rather than lose the answer. */
json_t *offload_error_doc(const char *code, const char *message);

/* The inner {"code", "message", ...} object of a document made above. */
json_t *offload_error_doc_inner(json_t *doc);

#endif /* OFFLOAD_ERROR_DOC_H */
