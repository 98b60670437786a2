/*
 * privs.c -- least privilege for the sidecar, done once at start, and for
 * offloadctl replay, which runs a queue's handler as the sidecar would.
 *
 * Started as root with "user" set, it does what nginx does for its
 * workers: supplementary groups (initgroups), group, then user, once the
 * only thing that needs root, opening the log file, is done.  Unlike
 * nginx's master the supervisor drops too: nothing it does later needs
 * root (it reads the config again on SIGHUP, so the user must be able to
 * read it).  Then PR_SET_NO_NEW_PRIVS, whether or not a user was set: the
 * sidecar never executes anything, and no job can ever gain privileges
 * through a set-user-ID program.  And PR_SET_DUMPABLE 0: an exec handler's
 * process runs as the same user, and could otherwise read its worker's
 * memory (/proc/<pid>/mem, ptrace), the Redis password in it, when the
 * sidecar was started as that user (a start as root clears the flag with
 * the switch already).
 */

#include <errno.h>
#include <grp.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "log.h"
#include "privs.h"


static int
switch_user(const offload_conf_t *conf)
{
    if (initgroups(conf->user, conf->gid) != 0) {
        log_error("initgroups(%s, %d) failed: %s", conf->user,
                  (int) conf->gid, strerror(errno));
        return -1;
    }

    if (setgid(conf->gid) != 0) {
        log_error("setgid(%d) failed: %s", (int) conf->gid, strerror(errno));
        return -1;
    }

    if (setuid(conf->uid) != 0) {
        log_error("setuid(%d) failed: %s", (int) conf->uid, strerror(errno));
        return -1;
    }

    log_notice("running as user \"%s\" (uid %d, gid %d)", conf->user,
               (int) conf->uid, (int) conf->gid);
    return 0;
}


static int
no_new_privs(void)
{
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        log_error("prctl(PR_SET_NO_NEW_PRIVS) failed: %s", strerror(errno));
        return -1;
    }

    return 0;
}


int
offload_privs_drop(const offload_conf_t *conf)
{
    if (conf->user != NULL) {
        if (geteuid() == 0) {
            if (offload_log_chown(conf->uid, conf->gid) != 0) {
                log_error("chown of the log file to user \"%s\" failed: %s",
                          conf->user, strerror(errno));
                return -1;
            }

            if (switch_user(conf) != 0) {
                return -1;
            }

        } else if (geteuid() != conf->uid) {
            log_warn("the \"user\" directive makes sense only when the "
                     "sidecar starts as root, ignored");
        }
    }

    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
        log_error("prctl(PR_SET_DUMPABLE) failed: %s", strerror(errno));
        return -1;
    }

    return no_new_privs();
}


int
offload_privs_replay(const offload_conf_t *conf)
{
    if (conf->user != NULL && geteuid() == 0 && switch_user(conf) != 0) {
        return -1;
    }

    return no_new_privs();
}
