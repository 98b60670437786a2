/*
 * echo.c -- "echo": answers with its input, whatever JSON it is.  The
 * cheapest possible job: it measures the queue itself.
 *
 * The smallest handler there is, and the shape of every other: a run
 * function over the payload's bytes, a table of handlers and the module
 * that names them (a plugin's is called offload_module, see offload.h).
 */

#include "offload.h"


static int
echo_run(offload_job_t *job, const char *payload, size_t len)
{
    return offload_job_result(job, payload, len);
}


static const offload_handler_t  handlers[] = {
    { "echo", echo_run, NULL, NULL },
    { NULL, NULL, NULL, NULL }
};

const offload_module_t  offload_builtin_echo = {
    OFFLOAD_ABI_VERSION, handlers
};
