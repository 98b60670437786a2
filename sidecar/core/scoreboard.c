/*
 * scoreboard.c -- the shared slots of scoreboard.h: mapping them, and the
 * few writes whose order matters.
 */

#include <string.h>

#include "offload_proto.h"
#include "redis_clock.h"
#include "scoreboard.h"
#include "shm.h"


/* A slot is one page, mapped for every worker of every queue: 50 queues of
 * 4 workers map 200 of them. */
_Static_assert(sizeof(offload_sb_slot_t) <= 4096,
               "a scoreboard slot outgrew its page");


offload_sb_slot_t *
offload_sb_map(void)
{
    return offload_shm_map(sizeof(offload_sb_slot_t));
}


void
offload_sb_unmap(offload_sb_slot_t *sb)
{
    offload_shm_unmap(sb, sizeof(offload_sb_slot_t));
}


void
offload_sb_reset(offload_sb_slot_t *sb, pid_t pid)
{
    offload_hm_table_t  *metrics = sb->metrics;
    int64_t              credit = sb->stderr_credit;
    int64_t              credit_us = sb->stderr_credit_us;

    memset(sb, 0, sizeof(*sb));
    sb->metrics = metrics;
    sb->stderr_credit = credit;
    sb->stderr_credit_us = credit_us;
    offload_sb_set_clock_base(sb, OFFLOAD_CLOCK_UNKNOWN);
    sb->pid = pid;
    __atomic_store_n(&sb->state, OFFLOAD_SB_STARTING, __ATOMIC_RELEASE);
}


void
offload_sb_set_clock_base(offload_sb_slot_t *sb, int64_t base_ms)
{
    __atomic_store_n(&sb->clock_base_ms, base_ms, __ATOMIC_RELAXED);
}


int64_t
offload_sb_clock_base(const offload_sb_slot_t *sb)
{
    return __atomic_load_n(&sb->clock_base_ms, __ATOMIC_RELAXED);
}


void
offload_sb_set_state(offload_sb_slot_t *sb, offload_sb_state_e state)
{
    __atomic_store_n(&sb->state, (int32_t) state, __ATOMIC_RELEASE);
}


offload_sb_state_e
offload_sb_state(const offload_sb_slot_t *sb)
{
    return (offload_sb_state_e) __atomic_load_n(&sb->state, __ATOMIC_ACQUIRE);
}


void
offload_sb_set_init_done(offload_sb_slot_t *sb)
{
    __atomic_store_n(&sb->init_done, 1, __ATOMIC_RELEASE);
}


int
offload_sb_init_done(const offload_sb_slot_t *sb)
{
    return __atomic_load_n(&sb->init_done, __ATOMIC_ACQUIRE);
}


void
offload_sb_job_start(offload_sb_slot_t *sb, const char *entry_id,
    size_t entry_len, const offload_entry_t *job, int64_t start_us)
{
    offload_str_copy(sb->entry_id, sizeof(sb->entry_id), entry_id, entry_len);
    offload_str_copy(sb->job_id, sizeof(sb->job_id), job->id.data,
                     job->id.len);
    offload_str_copy(sb->request_id, sizeof(sb->request_id),
                     job->request_id.data, job->request_id.len);
    offload_str_copy(sb->trace_id, sizeof(sb->trace_id),
                     job->traceparent.len
                     ? job->traceparent.data + OFFLOAD_TRACE_ID_AT : NULL,
                     OFFLOAD_TRACE_ID_LEN);
    sb->attempt = job->attempt;
    sb->job_start_us = start_us;
    __atomic_store_n(&sb->job_seq, sb->job_seq + 1, __ATOMIC_RELAXED);
    __atomic_store_n(&sb->answer_partial, 0, __ATOMIC_RELAXED);

    offload_sb_set_state(sb, OFFLOAD_SB_BUSY);
}


void
offload_sb_job_end(offload_sb_slot_t *sb, int ok, int64_t run_us)
{
    offload_sb_run_observe(sb, run_us);

    if (ok) {
        sb->jobs_ok++;
    } else {
        sb->jobs_failed++;
    }

    offload_sb_set_state(sb, OFFLOAD_SB_IDLE);
}


void
offload_sb_run_observe(offload_sb_slot_t *sb, int64_t run_us)
{
    __atomic_fetch_add(&sb->run_hist[offload_hist_fine_bucket(run_us)], 1,
                       __ATOMIC_RELAXED);
}


void
offload_sb_set_paused(offload_sb_slot_t *sb, int paused)
{
    __atomic_store_n(&sb->paused, (int32_t) paused, __ATOMIC_RELEASE);
}


int
offload_sb_paused(const offload_sb_slot_t *sb)
{
    return __atomic_load_n(&sb->paused, __ATOMIC_ACQUIRE);
}


void
offload_sb_set_standby(offload_sb_slot_t *sb, int standby)
{
    __atomic_store_n(&sb->standby, standby, __ATOMIC_RELEASE);
}


int
offload_sb_standby(const offload_sb_slot_t *sb)
{
    return __atomic_load_n(&sb->standby, __ATOMIC_ACQUIRE);
}


const char *
offload_sb_state_name(offload_sb_state_e state)
{
    switch (state) {
    case OFFLOAD_SB_STARTING: return "starting";
    case OFFLOAD_SB_IDLE:     return "idle";
    case OFFLOAD_SB_BUSY:     return "busy";
    case OFFLOAD_SB_STOPPING: return "stopping";
    case OFFLOAD_SB_PAUSED:   return "paused";
    }

    return "?";
}
