/*
 * exec_bridge.c -- the "exec" handler: runs a queue's jobs in a program
 * written in any language (`handler exec; command "...";`), so that a
 * handler needs no C and no plugin.  It owns that program's process in
 * each worker: starting it, moving the lines on its pipes (what they hold:
 * exec_frame.c), its stderr, and what its failures do to the worker.
 *
 * Each worker keeps one process running the queue's command (execvp, no
 * shell), started by the handler's init (after the worker's nice level)
 * and gone with the worker: PR_SET_PDEATHSIG SIGKILL, because the
 * supervisor may SIGKILL the worker (timeout) and the process must not
 * outlive it.  What the process starts in turn stays in the worker's
 * process group, which the supervisor kills with the worker and sweeps
 * once it has reaped it (supervisor/pgroup.c); the bridge's own kills
 * below are of the process alone (the group's would kill the worker too),
 * and the worker leaves after each of them.
 *
 * A job is one line of JSON on its stdin and one line back on its stdout
 * (docs/HANDLERS.md, "The framing"); its stderr is logged a line at a
 * time, read by the worker's loop between jobs and by the job's own wait
 * during one, so a chatty process never fills the pipe.  A read takes at
 * most STDERR_READ_MAX, so a process that writes faster than that is
 * logged does not hold the loop (its jobs, Redis, signals), and after a
 * burst, STDERR_LINES_PER_S lines are logged, the rest counted, so
 * it does not fill the disk either (the allowance is the worker's slot's:
 * a process that crashes in a loop gets no new burst with each worker).
 *
 * The process's failures are the worker's: it dies (its exit is watched
 * during a job, not only its stdout, which what it started may hold), or
 * answers a line that is not one well-formed answer to this job, or does
 * not answer in time, and the worker exits with
 * OFFLOAD_WORKER_EXIT_HANDLER, leaving in its scoreboard entry the
 * process's wait status and what went wrong.  Under a
 * job, that job fails an attempt exactly as when a C handler crashes
 * (retried, then dead-lettered, with the process's signal or exit code in
 * the crash report); between jobs, the slot is restarted as after a crash,
 * so a command that cannot start is a crash loop under the queue's restart
 * intensity.
 *
 * memory_limit counts the process's resident set with the worker's between
 * jobs; during a job, as the RLIMIT_AS of a C worker would, twice the
 * limit kills it (out of memory): looked at every RSS_CHECK_MS, and once
 * more when it has answered, so that a job that grows fast and answers at
 * once is not let through; and so does an answer line that grows the
 * worker's buffer past twice the limit.  The process gets no RLIMIT_AS of
 * its own: runtimes such as V8 reserve far more address space than they
 * use.
 */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "clock.h"
#include "exec_bridge.h"
#include "exec_frame.h"
#include "job.h"
#include "log.h"
#include "memlimit.h"

#define STDERR_LINE_MAX  1900       /* longer lines are logged cut there:
                                       a log message is 2 KB, its prefix
                                       (worker, pid) and " [cut]" too */
#define STDERR_READ_MAX  65536      /* a turn of the loop's read of stderr */
#define STDERR_LINES_PER_S  100     /* logged, on average, at most ... */
#define STDERR_LINES_BURST  5000    /* ... after a burst of that many */
#define ANSWER_MAX       ((size_t) OFFLOAD_BODY_MAX + 4096)
#define RSS_CHECK_MS     100        /* during a job, under memory_limit */
#define NO_ANSWER_GRACE_MS 2000     /* past timeout, the supervisor's to
                                       kill; past a deadline, given up */
#define DEADLINE_FAR_MS  (366LL * 24 * 3600 * 1000)  /* waited at most */
#define EXIT_WAIT_MS     1000       /* for a process that closed stdout,
                                       or was asked to stop */
#define EXIT_CHECK_MS    100        /* during a job, without a pidfd */
#define READY_LINE_MAX   256        /* {"ready":true}, with room to spare */
#define READY_CHECK_MS   100        /* waiting for it: a stop, the RSS */


typedef struct {
    struct ev_loop              *loop;
    const offload_conf_queue_t  *queue;
    offload_sb_slot_t           *sb;
    char                         name[OFFLOAD_QUEUE_NAME_MAX + 32];
    void                       (*lost)(void *data);
    void                        *lost_data;

    pid_t                        pid;           /* 0: none */
    int                          to_child;      /* its stdin */
    int                          from_child;    /* its stdout */
    int                          errors;        /* its stderr */
    int                          pidfd;         /* its exit, during a job;
                                                   -1: none, looked at
                                                   every EXIT_CHECK_MS */
    ev_io                        errors_watcher;
    ev_io                        output_watcher; /* between jobs */
    ev_child                     exit_watcher;
    long                         answered;      /* jobs it answered */

    char                        *buf;           /* request, then answer */
    size_t                       cap;
    char                         err_line[STDERR_LINE_MAX];
    size_t                       err_len;
    int                          err_cut;       /* dropping to the '\n' */
    long                         err_dropped;   /* lines not logged */
    int64_t                      err_dropped_us; /* since then */
} exec_bridge_t;

