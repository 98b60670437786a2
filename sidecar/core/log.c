/*
 * log.c -- writes log lines to stderr, a file or syslog, as text or as
 * JSON lines.
 *
 * Each line is formatted whole and written with one write(2), so lines of
 * the supervisor and its workers sharing one file never interleave.  A
 * worker names its queue and current job, and every line it writes while
 * the job runs carries them (and the job's nginx $request_id and trace
 * id).
 *
 * A log never stops the sidecar.  A pipe, a terminal or a socket blocks
 * its writer while its reader does not read (a stalled journal or
 * container log driver, a terminal paused with Ctrl-S): a line waits for
 * such a reader LOG_WAIT_MS at most, and once one has waited in vain the
 * next ones do not wait until a line gets through.  Lines the target
 * refuses (that one, a full disk) are counted, in memory every process of
 * the node shares, and the first line the target takes again says how
 * many its process lost and why.
 */

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "offload_proto.h"
#include "shm.h"

#define LOG_LINE_MAX   4096     /* PIPE_BUF: a pipe takes a line whole */
#define LOG_ID_MAX     129
#define LOG_WAIT_MS    100      /* a line's wait for a slow reader */
#define LOG_SYSLOG_PREFIX  "syslog:server=unix:"

enum {
    LOG_BY_WRITE = 0,   /* write(2): a file, or a non-blocking description */
    LOG_BY_SEND,        /* send(2), MSG_DONTWAIT: a socket */
    LOG_BY_NOWAIT       /* pwritev2(2), RWF_NOWAIT: a pipe not opened again */
};


int  offload_log_level = OFFLOAD_LOG_INFO;

static int          log_fd = STDERR_FILENO;
static int          log_how;            /* LOG_BY_WRITE, _SEND, _NOWAIT */
static int          log_stalled;        /* a line waited in vain */
static int          log_cut;            /* a line went out in part */
static int          log_syslog;
static struct sockaddr_un  log_syslog_addr;
static unsigned long      *log_lost_node;   /* shared: the node's count */
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

static int log_put(const char *p, size_t len);
static int log_line(int level, const struct timeval *tv,
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


/* O_NONBLOCK: a FIFO or terminal (/dev/tty1) is written without waiting
 * for its reader, and a FIFO without one is an error, not a wait; a file
 * ignores the flag.  O_NOCTTY: a terminal does not become the sidecar's
 * (its hangup would be a SIGHUP, a reload). */
static int
open_file(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK
                      | O_NOCTTY, 0644);
}


int
offload_log_roots_path(const char *path)
{
    int          above;
    char         dir[PATH_MAX], *slash;
    struct stat  st;

    if (path[0] == '/') {
        if (snprintf(dir, sizeof(dir), "%s", path) >= (int) sizeof(dir)) {
            return 0;
        }

    } else if (getcwd(dir, sizeof(dir)) == NULL
               || strlen(dir) + 1 + strlen(path) >= sizeof(dir))
    {
        return 0;

    } else {
        strcat(strcat(dir, "/"), path);
    }

    for (slash = dir; (slash = strchr(slash + 1, '/')) != NULL; ) {
        *slash = '\0';
        above = strchr(slash + 1, '/') != NULL;

        /* a folder: root's, writable by none else (a folder above it may
         * be, with the sticky bit: /tmp, where none may rename root's) */
        if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != 0
            || ((st.st_mode & (S_IWGRP | S_IWOTH))
                && !(above && (st.st_mode & S_ISVTX))))
        {
            return 0;
        }

        *slash = '/';
    }

    /* nor the log a link: where it leads was not vetted */
    return lstat(dir, &st) != 0 || !S_ISLNK(st.st_mode);
}


/*
 * Stderr is written without waiting for its reader, without changing it
 * for the other processes that share it (nginx and redis-server under
 * `make run`, the shell after): O_NONBLOCK on it would.  A pipe, FIFO or
 * terminal gets a non-blocking description of its own, /proc/self/fd/2
 * opened again; a socket (the journal's stdout stream) takes MSG_DONTWAIT
 * at each send.  A pipe the sidecar's user may not open (a container
 * runtime's, made by root, the sidecar run by another user) takes
 * RWF_NOWAIT at each write, where the kernel has it.  Sets log_how and
 * log_fd; says when stderr may block all the same.
 */
