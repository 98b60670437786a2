/*
 * handlers.h -- every handler a queue can name: the built-in ones
 * (sidecar/handlers/) and those of the plugins a config loads.
 */

#ifndef OFFLOAD_HANDLERS_H
#define OFFLOAD_HANDLERS_H

#include <stddef.h>

#include "conf.h"
#include "offload.h"

/* Loads conf's plugins (load_module; a path loaded before is not loaded
 * again) and finds each queue's handler among the built-in ones and those
 * plugins'.  Returns 0, or -1 with "file:line: message" in err: a plugin
 * that cannot be loaded, has no offload_module, speaks another ABI version
 * or defines a handler name already defined; an unknown handler; a fault
 * handler without "fault_handlers on". */
int offload_handlers_resolve(offload_conf_t *conf, char *err, size_t errlen);

/* Whether a handler crashes on purpose (needs "fault_handlers on"). */
int offload_handler_is_fault(const offload_handler_t *handler);

/* The built-in handler of that name, or NULL. */
const offload_handler_t *offload_builtin_find(const char *name);

#endif /* OFFLOAD_HANDLERS_H */