static exec_bridge_t    bridge;
static offload_sb_slot_t  no_sb;        /* offloadctl replay has none */


static int exec_init(const offload_slot_t *slot);
static void exec_fini(const offload_slot_t *slot);
static int exec_run(offload_job_t *job, const char *payload, size_t len);
static void check_memory(void);

static const offload_handler_t  handlers[] = {
    { OFFLOAD_EXEC_HANDLER, exec_run, exec_init, exec_fini },
    { NULL, NULL, NULL, NULL }
};

const offload_module_t  offload_exec_module = {
    OFFLOAD_ABI_VERSION, handlers
};


int
offload_exec_is(const offload_handler_t *handler)
{
    return handler == &handlers[0];
}


void
offload_exec_attach(struct ev_loop *loop, const offload_conf_queue_t *queue,
    offload_sb_slot_t *sb, const char *name, void (*lost)(void *data),
    void *data)
{
    bridge.loop = loop;
    bridge.queue = queue;
    bridge.sb = sb != NULL ? sb : &no_sb;
    bridge.lost = lost;
    bridge.lost_data = data;
    snprintf(bridge.name, sizeof(bridge.name), "%s", name);
}


long long
offload_exec_rss_bytes(void)
{
    long long  rss;

    if (bridge.pid == 0) {
        return 0;
    }

    rss = offload_rss_bytes_of(bridge.pid);
    return rss > 0 ? rss : 0;
}


/* "exited with code 3", "killed by SIGKILL" */
static void
describe_status(int status, char *buf, size_t size)
{
    const char  *sig;

    if (WIFSIGNALED(status)) {
        sig = sigabbrev_np(WTERMSIG(status));
        snprintf(buf, size, "killed by SIG%s", sig ? sig : "?");
    } else {
        snprintf(buf, size, "exited with code %d", WEXITSTATUS(status));
    }
}


/* Says how many lines were not logged, once they are over a second old or
 * the process's stderr ends (now), so that a flood costs a line a second
 * besides the lines let through. */
static void
report_dropped(int now)
{
    if (bridge.err_dropped == 0
        || (!now && offload_mono_us() - bridge.err_dropped_us < 1000000))
    {
        return;
    }

    log_notice("%s: handler pid %d: %ld lines of stderr not logged (over "
               "%d lines a second)", bridge.name, (int) bridge.pid,
               bridge.err_dropped, STDERR_LINES_PER_S);
    bridge.err_dropped = 0;
}


/* Whether a line of stderr may be logged: a token bucket, so a process
 * that logs a burst (a traceback, a chatty job) is logged in full, and
 * one that floods its stderr does not fill the disk with it.  The bucket
 * is the slot's (in its scoreboard), not the worker's. */
static int
may_log_line(void)
{
    int64_t             now = offload_mono_us(), full, elapsed;
    offload_sb_slot_t  *sb = bridge.sb;

    full = (int64_t) STDERR_LINES_BURST * 1000000;
    elapsed = now - sb->stderr_credit_us;
    sb->stderr_credit_us = now;

    /* no overflow: the bucket is full after BURST / PER_S seconds */
    if (elapsed > full / STDERR_LINES_PER_S) {
        elapsed = full / STDERR_LINES_PER_S;
    }

    sb->stderr_credit += elapsed * STDERR_LINES_PER_S;
    if (sb->stderr_credit > full) {
        sb->stderr_credit = full;
    }

    report_dropped(0);

    if (sb->stderr_credit >= 1000000) {
        sb->stderr_credit -= 1000000;
        return 1;
    }

    if (bridge.err_dropped++ == 0) {
        bridge.err_dropped_us = now;
    }

    return 0;
}


/* Logs the line held, cut when it is over STDERR_LINE_MAX. */
static void
log_line(void)
{
    offload_log_unctrl(bridge.err_line, bridge.err_len);

    if (may_log_line()) {
        log_notice("%s: handler pid %d: %.*s%s", bridge.name,
                   (int) bridge.pid, (int) bridge.err_len, bridge.err_line,
                   bridge.err_cut ? " [cut]" : "");
    }

    bridge.err_len = 0;
}


/* Takes n bytes of the process's stderr: each line is logged once it is
 * whole; one that fills STDERR_LINE_MAX is logged there and the rest of
 * it dropped (a stderr with no newline is logged all the same). */
static void
take_errors(const char *p, size_t n)
{
    size_t       len, room;
    const char  *nl;

    while (n > 0) {
        nl = memchr(p, '\n', n);
        len = nl != NULL ? (size_t) (nl - p) : n;

        if (!bridge.err_cut) {
            room = sizeof(bridge.err_line) - bridge.err_len;
            memcpy(bridge.err_line + bridge.err_len, p,
                   len < room ? len : room);

            if (len < room || (len == room && nl != NULL)) {
                bridge.err_len += len;

            } else {
                bridge.err_len += room;
                bridge.err_cut = 1;
                log_line();
            }
        }

        if (nl == NULL) {
            return;
        }

        if (!bridge.err_cut) {
            log_line();
        }

        bridge.err_cut = 0;
        p = nl + 1;
        n -= len + 1;
    }
}


