
/*
 * offload_slot.c -- Redis Cluster's key slot (offload_slot.h).
 *
 * Redis spells the function out in its cluster specification: CRC16 with
 * the XMODEM parameters (polynomial 0x1021, initial value 0, no reflection)
 * of the key's hash tag, modulo 16384.  No Debian library exports it (not
 * hiredis 0.14, not libcrypto), and a 16-entry table is a few lines; the
 * unit test checks it against a real cluster's CLUSTER KEYSLOT.
 *
 * The slot tags of job ids (offload_slot_tag()) are searched lazily, slot
 * by slot: a table of all 16384 would cost every process ~1M CRCs up front
 * for the few slots its queues are in.  liboffload may be called from
 * several threads: a tag is searched in a local buffer and published in
 * one atomic store of one word, so a reader sees none or the whole tag.
 */

#include <stdint.h>
#include <string.h>

#include "offload_slot.h"


/* The CRC of each 4 bits shifted out at the top, i << 12 divided by the
 * polynomial: two lookups a byte, where the bitwise form took eight steps
 * (the module takes the slot of a job's queue for every job). */
static const uint16_t  crc16_nibble[16] = {
    0x0000, 0x1021, 0x2042, 0x3063, 0x4084, 0x50a5, 0x60c6, 0x70e7,
    0x8108, 0x9129, 0xa14a, 0xb16b, 0xc18c, 0xd1ad, 0xe1ce, 0xf1ef
};


static unsigned
crc16_update(unsigned crc, unsigned char c)
{
    crc ^= (unsigned) c << 8;
    crc = (crc << 4) ^ crc16_nibble[(crc >> 12) & 0xf];
    crc = (crc << 4) ^ crc16_nibble[(crc >> 12) & 0xf];

    return crc & 0xffff;
}


static unsigned
crc16_xmodem(const char *p, size_t len)
{
    unsigned  crc = 0;
    size_t    i;

    for (i = 0; i < len; i++) {
        crc = crc16_update(crc, (unsigned char) p[i]);
    }

    return crc;
}


unsigned
offload_key_slot(const char *key, size_t len)
{
    const char  *open, *close;

    open = memchr(key, '{', len);

    if (open != NULL) {
        close = memchr(open + 1, '}', len - (open + 1 - key));

        if (close != NULL && close > open + 1) {
            key = open + 1;
            len = close - key;
        }
    }

    return crc16_xmodem(key, len) % OFFLOAD_SLOTS;
}


static const char  hex[] = "0123456789abcdef";


/* Fills tag[depth..] with the first hex digits after crc (the CRC of
 * tag[0..depth-1]) that end in slot; 1 when found.  Each CRC of a prefix
 * is computed once: a search costs about one CRC step per string tried. */
static int
slot_tag_search(unsigned crc, unsigned depth, unsigned slot, char *tag)
{
    unsigned  i, c;

    for (i = 0; i < 16; i++) {
        tag[depth] = hex[i];
        c = crc16_update(crc, (unsigned char) hex[i]);

        if (depth + 1 == OFFLOAD_SLOT_TAG_LEN
            ? c % OFFLOAD_SLOTS == slot
            : slot_tag_search(c, depth + 1, slot, tag))
        {
            return 1;
        }
    }

    return 0;
}


void
offload_slot_tag(unsigned slot, char *tag)
{
    char             buf[OFFLOAD_SLOT_TAG_LEN];
    unsigned         i;
    uint64_t         word;
    static uint64_t  found[OFFLOAD_SLOTS];   /* once known: the tag's
                                                bytes, 0 before */

    slot %= OFFLOAD_SLOTS;

    word = __atomic_load_n(&found[slot], __ATOMIC_ACQUIRE);

    if (word == 0) {
        /* two threads may both search a slot: they find the same tag */
        (void) slot_tag_search(0, 0, slot, buf);

        for (i = 0; i < OFFLOAD_SLOT_TAG_LEN; i++) {
            word |= (uint64_t) (unsigned char) buf[i] << (8 * i);
        }

        __atomic_store_n(&found[slot], word, __ATOMIC_RELEASE);
    }

    for (i = 0; i < OFFLOAD_SLOT_TAG_LEN; i++) {
        tag[i] = (char) (word >> (8 * i));
    }
}
