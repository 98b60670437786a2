/*
 * handler_log.c -- offload.h's logging calls: a handler's line in the
 * sidecar's log, at the level it names, through the worker's logger, so it
 * starts with the worker's name ("worker q:0: handler: ..."), carries what
 * its every line does while a job runs (the job's id, request id and trace
 * id) and goes where the log goes (a file, syslog, JSON lines).  What a
 * plugin writes to stdout or stderr itself goes where the sidecar's own
 * do, untagged.
 */

#include <stdarg.h>
#include <stdio.h>

#include "handler_log.h"
#include "log.h"
#include "offload.h"

#define HANDLER_LINE_MAX  2048

static const char  *handler_name = "offloadctl replay";


void
offload_handler_log_name(const char *name)
{
    handler_name = name;
}


static void
handler_log(int level, const char *fmt, va_list ap)
{
    char  line[HANDLER_LINE_MAX];

    if (level < offload_log_level) {
        return;
    }

    vsnprintf(line, sizeof(line), fmt, ap);
    offload_log_write(level, "%s: handler: %s", handler_name, line);
}


void
offload_log_info(const char *fmt, ...)
{
    va_list  ap;

    va_start(ap, fmt);
    handler_log(OFFLOAD_LOG_INFO, fmt, ap);
    va_end(ap);
}


void
offload_log_warn(const char *fmt, ...)
{
    va_list  ap;

    va_start(ap, fmt);
    handler_log(OFFLOAD_LOG_WARN, fmt, ap);
    va_end(ap);
}


void
offload_log_error(const char *fmt, ...)
{
    va_list  ap;

    va_start(ap, fmt);
    handler_log(OFFLOAD_LOG_ERROR, fmt, ap);
    va_end(ap);
}