/* Reads what the process's stderr holds now, at most STDERR_READ_MAX: a
 * process that writes faster than that is logged does not keep the
 * worker's loop here (the watcher is level-triggered: the rest is read on
 * its next turn).  Returns 0 when it is still open, -1 at its end. */
static int
read_errors(void)
{
    char     buf[16384];
    size_t   total = 0;
    ssize_t  n;

    if (bridge.errors < 0) {
        return -1;
    }

    while (total < STDERR_READ_MAX) {
        n = read(bridge.errors, buf, sizeof(buf));

        if (n > 0) {
            take_errors(buf, (size_t) n);
            total += (size_t) n;
            continue;
        }

        if (n < 0 && errno == EINTR) {
            continue;
        }

        if (n < 0 && errno == EAGAIN) {
            return 0;
        }

        /* its end: the last line even without its newline */
        if (bridge.err_len > 0 && !bridge.err_cut) {
            log_line();
        }

        report_dropped(1);

        if (bridge.loop != NULL) {
            ev_io_stop(bridge.loop, &bridge.errors_watcher);
        }

        close(bridge.errors);
        bridge.errors = -1;
        return -1;
    }

    return 0;
}


static void
errors_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    (void) loop;
    (void) io;
    (void) revents;

    read_errors();
}


static void
close_pipes(void)
{
    if (bridge.errors >= 0) {
        read_errors();          /* its last words */
    }

    if (bridge.loop != NULL) {
        ev_io_stop(bridge.loop, &bridge.errors_watcher);
        ev_io_stop(bridge.loop, &bridge.output_watcher);
        ev_child_stop(bridge.loop, &bridge.exit_watcher);
    }

    if (bridge.to_child >= 0) {
        close(bridge.to_child);
    }

    if (bridge.from_child >= 0) {
        close(bridge.from_child);
    }

    if (bridge.errors >= 0) {
        close(bridge.errors);
    }

    if (bridge.pidfd >= 0) {
        close(bridge.pidfd);
    }

    bridge.to_child = bridge.from_child = bridge.errors = bridge.pidfd = -1;
}


/* Waits up to ms for the process to exit (logging what it says on the
 * way out, so that a full stderr does not hold it), then kills it.
 * Returns its wait status. */
static int
reap(int ms)
{
    int      status = 0;
    pid_t    pid = bridge.pid;
    int64_t  until = offload_mono_us() + (int64_t) ms * 1000;

    for ( ;; ) {
        if (waitpid(pid, &status, WNOHANG) == pid) {
            break;
        }

        if (offload_mono_us() >= until) {
            kill(pid, SIGKILL);
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
                /* again */
            }
            break;
        }

        read_errors();
        usleep(5000);
    }

    bridge.pid = 0;
    bridge.sb->child_pid = 0;
    return status;
}


/* The process failed the worker: leaves status (-1: it was alive, and is
 * killed now) and why in the scoreboard for the crash report. */
