/*
 * handlers.c -- the registry of built-in handlers and the small helpers
 * they share.
 */

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "handler.h"


static const offload_handler_t  *handlers[] = {
    &offload_handler_echo,
    &offload_handler_sha256,
    &offload_handler_spin,
    &offload_handler_sleep,
    &offload_handler_aggregate,
    &offload_handler_crash,
    &offload_handler_abort,
    &offload_handler_exit,
    &offload_handler_hang,
    &offload_handler_leak,
    &offload_handler_flaky,
};


const offload_handler_t *
offload_handler_find(const char *name)
{
    size_t  i;

    for (i = 0; i < sizeof(handlers) / sizeof(handlers[0]); i++) {
        if (strcmp(handlers[i]->name, name) == 0) {
            return handlers[i];
        }
    }

    return NULL;
}


int
offload_handler_fail(offload_handler_error_t *err, const char *fmt, ...)
{
    va_list  ap;

    va_start(ap, fmt);
    vsnprintf(err->buf, sizeof(err->buf), fmt, ap);
    va_end(ap);

    err->message = err->buf;
    return -1;
}


int
offload_handler_int_member(json_t *obj, const char *key, json_int_t min,
    json_int_t max, json_int_t *value, offload_handler_error_t *err)
{
    json_t      *v;
    json_int_t   n;

    v = json_object_get(obj, key);
    if (v == NULL) {
        return 0;
    }

    if (!json_is_integer(v)) {
        return offload_handler_fail(err, "\"%s\" must be an integer", key);
    }

    n = json_integer_value(v);
    if (n < min || n > max) {
        return offload_handler_fail(err, "\"%s\" must be %lld..%lld", key,
                                    (long long) min, (long long) max);
    }

    *value = n;
    return 0;
}


int
offload_handler_ms_input(json_t *input, json_int_t max, json_int_t *ms,
    offload_handler_error_t *err)
{
    *ms = -1;

    if (!json_is_object(input)) {
        return offload_handler_fail(err, "input must be an object {\"ms\": n}");
    }

    if (offload_handler_int_member(input, "ms", 0, max, ms, err) != 0) {
        return -1;
    }

    if (*ms < 0) {
        return offload_handler_fail(err, "\"ms\" is required");
    }

    return 0;
}
