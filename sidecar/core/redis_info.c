/*
 * redis_info.c -- reads one field of a Redis INFO reply: lines of
 * "<field>:<value>\r\n" under "# Section" headings.  A field is matched at
 * a line's start only, so "hz" is not found in "configured_hz".
 */

#include <string.h>

#include "redis_info.h"


int
offload_redis_info_field(const char *info, const char *field, char *buf,
    size_t size)
{
    size_t       n = strlen(field), len;
    const char  *p = info;

    while ((p = strstr(p, field)) != NULL) {
        if ((p == info || p[-1] == '\n') && p[n] == ':') {
            p += n + 1;
            len = strcspn(p, "\r\n");
            if (len >= size) {
                return -1;
            }
            memcpy(buf, p, len);
            buf[len] = '\0';
            return 0;
        }
        p += n;
    }

    return -1;
}
