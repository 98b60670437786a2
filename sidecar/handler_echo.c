/*
 * handler_echo.c -- "echo": answers with its input, whatever JSON it is.
 * The cheapest possible job: it measures the queue itself.
 */

#include "handler.h"


static int
echo_run(json_t *input, json_t **output, offload_handler_error_t *err)
{
    (void) err;

    *output = json_incref(input);
    return 0;
}


const offload_handler_t  offload_handler_echo = { "echo", echo_run, 0 };
