/*
 * privs.h -- least privilege: the sidecar becomes the configured "user"
 * and can never gain privileges again.
 */

#ifndef OFFLOAD_PRIVS_H
#define OFFLOAD_PRIVS_H

#include "conf.h"

/* The configuration's log opened, started as root with a "user", as
 * that user (on a path only root could have arranged, root first makes
 * the file, new, and gives it to the user); without, as the sidecar runs.
 * offload_privs_check_log() checks it so, for -t.  Return 0, -1 with
 * errno set, or -2 when the user's ids could not be taken (logged: the
 * log is not to blame). */
int offload_privs_open_log(const offload_conf_t *conf);
int offload_privs_check_log(const offload_conf_t *conf);

/* Called once, after the log is open and before the supervisor starts (so
 * the supervisor and every worker it forks run unprivileged, and cannot
 * be read by their handlers' processes).  Returns 0, or -1 after logging
 * why. */
int offload_privs_drop(const offload_conf_t *conf);

/* offloadctl replay, before it loads a plugin or starts an exec program:
 * as root, becomes the configuration's "user", as the sidecar's workers
 * run, rather than run the handler as root.  Returns 0, or -1 after
 * saying why. */
int offload_privs_replay(const offload_conf_t *conf);

#endif /* OFFLOAD_PRIVS_H */
