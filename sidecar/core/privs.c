/*
 * privs.c -- least privilege for the sidecar, done once at start, and for
 * offloadctl replay, which runs a queue's handler as the sidecar would.
 *
 * Started as root with "user" set, it does what nginx does for its
 * workers: supplementary groups (initgroups), group, then user, once the
 * log is open (opened as the user: offload_privs_open_log()).  Unlike
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
#include <fcntl.h>
#include <grp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
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


/* Root's effective ids and groups, while the user's are lent. */
typedef struct {
    gid_t   egid;
    gid_t  *groups;
    int     ngroups;
    int     lent;       /* how many of groups, gid, uid were lent */
} root_ids_t;


static void take_back(root_ids_t *root);


/* Takes the user's effective ids and groups, root's kept to take back
 * (the saved set-user-ID stays root's).  Returns 0, or -1 with errno. */
static int
lend(const offload_conf_t *conf, root_ids_t *root)
{
    const char  *what;

    root->egid = getegid();
    root->ngroups = getgroups(0, NULL);
    root->groups = malloc((root->ngroups + 1) * sizeof(gid_t));

    if (root->ngroups < 0 || root->groups == NULL
        || getgroups(root->ngroups, root->groups) != root->ngroups)
    {
        log_error("cannot keep root's groups to open the log as user "
                  "\"%s\": %s", conf->user, strerror(errno));
        free(root->groups);
        return -1;
    }

    root->lent = 0;
    what = "initgroups";

    if (initgroups(conf->user, conf->gid) == 0) {
        root->lent++;
        what = "setegid";

        if (setegid(conf->gid) == 0) {
            root->lent++;
            what = "seteuid";

            if (seteuid(conf->uid) == 0) {
                root->lent++;
                return 0;
            }
        }
    }

    /* said here: the log's own error blames the log for it */
    log_error("cannot act as user \"%s\" to open the log: %s() failed: %s",
              conf->user, what, strerror(errno));
    take_back(root);
    return -1;
}


/* Root's back, what was lent of it: it cannot fail (the saved
 * set-user-ID is root's, and groups lent could be set), and going on with
 * the user's would be worse than stopping.  Nothing lent, nothing is set:
 * a user namespace may refuse setgroups() to root itself. */
static void
take_back(root_ids_t *root)
{
    int  err = errno;

    if ((root->lent > 2 && seteuid(0) != 0)
        || (root->lent > 1 && setegid(root->egid) != 0)
        || (root->lent > 0
            && setgroups(root->ngroups, root->groups) != 0))
    {
        abort();
    }

    free(root->groups);
    errno = err;
}


static int
open_log(const offload_conf_t *conf)
{
    return offload_log_open(conf->log_target, conf->log_level,
                            conf->log_json, "offload-sidecar");
}


static int
check_log(const offload_conf_t *conf)
{
    return offload_log_check(conf->log_target);
}


/* fn(conf) with the user's effective ids and groups; -2 when they could
 * not be taken */
static int
as_user(const offload_conf_t *conf, int (*fn)(const offload_conf_t *))
{
    int         rc;
    root_ids_t  root;

    if (lend(conf, &root) != 0) {
        return -2;
    }

    rc = fn(conf);
    take_back(&root);

    return rc;
}


/* The log file made by root, new and empty (never one that is there: a
 * link, a hard link, a terminal), and given to the user.  One root could
 * not give goes again: root's, it would refuse every later start. */
static int
make_for_user(const offload_conf_t *conf)
{
    int  fd, err;

    fd = open(conf->log_target, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW
                                | O_CLOEXEC, 0644);
    if (fd == -1) {
        return -1;
    }

    if (fchown(fd, conf->uid, conf->gid) != 0) {
        err = errno;
        (void) unlink(conf->log_target);
        close(fd);
        errno = err;
        return -1;
    }

    close(fd);

    return 0;
}


/*
 * The log, opened (or, for -t, checked) as the user the sidecar is to
 * become, started as root with one: the kernel checks what that user may
 * write, so a link the user put on the way (in its own log folder) gives
 * it nothing of root's.  Where the user may not make the file, on a path
 * only root could have arranged (offload_log_roots_path(): /var/log, a
 * log folder not yet the user's), root makes it, new and empty, gives it
 * to the user, and the user opens it.  -t checks that root could.
 */
static int
on_log(const offload_conf_t *conf, int (*fn)(const offload_conf_t *),
    int make)
{
    int          rc, err;
    struct stat  st;

    if (conf->user == NULL || geteuid() != 0) {
        return fn(conf);
    }

    rc = as_user(conf, fn);
    if (rc != -1) {
        return rc;
    }

    err = errno;

    if ((err != EACCES && err != EPERM)
        || !offload_log_roots_path(conf->log_target))
    {
        errno = err;
        return -1;
    }

    /* -t: root would make it only new, in a folder root may write */
    if (!make) {
        if (lstat(conf->log_target, &st) == 0) {
            errno = err;
            return -1;
        }

        return fn(conf);
    }

    if (make_for_user(conf) != 0) {
        errno = (errno == EEXIST) ? err : errno;
        return -1;
    }

    return as_user(conf, fn);
}


int
offload_privs_open_log(const offload_conf_t *conf)
{
    return on_log(conf, open_log, 1);
}


int
offload_privs_check_log(const offload_conf_t *conf)
{
    return on_log(conf, check_log, 0);
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
