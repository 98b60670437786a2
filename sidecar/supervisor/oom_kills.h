/*
 * oom_kills.h -- how often the kernel's OOM killer struck in the sidecar's
 * memory cgroup (its oom_kill counter), so that a worker's SIGKILL can be
 * told apart from one sent by a person or a script.
 */

#ifndef OFFLOAD_OOM_KILLS_H
#define OFFLOAD_OOM_KILLS_H

/* The file holding this process's cgroup oom_kill counter (malloc'ed),
 * or NULL when there is none (no memory controller). */
char *offload_oom_events_path(void);

/* Its oom_kill counter, or -1. */
long long offload_oom_kills(const char *path);

#endif /* OFFLOAD_OOM_KILLS_H */