static void
record_failure(int status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
record_failure(int status, const char *fmt, ...)
{
    va_list  ap;

    va_start(ap, fmt);
    vsnprintf(bridge.sb->child_error, sizeof(bridge.sb->child_error), fmt,
              ap);
    va_end(ap);

    bridge.sb->child_status = status;
    bridge.sb->exit_reason = OFFLOAD_SB_EXIT_HANDLER_PROCESS;

    log_error("%s: %s", bridge.name, bridge.sb->child_error);
}


/* Ends the process after its failure, what: status is its wait status,
 * or -1: it is alive, and killed now. */
static void
end_process(int status, const char *what)
{
    char   how[64];
    pid_t  pid = bridge.pid;

    close_pipes();

    if (status == -1 && pid != 0) {
        kill(pid, SIGKILL);
        reap(0);
    }

    if (status == -1) {
        record_failure(-1, "handler process %d %s; killed", (int) pid, what);

    } else {
        describe_status(status, how, sizeof(how));
        record_failure(status, "handler process %d %s (%s)", (int) pid, how,
                       what);
    }

    bridge.pid = 0;
    bridge.sb->child_pid = 0;
}


/* A failure under a job: the worker exits holding it, and the supervisor
 * fails its attempt as it does for a crashed worker. */
static void
fail_worker(int status, const char *what)
    __attribute__((noreturn));

static void
fail_worker(int status, const char *what)
{
    end_process(status, what);
    fflush(NULL);
    _exit(OFFLOAD_WORKER_EXIT_HANDLER);
}


/* The process closed its stdout or stdin: it is exiting, most likely.
 * Returns its wait status, once it is reaped (killed after EXIT_WAIT_MS);
 * its pid stays for the record. */
static int
wait_gone(void)
{
    int    status;
    pid_t  pid = bridge.pid;

    close_pipes();
    status = reap(EXIT_WAIT_MS);
    bridge.pid = pid;
    return status;
}


/*
 * Output between jobs, a pipe closed, is the process's failure, not the
 * next job's, whose answer the output would be read as (an innocent job
 * would burn an attempt).  The process is ended (status: its wait status,
 * or -1: it is killed now), and the worker stops as when it dies between
 * jobs: the next job stays pending, for the next worker of the slot, at
 * the same attempt.
 */
static void
lose_between_jobs(int status, const char *what)
{
    end_process(status, what);

    if (bridge.lost != NULL) {
        bridge.lost(bridge.lost_data);
    }
}


/* Whether the process has exited, left a zombie for whoever reaps it:
 * wait_gone() under a job it has not answered, or found exited before
 * the next job (a batch's jobs run without the loop between them), else
 * the exit_watcher, once the worker's loop runs again. */
static int
has_exited(void)
{
    siginfo_t  info;

    info.si_pid = 0;
    return waitid(P_PID, (id_t) bridge.pid, &info,
                  WEXITED | WNOHANG | WNOWAIT) == 0
           && info.si_pid == bridge.pid;
}


/*
 * One poll() looks at the three things a process may have done since its
 * answer, as the worker's job loop asks before every job: its stdout
 * (a line, or its end), its stdin (the write end polls POLLERR once no
 * reader is left) and its exit (the pidfd; without one, waitid() each
 * time).  Nothing, the common case, costs that one call.
 */
int
offload_exec_check(void)
{
    int            rc;
    char           buf[256], what[OFFLOAD_SB_CHILD_ERROR_MAX], *nl;
    size_t         len;
    ssize_t        n = -1;
    struct pollfd  fds[3];

    if (bridge.pid == 0) {
        return -1;              /* gone: exit_cb told the worker */
    }

    fds[0].fd = bridge.from_child;
    fds[0].events = POLLIN;
    fds[1].fd = bridge.to_child;
    fds[1].events = 0;
    fds[2].fd = bridge.pidfd;   /* -1: passed over */
    fds[2].events = POLLIN;

    rc = poll(fds, 3, 0);       /* -1 (EINTR): nothing seen this time */

    if (rc > 0 && fds[0].revents) {
        do {
            n = read(bridge.from_child, buf, sizeof(buf));
        } while (n < 0 && errno == EINTR);
    }

    if (n > 0) {
        nl = memchr(buf, '\n', (size_t) n);
        len = nl != NULL ? (size_t) (nl - buf) : (size_t) n;
        len = len < 64 ? len : 64;
        offload_log_unctrl(buf, len);
        snprintf(what, sizeof(what), "wrote to its stdout between jobs: "
                 "\"%.*s\"%s", (int) len, buf,
                 !bridge.queue->wait_ready
                 && memmem(buf, len, "\"ready\"", 7) != NULL
                 ? " (a ready line, where the queue has no wait_ready)"
                 : "");
        lose_between_jobs(-1, what);

    } else if (n == 0) {
        lose_between_jobs(wait_gone(), "closed its stdout between jobs");

    } else if (rc > 0 && (fds[1].revents & POLLERR)) {
        lose_between_jobs(wait_gone(), "closed its stdin between jobs");

    } else if ((bridge.pidfd < 0 || (rc > 0 && fds[2].revents))
               && has_exited())
    {
        lose_between_jobs(wait_gone(), "exited between jobs");

    } else {
        return 0;               /* as it should be */
    }

    return -1;
}


static void
output_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    (void) loop;
    (void) io;
    (void) revents;

    offload_exec_check();
}


/* The process exited between jobs (libev reaped it): the worker stops. */
static void
exit_cb(struct ev_loop *loop, ev_child *child, int revents)
{
    char   how[64];
    pid_t  pid = bridge.pid;

    (void) loop;
    (void) revents;

    close_pipes();              /* its last words, under its pid */
    bridge.pid = 0;
    bridge.sb->child_pid = 0;

    describe_status(child->rstatus, how, sizeof(how));
    record_failure(child->rstatus, "handler process %d %s between jobs",
                   (int) pid, how);

    if (bridge.lost != NULL) {
        bridge.lost(bridge.lost_data);
    }
}


/* Marks every descriptor from first on close-on-exec: the worker's (Redis,
 * the log, other pipes) are not the process's.  close_range() does it in
 * one call since Linux 5.11; before, one at a time up to the limit. */
static void
cloexec_from(int first)
{
    long  fd, max;

    if (close_range((unsigned) first, ~0U, CLOSE_RANGE_CLOEXEC) == 0) {
        return;
    }

    max = sysconf(_SC_OPEN_MAX);
    if (max < 0) {
        max = 1024;
    }

    for (fd = first; fd < max; fd++) {
        fcntl((int) fd, F_SETFD, FD_CLOEXEC);
    }
}


/* The child side of the fork: becomes the command.  Never returns. */
static void
become_command(int in, int out, int err, int report, pid_t parent)
{
    int       sig, e;
    sigset_t  none;

    /* Dies with the worker, even of SIGKILL; the worker may be gone
     * already. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) {
        _exit(127);
    }

    /* The pipe ends are above 2 (open_pipes): no dup2 here overwrites
     * another's source, and each clears close-on-exec on its copy. */
    if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) {
        _exit(127);
    }

    cloexec_from(3);            /* the report pipe is already */

    /* Ignored signals (SIGPIPE) stay ignored across exec: not for it. */
    for (sig = 1; sig < NSIG; sig++) {
        if (sig != SIGKILL && sig != SIGSTOP) {
            signal(sig, SIG_DFL);
        }
    }

    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    /* what it must say before a job, or not (await_ready) */
    if (bridge.queue->wait_ready) {
        setenv("OFFLOAD_WAIT_READY", "1", 1);
    } else {
        unsetenv("OFFLOAD_WAIT_READY");
    }

    execvp(bridge.queue->command[0], bridge.queue->command);

    e = errno;
    while (write(report, &e, sizeof(e)) < 0 && errno == EINTR) {
        /* again */
    }
    _exit(127);
}


