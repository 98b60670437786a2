/*
 * oom_kills.c -- reads the oom_kill counter of the memory cgroup the
 * sidecar (and so every worker) runs in: memory.events under cgroup v2,
 * memory.oom_control under v1; both have an "oom_kill <n>" line.  The
 * supervisor reads it once at start and once per worker killed by a SIGKILL
 * it did not send: never on a job's path.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "oom_kills.h"


/* The file of a /proc/self/cgroup line "<id>:<controllers>:<path>", if it
 * names the memory controller (v1) or is the unified hierarchy (v2). */
static char *
counter_file(const char *line)
{
    char        *path = NULL;
    const char  *controllers, *cg;

    controllers = strchr(line, ':');
    cg = controllers ? strchr(controllers + 1, ':') : NULL;
    if (cg == NULL) {
        return NULL;
    }
    controllers++;
    cg++;

    if (strcmp(cg, "/") == 0) {
        cg = "";
    }

    if (controllers == cg - 1) {
        if (asprintf(&path, "/sys/fs/cgroup%s/memory.events", cg) < 0) {
            return NULL;
        }

    } else if (strncmp(controllers, "memory:", 7) == 0) {
        if (asprintf(&path, "/sys/fs/cgroup/memory%s/memory.oom_control", cg)
            < 0)
        {
            return NULL;
        }
    }

    if (path != NULL && access(path, R_OK) != 0) {
        free(path);
        path = NULL;
    }

    return path;
}


char *
offload_oom_events_path(void)
{
    char   line[4096], *path = NULL;
    FILE  *fp;

    fp = fopen("/proc/self/cgroup", "r");
    if (fp == NULL) {
        return NULL;
    }

    while (path == NULL && fgets(line, sizeof(line), fp) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        path = counter_file(line);
    }

    fclose(fp);
    return path;
}


long long
offload_oom_kills(const char *path)
{
    char        name[64];
    long long   value, kills = -1;
    FILE       *fp;

    if (path == NULL || (fp = fopen(path, "r")) == NULL) {
        return -1;
    }

    while (fscanf(fp, "%63s %lld", name, &value) == 2) {
        if (strcmp(name, "oom_kill") == 0) {
            kills = value;
            break;
        }
    }

    fclose(fp);
    return kills;
}
