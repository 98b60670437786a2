/*
 * reload.h -- SIGHUP: the sidecar reads its configuration again and, when
 * it is good, replaces its workers one at a time.
 */

#ifndef OFFLOAD_RELOAD_H
#define OFFLOAD_RELOAD_H

struct offload_supervisor_s;

/* Reads the configuration file and checks it as -t does; a bad one, or
 * one that changes what a reload cannot (node_name, redis, log), is
 * refused (logged, event reload_failed) and the running one stays.  A good
 * one replaces the pools: new queues start, and the workers of the old
 * pools roll over to the new ones. */
void offload_reload(struct offload_supervisor_s *sup);

/*
 * Moves the rolling restart along; the supervisor calls it whenever a
 * retired slot's worker is gone and periodically.  One retired worker at
 * a time is asked to stop (offload_slot_stop: killed if it still runs
 * shutdown_timeout later); once it is gone and its successor (same queue
 * and slot, same consumer name) is up and reading, the next one.  Queues
 * keep serving with their other workers, and a queue of one worker only
 * pauses while jobs wait in its stream.
 */
void offload_reload_step(struct offload_supervisor_s *sup);

#endif /* OFFLOAD_RELOAD_H */
