/*
 * sentinel_sync.h -- the master of a Redis Sentinel set-up, asked with
 * hiredis' blocking API: for offloadctl and liboffload, which block
 * anyway.  The sidecar asks its sentinels asynchronously (redis_conn.c),
 * nginx with its own events (ngx_http_offload_sentinel.c).
 */

#ifndef OFFLOAD_SENTINEL_SYNC_H
#define OFFLOAD_SENTINEL_SYNC_H

#include <stddef.h>

#include "redis_endpoint.h"

/* Whether the master a sentinel named is one (a sentinel may be stale):
 * 0 takes it, -1 (why in err) asks the next sentinel. */
typedef int (*offload_master_check_pt)(const offload_addr_t *master,
    void *data, char *err, size_t errlen);

/* Asks ep's sentinels in turn, logging in to each with sentinel_user and
 * sentinel_password when set, for the master named ep->master, within
 * connect_ms to connect and command_ms per command; the first answer that
 * check (NULL: any) takes becomes ep->addr.  Returns 0, or -1 with what
 * the last sentinel said in err (never a password). */
int offload_sentinel_find_master(offload_redis_endpoint_t *ep,
    int connect_ms, int command_ms, offload_master_check_pt check,
    void *data, char *err, size_t errlen);

#endif /* OFFLOAD_SENTINEL_SYNC_H */
