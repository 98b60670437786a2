/*
 * bad_job.h -- what becomes of a stream entry that is not a job.
 */

#ifndef OFFLOAD_BAD_JOB_H
#define OFFLOAD_BAD_JOB_H

#include "offload_proto.h"
#include "redis_conn.h"

/* Moves the entry (pending in the queue's group) to the queue's dead-letter
 * stream with reason bad_job and why in its report, keeping the body key
 * of the job its fields name (if any) OFFLOAD_DEAD_BODY_TTL seconds; sent
 * by send(data, ...).  Returns REDIS_OK or REDIS_ERR. */
int offload_bad_job(offload_redis_send_pt send, void *data,
    const char *queue, const offload_str_t *entry_id,
    const offload_str_t *fields, size_t nfields, const char *why);

#endif /* OFFLOAD_BAD_JOB_H */