static void
stderr_unblock(void)
{
    int          fd;
    struct stat  st;

    if (fstat(STDERR_FILENO, &st) != 0) {
        return;
    }

    if (S_ISSOCK(st.st_mode)) {
        log_how = LOG_BY_SEND;
        return;
    }

    if (!S_ISFIFO(st.st_mode) && !S_ISCHR(st.st_mode)) {
        return;         /* a file waits for its disk, never for a reader */
    }

    fd = open("/proc/self/fd/2", O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd != -1) {
        log_fd = fd;
        return;
    }

    if (S_ISFIFO(st.st_mode)) {
        log_how = LOG_BY_NOWAIT;
        log_warn("stderr, the log, is a pipe this process cannot open again "
                 "(/proc/self/fd/2: %s): it is written with RWF_NOWAIT, "
                 "which kernels before Linux 6.4 refuse, and then a reader "
                 "that stops reading stops the sidecar", strerror(errno));
        return;
    }

    log_warn("stderr, the log, is a terminal this process cannot open again "
             "(/proc/self/fd/2: %s): one paused (Ctrl-S) stops the sidecar",
             strerror(errno));
}


/* Connects a non-blocking datagram socket to the syslog daemon's, at
 * log_fd once it has one (the daemon restarted, or was not there yet).
 * Not syslog(3): glibc's waits as long as a daemon that stopped reading
 * does.  Returns 0, or -1 with errno set. */
static int
syslog_connect(void)
{
    int  fd, err;

    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        return -1;
    }

    if (connect(fd, (struct sockaddr *) &log_syslog_addr,
                sizeof(log_syslog_addr))
        != 0)
    {
        err = errno;
        close(fd);
        errno = err;
        return -1;
    }

    if (log_fd == -1) {
        log_fd = fd;
        return 0;
    }

    if (dup3(fd, log_fd, O_CLOEXEC) == -1) {
        err = errno;
        close(fd);
        errno = err;
        return -1;
    }

    close(fd);
    return 0;
}


int
offload_log_syslog_path(const char *target, const char **path)
{
    size_t  len;

    if (strcmp(target, "syslog") == 0) {
        *path = "/dev/log";
        return 1;
    }

    if (strncmp(target, "syslog:", 7) != 0) {
        return 0;
    }

    /* nginx's ",facility=...,tag=..." are not taken: not part of a path */
    len = strlen(LOG_SYSLOG_PREFIX);
    if (strncmp(target, LOG_SYSLOG_PREFIX, len) != 0
        || target[len] != '/'
        || strchr(target + len, ',') != NULL
        || strlen(target + len) >= sizeof(log_syslog_addr.sun_path))
    {
        return -1;
    }

    *path = target + len;
    return 1;
}


