/*
 * crash_report.c -- turns a dead worker's wait status, rusage and scoreboard
 * slot into a crash report, logged at error level and returned as JSON for
 * the events stream and the dead-letter entry.
 *
 * The frames were stored by the worker's fatal-signal handler (crash.c).
 * The worker was a fork of this process without exec, so its code sat at
 * the same addresses, and backtrace_symbols() here names them.
 */

#include <execinfo.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "clock.h"
#include "crash_report.h"
#include "log.h"


static json_t *
backtrace_json(const offload_sb_slot_t *sb)
{
    int      i, n = sb->nframes;
    char   **names;
    json_t  *frames;

    frames = json_array();
    if (frames == NULL || n <= 0) {
        return frames;
    }

    if (n > OFFLOAD_SB_FRAMES_MAX) {
        n = OFFLOAD_SB_FRAMES_MAX;
    }

    names = backtrace_symbols(sb->frames, n);

    for (i = 0; i < n; i++) {
        if (names != NULL) {
            json_array_append_new(frames, json_string(names[i]));
        } else {
            json_array_append_new(frames, json_sprintf("%p", sb->frames[i]));
        }
    }

    free(names);
    return frames;
}


json_t *
offload_crash_report(const offload_crash_t *c)
{
    int                       sig, busy;
    char                      when[32];
    size_t                    i;
    offload_sb_state_e        state;
    json_t                   *report, *frames;
    const char               *name;
    const offload_sb_slot_t  *sb = c->sb;

    /* The scoreboard keeps the last job after it is done: only a busy
     * worker died holding it. */
    state = offload_sb_state(sb);
    busy = state == OFFLOAD_SB_BUSY && sb->job_id[0] != '\0';

    /* Logged first, so that a report that cannot be built is logged all
     * the same; every line of it, the frames too, names the queue and the
     * job. */
    offload_log_queue(c->queue);

    if (busy) {
        offload_log_job_ids(sb->job_id, sb->request_id, sb->trace_id);
        log_error("worker %s:%d: pid %d %s (%s) holding its job, attempt %d",
                  c->queue, c->slot, (int) c->pid, c->how,
                  offload_fail_reason_name(c->reason), sb->attempt);
    } else {
        /* a worker whose exec handler's process died between jobs stops
         * for it: it was not stopping before */
        if (c->handler_left) {
            snprintf(when, sizeof(when), "between jobs");
        } else {
            snprintf(when, sizeof(when), "while %s",
                     offload_sb_state_name(state));
        }

        log_error("worker %s:%d: pid %d %s (%s) %s, holding no job",
                  c->queue, c->slot, (int) c->pid, c->how,
                  offload_fail_reason_name(c->reason), when);
    }

    report = json_pack("{s:s,s:s,s:i,s:i,s:s,s:I,s:I,s:I,s:I,s:I}",
                       "node", c->node, "queue", c->queue, "slot", c->slot,
                       "pid", (int) c->pid,
                       "reason", offload_fail_reason_name(c->reason),
                       "uptime_ms", (json_int_t) (c->uptime_us / 1000),
                       "utime_ms", (json_int_t) (c->rusage->ru_utime.tv_sec
                                                 * 1000
                                                 + c->rusage->ru_utime.tv_usec
                                                   / 1000),
                       "stime_ms", (json_int_t) (c->rusage->ru_stime.tv_sec
                                                 * 1000
                                                 + c->rusage->ru_stime.tv_usec
                                                   / 1000),
                       "maxrss_kb", (json_int_t) c->rusage->ru_maxrss,
                       "at", (json_int_t) offload_wall_ms());
    if (report == NULL) {
        offload_log_job_ids(NULL, NULL, NULL);
        offload_log_queue(NULL);
        return NULL;
    }

    if (WIFSIGNALED(c->status)) {
        sig = WTERMSIG(c->status);
        name = sigabbrev_np(sig);
        json_object_set_new(report, "signal",
                            json_sprintf("SIG%s", name ? name : "?"));
    } else {
        json_object_set_new(report, "exit_code",
                            json_integer(WEXITSTATUS(c->status)));
    }

    json_object_set_new(report, "state",
                        json_string(offload_sb_state_name(state)));

    if (busy) {
        json_object_set_new(report, "job_id", json_string(sb->job_id));
        json_object_set_new(report, "entry_id", json_string(sb->entry_id));
        json_object_set_new(report, "attempt", json_integer(sb->attempt));

        if (sb->request_id[0] != '\0') {
            json_object_set_new(report, "request_id",
                                json_string(sb->request_id));
        }

        if (sb->trace_id[0] != '\0') {
            json_object_set_new(report, "trace_id",
                                json_string(sb->trace_id));
        }
    }

    if (sb->exit_reason == OFFLOAD_SB_EXIT_HANDLER_PROCESS) {
        json_object_set_new(report, "handler_error",
                            json_string(sb->child_error));
    }

    frames = backtrace_json(sb);
    json_object_set_new(report, "backtrace", frames ? frames : json_null());

    if (sb->exit_reason == OFFLOAD_SB_EXIT_HANDLER_PROCESS) {
        log_error("  %s", sb->child_error);
    }

    for (i = 0; frames != NULL && i < json_array_size(frames); i++) {
        log_error("  #%zu %s", i,
                  json_string_value(json_array_get(frames, i)));
    }

    offload_log_job_ids(NULL, NULL, NULL);
    offload_log_queue(NULL);

    return report;
}
