/*
 * sha256.c -- SHA-256 as specified by FIPS 180-4, section 6.2.
 */

#include <string.h>

#include "sha256.h"


static const uint32_t  k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
    0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
    0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2
};


#define ROTR(x, n)  (((x) >> (n)) | ((x) << (32 - (n))))


static void
compress(uint32_t state[8], const uint8_t block[64])
{
    int       t;
    uint32_t  w[64], a, b, c, d, e, f, g, h, t1, t2, s0, s1;

    for (t = 0; t < 16; t++) {
        w[t] = (uint32_t) block[4 * t] << 24
               | (uint32_t) block[4 * t + 1] << 16
               | (uint32_t) block[4 * t + 2] << 8
               | (uint32_t) block[4 * t + 3];
    }

    for (t = 16; t < 64; t++) {
        s0 = ROTR(w[t - 15], 7) ^ ROTR(w[t - 15], 18) ^ (w[t - 15] >> 3);
        s1 = ROTR(w[t - 2], 17) ^ ROTR(w[t - 2], 19) ^ (w[t - 2] >> 10);
        w[t] = w[t - 16] + s0 + w[t - 7] + s1;
    }

    a = state[0]; b = state[1]; c = state[2]; d = state[3];
    e = state[4]; f = state[5]; g = state[6]; h = state[7];

    for (t = 0; t < 64; t++) {
        t1 = h + (ROTR(e, 6) ^ ROTR(e, 11) ^ ROTR(e, 25))
             + ((e & f) ^ (~e & g)) + k[t] + w[t];
        t2 = (ROTR(a, 2) ^ ROTR(a, 13) ^ ROTR(a, 22))
             + ((a & b) ^ (a & c) ^ (b & c));
        h = g; g = f; f = e; e = d + t1;
        d = c; c = b; b = a; a = t1 + t2;
    }

    state[0] += a; state[1] += b; state[2] += c; state[3] += d;
    state[4] += e; state[5] += f; state[6] += g; state[7] += h;
}


void
offload_sha256_init(offload_sha256_t *ctx)
{
    static const uint32_t  h0[8] = {
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
        0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19
    };

    memcpy(ctx->state, h0, sizeof(h0));
    ctx->bytes = 0;
    ctx->used = 0;
}


void
offload_sha256_update(offload_sha256_t *ctx, const void *data, size_t len)
{
    const uint8_t  *p = data;
    size_t          n;

    ctx->bytes += len;

    if (ctx->used > 0) {
        n = 64 - ctx->used;
        if (n > len) {
            n = len;
        }
        memcpy(ctx->block + ctx->used, p, n);
        ctx->used += n;
        p += n;
        len -= n;

        if (ctx->used < 64) {
            return;
        }
        compress(ctx->state, ctx->block);
        ctx->used = 0;
    }

    while (len >= 64) {
        compress(ctx->state, p);
        p += 64;
        len -= 64;
    }

    memcpy(ctx->block, p, len);
    ctx->used = len;
}


void
offload_sha256_final(offload_sha256_t *ctx, uint8_t digest[OFFLOAD_SHA256_LEN])
{
    int       i;
    uint64_t  bits = ctx->bytes * 8;

    /* Padding: 0x80, zeros up to 56 mod 64, then the bit length. */
    ctx->block[ctx->used++] = 0x80;

    if (ctx->used > 56) {
        memset(ctx->block + ctx->used, 0, 64 - ctx->used);
        compress(ctx->state, ctx->block);
        ctx->used = 0;
    }

    memset(ctx->block + ctx->used, 0, 56 - ctx->used);

    for (i = 0; i < 8; i++) {
        ctx->block[56 + i] = (uint8_t) (bits >> (56 - 8 * i));
    }
    compress(ctx->state, ctx->block);

    for (i = 0; i < 8; i++) {
        digest[4 * i] = (uint8_t) (ctx->state[i] >> 24);
        digest[4 * i + 1] = (uint8_t) (ctx->state[i] >> 16);
        digest[4 * i + 2] = (uint8_t) (ctx->state[i] >> 8);
        digest[4 * i + 3] = (uint8_t) ctx->state[i];
    }
}


void
offload_sha256(const void *data, size_t len, uint8_t digest[OFFLOAD_SHA256_LEN])
{
    offload_sha256_t  ctx;

    offload_sha256_init(&ctx);
    offload_sha256_update(&ctx, data, len);
    offload_sha256_final(&ctx, digest);
}
