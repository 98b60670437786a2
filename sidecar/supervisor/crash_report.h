/*
 * crash_report.h -- the supervisor's account of a worker that died under a
 * job: what killed it, which job it held, what it used, where it was.
 */

#ifndef OFFLOAD_CRASH_REPORT_H
#define OFFLOAD_CRASH_REPORT_H

#include <jansson.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "fail_attempt.h"
#include "scoreboard.h"

typedef struct {
    const char               *node;
    const char               *queue;
    int                       slot;
    pid_t                     pid;
    offload_fail_reason_e     reason;
    int                       status;       /* from wait4 */
    const char               *how;          /* it said, as "killed by
                                               SIGSEGV" */
    const struct rusage      *rusage;
    int64_t                   uptime_us;
    const offload_sb_slot_t  *sb;           /* job and backtrace */
    int                       handler_left; /* the worker left as its
                                               exec handler's process
                                               died: status is its */
} offload_crash_t;

/* Builds the report document (docs/PROTOCOL.md, "Crash reports"), with the
 * backtrace symbolized, and logs it.  Returns a new reference, or NULL. */
json_t *offload_crash_report(const offload_crash_t *crash);

#endif /* OFFLOAD_CRASH_REPORT_H */
