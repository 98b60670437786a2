/*
 * main.c -- offload-sidecar's command line: reads and checks the config,
 * opens the log, drops privileges, writes its pid file, hands over to the
 * supervisor.
 */

#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "conf.h"
#include "exec_bridge.h"
#include "handlers.h"
#include "log.h"
#include "pidfile.h"
#include "privs.h"
#include "supervisor.h"


static void
usage(FILE *out)
{
    fprintf(out,
            "usage: offload-sidecar -c <file> [-t]\n"
            "  -c <file>  configuration file\n"
            "  -t         check the configuration and exit\n"
            "  -h, --help this help\n");
}


/* -t: the pid file is written once the process runs as "user": run as
 * root with one, the check runs as that user, in a child that takes its
 * ids.  Returns 0, or -1 with errno set. */
static int
check_pid_file(const offload_conf_t *conf)
{
    int    status;
    pid_t  pid;

    if (conf->user == NULL || geteuid() != 0) {
        return offload_pidfile_check(conf->pid_file);
    }

    pid = fork();
    if (pid == -1) {
        return -1;
    }

    if (pid == 0) {
        /* gone with its parent, as every child of the sidecar */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0
            || initgroups(conf->user, conf->gid) != 0
            || setgid(conf->gid) != 0 || setuid(conf->uid) != 0)
        {
            _exit(errno);
        }
        _exit(offload_pidfile_check(conf->pid_file) == 0 ? 0 : errno);
    }

    if (waitpid(pid, &status, 0) == -1) {
        return -1;
    }

    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        return 0;
    }

    errno = WIFEXITED(status) ? WEXITSTATUS(status) : ECHILD;
    return -1;
}


/* The log cannot be opened: why, and as whom it was tried. */
static void
log_refused(const offload_conf_t *conf, const char *prefix)
{
    int  as_user = conf->user != NULL && geteuid() == 0
                   && (errno == EACCES || errno == EPERM);

    fprintf(stderr, "%scannot open log \"%s\": %s%s%s%s\n", prefix,
            conf->log_target, strerror(errno),
            as_user ? " (started as root, the sidecar opens its log as "
                      "user \"" : "",
            as_user ? conf->user : "",
            as_user ? "\", who must be able to write it: give it a folder "
                      "of its own)" : "");
}


/* A start that failed once the log was open: the log says why, and
 * stderr (the terminal, the journal) says where that is. */
static int
not_started(offload_conf_t *conf)
{
    if (strcmp(conf->log_target, "stderr") != 0) {
        fprintf(stderr, "offload-sidecar: not started: the log (%s) says "
                "why\n", conf->log_target);
    }

    offload_conf_free(conf);
    return 1;
}


int
main(int argc, char **argv)
{
    int             opt, test = 0, rc;
    char            err[OFFLOAD_CONF_ERR_MAX];
    sigset_t        watched;
    const char     *file = NULL;
    offload_conf_t  conf;

    memset(&conf, 0, sizeof(conf));

    static const struct option  longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };

    while ((opt = getopt_long(argc, argv, "c:th", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            file = optarg;
            break;
        case 't':
            test = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }

    if (file == NULL || optind != argc) {
        usage(stderr);
        return 2;
    }

    /* The plugins are loaded here, before any fork: every worker shares
     * their pages, and -t finds what cannot be loaded, and the programs
     * exec queues name that cannot run (exec_program.c). */
    if (offload_conf_load(&conf, file, err, sizeof(err)) != 0
        || offload_handlers_resolve(&conf, err, sizeof(err)) != 0
        || (test
            && offload_exec_programs_check(&conf, err, sizeof(err)) != 0))
    {
        offload_conf_free(&conf);       /* what resolve found wrong */

        fprintf(stderr, "%s\n", err);
        if (test) {
            fprintf(stderr, "%s: test failed\n", file);
        }
        return 1;
    }

    /* the files it would write, as nginx -t checks its logs: a start that
     * would fail at once fails the test, each file said */
    if (test) {
        rc = 0;

        rc = offload_privs_check_log(&conf);
        if (rc == -1) {
            log_refused(&conf, "");
        }

        rc = (rc != 0);

        if (conf.pid_file != NULL && check_pid_file(&conf) != 0) {
            fprintf(stderr, "cannot write the pid file \"%s\": %m\n",
                    conf.pid_file);
            rc = 1;
        }

        offload_conf_free(&conf);

        if (rc != 0) {
            fprintf(stderr, "%s: test failed\n", file);
            return 1;
        }

        printf("%s: syntax is ok\n", file);
        return 0;
    }

    rc = offload_privs_open_log(&conf);
    if (rc != 0) {
        if (rc == -1) {
            log_refused(&conf, "offload-sidecar: ");
        }

        offload_conf_free(&conf);
        return 1;
    }

    if (offload_privs_drop(&conf) != 0) {
        return not_started(&conf);
    }

    /* Once the pid file names us, a script may signal us: held until the
     * supervisor's watchers take them (it unblocks them then), not their
     * default action of killing us meanwhile. */
    offload_supervisor_signals(&watched);
    sigprocmask(SIG_BLOCK, &watched, NULL);

    if (conf.pid_file != NULL && offload_pidfile_write(conf.pid_file) != 0) {
        return not_started(&conf);
    }

    srandom((unsigned) getpid());

    rc = offload_supervisor_run(&conf, file);

    if (conf.pid_file != NULL) {
        offload_pidfile_remove(conf.pid_file);
    }

    offload_conf_free(&conf);
    return rc;
}