static int
nonblocking(int fd)
{
    int  flags = fcntl(fd, F_GETFL);

    return flags < 0 ? -1 : fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}


enum { IN, OUT, ERR, REPORT, PIPES };       /* the process's pipes */


static void
close_pipe_ends(int p[PIPES][2])
{
    int  i, j;

    for (i = 0; i < PIPES; i++) {
        for (j = 0; j < 2; j++) {
            if (p[i][j] >= 0) {
                close(p[i][j]);
                p[i][j] = -1;
            }
        }
    }
}


/* Opens the process's pipes, close-on-exec, every end above 2: a worker
 * whose own stdio was closed would get 0, 1 or 2 for one, which the
 * child's dup2 onto its stdio would overwrite, or keep close-on-exec
 * (dup2 onto itself), and whose own writes there (offloadctl logs to its
 * stderr) would go into the process. */
static int
open_pipes(int p[PIPES][2])
{
    int  i, j, fd;

    memset(p, -1, sizeof(int) * PIPES * 2);

    for (i = 0; i < PIPES; i++) {
        if (pipe2(p[i], O_CLOEXEC) != 0) {
            goto failed;
        }

        for (j = 0; j < 2; j++) {
            if (p[i][j] > STDERR_FILENO) {
                continue;
            }

            fd = fcntl(p[i][j], F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
            if (fd < 0) {
                goto failed;
            }

            close(p[i][j]);
            p[i][j] = fd;
        }
    }

    return 0;

failed:

    log_error("%s: pipe() failed: %s", bridge.name, strerror(errno));
    close_pipe_ends(p);
    return -1;
}


/* The process's first line, once it holds one whole (nl: its newline):
 * {"ready":true}, and nothing after it. */
static int
ready_line(char *line, size_t len, char *nl)
{
    int      ready;
    char     what[OFFLOAD_SB_CHILD_ERROR_MAX], *bad = line;
    size_t   n = (size_t) (nl - line);
    json_t  *said;

    said = json_loadb(line, n, 0, NULL);
    ready = json_is_object(said)
            && json_is_true(json_object_get(said, "ready"));
    json_decref(said);

    if (ready && n + 1 == len) {
        return 0;
    }

    if (ready) {
        bad = nl + 1;           /* what came after the line */
        n = len - n - 1;
    }

    n = n < 64 ? n : 64;
    offload_log_unctrl(bad, n);
    snprintf(what, sizeof(what), "wrote \"%.*s\" %s", (int) n, bad,
             ready ? "after its {\"ready\":true} line, before any job"
                   : "before it was ready (wait_ready: {\"ready\":true} "
                     "first)");
    end_process(-1, what);
    return -1;
}


/* A stop (SIGTERM, SIGINT: blocked during the init) waits for no load. */
static int
stop_asked(void)
{
    sigset_t  pending;

    return sigpending(&pending) == 0
           && (sigismember(&pending, SIGTERM)
               || sigismember(&pending, SIGINT));
}


/*
 * wait_ready: the process writes {"ready":true} on its stdout once it has
 * loaded what it needs (a model: seconds, minutes), and the worker reads
 * no job before.  This is the handler's init: the supervisor kills a
 * worker still here after init_timeout (and offloadctl replay, which has
 * no supervisor, gives up a little later).  Every READY_CHECK_MS it looks
 * whether it was asked to stop (the process is killed then: nothing of
 * a job is lost) and, under memory_limit, at the process's RSS, as a
 * job's wait does.  Its stderr is logged meanwhile: a chatty start does
 * not fill the pipe and stall.  Another line first, a closed stdout or
 * an exit is the process's failure, and the init's.
 */
static int
await_ready(void)
{
    int            rc;
    char           line[READY_LINE_MAX], *nl = NULL;
    size_t         len = 0;
    int64_t        until = 0;
    ssize_t        n;
    struct pollfd  fds[3];

    /* a backstop: in a worker, the supervisor's kill comes first */
    if (bridge.queue->init_timeout_ms > 0) {
        until = offload_mono_us()
                + ((int64_t) bridge.queue->init_timeout_ms
                   + NO_ANSWER_GRACE_MS) * 1000;
    }

    while (nl == NULL) {
        if (stop_asked()) {
            close_pipes();
            reap(0);
            return -1;
        }

        if (until != 0 && offload_mono_us() >= until) {
            bridge.sb->exit_reason = OFFLOAD_SB_EXIT_HANDLER_PROCESS;
            end_process(-1, "did not write {\"ready\":true} within the "
                        "queue's init_timeout");
            return -1;
        }

        check_memory();

        fds[0].fd = bridge.from_child;
        fds[0].events = POLLIN;
        fds[1].fd = bridge.errors;      /* -1 once it closed: passed over */
        fds[1].events = POLLIN;
        fds[2].fd = bridge.pidfd;
        fds[2].events = POLLIN;

        rc = poll(fds, 3, READY_CHECK_MS);
        if (rc < 0 && errno != EINTR) {
            end_process(-1, "could not be waited for (poll failed)");
            return -1;
        }

        if (rc <= 0) {
            if (bridge.pidfd < 0 && has_exited()) {
                goto exited;
            }

            continue;
        }

        if (fds[1].revents) {
            read_errors();
        }

        if (fds[0].revents) {
            n = read(bridge.from_child, line + len, sizeof(line) - len);

            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
                /* leaving: the supervisor's init_timeout is not for it */
                bridge.sb->exit_reason = OFFLOAD_SB_EXIT_HANDLER_PROCESS;
                end_process(wait_gone(), "closed its stdout before it was "
                            "ready");
                return -1;
            }

            if (n > 0) {
                nl = memchr(line + len, '\n', (size_t) n);
                len += (size_t) n;
            }

            if (nl == NULL && len == sizeof(line)) {
                end_process(-1, "wrote a line of over 255 bytes before it "
                            "was ready (wait_ready: {\"ready\":true} first)");
                return -1;
            }

            continue;
        }

        if (fds[2].revents && has_exited()) {
            goto exited;
        }
    }

    if (ready_line(line, len, nl) != 0) {
        return -1;
    }

    log_info("%s: handler pid %d is ready", bridge.name, (int) bridge.pid);
    return 0;

exited:

    bridge.sb->exit_reason = OFFLOAD_SB_EXIT_HANDLER_PROCESS;
    end_process(wait_gone(), "exited before it was ready");
    return -1;
}


