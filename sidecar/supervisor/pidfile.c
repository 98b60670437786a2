/*
 * pidfile.c -- the supervisor's pid in the file "pid" names, as nginx's
 * and Redis' are: for scripts and init systems other than systemd that
 * signal it (SIGHUP reloads, SIGTERM stops).  It is written once the
 * process runs as its "user", so it can remove it at its stop; through a
 * temporary file renamed into place, so a reader sees the old pid or the
 * new one, never part of one.  A file a killed sidecar left is replaced;
 * a clean stop removes the file unless another process's pid is in it by
 * then (a successor started meanwhile).
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "pidfile.h"


/* The temporary file the pid goes to first, opened (flags: O_TRUNC, or
 * O_EXCL for a check), never through a symbolic link; -1 with errno set. */
static int
pidfile_open_tmp(const char *path, char *tmp, size_t size, int flags)
{
    if (snprintf(tmp, size, "%s.%d", path, (int) getpid()) >= (int) size) {
        errno = ENAMETOOLONG;
        return -1;
    }

    return open(tmp, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | flags,
                0644);
}


int
offload_pidfile_check(const char *path)
{
    int   fd;
    char  tmp[4096];

    fd = pidfile_open_tmp(path, tmp, sizeof(tmp), O_EXCL);
    if (fd == -1) {
        return -1;
    }

    close(fd);
    unlink(tmp);
    return 0;
}


int
offload_pidfile_write(const char *path)
{
    int     fd, len, written;
    char    tmp[4096], pid[32];

    len = snprintf(pid, sizeof(pid), "%d\n", (int) getpid());

    fd = pidfile_open_tmp(path, tmp, sizeof(tmp), O_TRUNC);
    if (fd == -1) {
        log_error("cannot write the pid file \"%s\": %s", tmp,
                  strerror(errno));
        return -1;
    }

    written = write(fd, pid, (size_t) len) == len;

    if (close(fd) != 0 || !written || rename(tmp, path) != 0) {
        log_error("cannot write the pid file \"%s\": %s", path,
                  strerror(errno));
        unlink(tmp);
        return -1;
    }

    return 0;
}


void
offload_pidfile_remove(const char *path)
{
    FILE  *f;
    int    pid = 0;

    f = fopen(path, "r");
    if (f == NULL) {
        return;
    }

    if (fscanf(f, "%d", &pid) != 1) {
        pid = 0;
    }
    fclose(f);

    if (pid == (int) getpid() && unlink(path) != 0) {
        log_warn("cannot remove the pid file \"%s\": %s", path,
                 strerror(errno));
    }
}
