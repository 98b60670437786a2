/*
 * slot_test.c -- Redis Cluster's key slot (proto/offload_slot.c), printed
 * as TAP.  The expected slots are what CLUSTER KEYSLOT of a Redis 7.0.15
 * cluster node answered for the same keys.
 */

#include <string.h>

#include "offload_slot.h"
#include "tap.h"


static const struct {
    const char  *key;
    unsigned     slot;
} known[] = {
    { "123456789", 12739 },         /* the CRC16 check value, 0x31c3 */
    { "foo", 12182 },
    { "bar", 5061 },
    { "{user1000}.following", 3443 },
    { "{user1000}.followers", 3443 },
    { "foo{}{bar}", 8363 },         /* an empty tag: the whole key */
    { "foo{{bar}}zap", 4015 },      /* the tag is "{bar" */
    { "foo{bar}{zap}", 5061 },      /* the first tag only */
    { "}{x}", 16287 },
    { "a{b", 13340 },               /* no closing brace: the whole key */
    { "{", 4092 },
    { "", 0 },
    { "offload:{echo}:jobs", 14438 },
    { "echo", 14438 },
    { "offload:{ctl}:nodes", 11148 },
    { OFFLOAD_CTL_TAG, 11148 },
    { "sha256", 14555 },
};


int
main(void)
{
    size_t  i;

    for (i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        ok(offload_key_slot(known[i].key, strlen(known[i].key))
           == known[i].slot, "slot of \"%s\" is %u", known[i].key,
           known[i].slot);
    }

    return done_testing();
}
