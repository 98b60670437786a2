/*
 * plugin.c -- loads handler plugins with dlopen(RTLD_NOW), in the
 * supervisor before it forks, so every worker shares their pages and a
 * missing symbol is found by `offload-sidecar -t`, not by a worker's first
 * job.  A plugin is never unloaded once accepted: the handlers of a pool
 * retired by a reload may still be named by its configuration.
 */

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "conf.h"
#include "plugin.h"


const offload_module_t *
offload_plugin_load(const char *path, char *err, size_t errlen)
{
    void                     *so;
    const char               *why;
    const offload_module_t   *m;
    const offload_handler_t  *h, *before;

    so = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (so == NULL) {
        why = dlerror();
        snprintf(err, errlen, "cannot load \"%s\": %s", path,
                 why ? why : "unknown error");
        return NULL;
    }

    m = dlsym(so, "offload_module");
    if (m == NULL) {
        snprintf(err, errlen, "\"%s\" defines no \"offload_module\" symbol "
                 "(see offload.h)", path);
        goto failed;
    }

    if (m->abi_version < 1 || m->abi_version > OFFLOAD_ABI_VERSION) {
        snprintf(err, errlen, "\"%s\" was built for handler ABI version %u; "
                 "this sidecar speaks versions 1 to %d", path,
                 m->abi_version, OFFLOAD_ABI_VERSION);
        goto failed;
    }

    if (m->handlers == NULL || m->handlers[0].name == NULL) {
        snprintf(err, errlen, "\"%s\" defines no handler", path);
        goto failed;
    }

    for (h = m->handlers; h->name != NULL; h++) {
        if (!offload_conf_handler_name_valid(h->name)) {
            snprintf(err, errlen, "\"%s\" defines a handler with an invalid "
                     "name \"%.80s\"", path, h->name);
            goto failed;
        }

        if (h->run == NULL) {
            snprintf(err, errlen, "handler \"%s\" of \"%s\" has no run "
                     "function", h->name, path);
            goto failed;
        }

        for (before = m->handlers; before != h; before++) {
            if (strcmp(before->name, h->name) == 0) {
                snprintf(err, errlen, "\"%s\" defines handler \"%s\" twice",
                         path, h->name);
                goto failed;
            }
        }
    }

    return m;

failed:

    /* Unmapped unless an earlier load holds it (then one reference less);
     * its constructors have run, though. */
    dlclose(so);
    return NULL;
}
