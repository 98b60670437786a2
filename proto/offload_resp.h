/*
 * offload_resp.h -- a command's RESP text (an array of bulk strings), written by
 * hand: the bytes hiredis' redisFormatCommandArgv() makes, without its
 * cost (hiredis 0.14 grows an sds and runs sdscatfmt() for every argument:
 * most of a worker's instructions per echo job went there).
 */

#ifndef OFFLOAD_RESP_H
#define OFFLOAD_RESP_H

#include <stddef.h>

/* "<type><n>\r\n" at p (25 bytes at most): a command's first line ('*',
 * its argument count) or an argument's ('$', its length); returns the
 * end. */
char *offload_resp_line(char *p, char type, size_t n);

/* The bytes the command argv (argvlen NULL: argv's strlen()s) takes. */
size_t offload_resp_size(int argc, const char **argv, const size_t *argvlen);

/* Writes the command into buf, offload_resp_size() bytes, and a NUL after
 * them (buf holds one byte more): hiredis 0.14 reads the byte after a
 * command's first argument, to see whether a second one follows. */
void offload_resp_write(char *buf, int argc, const char **argv,
    const size_t *argvlen);

#endif
