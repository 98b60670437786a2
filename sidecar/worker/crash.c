/*
 * crash.c -- the worker's fatal-signal handler.
 *
 * It runs on an alternate stack, so a stack overflow still reports.  It
 * only stores the signal and the raw return addresses into the scoreboard
 * (memory shared with the supervisor) and re-raises the signal, which
 * SA_RESETHAND has set back to its default action: the process dies of the
 * same signal, and the supervisor's wait4 sees it.  Symbolizing happens in
 * the supervisor, which runs the same binary at the same addresses (the
 * worker is a fork without exec).
 *
 * backtrace() is not async-signal-safe on its first call only: it loads
 * libgcc's unwinder with dlopen(), which allocates.  Calling it once at
 * install time loads it before any crash; afterwards it only walks the
 * stack.
 */

#include <execinfo.h>
#include <signal.h>
#include <string.h>

#include "crash.h"

#define ALT_STACK_SIZE  (64 * 1024)


static offload_sb_slot_t  *crash_sb;
static char                alt_stack[ALT_STACK_SIZE];

static const int  fatal_signals[] = {
    SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP
};


static void
crash_handler(int sig, siginfo_t *info, void *context)
{
    (void) info;
    (void) context;

    crash_sb->crash_signal = sig;
    crash_sb->nframes = backtrace(crash_sb->frames, OFFLOAD_SB_FRAMES_MAX);

    raise(sig);
}


int
offload_crash_install(offload_sb_slot_t *sb)
{
    size_t            i;
    void             *warm[1];
    stack_t           ss;
    struct sigaction  sa;

    crash_sb = sb;
    backtrace(warm, 1);

    ss.ss_sp = alt_stack;
    ss.ss_size = sizeof(alt_stack);
    ss.ss_flags = 0;

    if (sigaltstack(&ss, NULL) != 0) {
        return -1;
    }

    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = crash_handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESETHAND;
    sigemptyset(&sa.sa_mask);

    for (i = 0; i < sizeof(fatal_signals) / sizeof(fatal_signals[0]); i++) {
        if (sigaction(fatal_signals[i], &sa, NULL) != 0) {
            return -1;
        }
    }

    return 0;
}
