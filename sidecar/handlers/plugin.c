/*
 * plugin.c -- loads handler plugins with dlopen(RTLD_NOW), in the
 * supervisor before it forks, so every worker shares their pages and a
 * missing symbol is found by `offload-sidecar -t`, not by a worker's first
 * job.  A plugin is never unloaded once accepted: the handlers of a pool
 * retired by a reload may still be named by its configuration.
 *
 * A plugin new to the process is loaded and checked in a child first: a
 * handler table without its { NULL } end, or a constructor that crashes or
 * never returns, would otherwise take the supervisor down (at a reload, a
 * node that was serving) or hang it.  The check is synchronous, bounded by
 * PLUGIN_CHECK_MS.
 */

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "conf.h"
#include "plugin.h"

/* How long a child may take to load a plugin (its constructors' time):
 * at a reload the supervisor waits for it, its timers held, and past
 * 2.5 s its workers' entries could look idle to the other nodes' claims
 * (claim_idle 5 s, touched every 2.5 s). */
#define PLUGIN_CHECK_MS  2000
#define PLUGIN_LOOK_MS   10             /* the child's exit looked for */


static const offload_module_t *
load(const char *path, char *err, size_t errlen)
{
    void                     *so;
    const char               *why;
    const offload_module_t   *m;
    const offload_handler_t  *h, *before;

    so = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (so == NULL) {
        why = dlerror();
        snprintf(err, errlen, "cannot load \"%s\": %s", path,
                 why ? why : "unknown error");
        return NULL;
    }

    m = dlsym(so, "offload_module");
    if (m == NULL) {
        snprintf(err, errlen, "\"%s\" defines no \"offload_module\" symbol "
                 "(see offload.h)", path);
        goto failed;
    }

    if (m->abi_version < 1 || m->abi_version > OFFLOAD_ABI_VERSION) {
        snprintf(err, errlen, "\"%s\" was built for handler ABI version %u; "
                 "this sidecar speaks versions 1 to %d", path,
                 m->abi_version, OFFLOAD_ABI_VERSION);
        goto failed;
    }

    if (m->handlers == NULL || m->handlers[0].name == NULL) {
        snprintf(err, errlen, "\"%s\" defines no handler", path);
        goto failed;
    }

    for (h = m->handlers; h->name != NULL; h++) {
        if (!offload_conf_handler_name_valid(h->name)) {
            snprintf(err, errlen, "\"%s\" defines a handler with an invalid "
                     "name \"%.80s\"", path, h->name);
            goto failed;
        }

        if (h->run == NULL) {
            snprintf(err, errlen, "handler \"%s\" of \"%s\" has no run "
                     "function", h->name, path);
            goto failed;
        }

        for (before = m->handlers; before != h; before++) {
            if (strcmp(before->name, h->name) == 0) {
                snprintf(err, errlen, "\"%s\" defines handler \"%s\" twice",
                         path, h->name);
                goto failed;
            }
        }
    }

    return m;

failed:

    /* Unmapped unless an earlier load holds it (then one reference less);
     * its constructors have run, though. */
    dlclose(so);
    return NULL;
}


/* Reads what the pipe has into buf after its first len bytes; at its end,
 * or when buf is full, stops looking at it (pfd->fd -1). */
static size_t
read_some(struct pollfd *pfd, char *buf, size_t size, size_t len)
{
    ssize_t  n;

    n = read(pfd->fd, buf + len, size - 1 - len);
    if (n > 0) {
        len += (size_t) n;
        buf[len] = '\0';
    }

    if (n == 0 || len == size - 1) {
        pfd->fd = -1;
    }

    return len;
}


/* Waits for the checking child until the deadline, keeping what it wrote
 * (its error) in buf: its exit is looked for every few ms, not at the
 * pipe's end, which a process it started may hold open.  Returns 0 with
 * its wait status, or -1 when the deadline passed or waitpid failed. */
static int
wait_child(pid_t pid, int fd, char *buf, size_t size, int *status)
{
    int            ms;
    size_t         len = 0;
    ssize_t        n;
    int64_t        deadline_ms;
    struct pollfd  pfd = { .fd = fd, .events = POLLIN };

    deadline_ms = offload_mono_us() / 1000 + PLUGIN_CHECK_MS;
    buf[0] = '\0';

    for ( ;; ) {
        if (pfd.fd >= 0 && poll(&pfd, 1, PLUGIN_LOOK_MS) > 0) {
            len = read_some(&pfd, buf, size, len);

        } else if (pfd.fd < 0) {
            poll(NULL, 0, PLUGIN_LOOK_MS);
        }

        n = waitpid(pid, status, WNOHANG);
        if (n == pid) {
            /* what it wrote between the last look and its exit */
            while (pfd.fd >= 0 && poll(&pfd, 1, 0) > 0) {
                len = read_some(&pfd, buf, size, len);
            }
            return 0;
        }

        if (n < 0 && errno != EINTR) {
            return -1;
        }

        ms = (int) (deadline_ms - offload_mono_us() / 1000);
        if (ms <= 0) {
            return -1;
        }
    }
}


static int
check_in_child(const char *path, char *err, size_t errlen)
{
    int          fds[2], status = 0;
    pid_t        pid, parent = getpid();
    const char  *sig;

    if (pipe2(fds, O_CLOEXEC) != 0) {
        snprintf(err, errlen, "cannot check \"%s\": pipe: %s", path,
                 strerror(errno));
        return -1;
    }

    pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "cannot check \"%s\": fork: %s", path,
                 strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return -1;
    }

    if (pid == 0) {
        /* a crash kills the child by its signal, for the parent to name,
         * whatever handler the process had (a sanitizer's); and it dies
         * with the parent */
        signal(SIGSEGV, SIG_DFL);
        signal(SIGBUS, SIG_DFL);
        signal(SIGILL, SIG_DFL);
        signal(SIGFPE, SIG_DFL);
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) {
            _exit(1);           /* the parent is already gone */
        }
        close(fds[0]);
        if (load(path, err, errlen) != NULL) {
            _exit(0);
        }
        (void) !write(fds[1], err, strlen(err));
        _exit(1);
    }

    close(fds[1]);

    if (wait_child(pid, fds[0], err, errlen, &status) != 0) {
        close(fds[0]);
        kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
            /* again */
        }
        snprintf(err, errlen, "loading \"%s\" did not end in %d ms (a "
                 "constructor that never returns?)", path, PLUGIN_CHECK_MS);
        return -1;
    }

    close(fds[0]);

    if (WIFSIGNALED(status)) {
        sig = sigabbrev_np(WTERMSIG(status));
        snprintf(err, errlen, "loading \"%s\" crashed (SIG%s): a handler "
                 "table without its { NULL } end (offload.h), or a "
                 "constructor that crashes?", path, sig ? sig : "?");
        return -1;
    }

    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        if (err[0] == '\0') {
            snprintf(err, errlen, "loading \"%s\" failed (exit status %d)",
                     path, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        }
        return -1;
    }

    return 0;
}


const offload_module_t *
offload_plugin_load(const char *path, char *err, size_t errlen)
{
    void  *loaded;

    /* one loaded already was checked when it was */
    loaded = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
    if (loaded != NULL) {
        dlclose(loaded);

    } else if (check_in_child(path, err, errlen) != 0) {
        return NULL;
    }

    return load(path, err, errlen);
}