/* Starts the command with pipes for its stdin, stdout and stderr.  A
 * command that cannot be run (exec fails) is known before this returns,
 * through a close-on-exec pipe: it carries exec's errno, or closes. */
static int
exec_init(const offload_slot_t *slot)
{
    int       p[PIPES][2], e, status;
    pid_t     pid, parent = getpid();
    ssize_t   n;

    (void) slot;                /* offload_exec_attach() said it all */

    bridge.to_child = bridge.from_child = bridge.errors = bridge.pidfd = -1;

    if (open_pipes(p) != 0) {
        return -1;
    }

    pid = fork();
    if (pid < 0) {
        log_error("%s: fork() failed: %s", bridge.name, strerror(errno));
        close_pipe_ends(p);
        return -1;
    }

    if (pid == 0) {
        become_command(p[IN][0], p[OUT][1], p[ERR][1], p[REPORT][1], parent);
    }

    close(p[IN][0]);
    close(p[OUT][1]);
    close(p[ERR][1]);
    close(p[REPORT][1]);

    /* known from the fork on: a worker killed while its command starts
     * leaves this process, not a handler's leftover (supervisor/pgroup.c) */
    bridge.pid = pid;
    bridge.sb->child_pid = pid;
    bridge.to_child = p[IN][1];
    bridge.from_child = p[OUT][0];
    bridge.errors = p[ERR][0];

    do {
        n = read(p[REPORT][0], &e, sizeof(e));
    } while (n < 0 && errno == EINTR);
    close(p[REPORT][0]);

    if (n == sizeof(e)) {
        close_pipes();
        status = reap(EXIT_WAIT_MS);
        record_failure(status, "cannot run the command \"%s\" of queue %s: "
                       "%s", bridge.queue->command_text, bridge.queue->name,
                       strerror(e));
        return -1;
    }

    if (nonblocking(bridge.to_child) != 0
        || nonblocking(bridge.from_child) != 0
        || nonblocking(bridge.errors) != 0)
    {
        log_error("%s: fcntl() failed: %s", bridge.name, strerror(errno));
        end_process(-1, "could not be spoken to (fcntl failed)");
        return -1;
    }

    /* Close-on-exec.  Before Linux 5.3 (ENOSYS), exec_run() looks at the
     * process every EXIT_CHECK_MS instead. */
    bridge.pidfd = pidfd_open(pid, 0);
    if (bridge.pidfd < 0 && errno != ENOSYS) {
        log_warn("%s: pidfd_open() failed: %s", bridge.name,
                 strerror(errno));
    }

    if (bridge.loop != NULL) {
        ev_io_init(&bridge.errors_watcher, errors_cb, bridge.errors, EV_READ);
        ev_io_start(bridge.loop, &bridge.errors_watcher);
        ev_io_init(&bridge.output_watcher, output_cb, bridge.from_child,
                   EV_READ);
        ev_io_start(bridge.loop, &bridge.output_watcher);
        ev_child_init(&bridge.exit_watcher, exit_cb, pid, 0);
        ev_child_start(bridge.loop, &bridge.exit_watcher);
    }

    log_info("%s: handler pid %d runs %s", bridge.name, (int) pid,
             bridge.queue->command_text);

    return bridge.queue->wait_ready ? await_ready() : 0;
}


