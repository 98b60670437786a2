/*
 * oom_kills.c -- reads the oom_kill counter of the cgroup the sidecar (and
 * so every worker) runs in.  The supervisor reads it once at start and once
 * per worker killed by a SIGKILL it did not send: not on any job's path.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "oom_kills.h"


char *
offload_oom_events_path(void)
{
    char   line[4096], *path;
    FILE  *fp;

    fp = fopen("/proc/self/cgroup", "r");
    if (fp == NULL) {
        return NULL;
    }

    path = NULL;

    /* cgroup v2 has one line: "0::/the/path" */
    while (fgets(line, sizeof(line), fp) != NULL) {
        if (strncmp(line, "0::", 3) == 0) {
            line[strcspn(line, "\n")] = '\0';
            if (asprintf(&path, "/sys/fs/cgroup%s/memory.events",
                         strcmp(line + 3, "/") == 0 ? "" : line + 3)
                < 0)
            {
                path = NULL;
            }
            break;
        }
    }

    fclose(fp);

    if (path != NULL && access(path, R_OK) != 0) {
        free(path);
        path = NULL;
    }

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
