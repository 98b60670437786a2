/*
 * retry.h -- transient failures (offload_job_retry()): a job waits out its
 * backoff in Redis, in its queue's retry set, not in a sleeping worker;
 * the supervisors move it back to the stream when it is due.
 */

#ifndef OFFLOAD_RETRY_H
#define OFFLOAD_RETRY_H

#include <stdint.h>

#include "conf.h"
#include "offload_proto.h"
#include "redis_conn.h"

/* How long attempt n + 1 waits after attempt n failed for now:
 * retry_base_ms * 2^(n - 1), at most retry_max_ms, with equal jitter
 * (half of it fixed, the other half random): retries of many jobs failed
 * together spread out, and each wait is at least as long as the one
 * before it was at most. */
int64_t offload_retry_delay_ms(const offload_conf_queue_t *q, int attempt);

/* Worker: moves the entry it ran to the queue's retry set as the job
 * `next` (its attempt already counted up), due at due_ms, with
 * offload_retry_later_script, sent by send(data, ...).  Returns
 * REDIS_OK or REDIS_ERR. */
int offload_retry_later(offload_redis_send_pt send, void *data,
    const char *queue, const offload_str_t *entry_id,
    const offload_entry_t *next, int64_t due_ms);

/* Worker: a job failed for now on its last attempt (max_attempts) goes to
 * its queue's dead-letter stream with offload_dead_script, as a job whose
 * worker died on every attempt does: its entry's fields plus entry, reason
 * "retries_exhausted", report (JSON: the handler's code, message and the
 * attempts made) and dead_at; the same step completes it with `result`
 * (the encoded failure answer) and keeps its body key for `offloadctl
 * retry`.  ttl is the result TTL in seconds.  Sent by send(data, ...).
 * Returns REDIS_OK or REDIS_ERR. */
int offload_retry_dead(offload_redis_send_pt send, void *data,
    const char *queue, const offload_str_t *entry_id,
    const offload_str_t *fields,
    size_t nfields, const offload_entry_t *job, const char *result,
    size_t result_len, const char *ttl, const char *report);

/* Supervisor: every OFFLOAD_RETRY_ROUND_S, for each queue, moves the
 * retries due by now_ms from its retry set (retry_key) back to its stream
 * (stream_key), at most OFFLOAD_RETRY_BATCH per queue and round, with
 * offload_retry_due_script.  Returns REDIS_OK or REDIS_ERR. */
#define OFFLOAD_RETRY_ROUND_S  0.2
#define OFFLOAD_RETRY_BATCH    100

int offload_retry_due(offload_redis_conn_t *conn, const char *retry_key,
    const char *stream_key, int64_t now_ms);

#endif /* OFFLOAD_RETRY_H */