int
offload_log_open(const char *target, int level, int json, const char *ident)
{
    int          fd;
    const char  *path;

    offload_log_level = level;
    log_json = json;
    log_ident = ident;

    if (gethostname(log_host, sizeof(log_host)) != 0) {
        strcpy(log_host, "-");
    }
    log_host[sizeof(log_host) - 1] = '\0';

    if (log_lost_node == NULL) {
        log_lost_node = offload_shm_map(sizeof(*log_lost_node));
        if (log_lost_node == NULL) {
            return -1;
        }
    }

    if (strcmp(target, "stderr") == 0) {
        stderr_unblock();
        return 0;
    }

    switch (offload_log_syslog_path(target, &path)) {

    case 1:
        log_syslog_addr.sun_family = AF_UNIX;
        strcpy(log_syslog_addr.sun_path, path);
        log_syslog = 1;
        log_fd = -1;

        /* as syslog(3): a daemon not there yet is tried at every line */
        if (syslog_connect() != 0) {
            fprintf(stderr, "offload-sidecar: syslog %s: %s (lines are "
                    "counted lost until it takes them)\n", path,
                    strerror(errno));
        }
        return 0;

    case -1:
        errno = EINVAL;
        return -1;
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
offload_log_check(const char *target)
{
    char          dir[PATH_MAX];
    const char   *path;
    struct stat   st;

    if (strcmp(target, "stderr") == 0) {
        return 0;
    }

    switch (offload_log_syslog_path(target, &path)) {

    case 1:
        return 0;

    case -1:
        errno = EINVAL;
        return -1;
    }

    if (stat(target, &st) == 0 && S_ISDIR(st.st_mode)) {
        errno = EISDIR;
        return -1;
    }

    /* as the effective ids (the user's, while privs.c lends them) */
    if (faccessat(AT_FDCWD, target, W_OK, AT_EACCESS) == 0) {
        return 0;
    }

    if (errno != ENOENT) {
        return -1;
    }

    /* made at start, in a folder that must be there; not made here: a
     * file -t made as root, the sidecar running as its user could not
     * write */
    if (snprintf(dir, sizeof(dir), "%s", target) >= (int) sizeof(dir)) {
        errno = ENAMETOOLONG;
        return -1;
    }

    return faccessat(AT_FDCWD, dirname(dir), W_OK, AT_EACCESS);
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

    /* dup3 swaps the file under log_fd at once: no line goes nowhere */
    if (dup3(fd, log_fd, O_CLOEXEC) == -1) {
        close(fd);
        return -1;
    }

    close(fd);
    return 0;
}


void
offload_log_forked(void)
{
    log_lost = 0;
    log_stalled = 0;
    log_cut = 0;
}


unsigned long
offload_log_lost_total(void)
{
    return log_lost_node == NULL
           ? 0 : __atomic_load_n(log_lost_node, __ATOMIC_RELAXED);
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


/* Appends len bytes: the caller made room (put_json: 7 bytes). */
static void
put_raw_n(char *buf, size_t *n, const char *s, size_t len)
{
    memcpy(buf + *n, s, len);
    *n += len;
}


/* The length of the well-formed UTF-8 sequence s starts with (RFC 3629:
 * no overlong form, no surrogate, nothing past U+10FFFF), or 0.  s ends
 * with a NUL, which no test passes, so nothing past it is read. */
static size_t
utf8_len(const unsigned char *s)
{
    size_t         n, i;
    unsigned char  lo = 0x80, hi = 0xbf;

    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        n = 2;

    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        n = 3;
        lo = (s[0] == 0xe0) ? 0xa0 : 0x80;
        hi = (s[0] == 0xed) ? 0x9f : 0xbf;

    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        n = 4;
        lo = (s[0] == 0xf0) ? 0x90 : 0x80;
        hi = (s[0] == 0xf4) ? 0x8f : 0xbf;

    } else {
        return 0;
    }

    if (s[1] < lo || s[1] > hi) {
        return 0;
    }

    for (i = 2; i < n; i++) {
        if (s[i] < 0x80 || s[i] > 0xbf) {
            return 0;
        }
    }

    return n;
}


/* Appends s to buf at *n as the inside of a JSON string, within size;
 * every control character escaped (C0, DEL, C1 as UTF-8 encodes it), so
 * that a terminal showing the line obeys none, and every byte that is not
 * part of well-formed UTF-8 (a handler's binary stderr, a line cut in a
 * character) U+FFFD, so that a strict parser takes the line. */
static void
put_json(char *buf, size_t size, size_t *n, const char *s)
{
    size_t         len;
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

        } else if (c < 0x80) {
            buf[(*n)++] = (char) c;

        } else if ((len = utf8_len((const unsigned char *) s)) == 0) {
            put_raw_n(buf, n, "\\ufffd", 6);

        } else {
            put_raw_n(buf, n, s, len);
            s += len - 1;
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
    int             saved_errno = errno;    /* a caller may say it next */
    char            message[2048];
    va_list         ap;
    struct timeval  tv;

    va_start(ap, fmt);
    if (vsnprintf(message, sizeof(message), fmt, ap) < 0) {
        message[0] = '\0';
    }
    va_end(ap);

    gettimeofday(&tv, NULL);

    if (log_lost > 0) {
        log_lost_say(&tv);
    }

    if (log_line(level, &tv, message) != 0) {
        log_lost++;
        log_lost_errno = errno;
        if (log_lost_node != NULL) {
            __atomic_add_fetch(log_lost_node, 1, __ATOMIC_RELAXED);
        }
    }

    errno = saved_errno;
}


/* "<30>Dec  5 18:10:00 offload-sidecar[1234]: message", as syslog(3)
 * sends it (facility daemon). */
static size_t
format_syslog(char *line, size_t size, int level, const struct timeval *tv,
    const char *message)
{
    int        n;
    char       stamp[32];
    struct tm  tm;

    localtime_r(&tv->tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%b %e %H:%M:%S", &tm);

    n = snprintf(line, size, "<%d>%s %s[%d]: %s",
                 LOG_DAEMON | syslog_levels[level], stamp, log_ident,
                 (int) getpid(), message);

    return n < 0 ? 0 : (size_t) n < size ? (size_t) n : size - 1;
}


/* Formats and writes one line.  Returns 0, or -1 with errno set when the
 * target refuses it (a full disk, an I/O error, a reader that takes
 * nothing): counted by the caller, never failed over. */
static int
log_line(int level, const struct timeval *tv, const char *message)
{
    char    line[LOG_LINE_MAX];
    char   *p = line + 1;       /* line[0]: a newline ending a cut line */
    size_t  len, size = sizeof(line) - 2;

    if (log_syslog) {
        len = format_syslog(p, size, level, tv, message);
    } else if (log_json) {
        len = format_json(p, size, level, tv, message);
    } else {
        len = format_text(p, size, level, tv, message);
    }

    if (log_syslog || !log_json) {
        offload_log_unctrl(p, len);     /* json escapes them itself */
    }

    if (!log_syslog) {
        p[len++] = '\n';               /* a datagram is its own line */
    }

    if (log_cut) {
        *--p = '\n';
        len++;
    }

    return log_put(p, len);
}


/* Waits until log_fd takes bytes again, within the line's LOG_WAIT_MS
 * (*until: 0 before its first wait).  Returns 1 if it may. */
static int
log_wait(int64_t *until)
{
    int64_t        now = offload_mono_us() / 1000;
    struct pollfd  pfd = { .fd = log_fd, .events = POLLOUT };

    if (*until == 0) {
        *until = now + LOG_WAIT_MS;
    }

    if (now >= *until) {
        return 0;
    }

    return poll(&pfd, 1, (int) (*until - now)) != 0;    /* EINTR: again */
}


/* One write of what is left of a line, as log_how says. */
static ssize_t
log_write(const char *p, size_t len)
{
    ssize_t       n;
    struct iovec  iov = { .iov_base = (void *) p, .iov_len = len };

    switch (log_how) {

    case LOG_BY_SEND:
        return send(log_fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);

    case LOG_BY_NOWAIT:
        n = pwritev2(log_fd, &iov, 1, -1, RWF_NOWAIT);
        if (n != -1 || errno != EOPNOTSUPP) {
            return n;
        }

        log_how = LOG_BY_WRITE; /* before Linux 6.4: blocking, as said */
        /* fall through */

    default:
        return write(log_fd, p, len);
    }
}


/* Writes len bytes, waiting for a reader that takes none LOG_WAIT_MS at
 * most, and not at all once a line waited in vain, until one gets
 * through.  Returns 0, or -1 with errno set; a line that went out in part
 * is ended by a newline in front of the next. */
static int
log_put(const char *p, size_t len)
{
    int      err = 0, reconnected = 0;
    size_t   done = 0;
    ssize_t  n;
    int64_t  until = 0;

    while (done < len) {
        n = log_write(p + done, len - done);

        if (n > 0) {
            done += (size_t) n;
            continue;
        }

        err = n == 0 ? ENOSPC : errno;

        if (err == EINTR) {
            continue;
        }

        if (log_syslog && !reconnected
            && (err == ECONNREFUSED || err == ENOTCONN || log_fd == -1))
        {
            reconnected = 1;
            if (syslog_connect() == 0) {
                continue;
            }
            err = errno;
        }

        if (err != EAGAIN || log_stalled || !log_wait(&until)) {
            break;
        }
    }

    if (done == len) {
        log_cut = 0;
        log_stalled = 0;
        return 0;
    }

    if (done > 0) {
        log_cut = 1;
    }

    if (err == EAGAIN) {
        log_stalled = 1;
    }

    errno = err;
    return -1;
}


/* The lines the target refused, said with the first line it takes again:
 * a gap in the log is never silent. */
static void
log_lost_say(const struct timeval *tv)
{
    char  message[256], why[192], job[3];

    if (log_lost_errno == EAGAIN) {
        snprintf(why, sizeof(why), "its reader took none within %d ms",
                 LOG_WAIT_MS);
    } else if (log_syslog) {
        snprintf(why, sizeof(why), "syslog %s: %s", log_syslog_addr.sun_path,
                 strerror(log_lost_errno));
    } else {
        snprintf(why, sizeof(why), "%s", strerror(log_lost_errno));
    }

    snprintf(message, sizeof(message), "%lu log line%s lost: %s", log_lost,
             log_lost == 1 ? "" : "s", why);

    /* the lines were the process's, not the current job's */
    job[0] = log_job_id[0];
    job[1] = log_rid[0];
    job[2] = log_trace_id[0];
    log_job_id[0] = log_rid[0] = log_trace_id[0] = '\0';

    if (log_line(OFFLOAD_LOG_WARN, tv, message) == 0) {
        log_lost = 0;
    }

    log_job_id[0] = job[0];
    log_rid[0] = job[1];
    log_trace_id[0] = job[2];
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
