/*
 * exec_frame.h -- the exec bridge's framing (docs/HANDLERS.md, "The
 * framing"): a job as one request line, and an answer line read back into
 * the job.  No I/O: exec_bridge.c moves the lines.
 */

#ifndef OFFLOAD_EXEC_FRAME_H
#define OFFLOAD_EXEC_FRAME_H

#include <stddef.h>

#include "job.h"

/* The request line is at most this much longer than its payload. */
#define OFFLOAD_EXEC_REQUEST_ROOM  (2 * 6 * OFFLOAD_JOB_STR_MAX + 128     \
                                    + OFFLOAD_TRACEPARENT_LEN          \
                                    + 6 * OFFLOAD_TRACESTATE_MAX + 32)

/* Writes the request line for a job, newline included, into out (room:
 * len + OFFLOAD_EXEC_REQUEST_ROOM).  The payload is one JSON text (offload
 * checked it); it is written without the whitespace between its tokens,
 * so the request is one line.  Returns the line's length. */
size_t offload_exec_request(const offload_job_t *job, const char *payload,
    size_t len, char *out);

/* Reads an answer line (without its newline): a JSON object with the
 * job's "id" and exactly one of "result" (any JSON, answered as written)
 * and "error" ({"code", "message"}: the job fails with them; with
 * "retry": true, for now, as offload_job_retry() fails it); other
 * members are ignored.  Returns OFFLOAD_OK with the job answered,
 * OFFLOAD_NOMEM, or -1 with why the line is no answer (printable ASCII,
 * cut to fit size). */
int offload_exec_answer(offload_job_t *job, const char *line, size_t len,
    char *why, size_t size);

/* Reads a line the process wrote before its answer: a metric line is a
 * JSON object whose first member is "metric" (a name, as
 * offload_metric_count takes) with "count" (an integer, 0 or more) or
 * "observe" (a number); it is recorded as those calls do.  Returns 1 for
 * a metric line (a bad or refused name is logged once, not fatal), 0 for
 * a line that is not one (the answer), -1 with why for a metric line
 * that is not well formed. */
int offload_exec_metric(offload_job_t *job, const char *line, size_t len,
    char *why, size_t size);

#endif /* OFFLOAD_EXEC_FRAME_H */
