/*
 * privs.h -- least privilege: the sidecar becomes the configured "user"
 * and can never gain privileges again.
 */

#ifndef OFFLOAD_PRIVS_H
#define OFFLOAD_PRIVS_H

#include "conf.h"

/* Called once, after the log is open and before the supervisor starts (so
 * the supervisor and every worker it forks run unprivileged).  Returns 0,
 * or -1 after logging why. */
int offload_privs_drop(const offload_conf_t *conf);

#endif /* OFFLOAD_PRIVS_H */
