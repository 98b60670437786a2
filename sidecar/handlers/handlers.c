/*
 * handlers.c -- finds each queue's handler by name, among the built-in
 * ones (sidecar/handlers/, each file a module as a plugin would be) and
 * those of the plugins the config loads.  A name is defined once: a plugin
 * cannot shadow a built-in handler or another plugin's.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "exec_bridge.h"
#include "handlers.h"
#include "builtin.h"
#include "plugin.h"


static const offload_module_t  *builtins[] = {
    &offload_builtin_echo,
    &offload_builtin_sha256,
    &offload_builtin_spin,
    &offload_builtin_sleep,
    &offload_builtin_aggregate,
    &offload_builtin_faults,
    &offload_exec_module,       /* a program in any language */
};


static const offload_handler_t *
module_find(const offload_module_t *m, const char *name)
{
    const offload_handler_t  *h;

    for (h = m->handlers; h->name != NULL; h++) {
        if (strcmp(h->name, name) == 0) {
            return h;
        }
    }

    return NULL;
}


const offload_handler_t *
offload_builtin_find(const char *name)
{
    size_t                    i;
    const offload_handler_t  *h;

    for (i = 0; i < sizeof(builtins) / sizeof(builtins[0]); i++) {
        h = module_find(builtins[i], name);
        if (h != NULL) {
            return h;
        }
    }

    return NULL;
}


int
offload_handler_is_fault(const offload_handler_t *handler)
{
    return handler != NULL
           && module_find(&offload_builtin_faults, handler->name) == handler;
}


/* The handler of that name among the built-ins and the first n plugins,
 * or NULL; *where says whose it is. */
static const offload_handler_t *
find(const offload_conf_t *conf, const offload_module_t **plugins, size_t n,
    const char *name, const char **where)
{
    size_t                    i;
    const offload_handler_t  *h;

    *where = "a built-in handler";

    h = offload_builtin_find(name);

    for (i = 0; h == NULL && i < n; i++) {
        h = module_find(plugins[i], name);
        *where = conf->modules[i].path;
    }

    return h;
}


/* The same file by two paths ("./x.so", a symbolic link): the same plugin
 * loaded twice. */
static int
same_file(const char *a, const char *b)
{
    struct stat  sa, sb;

    if (stat(a, &sa) != 0 || stat(b, &sb) != 0) {
        return strcmp(a, b) == 0;
    }

    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}


int
offload_handlers_resolve(offload_conf_t *conf, char *err, size_t errlen)
{
    char                      why[OFFLOAD_CONF_ERR_MAX];
    size_t                    i, k;
    const char               *where;
    offload_conf_queue_t     *q;
    const offload_handler_t  *h;
    const offload_module_t  **plugins;

    plugins = calloc(conf->nmodules + 1, sizeof(offload_module_t *));
    if (plugins == NULL) {
        snprintf(err, errlen, "%s: out of memory", conf->file);
        return -1;
    }

    for (i = 0; i < conf->nmodules; i++) {
        for (k = 0; k < i; k++) {
            if (same_file(conf->modules[k].path, conf->modules[i].path)) {
                snprintf(err, errlen, "%s:%d: \"%s\" is loaded already, "
                         "by the load_module of line %d", conf->file,
                         conf->modules[i].line, conf->modules[i].path,
                         conf->modules[k].line);
                goto failed;
            }
        }

        plugins[i] = offload_plugin_load(conf->modules[i].path, why,
                                         sizeof(why));
        if (plugins[i] == NULL) {
            snprintf(err, errlen, "%s:%d: %s", conf->file,
                     conf->modules[i].line, why);
            goto failed;
        }

        for (h = plugins[i]->handlers; h->name != NULL; h++) {
            if (find(conf, plugins, i, h->name, &where) != NULL) {
                snprintf(err, errlen, "%s:%d: handler \"%s\" of \"%s\" is "
                         "already defined by %s", conf->file,
                         conf->modules[i].line, h->name,
                         conf->modules[i].path, where);
                goto failed;
            }
        }
    }

    for (i = 0; i < conf->nqueues; i++) {
        q = &conf->queues[i];

        q->handler = find(conf, plugins, conf->nmodules, q->handler_name,
                          &where);
        if (q->handler == NULL) {
            snprintf(err, errlen, "%s:%d: unknown handler \"%s\"",
                     conf->file, q->handler_line, q->handler_name);
            goto failed;
        }

        if (offload_handler_is_fault(q->handler) && !conf->fault_handlers) {
            snprintf(err, errlen, "%s:%d: handler \"%s\" of queue \"%s\" "
                     "crashes on purpose; it needs \"fault_handlers on\"",
                     conf->file, q->line, q->handler_name, q->name);
            goto failed;
        }
    }

    free(plugins);
    return 0;

failed:

    free(plugins);
    return -1;
}
