/*
 * sha256.h -- SHA-256 (FIPS 180-4), written here so the sidecar needs no
 * crypto library for its sha256 handler.
 */

#ifndef OFFLOAD_SHA256_H
#define OFFLOAD_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define OFFLOAD_SHA256_LEN  32

typedef struct {
    uint32_t  state[8];
    uint64_t  bytes;          /* message length so far */
    uint8_t   block[64];
    size_t    used;           /* bytes waiting in block */
} offload_sha256_t;

void offload_sha256_init(offload_sha256_t *ctx);
void offload_sha256_update(offload_sha256_t *ctx, const void *data,
    size_t len);
void offload_sha256_final(offload_sha256_t *ctx,
    uint8_t digest[OFFLOAD_SHA256_LEN]);

/* One-shot convenience. */
void offload_sha256(const void *data, size_t len,
    uint8_t digest[OFFLOAD_SHA256_LEN]);

#endif /* OFFLOAD_SHA256_H */
