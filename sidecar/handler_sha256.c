/*
 * handler_sha256.c -- "sha256": {"data": "<string>", "rounds": 1..10000000}
 * answers {"hex": "<64 hex digits>"}.
 *
 * Round 1 hashes the bytes of data (its UTF-8 encoding, as decoded from the
 * JSON string); every further round hashes the previous round's 32-byte raw
 * digest (not its hex text).  rounds defaults to 1.  A CPU-bound job whose
 * cost the client chooses.
 */

#include "handler.h"
#include "sha256.h"

#define SHA256_MAX_ROUNDS  10000000


static int
sha256_run(json_t *input, json_t **output, offload_handler_error_t *err)
{
    static const char  hexdigits[] = "0123456789abcdef";

    json_t      *data;
    json_int_t   rounds = 1, r;
    uint8_t      digest[OFFLOAD_SHA256_LEN];
    char         hex[2 * OFFLOAD_SHA256_LEN + 1];
    int          i;

    if (!json_is_object(input)) {
        return offload_handler_fail(err, "input must be an object "
                                    "{\"data\": string, \"rounds\": n}");
    }

    data = json_object_get(input, "data");
    if (!json_is_string(data)) {
        return offload_handler_fail(err, "\"data\" must be a string");
    }

    if (offload_handler_int_member(input, "rounds", 1, SHA256_MAX_ROUNDS,
                                   &rounds, err)
        != 0)
    {
        return -1;
    }

    offload_sha256(json_string_value(data), json_string_length(data), digest);

    for (r = 1; r < rounds; r++) {
        offload_sha256(digest, sizeof(digest), digest);
    }

    for (i = 0; i < OFFLOAD_SHA256_LEN; i++) {
        hex[2 * i] = hexdigits[digest[i] >> 4];
        hex[2 * i + 1] = hexdigits[digest[i] & 0xf];
    }
    hex[2 * OFFLOAD_SHA256_LEN] = '\0';

    *output = json_pack("{s:s}", "hex", hex);
    return 0;
}


const offload_handler_t  offload_handler_sha256 = { "sha256", sha256_run, 0 };
