/*
 * offload_example.c -- an example handler plugin (docs/HANDLERS.md):
 *
 *   example.reverse   {"text": "abc"} -> {"text": "cba"}, reversed by
 *                     character (UTF-8 stays valid); 422 without a string
 *                     "text".
 *   example.echo      answers with its payload, as the built-in echo
 *                     does (the benchmark compares the two).
 *   example.counter   any payload -> {"pid": <worker pid>, "jobs": n}:
 *                     per-worker state its init sets up once, after the
 *                     worker is forked; its fini says how many jobs the
 *                     worker ran.
 *
 * Build (it includes offload.h only; JSON is its own business, here
 * jansson's):
 *
 *   cc -shared -fPIC -O2 -I sidecar/include examples/c/offload_example.c \
 *       -o offload_example.so -ljansson
 *
 * and load it in the sidecar's config:
 *
 *   load_module /path/to/offload_example.so;
 *   queue reverse { handler example.reverse; workers 2; }
 */

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "offload.h"


/* Answers with doc encoded, and lets it go. */
static int
answer(offload_job_t *job, json_t *doc)
{
    int    rc;
    char  *text;

    text = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);

    if (text == NULL) {
        return OFFLOAD_NOMEM;
    }

    rc = offload_job_result(job, text, strlen(text));
    free(text);
    return rc;
}


static int
reverse_run(offload_job_t *job, const char *payload, size_t len)
{
    char          *out;
    size_t         n, i, j, k;
    json_t        *input, *text;
    const char    *s;
    json_error_t   err;

    input = json_loadb(payload, len, 0, &err);
    text = json_object_get(input, "text");

    if (!json_is_string(text)) {
        json_decref(input);
        return offload_job_fail(job, "bad_input", "the input must be an "
                                "object with a string \"text\"");
    }

    s = json_string_value(text);
    n = json_string_length(text);

    out = malloc(n + 1);
    if (out == NULL) {
        json_decref(input);
        return OFFLOAD_NOMEM;
    }

    /* Copy each UTF-8 sequence (a lead byte and its continuation bytes)
     * whole, from the end. */
    for (i = n, j = 0; i > 0; i = k) {
        k = i - 1;
        while (k > 0 && ((unsigned char) s[k] & 0xc0) == 0x80) {
            k--;
        }

        memcpy(out + j, s + k, i - k);
        j += i - k;
    }

    out[n] = '\0';

    json_decref(input);
    return answer(job, json_pack("{s:s%}", "text", out, n));
}


static int
echo_run(offload_job_t *job, const char *payload, size_t len)
{
    return offload_job_result(job, payload, len);
}


static pid_t          worker_pid;
static unsigned long  jobs;


static int
counter_init(const offload_slot_t *slot)
{
    offload_log_info("example.counter: worker %d of queue %s starts",
                     offload_slot_index(slot), offload_slot_queue(slot));

    worker_pid = getpid();
    jobs = 0;
    return 0;
}


static int
counter_run(offload_job_t *job, const char *payload, size_t len)
{
    (void) payload;
    (void) len;

    jobs++;
    return answer(job, json_pack("{s:i,s:I}", "pid", (int) worker_pid,
                                 "jobs", (json_int_t) jobs));
}


static void
counter_fini(const offload_slot_t *slot)
{
    (void) slot;

    offload_log_info("example.counter: worker %d ran %lu jobs",
                     (int) worker_pid, jobs);
}


static const offload_handler_t  handlers[] = {
    { "example.reverse", reverse_run, NULL, NULL },
    { "example.echo", echo_run, NULL, NULL },
    { "example.counter", counter_run, counter_init, counter_fini },
    { NULL, NULL, NULL, NULL }
};

const offload_module_t  offload_module = { OFFLOAD_ABI_VERSION, handlers };
