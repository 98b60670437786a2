/*
 * reload.c -- the sidecar's SIGHUP (reload.h): checking the new
 * configuration, swapping the pools, and the rolling restart that moves
 * every worker over.  The previous pools stay, "retired", until their last
 * worker is gone and its jobs are handed back; then they and their
 * configuration are freed.
 */

#include <stdlib.h>
#include <string.h>

#include "events.h"
#include "handlers.h"
#include "log.h"
#include "reload.h"
#include "supervisor.h"


/* A reload is over when no retired slot has a process or jobs in flight:
 * the retired pools and their configuration go. */
static void
retire_done(offload_supervisor_t *sup)
{
    size_t           p;
    int              i;
    offload_pool_t  *pool;

    if (!offload_slots_done(sup, 1)) {
        return;
    }

    for (p = 0; p < sup->nretired; p++) {
        pool = offload_pool_named(sup->pools, sup->npools,
                                  sup->retired[p].queue->name);

        for (i = 0; pool != NULL && i < sup->retired[p].nslots; i++) {
            offload_stats_slot_succeed(pool, &sup->retired[p].slots[i], 1);
        }
    }

    offload_pools_free(sup->retired, sup->nretired);
    sup->retired = NULL;
    sup->nretired = 0;

    if (sup->retired_conf != sup->first_conf) {
        offload_conf_free((offload_conf_t *) sup->retired_conf);
        free((void *) sup->retired_conf);
    }
    sup->retired_conf = NULL;

    log_notice("reload done");
    offload_event(offload_registry_main(&sup->registry), sup->conf->node_name,
                  "reload", NULL, NULL);

    if (sup->reload_pending && !sup->stopping) {
        sup->reload_pending = 0;
        offload_reload(sup);
    }
}


void
offload_reload_step(offload_supervisor_t *sup)
{
    offload_slot_iter_t   it = { 1, 0, 0 };
    offload_slot_t       *slot, *twin;

    if (sup->stopping || sup->retired == NULL) {
        return;
    }

    slot = sup->rolling;

    if (slot != NULL) {
        if (slot->pid != 0 || slot->reclaiming) {
            return;
        }

        twin = offload_slot_twin(sup, slot);
        if (twin != NULL && !twin->pool->failed
            && (twin->pid == 0
                || offload_sb_state(twin->sb) == OFFLOAD_SB_STARTING))
        {
            return;
        }

        sup->rolling = NULL;
    }

    while ((slot = offload_slot_next(sup, &it)) != NULL) {
        if (slot->pid != 0 && !slot->stopping) {
            offload_slot_stop(slot);
            sup->rolling = slot;
            return;
        }
    }

    retire_done(sup);
}


/* What a reload cannot change: the identity and the connections. */
static const char *
reload_refusal(const offload_conf_t *old, const offload_conf_t *new)
{
    if (strcmp(old->node_name, new->node_name) != 0) {
        return "node_name cannot change on reload";
    }

    if (memcmp(&old->redis.addr, &new->redis.addr, sizeof(old->redis.addr))
        != 0
        || old->redis.db != new->redis.db
        || (old->redis.password == NULL) != (new->redis.password == NULL)
        || (old->redis.password
            && strcmp(old->redis.password, new->redis.password) != 0)
        || (old->redis.user == NULL) != (new->redis.user == NULL)
        || (old->redis.user
            && strcmp(old->redis.user, new->redis.user) != 0))
    {
        return "redis, redis_user, password and db cannot change on reload";
    }

    if ((old->user == NULL) != (new->user == NULL)
        || (old->user != NULL
            && (old->uid != new->uid || old->gid != new->gid)))
    {
        return "user cannot change on reload";
    }

    if ((old->pid_file == NULL) != (new->pid_file == NULL)
        || (old->pid_file && strcmp(old->pid_file, new->pid_file) != 0))
    {
        return "pid cannot change on reload";
    }

    if (strcmp(old->log_target, new->log_target) != 0
        || old->log_level != new->log_level
        || old->log_json != new->log_json)
    {
        return "log cannot change on reload";
    }

    return NULL;
}


static void
reload_failed(offload_supervisor_t *sup, const char *why)
{
    log_error("reload refused, the running configuration stays: %s", why);
    offload_event(offload_registry_main(&sup->registry), sup->conf->node_name,
                  "reload_failed", NULL, json_pack("{s:s}", "error", why));
}


void
offload_reload(offload_supervisor_t *sup)
{
    size_t           p;
    int              i;
    char             err[OFFLOAD_CONF_ERR_MAX];
    const char      *why;
    offload_conf_t  *conf;
    offload_pool_t  *pools, *pool;

    /* a SIGHUP asks for the file as it is now, and systemctl reload said
     * yes already: read once the previous reload is done, not refused */

    if (sup->retired != NULL) {
        if (!sup->reload_pending) {
            log_notice("reload asked while the previous one rolls: it "
                       "follows once that one is done");
        }

        sup->reload_pending = 1;
        return;
    }

    conf = calloc(1, sizeof(offload_conf_t));
    if (conf == NULL) {
        reload_failed(sup, "out of memory");
        return;
    }

    if (offload_conf_load(conf, sup->conf_file, err, sizeof(err)) != 0) {
        free(conf);
        reload_failed(sup, err);
        return;
    }

    if (offload_handlers_resolve(conf, err, sizeof(err)) != 0) {
        offload_conf_free(conf);
        free(conf);
        reload_failed(sup, err);
        return;
    }

    why = reload_refusal(sup->conf, conf);
    if (why == NULL) {
        why = offload_registry_refusal(&sup->registry, conf);
    }
    pools = why ? NULL : offload_pools_make(sup, conf);

    if (pools == NULL) {
        offload_conf_free(conf);
        free(conf);
        reload_failed(sup, why ? why : "out of memory");
        return;
    }

    log_notice("reloading %s", sup->conf_file);

    for (p = 0; p < sup->npools; p++) {
        sup->pools[p].retired = 1;
        ev_timer_stop(sup->loop, &sup->pools[p].cooldown);

        for (i = 0; i < sup->pools[p].nslots; i++) {
            ev_timer_stop(sup->loop, &sup->pools[p].slots[i].restart);
            sup->pools[p].slots[i].want_spawn = 0;
        }

        pool = offload_pool_named(pools, conf->nqueues,
                                  sup->pools[p].queue->name);
        if (pool == NULL) {
            continue;               /* a queue the new configuration drops */
        }

        pool->restarts = sup->pools[p].restarts;
        offload_pool_adopt_metrics(pool, &sup->pools[p]);

        for (i = 0; i < sup->pools[p].nslots; i++) {
            offload_stats_slot_succeed(pool, &sup->pools[p].slots[i], 0);
        }
    }

    sup->retired = sup->pools;
    sup->nretired = sup->npools;
    sup->retired_conf = sup->conf;
    sup->pools = pools;
    sup->npools = conf->nqueues;
    sup->conf = conf;
    offload_registry_reconf(&sup->registry, conf);
    sup->claim.repeat = conf->claim_idle_ms / 2000.0;
    ev_timer_again(sup->loop, &sup->claim);

    for (p = 0; p < sup->npools; p++) {
        for (i = 0; i < sup->pools[p].nslots; i++) {
            sup->pools[p].slots[i].want_spawn = 1;
            offload_slot_maybe_spawn(&sup->pools[p].slots[i]);
        }
    }

    offload_registry_update(&sup->registry);
    offload_reload_step(sup);
}
