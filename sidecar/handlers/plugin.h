/*
 * plugin.h -- loading a handler plugin (load_module): a shared object
 * that defines offload_module (offload.h).
 */

#ifndef OFFLOAD_PLUGIN_H
#define OFFLOAD_PLUGIN_H

#include <stddef.h>

#include "offload.h"

/* Loads the plugin at path (once: a path loaded before gives the same
 * module) and checks its module: the symbol, the ABI version, each
 * handler's name and run.  Returns the module, or NULL with a message
 * (without the file:line) in err. */
const offload_module_t *offload_plugin_load(const char *path, char *err,
    size_t errlen);

#endif /* OFFLOAD_PLUGIN_H */
