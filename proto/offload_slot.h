
/*
 * offload_slot.h -- Redis Cluster's key slot, shared by the module and the
 * sidecar: which master of a cluster holds a key.
 */

#ifndef OFFLOAD_SLOT_H
#define OFFLOAD_SLOT_H

#include <stddef.h>


#define OFFLOAD_SLOTS          16384

/* the hash tag of every node-level key (offload:{ctl}:...): their slot's
 * master is a cluster's "control shard" */
#define OFFLOAD_CTL_TAG        "ctl"


/* The slot of a key: CRC16 (XMODEM) of its hash tag -- what lies between
 * the first '{' and the next '}', when that is not empty -- or else of the
 * whole key, modulo OFFLOAD_SLOTS.  A queue's keys, offload:{<queue>}:...,
 * are all in offload_key_slot(queue). */
unsigned offload_key_slot(const char *key, size_t len);

/* A job id's slot tag: the OFFLOAD_SLOT_TAG_LEN lower-case hex digits
 * (no NUL) whose key slot is slot, the first in counting order.  Every
 * slot has one (4 hex digits do not cover them all).  Searched once per
 * slot per process (about 16k CRC steps, 0.27 ms of CPU on average), then
 * remembered.  Thread-safe. */
#define OFFLOAD_SLOT_TAG_LEN   5

void offload_slot_tag(unsigned slot, char *tag);


#endif /* OFFLOAD_SLOT_H */
