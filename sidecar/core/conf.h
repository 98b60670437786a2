/*
 * conf.h -- the sidecar's configuration, as read from its nginx-like
 * config file by conf.c.
 */

#ifndef OFFLOAD_CONF_H
#define OFFLOAD_CONF_H

#include <stddef.h>
#include <sys/types.h>

#include "offload.h"
#include "offload_proto.h"
#include "redis_endpoint.h"

#define OFFLOAD_CONF_ERR_MAX     512
#define OFFLOAD_NODE_NAME_MAX    64
#define OFFLOAD_WORKERS_MAX      256
#define OFFLOAD_PREFETCH_MAX     1000
#define OFFLOAD_RESTARTS_MAX     10000
#define OFFLOAD_ATTEMPTS_MAX     100
#define OFFLOAD_HANDLER_NAME_MAX 64
#define OFFLOAD_COMMAND_ARGS_MAX 256
#define OFFLOAD_EXEC_HANDLER     "exec"   /* runs the queue's command */

/* Where the Redis logins were given (0: not in this context), for the
 * messages of the checks made once the file is read. */
typedef struct {
    int                       user;
    int                       sentinel_user;
    int                       sentinel_password;
} offload_conf_logins_t;

typedef struct {
    char                      name[OFFLOAD_QUEUE_NAME_MAX + 1];
    char                      handler_name[OFFLOAD_HANDLER_NAME_MAX + 1];
    int                       handler_line;
    const offload_handler_t  *handler;      /* offload_handlers_resolve() */
    int                       workers;
    int                       prefetch;
    /* Restart intensity: more than max_restarts in restart_period_ms fail
     * the pool for restart_cooldown_ms.  A slot's consecutive crashes wait
     * backoff_min_ms, doubling up to backoff_max_ms. */
    int                       max_restarts;
    int                       restart_period_ms;
    int                       restart_cooldown_ms;
    int                       backoff_min_ms;
    int                       backoff_max_ms;
    /* A job is run at most max_attempts times, counting the runs its
     * worker died under (then it goes to the dead-letter stream) and those
     * its handler failed with offload_job_retry() (then that failure is
     * its answer).  Such a retry waits retry_base_ms * 2^(attempt - 1),
     * at most retry_max_ms, with equal jitter (retry.c). */
    int                       max_attempts;
    int                       retry_base_ms;
    int                       retry_max_ms;
    int                       timeout_ms;       /* 0: jobs may run forever */
    int                       init_timeout_ms;  /* a worker's handler init;
                                                   0: no limit */
    long long                 memory_limit;     /* bytes of RSS, 0: none */
    int                       max_jobs;         /* per worker, 0: no limit */
    int                       nice;             /* workers' scheduling
                                                   niceness, 0..19 */
    /* handler exec: the program each worker keeps running, as argv
     * (NULL-terminated, one allocation) and as written, for messages. */
    char                    **command;
    char                     *command_text;
    int                       command_line;
    /* handler exec: the worker takes no job before the process has said
     * {"ready":true} (exec_bridge.c); 0 where wait_ready is not said */
    int                       wait_ready;
    int                       wait_ready_line;
    /* The queue's Redis (sharding by queue): what the block says, the
     * rest inherited from the top level by offload_conf_parse(). */
    offload_redis_endpoint_t  redis;
    int                       redis_line;       /* 0: inherited */
    offload_conf_logins_t     logins;
    int                       line;         /* where the block starts */
} offload_conf_queue_t;

/* A plugin to load (load_module): an absolute path, or one relative to the
 * config file's folder made absolute by the parser. */
typedef struct {
    char                  *path;
    int                    line;
} offload_conf_module_t;

typedef struct {
    char                  *file;            /* the config file, for
                                               messages after parsing */
    offload_redis_endpoint_t  redis;        /* its address resolved by
                                               offload_conf_load() */
    int                    redis_line;
    char                   node_name[OFFLOAD_NODE_NAME_MAX + 1];
    char                  *log_target;      /* "stderr", "syslog" or a path */
    int                    log_level;
    int                    log_json;         /* JSON lines, not text */
    int                    heartbeat_ms;
    int                    result_ttl_s;
    int                    shutdown_timeout_ms;
    int                    claim_idle_ms;    /* a lost node's jobs wait */
    int                    fault_handlers;   /* crash, hang...: tests only */
    char                  *pid_file;        /* "pid": where the
                                               supervisor's pid goes, or
                                               NULL */
    char                  *user;            /* Unix user to run as; NULL:
                                               stay who started us */
    uid_t                  uid;
    gid_t                  gid;
    offload_conf_queue_t  *queues;
    size_t                 nqueues;
    offload_conf_module_t *modules;
    size_t                 nmodules;
} offload_conf_t;

/* Parses text (len bytes; file names it in messages).  Handler names are
 * only checked for their form: offload_handlers_resolve() (handlers.h)
 * loads the plugins and finds each queue's handler.  Returns 0, or -1 with
 * "file:line: message" in err.  On success free the result with
 * offload_conf_free(); on failure nothing is left to free. */
int offload_conf_parse(offload_conf_t *conf, const char *file,
    const char *text, size_t len, char *err, size_t errlen);

/* From now on, a file without a "queue" is read too (offloadctl's: a
 * submitter's file names its Redis and user, and serves nothing). */
void offload_conf_queues_optional(void);

/* Reads and parses a file, as above. */
int offload_conf_load(offload_conf_t *conf, const char *file, char *err,
    size_t errlen);

void offload_conf_free(offload_conf_t *conf);

/* Whether name is a handler name: 1..OFFLOAD_HANDLER_NAME_MAX letters,
 * digits, '.', '_' and '-'. */
int offload_conf_handler_name_valid(const char *name);

/* Parses an nginx-style time ("500ms", "2s", "1m30s", "1h", a bare number
 * is seconds) into ms: as nginx, units from the largest down, each once,
 * and a bare number last is seconds ("1m30" is 90 s; "30s1m" and "1s1s"
 * are refused).  Returns 0 or -1. */
int offload_conf_parse_time(const char *text, long long *ms);

/* Parses an nginx-style size ("512k", "64m", "1g", a bare number is bytes)
 * into bytes.  Returns 0 or -1. */
int offload_conf_parse_size(const char *text, long long *bytes);

#endif /* OFFLOAD_CONF_H */
