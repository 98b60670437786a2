/*
 * crash.h -- the worker's fatal-signal handler: it leaves the signal and a
 * backtrace in the worker's scoreboard slot for the supervisor's crash
 * report, then lets the signal kill the process as it would have.
 */

#ifndef OFFLOAD_CRASH_H
#define OFFLOAD_CRASH_H

#include "scoreboard.h"

/* Installs the handler for SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT and
 * SIGTRAP, on an alternate stack.  Returns 0, or -1 with errno set. */
int offload_crash_install(offload_sb_slot_t *sb);

#endif /* OFFLOAD_CRASH_H */
