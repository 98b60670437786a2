/*
 * registry_test.c -- the node registry document has exactly the shape
 * docs/PROTOCOL.md gives it.
 */

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "supervisor.h"
#include "tap.h"


/* Checks the whole document of a one-queue node (sha256, two slots) whose
 * pool has the given state fields and workers. */
static void
check_doc(offload_supervisor_t *sup, const char *state, const char *workers,
    const char *name)
{
    char  *json, want[512];

    json = offload_registry_json(sup, 1700000001234LL);
    snprintf(want, sizeof(want),
             "{\"v\":1,\"node\":\"alpha\",\"pid\":%d,"
             "\"started\":1700000000000,\"heartbeat\":1700000001234,"
             "\"queues\":{\"sha256\":{\"handler\":\"sha256\",%s,"
             "\"workers\":[%s]}}}",
             (int) getpid(), state, workers);
    is_str(json, want, "%s", name);
    free(json);
}


int
main(void)
{
    offload_conf_t         conf;
    offload_slot_t         slots[2];
    offload_sb_slot_t      sb[2];
    offload_pool_t         pool;
    offload_conf_queue_t   queue;
    offload_supervisor_t   sup;

    memset(&conf, 0, sizeof(conf));
    memset(&queue, 0, sizeof(queue));
    memset(&sup, 0, sizeof(sup));
    memset(slots, 0, sizeof(slots));
    memset(sb, 0, sizeof(sb));
    memset(&pool, 0, sizeof(pool));

    strcpy(conf.node_name, "alpha");
    strcpy(queue.name, "sha256");
    queue.handler = offload_handler_find("sha256");
    queue.workers = 2;
    conf.queues = &queue;
    conf.nqueues = 1;

    pool.sup = &sup;
    pool.queue = &queue;
    pool.slots = slots;
    pool.nslots = 2;
    slots[0].pid = 4242;
    slots[0].sb = &sb[0];
    slots[1].index = 1;
    slots[1].pid = 0;                   /* being restarted */
    slots[1].sb = &sb[1];
    offload_sb_set_state(&sb[0], OFFLOAD_SB_IDLE);
    sb[0].jobs_ok = 3;
    sb[0].jobs_failed = 1;

    sup.conf = &conf;
    sup.pools = &pool;
    sup.npools = 1;
    sup.started_ms = 1700000000000LL;

    check_doc(&sup, "\"state\":\"ok\",\"restarts\":0",
              "{\"slot\":0,\"pid\":4242,\"state\":\"idle\","
              "\"jobs_ok\":3,\"jobs_failed\":1},"
              "{\"slot\":1,\"pid\":null,\"state\":\"down\"}",
              "registry document");

    pool.failed = 1;
    pool.restarts = 6;
    slots[0].pid = 0;
    check_doc(&sup, "\"state\":\"failed\",\"restarts\":6",
              "{\"slot\":0,\"pid\":null,\"state\":\"down\"},"
              "{\"slot\":1,\"pid\":null,\"state\":\"down\"}",
              "registry document of a failed pool");

    return done_testing();
}
