/*
 * log.c -- writes log lines to stderr, a file or syslog, as text or as
 * JSON lines.
 *
 * Each line is formatted whole and written with one write(2), so lines of
 * the supervisor and its workers sharing one file never interleave.  A
 * worker names its queue and current job, and every line it writes while
 * the job runs carries them (and the job's nginx $request_id and trace
 * id).
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
#include "offload_proto.h"

#define LOG_LINE_MAX   4096
#define LOG_ID_MAX     129


int  offload_log_level = OFFLOAD_LOG_INFO;

static int          log_fd = STDERR_FILENO;
static int          log_syslog;
static int          log_json;
static const char  *log_path;           /* a file target, for reopening */
static const char  *log_ident = "offload";
static char         log_host[256];
static const char  *log_queue;
static char         log_job_id[LOG_ID_MAX];
static char         log_rid[LOG_ID_MAX];
static char         log_trace_id[OFFLOAD_TRACE_ID_LEN + 1];
static unsigned long  log_lost;         /* lines the target refused */
static int            log_lost_errno;

static void log_line(int level, const struct timeval *tv,
    const char *message);
static void log_lost_say(const struct timeval *tv);

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


static int
open_file(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
}


int
offload_log_open(const char *target, int level, int json, const char *ident)
{
    int  fd;

    offload_log_level = level;
    log_json = json;
    log_ident = ident;

    if (gethostname(log_host, sizeof(log_host)) != 0) {
        strcpy(log_host, "-");
    }
    log_host[sizeof(log_host) - 1] = '\0';

    if (strcmp(target, "stderr") == 0) {
        return 0;
    }

    if (strcmp(target, "syslog") == 0) {
        openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
        log_syslog = 1;
        return 0;
    }

    fd = open_file(target);
    if (fd == -1) {
        return -1;
    }

    log_fd = fd;
    log_path = target;
    return 0;
}


int
offload_log_chown(uid_t uid, gid_t gid)
{
    return log_path == NULL ? 0 : fchown(log_fd, uid, gid);
}


int
offload_log_reopen(void)
{
    int  fd;

    if (log_path == NULL) {
        return 0;
    }

    fd = open_file(log_path);
    if (fd == -1) {
        return -1;
    }

    /* dup2 swaps the file under log_fd at once: no line goes nowhere */
    if (dup2(fd, log_fd) == -1) {
        close(fd);
        return -1;
    }

    close(fd);
    return 0;
}


void
offload_log_queue(const char *queue)
{
    log_queue = queue;
}


void
offload_log_job(const offload_entry_t *job)
{
    if (job == NULL) {
        log_job_id[0] = '\0';
        log_rid[0] = '\0';
        log_trace_id[0] = '\0';
        return;
    }

    offload_str_copy(log_job_id, sizeof(log_job_id), job->id.data,
                     job->id.len);
    offload_str_copy(log_rid, sizeof(log_rid), job->request_id.data,
                     job->request_id.len);
    offload_str_copy(log_trace_id, sizeof(log_trace_id),
                     job->traceparent.len
                     ? job->traceparent.data + OFFLOAD_TRACE_ID_AT : NULL,
                     OFFLOAD_TRACE_ID_LEN);
}


void
offload_log_job_ids(const char *job_id, const char *request_id,
    const char *trace_id)
{
    snprintf(log_job_id, sizeof(log_job_id), "%s", job_id ? job_id : "");
    snprintf(log_rid, sizeof(log_rid), "%s", request_id ? request_id : "");
    snprintf(log_trace_id, sizeof(log_trace_id), "%s",
             trace_id ? trace_id : "");
}


/* Appends s to buf at *n as the inside of a JSON string, within size;
 * every control character escaped (C0, DEL, C1 as UTF-8 encodes it), so
 * that a terminal showing the line obeys none. */
static void
put_json(char *buf, size_t size, size_t *n, const char *s)
{
    unsigned char  c;

    for ( ; *s && *n + 7 < size; s++) {
        c = (unsigned char) *s;

        if (c == '"' || c == '\\') {
            buf[(*n)++] = '\\';
            buf[(*n)++] = (char) c;

        } else if (c < 0x20 || c == 0x7f) {
            *n += (size_t) snprintf(buf + *n, size - *n, "\\u%04x", c);

        } else if (c == 0xc2 && (unsigned char) s[1] >= 0x80
                   && (unsigned char) s[1] <= 0x9f)
        {
            *n += (size_t) snprintf(buf + *n, size - *n, "\\u%04x",
                                    (unsigned char) *++s);

        } else {
            buf[(*n)++] = (char) c;
        }
    }
}


static void
put_raw(char *buf, size_t size, size_t *n, const char *s)
{
    size_t  len = strlen(s);

    if (*n + len < size) {
        memcpy(buf + *n, s, len);
        *n += len;
    }
}


/* {"@timestamp":…,"log.level":…,"message":…,"service":…,"host":…,
 *  "pid":…[,"queue":…][,"job.id":…][,"request.id":…][,"trace.id":…]} */
