/*
 * job_decode.c -- libFuzzer harness of offload_job_decode(), which turns a
 * stream entry's field/value pairs into a job in every worker.
 *
 * The input is the entry's strings separated by "\n", each copied into its
 * own exactly-sized buffer, as hiredis hands them over, so that a read past
 * one is caught.  Only v, id and payload (or body) are required: reply,
 * deadline, submitted and attempt may be missing (a job submitted straight
 * through Redis).  A decoded job must hold what the decoder promises, and
 * encoding it again (offload_job_argv) must decode to the same job.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "offload_proto.h"

#define MAX_FIELDS  64


static int
str_eq(offload_str_t a, offload_str_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0);
}


static void
check_round_trip(const offload_entry_t *job)
{
    int                    argc;
    size_t                 i, argvlen[OFFLOAD_JOB_ARGC];
    const char            *argv[OFFLOAD_JOB_ARGC], *err = NULL;
    offload_str_t          fields[OFFLOAD_JOB_ARGC];
    offload_entry_t        again;
    offload_job_scratch_t  scratch;

    argc = offload_job_argv(job, "offload:{q}:jobs", &scratch, argv, argvlen);
    /* body only for a job whose payload is aside; reply, deadline,
     * submitted, rec and the trace context only when the job has them
     * (tracestate only beside a traceparent) */
    check(argc == OFFLOAD_JOB_ARGC - (job->body_len > 0 ? 0 : 2)
                  - (job->reply.len > 0 ? 0 : 2)
                  - (job->deadline_ms != OFFLOAD_NO_DEADLINE ? 0 : 2)
                  - (job->submitted_ms != 0 ? 0 : 2)
                  - (job->record_ttl_ms > 0 ? 0 : 2)
                  - (job->traceparent.len > 0 ? 0 : 2)
                  - (job->traceparent.len > 0 && job->tracestate.len > 0
                     ? 0 : 2),
          "argument count");

    for (i = OFFLOAD_JOB_FIELDS_AT; i < (size_t) argc; i++) {
        fields[i - OFFLOAD_JOB_FIELDS_AT].data = argv[i];
        fields[i - OFFLOAD_JOB_FIELDS_AT].len = argvlen[i];
    }

    check(offload_job_decode(&again, fields,
                             (size_t) argc - OFFLOAD_JOB_FIELDS_AT, &err)
          == 0, "re-encoded job decodes");
    check(again.version == job->version && str_eq(again.id, job->id)
          && str_eq(again.payload, job->payload)
          && str_eq(again.reply, job->reply)
          && str_eq(again.request_id, job->request_id)
          && again.deadline_ms == job->deadline_ms
          && again.submitted_ms == job->submitted_ms
          && again.attempt == job->attempt
          && again.body_len == job->body_len
          && again.record_ttl_ms == job->record_ttl_ms,
          "round trip keeps the job");
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char             *copies[MAX_FIELDS];
    size_t            n = 0, i, len;
    const char       *p = (const char *) data, *end = p + size, *nl;
    const char       *err = NULL;
    offload_entry_t   job;
    offload_str_t     fields[MAX_FIELDS];

    while (n < MAX_FIELDS) {
        nl = memchr(p, '\n', (size_t) (end - p));
        len = nl ? (size_t) (nl - p) : (size_t) (end - p);

        copies[n] = malloc(len ? len : 1);
        if (copies[n] == NULL) {
            abort();
        }
        memcpy(copies[n], p, len);
        fields[n].data = copies[n];
        fields[n].len = len;
        n++;

        if (nl == NULL) {
            break;
        }
        p = nl + 1;
    }

    if (offload_job_decode(&job, fields, n, &err) == 0) {
        check(job.version == OFFLOAD_PROTO_VERSION, "version");
        check(job.id.len >= 1 && job.id.len <= 128, "id length");
        check(job.attempt >= 1 && job.attempt <= 1000000, "attempt");
        check(job.deadline_ms >= 0 && job.submitted_ms >= 0, "times");
        check_round_trip(&job);

    } else {
        check(err != NULL, "an error says why");
    }

    for (i = 0; i < n; i++) {
        free(copies[i]);
    }

    return 0;
}
