
/*
 * offload_slot.c -- Redis Cluster's key slot (offload_slot.h).
 *
 * Redis spells the function out in its cluster specification: CRC16 with
 * the XMODEM parameters (polynomial 0x1021, initial value 0, no reflection)
 * of the key's hash tag, modulo 16384.  No Debian library exports it (not
 * hiredis 0.14, not libcrypto), and the bitwise form is a few lines; the
 * unit test checks it against a real cluster's CLUSTER KEYSLOT.
 */

#include <string.h>

#include "offload_slot.h"


static unsigned
crc16_xmodem(const char *p, size_t len)
{
    unsigned  crc = 0;
    size_t    i;
    int       bit;

    for (i = 0; i < len; i++) {
        crc ^= (unsigned) (unsigned char) p[i] << 8;

        for (bit = 0; bit < 8; bit++) {
            crc = (crc & 0x8000) ? (crc << 1) ^ 0x1021 : crc << 1;
        }

        crc &= 0xffff;
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
