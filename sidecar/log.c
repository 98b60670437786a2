/*
 * log.c -- writes log lines to stderr, a file or syslog.
 *
 * Each line is formatted whole and written with one write(2), so lines of
 * the supervisor and its workers sharing one file never interleave.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "log.h"


int  offload_log_level = OFFLOAD_LOG_INFO;

static int          log_fd = STDERR_FILENO;
static int          log_syslog;

static const char  *level_names[] = {
    "debug", "info", "notice", "warn", "error"
};

static const int    syslog_levels[] = {
    LOG_DEBUG, LOG_INFO, LOG_NOTICE, LOG_WARNING, LOG_ERR
};


int
offload_log_level_parse(const char *name)
{
    int  i;

    for (i = OFFLOAD_LOG_DEBUG; i <= OFFLOAD_LOG_ERROR; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            return i;
        }
    }

    return -1;
}


int
offload_log_open(const char *target, int level, const char *ident)
{
    int  fd;

    offload_log_level = level;

    if (strcmp(target, "stderr") == 0) {
        return 0;
    }

    if (strcmp(target, "syslog") == 0) {
        openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
        log_syslog = 1;
        return 0;
    }

    fd = open(target, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd == -1) {
        return -1;
    }

    log_fd = fd;
    return 0;
}


void
offload_log_write(int level, const char *fmt, ...)
{
    char            line[2048];
    int             n, m;
    size_t          len;
    va_list         ap;
    struct tm       tm;
    struct timeval  tv;

    va_start(ap, fmt);

    if (log_syslog) {
        n = vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        if (n >= 0) {
            syslog(syslog_levels[level], "%s", line);
        }
        return;
    }

    gettimeofday(&tv, NULL);
    localtime_r(&tv.tv_sec, &tm);

    n = snprintf(line, sizeof(line),
                 "%04d-%02d-%02d %02d:%02d:%02d.%03d [%s] %d ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec, (int) (tv.tv_usec / 1000),
                 level_names[level], (int) getpid());
    if (n < 0) {
        n = 0;
    }

    m = vsnprintf(line + n, sizeof(line) - (size_t) n - 1, fmt, ap);
    va_end(ap);

    len = (size_t) n + (m < 0 ? 0 : (size_t) m);
    if (len > sizeof(line) - 2) {
        len = sizeof(line) - 2;       /* truncated */
    }
    line[len++] = '\n';

    /* A lost log line is not worth failing over; nothing else to do. */
    while (write(log_fd, line, len) == -1 && errno == EINTR) {
        /* retry */
    }
}
