/*
 * exec_program.c -- whether an exec queue's command names a program that
 * can run, found as execvp() will find it: a name with a '/' as it is
 * (relative to the sidecar's working directory), any other in the
 * directories of PATH.  Checked when the configuration is read (start,
 * -t, reload), so that a misspelt command is a refused file, not a pool
 * that crash-loops into "failed" once running.  The process may still
 * fail to start later (the file removed, an interpreter its "#!" names
 * missing, no permission once privileges are dropped): that stays a
 * crash of its worker.
 */

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "exec_bridge.h"

/* what glibc's execvp() searches without PATH: confstr(_CS_PATH) */
#define DEFAULT_PATH  "/bin:/usr/bin"


/* 0 when path is an executable regular file, else errno's reason */
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

    return access(path, X_OK) == 0 ? 0 : errno;
}


int
offload_exec_program_check(const char *program, char *why, size_t size)
{
    int          rc;
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
            < (int) sizeof(path)
            && runnable(path) == 0)
        {
            return 0;
        }

        if (*end == '\0') {
            break;
        }
        dirs = end + 1;
    }

    snprintf(why, size, "command \"%s\": no such program in PATH (%s)",
             program, getenv("PATH") ? getenv("PATH") : DEFAULT_PATH);
    return -1;
}
