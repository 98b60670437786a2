/*
 * handler_log.h -- what the worker tells offload.h's logging calls
 * (handler_log.c).
 */

#ifndef OFFLOAD_HANDLER_LOG_H
#define OFFLOAD_HANDLER_LOG_H

/* The name a handler's lines start with ("worker q:0"), kept (not
 * copied): the worker's, set before its handler's init. */
void offload_handler_log_name(const char *name);

#endif /* OFFLOAD_HANDLER_LOG_H */
