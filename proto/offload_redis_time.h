
/*
 * offload_redis_time.h -- the answer to Redis' TIME, read alike by the
 * module, the sidecar, liboffload and offloadctl.
 */

#ifndef OFFLOAD_REDIS_TIME_H
#define OFFLOAD_REDIS_TIME_H

#include <stdint.h>

#include <hiredis/hiredis.h>


/* TIME's answer in us since the epoch, or -1 for anything else: not an
 * array of two strings of digits, seconds not after the epoch or past
 * year 5000, microseconds of a million or more. */
int64_t offload_redis_time_us(const redisReply *reply);


#endif /* OFFLOAD_REDIS_TIME_H */