/* A normal stop: its stdin closes, which tells the process to leave. */
static void
exec_fini(const offload_slot_t *slot)
{
    int    status;
    char   how[64];
    pid_t  pid = bridge.pid;

    (void) slot;

    if (pid == 0) {
        return;
    }

    if (bridge.loop != NULL) {
        ev_child_stop(bridge.loop, &bridge.exit_watcher);
    }

    close(bridge.to_child);
    bridge.to_child = -1;

    status = reap(EXIT_WAIT_MS);
    close_pipes();

    describe_status(status, how, sizeof(how));
    log_debug("%s: handler pid %d %s", bridge.name, (int) pid, how);

    free(bridge.buf);
    bridge.buf = NULL;
    bridge.cap = 0;
}


static int
reserve(size_t need)
{
    char  *p;

    if (need <= bridge.cap) {
        return 0;
    }

    if (need < 2 * bridge.cap) {
        need = 2 * bridge.cap;          /* a long answer grows in steps */
    }

    p = realloc(bridge.buf, need);
    if (p == NULL) {
        return -1;
    }

    bridge.buf = p;
    bridge.cap = need;
    return 0;
}


/* When to stop waiting for an answer, in monotonic us (0: never): past
 * the queue's timeout the supervisor kills the worker, this is only a
 * backstop; with `timeout off`, past the job's deadline; with neither,
 * the process may take as long as a C handler could. */
static int64_t
answer_deadline(const offload_job_t *job, int64_t start_us)
{
    int64_t  left_ms;

    if (bridge.queue->timeout_ms > 0) {
        return start_us
               + ((int64_t) bridge.queue->timeout_ms + NO_ANSWER_GRACE_MS)
                 * 1000;
    }

    if (job->deadline_ms > 0) {
        left_ms = job->deadline_ms - offload_wall_us() / 1000;

        /* A deadline may have 18 digits, too many for us in 64 bits:
         * clamped, the wait gives up after a year at most. */
        if (left_ms > DEADLINE_FAR_MS) {
            left_ms = DEADLINE_FAR_MS;
        }

        return start_us + (left_ms > 0 ? left_ms : 0) * 1000
               + NO_ANSWER_GRACE_MS * 1000;
    }

    return 0;
}


/* Under a job, the process's RSS, or the answer line it has the worker
 * hold, over twice memory_limit: the RLIMIT_AS a C worker would have run
 * into.  The process is killed and the attempt fails as memory_limit. */
static void
out_of_memory(const char *what, long long bytes)
{
    kill(bridge.pid, SIGKILL);
    close_pipes();
    reap(0);
    log_error("%s: handler process %s %lld MB over twice memory_limit "
              "%lld MB: killed", bridge.name, what, bytes >> 20,
              bridge.queue->memory_limit >> 20);
    bridge.sb->exit_reason = OFFLOAD_SB_EXIT_OUT_OF_MEMORY;
    fflush(NULL);
    _exit(OFFLOAD_WORKER_EXIT_NOMEM);
}


/* The answer line the worker holds, as it grows and once it ends: the
 * worker's own growth, which its RSS checks between jobs would see only
 * once it had it all. */
static void
check_answer_memory(size_t got)
{
    if (bridge.queue->memory_limit > 0
        && (long long) got > 2 * bridge.queue->memory_limit)
    {
        out_of_memory("answer line", (long long) got);
    }
}


static void
check_memory(void)
{
    long long  limit = bridge.queue->memory_limit, rss;

    if (limit <= 0) {
        return;
    }

    rss = offload_exec_rss_bytes();
    if (rss > 2 * limit) {
        out_of_memory("RSS", rss);
    }
}


/*
 * The process closed its stdout or stdin under a job, or exited.  If it
 * had answered jobs and read none of this one's request (sent bytes of
 * it, all still in the pipe), the job never was its: a handler that runs
 * a job, or a few, and exits was gone before this one (its exit seen once
 * the request was written).  The worker leaves as between jobs, not
 * holding the job, which stays pending for the slot's next process at the
 * same attempt.  One that answered none (a program that cannot start)
 * fails the job, which so hears of it at once.
 */
static void
process_gone(const char *what, size_t sent)
{
    int  unread;

    if (bridge.answered > 0
        && ioctl(bridge.to_child, FIONREAD, &unread) == 0
        && (size_t) unread == sent)
    {
        offload_sb_set_state(bridge.sb, OFFLOAD_SB_IDLE);
        fail_worker(wait_gone(), "exited between jobs, before it read the "
                    "next one's request");
    }

    fail_worker(wait_gone(), what);
}


static int
at_most(int timeout, int ms)
{
    return timeout < 0 || timeout > ms ? ms : timeout;
}


/*
 * Sends the request and waits for the answer, reading stderr meanwhile.
 * The request is written as the process reads it: a big one does not
 * block a process that logs or answers before it has read all of it.
 *
 * The process's exit is waited for too, not only its stdout's end: what
 * it started (`sleep &`, a fork) may hold its stdout open after it.  Once
 * it has exited, its stdout is read to the end of what it holds; a job
 * with no answer in it fails there.
 */
