/*
 * redis_info.h -- one field of a Redis INFO reply.
 */

#ifndef OFFLOAD_REDIS_INFO_H
#define OFFLOAD_REDIS_INFO_H

#include <stddef.h>

/* The value of the line "<field>:<value>" of info into buf (size bytes,
 * NUL-terminated).  Returns 0, or -1 when info has no such line or its
 * value does not fit. */
int offload_redis_info_field(const char *info, const char *field, char *buf,
    size_t size);

#endif /* OFFLOAD_REDIS_INFO_H */
