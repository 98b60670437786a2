/*
 * sha256.c -- "sha256": {"data": "<string>", "rounds": 1..10000000}
 * answers {"hex": "<64 hex digits>"}.
 *
 * Round 1 hashes the bytes of data (its UTF-8 encoding, as decoded from the
 * JSON string); every further round hashes the previous round's 32-byte raw
 * digest (not its hex text).  rounds defaults to 1.  A CPU-bound job whose
 * cost the client chooses.
 *
 * The hashing is OpenSSL's libcrypto: it uses the CPU's SHA extensions
 * where there are some (about 6x faster than portable C here).  The digest
 * is fetched once per worker process, not once per round.
 *
 * libcrypto is loaded on the first job (dlopen), not linked: linked, the
 * loader's work on it (its symbol tables, its relocated data) took about
 * 1.1 MB of RSS in the supervisor and 0.5 MB in every worker of every
 * queue, sha256 or not.
 */

#include <dlfcn.h>

#include <openssl/evp.h>

#include "builtin.h"

#define SHA256_MAX_ROUNDS  10000000
#define SHA256_LEN         32
#define LIBCRYPTO_SONAME   "libcrypto.so.3"     /* OpenSSL 3's ABI */

/* the functions of libcrypto used here, with their own types */
static struct {
    __typeof__(EVP_MD_fetch)        *md_fetch;
    __typeof__(EVP_MD_CTX_new)      *ctx_new;
    __typeof__(EVP_MD_CTX_free)     *ctx_free;
    __typeof__(EVP_DigestInit_ex2)  *init;
    __typeof__(EVP_DigestUpdate)    *update;
    __typeof__(EVP_DigestFinal_ex)  *final;
} crypto;


/* Loads libcrypto and its functions into crypto: NULL, or what went
 * wrong (crypto left empty). */
static const char *
crypto_load(void)
{
    size_t                i;
    void                 *so;
    __typeof__(crypto)    got;
    const struct {
        const char  *name;
        void       **fn;
    } fns[] = {
        { "EVP_MD_fetch", (void **) &got.md_fetch },
        { "EVP_MD_CTX_new", (void **) &got.ctx_new },
        { "EVP_MD_CTX_free", (void **) &got.ctx_free },
        { "EVP_DigestInit_ex2", (void **) &got.init },
        { "EVP_DigestUpdate", (void **) &got.update },
        { "EVP_DigestFinal_ex", (void **) &got.final },
    };

    so = dlopen(LIBCRYPTO_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (so == NULL) {
        return dlerror();
    }

    for (i = 0; i < sizeof(fns) / sizeof(fns[0]); i++) {
        /* POSIX's way to store a function's address from dlsym */
        *fns[i].fn = dlsym(so, fns[i].name);
        if (*fns[i].fn == NULL) {
            return dlerror();   /* libcrypto stays loaded: it is not used */
        }
    }

    crypto = got;
    return NULL;
}


static int
sha256_rounds(const EVP_MD *md, const void *data, size_t len,
    json_int_t rounds, unsigned char digest[SHA256_LEN])
{
    int          rc = -1;
    json_int_t   r;
    EVP_MD_CTX  *ctx;


    ctx = crypto.ctx_new();
    if (ctx == NULL) {
        return -1;
    }

    if (crypto.init(ctx, md, NULL) != 1
        || crypto.update(ctx, data, len) != 1
        || crypto.final(ctx, digest, NULL) != 1)
    {
        goto done;
    }

    for (r = 1; r < rounds; r++) {
        if (crypto.init(ctx, NULL, NULL) != 1
            || crypto.update(ctx, digest, SHA256_LEN) != 1
            || crypto.final(ctx, digest, NULL) != 1)
        {
            goto done;
        }
    }

    rc = 0;

done:

    crypto.ctx_free(ctx);
    return rc;
}


static int
sha256_work(offload_job_t *job, json_t *input, json_t **output)
{
    static const char  hexdigits[] = "0123456789abcdef";

    json_t         *data;
    json_int_t      rounds = 1;
    static EVP_MD  *md;
    unsigned char   digest[SHA256_LEN];
    char            hex[2 * SHA256_LEN + 1];
    int             i;
    const char     *err;

    if (!json_is_object(input)) {
        return offload_job_fail(job, NULL, "input must be an object "
                                "{\"data\": string, \"rounds\": n}");
    }

    data = json_object_get(input, "data");
    if (!json_is_string(data)) {
        return offload_job_fail(job, NULL, "\"data\" must be a string");
    }

    if (offload_builtin_int_member(job, input, "rounds", 1,
                                   SHA256_MAX_ROUNDS, &rounds)
        != OFFLOAD_OK)
    {
        return OFFLOAD_ERROR;
    }

    if (md == NULL) {
        /* without libcrypto, or no provider offers it (a broken
         * OPENSSL_CONF, say): the job's fault is not its own, but no other
         * worker would do better */
        if (crypto.md_fetch == NULL && (err = crypto_load()) != NULL) {
            return offload_job_fail(job, NULL, "%s", err);
        }
        md = crypto.md_fetch(NULL, "SHA256", NULL);
        if (md == NULL) {
            return offload_job_fail(job, NULL,
                                    "libcrypto offers no SHA-256");
        }
    }

    if (sha256_rounds(md, json_string_value(data), json_string_length(data),
                      rounds, digest)
        != 0)
    {
        /* with the digest at hand, libcrypto fails only to allocate */
        return OFFLOAD_NOMEM;
    }

    for (i = 0; i < SHA256_LEN; i++) {
        hex[2 * i] = hexdigits[digest[i] >> 4];
        hex[2 * i + 1] = hexdigits[digest[i] & 0xf];
    }
    hex[2 * SHA256_LEN] = '\0';

    *output = json_pack("{s:s}", "hex", hex);
    return OFFLOAD_OK;
}


static int
sha256_run(offload_job_t *job, const char *payload, size_t len)
{
    return offload_builtin_json(job, payload, len, sha256_work);
}


static const offload_handler_t  handlers[] = {
    { "sha256", sha256_run, NULL, NULL },
    { NULL, NULL, NULL, NULL }
};

const offload_module_t  offload_builtin_sha256 = {
    OFFLOAD_ABI_VERSION, handlers
};