static int
exec_run(offload_job_t *job, const char *payload, size_t len)
{
    int            rc, timeout, exited = 0;
    char           why[OFFLOAD_SB_CHILD_ERROR_MAX - 64], *nl, *line;
    size_t         request_len, sent = 0, got = 0, scanned = 0;
    ssize_t        n;
    int64_t        start_us, until_us, now_us;
    struct pollfd  fds[4];

    if (bridge.pid == 0) {
        fail_worker(bridge.sb->child_status, "was gone before the job");
    }

    if (reserve(len + OFFLOAD_EXEC_REQUEST_ROOM) != 0) {
        return OFFLOAD_NOMEM;
    }

    request_len = offload_exec_request(job, payload, len, bridge.buf);

    start_us = offload_mono_us();
    until_us = answer_deadline(job, start_us);

    /* poll() passes over a descriptor of -1 */
    fds[0].events = fds[1].events = fds[3].events = POLLIN;
    fds[2].events = POLLOUT;

    for ( ;; ) {
        fds[0].fd = bridge.from_child;
        fds[1].fd = bridge.errors;
        fds[2].fd = sent < request_len ? bridge.to_child : -1;
        fds[3].fd = bridge.pidfd;

        timeout = -1;
        now_us = offload_mono_us();

        if (until_us != 0) {
            if (now_us >= until_us) {
                snprintf(why, sizeof(why), "did not answer within %lld ms",
                         (long long) (now_us - start_us) / 1000);
                fail_worker(-1, why);
            }
            timeout = (int) ((until_us - now_us) / 1000) + 1;
        }

        if (bridge.queue->memory_limit > 0) {
            check_memory();
            timeout = at_most(timeout, RSS_CHECK_MS);
        }

        if (bridge.pidfd < 0) {
            timeout = at_most(timeout, EXIT_CHECK_MS);
        }

        rc = poll(fds, 4, timeout);
        if (rc < 0) {
            if (errno == EINTR) {
                continue;
            }
            snprintf(why, sizeof(why), "could not be waited for: poll: %s",
                     strerror(errno));
            fail_worker(-1, why);
        }

        if (!exited && (bridge.pidfd < 0 || fds[3].revents)) {
            exited = has_exited();
        }

        if (fds[1].revents) {
            read_errors();
        }

        if (fds[2].revents) {
            n = write(bridge.to_child, bridge.buf + sent, request_len - sent);
            if (n > 0) {
                sent += (size_t) n;
            } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
                process_gone("closed its stdin", sent);
            }
        }

        if (!fds[0].revents && !exited) {
            continue;
        }

        /* The answer goes after the request in the same buffer. */
        if (reserve(request_len + got + 65536) != 0) {
            return OFFLOAD_NOMEM;
        }

        n = read(bridge.from_child, bridge.buf + request_len + got,
                 bridge.cap - request_len - got);

        if (n == 0) {
            process_gone(sent < request_len ? "closed its stdout"
                                            : "closed its stdout before "
                                              "answering", sent);
        }

        if (n < 0 && errno == EAGAIN && exited) {
            process_gone("before answering, its stdout left open by a "
                         "process it started", sent);
        }

        if (n < 0) {
            continue;           /* EAGAIN, EINTR */
        }

        got += (size_t) n;

        /* Metric lines first: recorded, then dropped from the buffer. */
        for ( ;; ) {
            line = bridge.buf + request_len;
            nl = memchr(line + scanned, '\n', got - scanned);
            if (nl == NULL) {
                break;
            }

            rc = offload_exec_metric(job, line, (size_t) (nl - line), why,
                                     sizeof(why));
            if (rc == 0) {
                break;
            }

            if (rc < 0) {
                fail_worker(-1, why);
            }

            got -= (size_t) (nl + 1 - line);
            memmove(line, nl + 1, got);
            scanned = 0;
        }

        if (nl == NULL) {
            scanned = got;
            __atomic_store_n(&bridge.sb->answer_partial, (int32_t) got,
                             __ATOMIC_RELAXED);
            if (got > ANSWER_MAX) {
                snprintf(why, sizeof(why), "answered a line longer than "
                         "%zu bytes", ANSWER_MAX);
                fail_worker(-1, why);
            }

            check_answer_memory(got);
            continue;
        }

        check_answer_memory(got);

        if (nl + 1 != bridge.buf + request_len + got) {
            fail_worker(-1, "wrote more than one line for one request");
        }

        if (sent < request_len) {
            fail_worker(-1, "answered before it read the whole request");
        }

        /* A job that grew the process and answered between two looks
         * above is over the limit all the same. */
        check_memory();

        rc = offload_exec_answer(job, bridge.buf + request_len,
                                 (size_t) (nl - bridge.buf) - request_len,
                                 why, sizeof(why));
        if (rc == -1) {
            fail_worker(-1, why);
        }

        bridge.answered++;

        if (bridge.cap > (4 << 20)) {       /* a big job's: not kept */
            free(bridge.buf);
            bridge.buf = NULL;
            bridge.cap = 0;
        }

        return rc;
    }
}
