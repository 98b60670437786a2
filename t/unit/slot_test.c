/*
 * slot_test.c -- Redis Cluster's key slot (proto/offload_slot.c), printed
 * as TAP.  The expected slots are what CLUSTER KEYSLOT of a Redis 7.0.15
 * cluster node answered for the same keys.
 */

#include <pthread.h>
#include <stdint.h>
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


/* The tags of job ids: every slot has a 5-hex one (all 16^5 strings
 * hashed once here), and offload_slot_tag() gives the first in counting
 * order, for a sample of slots (a search each: all of them take seconds). */
static void
test_tags(void)
{
    char             tag[OFFLOAD_SLOT_TAG_LEN + 1];
    char             want[OFFLOAD_SLOT_TAG_LEN + 1];
    unsigned         n, slot, covered = 0, wrong = 0, tried = 0;
    double           ms, most = 0, sum = 0;
    static int32_t   first[OFFLOAD_SLOTS];
    struct timespec  t0, t1;

    for (slot = 0; slot < OFFLOAD_SLOTS; slot++) {
        first[slot] = -1;
    }

    for (n = 0; n < 1u << 20; n++) {
        snprintf(tag, sizeof(tag), "%05x", n);
        slot = offload_key_slot(tag, OFFLOAD_SLOT_TAG_LEN);

        if (first[slot] < 0) {
            first[slot] = (int32_t) n;
            covered++;
        }
    }

    ok(covered == OFFLOAD_SLOTS, "5 hex digits cover all %u slots (%u)",
       OFFLOAD_SLOTS, covered);

    for (slot = 0; slot < OFFLOAD_SLOTS; slot += slot < 16 ? 1 : 97) {
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
        offload_slot_tag(slot, tag);
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);

        ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
        sum += ms;
        most = ms > most ? ms : most;
        tried++;

        snprintf(want, sizeof(want), "%05x", (unsigned) first[slot]);
        wrong += memcmp(tag, want, OFFLOAD_SLOT_TAG_LEN) != 0;
    }

    ok(wrong == 0, "offload_slot_tag() gives the first tag of each of %u "
       "slots (%u wrong)", tried, wrong);

    offload_slot_tag(14438, tag);
    offload_slot_tag(14438, want);
    ok(memcmp(tag, want, OFFLOAD_SLOT_TAG_LEN) == 0
       && offload_key_slot(tag, OFFLOAD_SLOT_TAG_LEN) == 14438,
       "the tag of the queue echo's slot, again: %.5s", tag);

    printf("# slot tag search: %.3f ms of CPU a slot on average, %.3f ms "
           "at most (%u slots)\n", sum / tried, most, tried);
}


/* Two threads asking the same slots' tags at once (liboffload may run a
 * client per thread): each gets whole tags, never one the other is still
 * searching.  Slots test_tags() does not sample: none known yet. */

#define RACE_FIRST  20000u
#define RACE_SLOTS  400u

static void *
race_tags(void *arg)
{
    char       tag[OFFLOAD_SLOT_TAG_LEN];
    unsigned   i, slot;
    unsigned  *wrong = arg;

    for (i = 0; i < RACE_SLOTS; i++) {
        slot = (RACE_FIRST + i * 7) % OFFLOAD_SLOTS;

        if (slot >= 16 && (slot - 16) % 97 == 0) {
            continue;
        }

        offload_slot_tag(slot, tag);
        *wrong += offload_key_slot(tag, OFFLOAD_SLOT_TAG_LEN) != slot;
    }

    return NULL;
}


static void
test_threads(void)
{
    unsigned   wrong[2] = { 0, 0 };
    pthread_t  t;

    if (pthread_create(&t, NULL, race_tags, &wrong[0]) != 0) {
        ok(0, "a second thread");
        return;
    }

    (void) race_tags(&wrong[1]);
    pthread_join(t, NULL);

    ok(wrong[0] == 0 && wrong[1] == 0, "two threads searching the same "
       "slots' tags at once get whole tags (%u and %u wrong)", wrong[0],
       wrong[1]);
}


int
main(void)
{
    size_t  i;

    for (i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        ok(offload_key_slot(known[i].key, strlen(known[i].key))
           == known[i].slot, "slot of \"%s\" is %u", known[i].key,
           known[i].slot);
    }

    test_tags();
    test_threads();

    return done_testing();
}
