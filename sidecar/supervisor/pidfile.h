/*
 * pidfile.h -- the supervisor's pid in the file "pid" names.
 */

#ifndef OFFLOAD_PIDFILE_H
#define OFFLOAD_PIDFILE_H

/* Writes this process's pid to path, whole (a reader never sees part of
 * one).  Returns 0, or -1 after logging why. */
int offload_pidfile_write(const char *path);

/* For -t: whether this process could write the pid file (its temporary
 * file made and removed).  Returns 0, or -1 with errno set. */
int offload_pidfile_check(const char *path);

/* Removes path if it still holds this process's pid. */
void offload_pidfile_remove(const char *path);

#endif /* OFFLOAD_PIDFILE_H */
