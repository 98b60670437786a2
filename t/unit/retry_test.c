/*
 * retry_test.c -- the retry backoff (sidecar/core/retry.c): doubling
 * from the base, capped at the maximum, with equal jitter; printed as TAP.
 */

#include <stdlib.h>
#include <string.h>

#include "retry.h"
#include "tap.h"


/* Every delay of many draws within [step / 2, step]; also the smallest
 * and largest seen. */
static int
within(const offload_conf_queue_t *q, int attempt, int64_t step,
    int64_t *lo, int64_t *hi)
{
    int      i;
    int64_t  d;

    *lo = INT64_MAX;
    *hi = 0;

    for (i = 0; i < 2000; i++) {
        d = offload_retry_delay_ms(q, attempt);
        if (d < step - step / 2 || d > step) {
            return 0;
        }
        *lo = d < *lo ? d : *lo;
        *hi = d > *hi ? d : *hi;
    }

    return 1;
}


int
main(void)
{
    int64_t               lo, hi;
    offload_conf_queue_t  q;

    memset(&q, 0, sizeof(q));
    q.retry_base_ms = 1000;
    q.retry_max_ms = 5 * 60 * 1000;
    srandom(1);

    ok(within(&q, 1, 1000, &lo, &hi), "attempt 1: 0.5..1 s");
    ok(hi - lo > 400, "attempt 1: jittered (%lld..%lld ms)", (long long) lo,
       (long long) hi);
    ok(within(&q, 2, 2000, &lo, &hi), "attempt 2: 1..2 s");
    ok(within(&q, 5, 16000, &lo, &hi), "attempt 5: 8..16 s");
    ok(within(&q, 9, 256000, &lo, &hi), "attempt 9: 128..256 s");
    ok(within(&q, 10, 300000, &lo, &hi), "attempt 10: capped, 150..300 s");
    ok(within(&q, 100, 300000, &lo, &hi), "attempt 100: still capped");

    q.retry_base_ms = 1;
    q.retry_max_ms = 1;
    ok(within(&q, 1, 1, &lo, &hi) && lo == 1, "1ms 1ms: never 0");

    q.retry_base_ms = 2000;
    q.retry_max_ms = 2000;
    ok(within(&q, 7, 2000, &lo, &hi), "base = max: 1..2 s at any attempt");

    return done_testing();
}
