/*
 * log.h -- the sidecar's one logger: a target (stderr, a file or syslog)
 * and a level, set once from the config.
 *
 * The level check is a macro so that a debug line on the job path costs one
 * comparison when debug logging is off.
 */

#ifndef OFFLOAD_LOG_H
#define OFFLOAD_LOG_H

#include <stddef.h>
#include <sys/types.h>

#include "offload_proto.h"

enum {
    OFFLOAD_LOG_DEBUG = 0,
    OFFLOAD_LOG_INFO,
    OFFLOAD_LOG_NOTICE,
    OFFLOAD_LOG_WARN,
    OFFLOAD_LOG_ERROR
};

extern int  offload_log_level;

/* Returns the level for a name ("debug" ... "error"), or -1. */
int offload_log_level_parse(const char *name);

/* target: "stderr", "syslog" (/dev/log), "syslog:server=unix:/path" or a
 * file path (opened for appending); json: one JSON object a line
 * (ECS-style fields: @timestamp, log.level, message, service, host, pid,
 * and queue, job.id, request.id while a job runs) instead of text.
 * Returns 0, or -1 with errno set when the file cannot be opened (a
 * syslog daemon not there yet is said on stderr, and tried at each line). */
int offload_log_open(const char *target, int level, int json,
    const char *ident);

/* For -t: whether offload_log_open could open target: a file writable,
 * or, missing, a folder to make it in (not made: one made by -t as root
 * the sidecar's user could not write); a syslog daemon is not asked.
 * Returns 0, or -1 with errno set. */
int offload_log_check(const char *target);

/* Whether only root could have arranged path: every folder on it, as
 * written, is root's, writable by none else (a folder above the log's
 * may be, with the sticky bit), none is a symbolic link, nor is the log.
 * Started as root, the sidecar opens a log there itself (privs.c). */
int offload_log_roots_path(const char *path);

/* Opens the log file again (SIGUSR1, after logrotate moved it).  Returns 0,
 * or -1 with errno set (the old file stays in use). */
int offload_log_reopen(void);

/* Whether target is syslog: 1 with the daemon's socket's path in *path,
 * 0 if not, -1 if it says "syslog:" but not "syslog:server=unix:/path"
 * (absolute, without a comma, short enough for a socket's). */
int offload_log_syslog_path(const char *target, const char **path);

/* In a child just forked: the lines its parent lost are the parent's to
 * say, and its own first line waits for a stalled reader again. */
void offload_log_forked(void);

/* The lines the log's target refused (a full disk, a reader that stopped
 * reading) since offload_log_open, by every process of the node. */
unsigned long offload_log_lost_total(void);

/* The queue a worker process serves, and the job it runs (NULL: none),
 * added to every line it logs so one grep finds all of a job. */
void offload_log_queue(const char *queue);
void offload_log_job(const offload_entry_t *job);

/* The same for a job known by its ids alone (the supervisor speaks of a
 * worker's job from its scoreboard): NULL or "" for one not known. */
void offload_log_job_ids(const char *job_id, const char *request_id,
    const char *trace_id);

/* Text shown, not obeyed, as one line: each byte of a control character
 * (C0 but tab, DEL, C1 as UTF-8 encodes it: 0xc2 0x80..0x9f) made '?', in
 * place.  Text lines and syslog get it (a message may quote what a job or
 * Redis holds: a newline would forge a line, an escape sequence rewrite a
 * terminal); JSON lines escape instead. */
void offload_log_unctrl(char *s, size_t len);

void offload_log_write(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * A command Redis refuses at every try while something lasts (BUSY while a
 * script runs too long, OOM under noeviction, LOADING): the log says so
 * when the refusals begin and when they end, not a line a try.  *count
 * counts the episode's refusals; who and what name the command; err is
 * Redis' error, NULL for an answer.  Returns 1 for a refusal.
 */
int offload_log_refused(unsigned long *count, const char *who,
    const char *what, const char *err);

#define offload_log(level, ...)                                              \
    do {                                                                     \
        if ((level) >= offload_log_level) {                                  \
            offload_log_write(level, __VA_ARGS__);                           \
        }                                                                    \
    } while (0)

#define log_debug(...)   offload_log(OFFLOAD_LOG_DEBUG, __VA_ARGS__)
#define log_info(...)    offload_log(OFFLOAD_LOG_INFO, __VA_ARGS__)
#define log_notice(...)  offload_log(OFFLOAD_LOG_NOTICE, __VA_ARGS__)
#define log_warn(...)    offload_log(OFFLOAD_LOG_WARN, __VA_ARGS__)
#define log_error(...)   offload_log(OFFLOAD_LOG_ERROR, __VA_ARGS__)

#endif /* OFFLOAD_LOG_H */
