/*
 * exec_program.c -- whether an exec queue's command names a program that
 * can run, found as execvp() will find it: a name with a '/' as it is
 * (relative to the sidecar's working directory), any other in the
 * directories of PATH.  offload-sidecar -t checks it, so that a misspelt
 * command is found before a start.  A start or a reload does not: the
 * program may come later (a mount, a deploy), and a queue whose program
 * cannot run is a pool that crash-loops into "failed" while the node's
 * other queues serve, as it is when the program goes later, or its "#!"
 * names a missing interpreter, or the `user` may not run it.
 */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "exec_bridge.h"

/* what glibc's execvp() searches without PATH: confstr(_CS_PATH) */
#define DEFAULT_PATH  "/bin:/usr/bin"


/* 0 when path is a regular file the effective user may execute (as
 * execve() decides), else errno's reason */
static int
runnable(const char *path)
{
    struct stat  st;

    if (stat(path, &st) != 0) {
        return errno;
    }

    if (!S_ISREG(st.st_mode)) {
        return EACCES;
    }

    return faccessat(AT_FDCWD, path, X_OK, AT_EACCESS) == 0 ? 0 : errno;
}


static int
program_check(const char *program, char *why, size_t size)
{
    int          rc, denied = 0;
    char         path[PATH_MAX];
    size_t       len;
    const char  *dirs, *end;

    if (strchr(program, '/') != NULL) {
        rc = runnable(program);
        if (rc != 0) {
            snprintf(why, size, "command \"%s\" cannot run: %s", program,
                     strerror(rc));
            return -1;
        }
        return 0;
    }

    dirs = getenv("PATH");
    if (dirs == NULL) {
        dirs = DEFAULT_PATH;
    }

    for ( ;; ) {
        end = strchrnul(dirs, ':');
        len = (size_t) (end - dirs);

        /* an empty entry is the working directory, as for execvp() */
        if (snprintf(path, sizeof(path), "%.*s%s%s", (int) len, dirs,
                     len ? "/" : "", program)
            < (int) sizeof(path))
        {
            rc = runnable(path);
            if (rc == 0) {
                return 0;
            }
            denied |= rc == EACCES;
        }

        if (*end == '\0') {
            break;
        }
        dirs = end + 1;
    }

    /* as execvp() tells it: one found but not executable says so */
    snprintf(why, size, "command \"%s\": %s in PATH (%s)", program,
             denied ? "no program executable by this user"
                    : "no such program",
             getenv("PATH") ? getenv("PATH") : DEFAULT_PATH);
    return -1;
}


int
offload_exec_programs_check(const offload_conf_t *conf, char *err,
    size_t errlen)
{
    char                         why[OFFLOAD_CONF_ERR_MAX];
    size_t                       i;
    const offload_conf_queue_t  *q;

    for (i = 0; i < conf->nqueues; i++) {
        q = &conf->queues[i];

        if (q->command != NULL
            && program_check(q->command[0], why, sizeof(why)) != 0)
        {
            snprintf(err, errlen, "%s:%d: queue \"%s\": %s", conf->file,
                     q->command_line, q->name, why);
            return -1;
        }
    }

    return 0;
}
