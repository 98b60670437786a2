/*
 * slot_test.c -- Redis Cluster's key slot (proto/offload_slot.c), printed
 * as TAP.  The expected slots are what CLUSTER KEYSLOT of a Redis 7.0.15
 * cluster node answered for the same keys.
 */

#include <stdio.h>
#include <string.h>
#include <time.h>

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

    /* every slot has a 5-hex tag: a job id names any queue's slot */
    {
        char             tag[OFFLOAD_SLOT_TAG_LEN], again[OFFLOAD_SLOT_TAG_LEN];
        unsigned         slot, bad = 0, nothex = 0;
        double           first, all;
        struct timespec  t0, t1, t2;

        clock_gettime(CLOCK_MONOTONIC, &t0);
        offload_slot_tag(16383, tag);
        clock_gettime(CLOCK_MONOTONIC, &t1);

        for (slot = 0; slot < OFFLOAD_SLOTS; slot++) {
            offload_slot_tag(slot, tag);
            bad += offload_key_slot(tag, OFFLOAD_SLOT_TAG_LEN) != slot;
            nothex += strspn(tag, "0123456789abcdef") < OFFLOAD_SLOT_TAG_LEN;
        }

        clock_gettime(CLOCK_MONOTONIC, &t2);

        ok(bad == 0 && nothex == 0, "every slot's tag is 5 hex in it "
           "(%u wrong, %u not hex)", bad, nothex);

        offload_slot_tag(14438, tag);
        offload_slot_tag(14438, again);
        ok(memcmp(tag, again, OFFLOAD_SLOT_TAG_LEN) == 0
           && offload_key_slot(tag, OFFLOAD_SLOT_TAG_LEN) == 14438,
           "the tag of the queue echo's slot, again: %.5s", tag);

        first = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
        all = (t2.tv_sec - t1.tv_sec) * 1e3 + (t2.tv_nsec - t1.tv_nsec) / 1e6;
        printf("# slot tag search: one slot %.3f ms, all 16384 %.1f ms\n",
               first, all);
    }

    return done_testing();
}