static size_t
format_json(char *line, size_t size, int level, const struct timeval *tv,
    const char *message)
{
    char       head[160];
    size_t     n = 0;
    struct tm  tm;

    gmtime_r(&tv->tv_sec, &tm);
    snprintf(head, sizeof(head),
             "{\"@timestamp\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ\","
             "\"log.level\":\"%s\",\"message\":\"",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, (int) (tv->tv_usec / 1000),
             level_names[level]);

    put_raw(line, size, &n, head);
    put_json(line, size - 256, &n, message);   /* room for the fields */
    put_raw(line, size, &n, "\",\"service\":\"");
    put_json(line, size, &n, log_ident);
    put_raw(line, size, &n, "\",\"host\":\"");
    put_json(line, size, &n, log_host);
    snprintf(head, sizeof(head), "\",\"pid\":%d", (int) getpid());
    put_raw(line, size, &n, head);

    if (log_queue != NULL) {
        put_raw(line, size, &n, ",\"queue\":\"");
        put_json(line, size, &n, log_queue);
        put_raw(line, size, &n, "\"");
    }

    if (log_job_id[0] != '\0') {
        put_raw(line, size, &n, ",\"job.id\":\"");
        put_json(line, size, &n, log_job_id);
        put_raw(line, size, &n, "\"");
    }

    if (log_rid[0] != '\0') {
        put_raw(line, size, &n, ",\"request.id\":\"");
        put_json(line, size, &n, log_rid);
        put_raw(line, size, &n, "\"");
    }

    /* ECS's name: log tools join it with the spans of the same trace */
    if (log_trace_id[0] != '\0') {
        put_raw(line, size, &n, ",\"trace.id\":\"");
        put_raw(line, size, &n, log_trace_id);
        put_raw(line, size, &n, "\"");
    }

    put_raw(line, size, &n, "}");
    return n;
}


/* 2026-11-24 21:40:00.123 [info] 1234 message (job <id>, request <rid>,
 * trace <trace id>) -- the trace part only when the job has one */
static size_t
format_text(char *line, size_t size, int level, const struct timeval *tv,
    const char *message)
{
    int        n;
    struct tm  tm;

    localtime_r(&tv->tv_sec, &tm);

    n = snprintf(line, size, "%04d-%02d-%02d %02d:%02d:%02d.%03d [%s] %d %s",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec, (int) (tv->tv_usec / 1000),
                 level_names[level], (int) getpid(), message);

    if (n >= 0 && (size_t) n < size && log_job_id[0] != '\0') {
        n += snprintf(line + n, size - (size_t) n, " (job %s, request %s%s%s)",
                      log_job_id, log_rid[0] ? log_rid : "-",
                      log_trace_id[0] ? ", trace " : "", log_trace_id);
    }

    return n < 0 ? 0 : (size_t) n < size ? (size_t) n : size - 1;
}


void
offload_log_unctrl(char *s, size_t len)
{
    size_t         i;
    unsigned char  c;

    for (i = 0; i < len; i++) {
        c = (unsigned char) s[i];

        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            s[i] = '?';

        } else if (c == 0xc2 && i + 1 < len
                   && (unsigned char) s[i + 1] >= 0x80
                   && (unsigned char) s[i + 1] <= 0x9f)
        {
            s[i] = '?';
            s[++i] = '?';
        }
    }
}


void
offload_log_write(int level, const char *fmt, ...)
{
    char            message[2048];
    va_list         ap;
    struct timeval  tv;

    va_start(ap, fmt);
    if (vsnprintf(message, sizeof(message), fmt, ap) < 0) {
        message[0] = '\0';
    }
    va_end(ap);

    if (log_syslog) {
        offload_log_unctrl(message, strlen(message));
        syslog(syslog_levels[level], "%s", message);
        return;
    }

    gettimeofday(&tv, NULL);

    if (log_lost > 0) {
        log_lost_say(&tv);
    }

    log_line(level, &tv, message);
}


/* Formats and writes one line; one the target refuses (a full disk, an
 * I/O error) is counted, not failed over. */
static void
log_line(int level, const struct timeval *tv, const char *message)
{
    char     line[LOG_LINE_MAX];
    size_t   len;
    ssize_t  n;

    if (log_json) {
        len = format_json(line, sizeof(line) - 1, level, tv, message);
    } else {
        len = format_text(line, sizeof(line) - 1, level, tv, message);
        offload_log_unctrl(line, len);
    }
    line[len++] = '\n';

    do {
        n = write(log_fd, line, len);
    } while (n == -1 && errno == EINTR);

    if (n != (ssize_t) len) {
        log_lost++;
        log_lost_errno = n == -1 ? errno : ENOSPC;
    }
}


/* The lines a full disk took, said with the first line it takes again:
 * a gap in the log is never silent. */
static void
log_lost_say(const struct timeval *tv)
{
    char           message[256];
    unsigned long  lost = log_lost;

    snprintf(message, sizeof(message), "%lu log line%s lost: %s", lost,
             lost == 1 ? "" : "s", strerror(log_lost_errno));

    log_lost = 0;
    log_line(OFFLOAD_LOG_WARN, tv, message);

    if (log_lost > 0) {
        log_lost = lost;        /* refused again: said later */
    }
}


int
offload_log_refused(unsigned long *count, const char *who, const char *what,
    const char *err)
{
    if (err != NULL) {
        if ((*count)++ == 0) {
            log_error("%s: redis refuses the %s: %s (logged again when it "
                      "takes it)", who, what, err);
        }
        return 1;
    }

    if (*count > 0) {
        log_info("%s: redis takes the %s again, after refusing it %lu "
                 "times", who, what, *count);
        *count = 0;
    }

    return 0;
}
