/*
 * builtin.c -- what the built-in handlers written with jansson share:
 * parsing the payload, encoding the answer, reading integer members.
 */

#include "builtin.h"
#include "job.h"

#define JSON_OUT_FLAGS  (JSON_COMPACT | JSON_ENCODE_ANY)


int
offload_builtin_json(offload_job_t *job, const char *payload, size_t len,
    offload_builtin_json_pt work)
{
    int            rc;
    char          *room;
    size_t         n;
    json_t        *input, *output = NULL;
    json_error_t   jerr;

    /* The payload is one JSON text (offload checked it); jansson is
     * stricter about a few ("\u0000", integers beyond 64 bits). */
    input = json_loadb(payload, len, JSON_DECODE_ANY, &jerr);
    if (input == NULL) {
        return offload_job_fail(job, NULL, "invalid JSON payload: %s",
                                jerr.text);
    }

    rc = work(job, input, &output);
    json_decref(input);

    if (rc != OFFLOAD_OK || output == NULL) {
        json_decref(output);
        return rc != OFFLOAD_OK ? rc : OFFLOAD_NOMEM;
    }

    /* Encoded straight into the job's result: jansson's output is JSON,
     * so it needs no check, and a big one is not copied once more. */
    n = json_dumpb(output, NULL, 0, JSON_OUT_FLAGS);
    room = n > 0 ? offload_job_result_room(job, n) : NULL;

    if (room != NULL) {
        json_dumpb(output, room, n, JSON_OUT_FLAGS);
        rc = OFFLOAD_OK;

    } else {
        rc = n > 0 ? OFFLOAD_NOMEM
                   : offload_job_fail(job, NULL, "cannot encode the result");
    }

    json_decref(output);
    return rc;
}


int
offload_builtin_int_member(offload_job_t *job, json_t *obj, const char *key,
    json_int_t min, json_int_t max, json_int_t *value)
{
    json_t      *v;
    json_int_t   n;

    v = json_object_get(obj, key);
    if (v == NULL) {
        return OFFLOAD_OK;
    }

    if (!json_is_integer(v)) {
        return offload_job_fail(job, NULL, "\"%s\" must be an integer", key);
    }

    n = json_integer_value(v);
    if (n < min || n > max) {
        return offload_job_fail(job, NULL, "\"%s\" must be %lld..%lld", key,
                                (long long) min, (long long) max);
    }

    *value = n;
    return OFFLOAD_OK;
}


int
offload_builtin_ms_input(offload_job_t *job, json_t *input, json_int_t max,
    json_int_t *ms)
{
    *ms = -1;

    if (!json_is_object(input)) {
        return offload_job_fail(job, NULL,
                                "input must be an object {\"ms\": n}");
    }

    if (offload_builtin_int_member(job, input, "ms", 0, max, ms)
        != OFFLOAD_OK)
    {
        return OFFLOAD_ERROR;
    }

    if (*ms < 0) {
        return offload_job_fail(job, NULL, "\"ms\" is required");
    }

    return OFFLOAD_OK;
}
