/*
 * conf_test.c -- the config parser: good files give the right values, bad
 * ones give "file:line: message" with the exact line, never a crash.
 */

#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "handlers.h"
#include "log.h"
#include "offload_slot.h"
#include "tap.h"


static char  err[OFFLOAD_CONF_ERR_MAX];


/* Parses and finds the handlers, as offload-sidecar does. */
static int
parse(offload_conf_t *conf, const char *text)
{
    err[0] = '\0';

    if (offload_conf_parse(conf, "t.conf", text, strlen(text), err,
                           sizeof(err))
        != 0)
    {
        return -1;
    }

    if (offload_handlers_resolve(conf, err, sizeof(err)) != 0) {
        offload_conf_free(conf);
        return -1;
    }

    return 0;
}


/* A bad config must fail with exactly this message. */
static void
bad(const char *text, const char *want, const char *what)
{
    offload_conf_t  conf;

    ok(parse(&conf, text) == -1, "rejected: %s", what);
    is_str(err, want, "message: %s", what);
}


#define Q  "queue echo { handler echo; }\n"

#define EXPECTED_ADDR  "host:port, [ipv6]:port, unix:/path, "              \
                       "sentinel://host:port[,host:port...]/<master name> "  \
                       "or cluster://host:port[,host:port...])"


static void
test_full(void)
{
    offload_conf_t  conf;

    ok(parse(&conf,
             "# a comment\n"
             "redis 10.1.2.3:6380;   # trailing comment\n"
             "password \"s3cret; with {braces}\";\n"
             "db 3;\n"
             "node_name alpha-1;\n"
             "log /tmp/x.log debug;\n"
             "heartbeat 500ms;\n"
             "result_ttl 2m;\n"
             "queue sha256 {\n"
             "    handler sha256;\n"
             "    workers 4;\n"
             "    prefetch 8;\n"
             "    max_restarts 3 1m;\n"
             "    restart_cooldown 2s;\n"
             "    restart_backoff 20ms 1s;\n"
             "    retry_backoff 250ms 1m;\n"
             "}\n"
             "queue 'events.aggregate' { handler events.aggregate; }\n") == 0,
       "full config parses (%s)", err);

    ok(strcmp(conf.redis.addr.host, "10.1.2.3") == 0
       && conf.redis.addr.port == 6380
       && !conf.redis.addr.is_unix, "redis address");
    is_str(conf.redis.password, "s3cret; with {braces}", "quoted password");
    ok(conf.redis.db == 3, "db");
    is_str(conf.node_name, "alpha-1", "node_name");
    is_str(conf.log_target, "/tmp/x.log", "log target");
    ok(conf.log_level == OFFLOAD_LOG_DEBUG, "log level");
    ok(conf.heartbeat_ms == 500, "heartbeat 500ms");
    ok(conf.result_ttl_s == 120, "result_ttl 2m");
    ok(conf.nqueues == 2, "two queues");
    is_str(conf.queues[0].name, "sha256", "queue name");
    is_str(conf.queues[0].handler->name, "sha256", "queue handler");
    ok(conf.queues[0].workers == 4 && conf.queues[0].prefetch == 8,
       "workers, prefetch");
    ok(conf.queues[0].max_restarts == 3
       && conf.queues[0].restart_period_ms == 60000, "max_restarts 3 1m");
    ok(conf.queues[0].restart_cooldown_ms == 2000, "restart_cooldown 2s");
    ok(conf.queues[0].backoff_min_ms == 20
       && conf.queues[0].backoff_max_ms == 1000, "restart_backoff 20ms 1s");
    ok(conf.queues[0].retry_base_ms == 250
       && conf.queues[0].retry_max_ms == 60000, "retry_backoff 250ms 1m");
    ok(conf.queues[0].line == 9, "queue line recorded");
    is_str(conf.queues[1].name, "events.aggregate", "quoted queue name");
    ok(conf.queues[1].workers == 1 && conf.queues[1].prefetch == 1,
       "queue defaults");
    ok(conf.queues[1].max_restarts == 5
       && conf.queues[1].restart_period_ms == 10000,
       "max_restarts defaults to 5 10s");
    ok(conf.queues[1].restart_cooldown_ms == 30000,
       "restart_cooldown defaults to 30s");
    ok(conf.queues[1].backoff_min_ms == 10
       && conf.queues[1].backoff_max_ms == 5000,
       "restart_backoff defaults to 10ms 5s");
    ok(conf.queues[1].retry_base_ms == 1000
       && conf.queues[1].retry_max_ms == 300000,
       "retry_backoff defaults to 1s 5m");

    offload_conf_free(&conf);
}


static void
test_defaults(void)
{
    char            host[256];
    offload_conf_t  conf;

    ok(parse(&conf, Q) == 0, "minimal config parses");
    ok(strcmp(conf.redis.addr.host, "127.0.0.1") == 0
       && conf.redis.addr.port == 6379,
       "default redis");
    ok(conf.redis.password == NULL && conf.redis.db == 0, "no password, db 0");
    gethostname(host, sizeof(host));
    host[sizeof(host) - 1] = '\0';
    is_str(conf.node_name, host, "node_name defaults to the host name");
    is_str(conf.log_target, "stderr", "log defaults to stderr");
    ok(conf.log_level == OFFLOAD_LOG_INFO, "log level defaults to info");
    ok(conf.heartbeat_ms == 1000 && conf.result_ttl_s == 60,
       "heartbeat 1s, result_ttl 60s");
    ok(conf.redis.timeout_ms == 2000, "redis_timeout 2s");
    offload_conf_free(&conf);

    ok(parse(&conf, "redis_timeout 750ms;\n" Q) == 0
       && conf.redis.timeout_ms == 750, "redis_timeout 750ms");
    offload_conf_free(&conf);

    ok(parse(&conf, "redis unix:/run/r.sock;\nlog syslog;\n" Q) == 0,
       "unix socket, log without level");
    ok(conf.redis.addr.is_unix
       && strcmp(conf.redis.addr.host, "/run/r.sock") == 0,
       "unix path");
    offload_conf_free(&conf);
}


static void
test_times(void)
{
    long long  ms;

    ok(offload_conf_parse_time("5", &ms) == 0 && ms == 5000, "bare = s");
    ok(offload_conf_parse_time("250ms", &ms) == 0 && ms == 250, "ms");
    ok(offload_conf_parse_time("1m30s", &ms) == 0 && ms == 90000, "1m30s");
    ok(offload_conf_parse_time("2h", &ms) == 0 && ms == 7200000, "h");
    ok(offload_conf_parse_time("1d", &ms) == 0 && ms == 86400000, "d");
    ok(offload_conf_parse_time("", &ms) == -1, "empty time");
    ok(offload_conf_parse_time("s", &ms) == -1, "unit without number");
    ok(offload_conf_parse_time("5x", &ms) == -1, "bad unit");
    ok(offload_conf_parse_time("-5", &ms) == -1, "negative");
    ok(offload_conf_parse_time("1d2h3m4s5ms", &ms) == 0
       && ms == 93784005, "every unit, largest first");
    ok(offload_conf_parse_time("30s1m", &ms) == -1, "units out of order");
    ok(offload_conf_parse_time("1s1s", &ms) == -1, "a unit twice");
    ok(offload_conf_parse_time("1m30", &ms) == 0 && ms == 90000,
       "a bare number last is seconds, as nginx reads it");
    ok(offload_conf_parse_time("500ms1s", &ms) == -1, "ms before s");
    ok(offload_conf_parse_time("99999999999999999999", &ms) == -1,
       "overflow");
}


static void
test_errors(void)
{
    bad("foo bar;\n" Q, "t.conf:1: unknown directive \"foo\"",
        "unknown directive");
    bad(Q "\n\ndb 1;\ndb 2;\n", "t.conf:5: \"db\" directive is duplicate",
        "duplicate directive");
    bad("redis 127.0.0.1:6379\nnode_name x;\n" Q,
        "t.conf:1: invalid number of arguments in \"redis\" directive",
        "missing semicolon between directives");
    bad(Q "db 1", "t.conf:2: directive \"db\" is not terminated by \";\"",
        "missing semicolon at end of file");
    bad("queue echo {\n  handler echo;\n  workers 2\n}\n",
        "t.conf:3: directive \"workers\" is not terminated by \";\"",
        "missing semicolon before }");
    bad("queue echo {\n  handler echo;\n\n",
        "t.conf:4: unexpected end of file, expecting \"}\" to close the "
        "block opened at line 1", "missing }");
    bad(Q "}\n", "t.conf:2: unexpected \"}\"", "stray }");
    bad(Q ";\n", "t.conf:2: unexpected \";\"", "stray ;");
    bad(Q "{\n", "t.conf:2: unexpected \"{\"", "stray {");
    bad("queue echo;\n", "t.conf:1: directive \"queue\" has no opening \"{\"",
        "queue without block");
    bad("db 1 { }\n" Q, "t.conf:1: directive \"db\" takes no block",
        "block on a plain directive");
    bad("queue echo {\n handler nope;\n}\n",
        "t.conf:2: unknown handler \"nope\"", "unknown handler");
    bad("queue echo {\n handler 'a b';\n}\n",
        "t.conf:2: invalid handler name \"a b\"", "invalid handler name");
    bad("load_module /nonexistent/x.so;\n" Q,
        "t.conf:1: cannot load \"/nonexistent/x.so\": /nonexistent/x.so: "
        "cannot open shared object file: No such file or directory",
        "a plugin that is not there");
    bad("queue echo {\n workers 2;\n}\n",
        "t.conf:1: queue \"echo\" has no \"handler\"", "queue without handler");
    bad(Q "\nqueue echo { handler sha256; }\n",
        "t.conf:3: duplicate queue \"echo\" (first defined at line 1)",
        "duplicate queue");
    bad("queue 'a b' { handler echo; }\n",
        "t.conf:1: invalid queue name \"a b\" (expected 1..64 of A-Z a-z 0-9 "
        "_ . -)", "bad queue name");
    bad("queue echo { handler echo; handler echo; }\n",
        "t.conf:1: \"handler\" directive is duplicate",
        "duplicate directive in a queue");
    bad("queue echo {\n handler echo;\n workers 0;\n}\n",
        "t.conf:3: invalid \"workers\" value \"0\" (expected 1..256)",
        "workers 0");
    bad("queue echo {\n handler echo;\n workers 257;\n}\n",
        "t.conf:3: invalid \"workers\" value \"257\" (expected 1..256)",
        "workers 257");
    bad("queue echo {\n handler echo;\n prefetch 1001;\n}\n",
        "t.conf:3: invalid \"prefetch\" value \"1001\" (expected 1..1000)",
        "prefetch too big");
    bad("queue echo {\n handler echo;\n prefetch x;\n}\n",
        "t.conf:3: invalid \"prefetch\" value \"x\" (expected 1..1000)",
        "prefetch not a number");
    bad("queue echo {\n handler echo;\n max_restarts 10001 10s;\n}\n",
        "t.conf:3: invalid \"max_restarts\" value \"10001\" (expected "
        "0..10000)", "max_restarts too many");
    bad("queue echo {\n handler echo;\n\n max_restarts -1 10s;\n}\n",
        "t.conf:4: invalid \"max_restarts\" value \"-1\" (expected "
        "0..10000)", "max_restarts negative");
    bad("queue echo {\n handler echo;\n max_restarts 5 10x;\n}\n",
        "t.conf:3: invalid time \"10x\" in \"max_restarts\"",
        "max_restarts bad period");
    bad("queue echo {\n handler echo;\n max_restarts 5 0;\n}\n",
        "t.conf:3: \"max_restarts\" must be 10ms..86400s",
        "max_restarts period 0");
    bad("queue echo {\n handler echo;\n max_restarts 5;\n}\n",
        "t.conf:3: invalid number of arguments in \"max_restarts\" "
        "directive", "max_restarts without period");
    bad("queue echo {\n handler echo;\n max_restarts 1 1s;\n"
        " max_restarts 2 1s;\n}\n",
        "t.conf:4: \"max_restarts\" directive is duplicate",
        "max_restarts twice");
    bad("max_restarts 5 10s;\n" Q,
        "t.conf:1: \"max_restarts\" directive is not allowed here",
        "max_restarts outside a queue");
    bad("queue echo {\n handler echo;\n restart_cooldown 2d;\n}\n",
        "t.conf:3: \"restart_cooldown\" must be 0ms..86400s",
        "restart_cooldown too long");
    bad("queue echo {\n handler echo;\n restart_cooldown soon;\n}\n",
        "t.conf:3: invalid time \"soon\" in \"restart_cooldown\"",
        "restart_cooldown not a time");
    bad("queue echo {\n handler echo;\n restart_backoff 2s 1s;\n}\n",
        "t.conf:3: \"restart_backoff\" minimum \"2s\" is greater than its "
        "maximum \"1s\"", "restart_backoff min > max");
    bad("queue echo {\n handler echo;\n restart_backoff 0 1s;\n}\n",
        "t.conf:3: \"restart_backoff\" must be 1ms..86400s",
        "restart_backoff minimum 0");
    bad("queue echo {\n handler echo;\n restart_backoff 10ms x;\n}\n",
        "t.conf:3: invalid time \"x\" in \"restart_backoff\"",
        "restart_backoff bad maximum");
    bad("queue echo {\n handler echo;\n retry_backoff 1m 1s;\n}\n",
        "t.conf:3: \"retry_backoff\" minimum \"1m\" is greater than its "
        "maximum \"1s\"", "retry_backoff base > max");
    bad("queue echo {\n handler echo;\n retry_backoff 1s;\n}\n",
        "t.conf:3: invalid number of arguments in \"retry_backoff\" "
        "directive",
        "retry_backoff needs two times");
    bad("queue echo {\n handler echo;\n restart_backoff 10ms;\n}\n",
        "t.conf:3: invalid number of arguments in \"restart_backoff\" "
        "directive", "restart_backoff with one time");
    bad("handler echo;\n" Q, "t.conf:1: \"handler\" directive is not allowed "
        "here", "queue directive at top level");
    bad("queue echo {\n handler echo;\n redis_timeout 1s;\n}\n",
        "t.conf:3: \"redis_timeout\" directive is not allowed here",
        "main directive in a queue");
    bad("queue echo {\n queue x { handler echo; }\n}\n",
        "t.conf:2: \"queue\" directive is not allowed here", "nested queue");
    bad("\n\n# nothing\n", "t.conf:4: no \"queue\" defined", "no queues");
    bad("", "t.conf:1: no \"queue\" defined", "empty file");
    bad("redis nohost:99999;\n" Q,
        "t.conf:1: invalid redis address \"nohost:99999\" (expected "
        EXPECTED_ADDR, "bad port");
    bad("redis unix:relative;\n" Q,
        "t.conf:1: invalid redis address \"unix:relative\" (expected "
        EXPECTED_ADDR, "relative unix path");
    bad("db -1;\n" Q, "t.conf:1: invalid \"db\" value \"-1\" (expected "
        "0..65535)",
        "negative db");
    bad("password \"\";\n" Q, "t.conf:1: empty password", "empty password");
    bad("node_name 'a:b';\n" Q,
        "t.conf:1: invalid node name \"a:b\" (expected 1..64 of A-Z a-z 0-9 "
        "_ . -)", "bad node name");
    bad("log stderr loud;\n" Q,
        "t.conf:1: invalid log level or format \"loud\" (expected debug, "
        "info, notice, warn, error, json or text)", "bad log level");
    bad("log;\n" Q, "t.conf:1: invalid number of arguments in \"log\" "
        "directive", "log without arguments");
    bad("heartbeat 1x;\n" Q, "t.conf:1: invalid time \"1x\" in \"heartbeat\"",
        "bad time");
    bad("heartbeat 5ms;\n" Q, "t.conf:1: \"heartbeat\" must be 10ms..3600s",
        "heartbeat too short");
    bad("redis_timeout 100ms;\n" Q,
        "t.conf:1: \"redis_timeout\" must be 500ms..600s",
        "redis_timeout too short for a blocking read");
    bad("result_ttl 500ms;\n" Q,
        "t.conf:1: \"result_ttl\" must be 1000ms..2592000s",
        "result_ttl below a second");
    bad(Q "password \"abc\n\ndef;\n",
        "t.conf:2: unterminated string", "unterminated string");
    bad("db 1 2 3 4 5 6 7 8 9 10;\n" Q,
        "t.conf:1: too many arguments in \"db\" directive", "many arguments");
}


static void
test_misc(void)
{
    char             path[] = "/tmp/conf_test_XXXXXX";
    int              fd;
    offload_conf_t   conf;
    static const char  text[] = "node_name n1;\nqueue echo {\n"
                                "  handler echo;\n}\n";
    static const char  nul[] = "db 1;\n\0" Q;

    ok(parse(&conf, "result_ttl 1500ms;\n" Q) == 0
       && conf.result_ttl_s == 2, "result_ttl rounds up to whole seconds");
    offload_conf_free(&conf);

    ok(parse(&conf, "queue echo {\n handler echo;\n max_restarts 0 1s;\n"
             " restart_cooldown 0;\n restart_backoff 1s 1s;\n}\n") == 0
       && conf.queues[0].max_restarts == 0
       && conf.queues[0].restart_cooldown_ms == 0
       && conf.queues[0].backoff_min_ms == 1000
       && conf.queues[0].backoff_max_ms == 1000,
       "max_restarts 0, restart_cooldown 0, equal backoff bounds (%s)", err);
    offload_conf_free(&conf);

    ok(parse(&conf, "password 'it\\'s';\n" Q) == 0
       && strcmp(conf.redis.password, "it's") == 0,
       "backslash escape in a string");
    offload_conf_free(&conf);

    ok(offload_conf_parse(&conf, "t.conf", nul, sizeof(nul) - 1, err,
                          sizeof(err)) == -1, "NUL byte rejected");
    is_str(err, "t.conf:2: unexpected NUL byte", "NUL byte message");

    fd = mkstemp(path);
    ok(fd >= 0 && write(fd, text, sizeof(text) - 1)
                  == (ssize_t) (sizeof(text) - 1), "temp file written");
    close(fd);

    ok(offload_conf_load(&conf, path, err, sizeof(err)) == 0
       && strcmp(conf.node_name, "n1") == 0, "load from a file");
    offload_conf_free(&conf);
    unlink(path);

    ok(offload_conf_load(&conf, path, err, sizeof(err)) == -1
       && strstr(err, "cannot open") != NULL, "missing file: %s", err);
}


/* The directives of supervision (issue 3): values, defaults, errors. */
static void
test_supervision(void)
{
    long long       bytes;
    offload_conf_t  conf;

    ok(parse(&conf, "shutdown_timeout 3s;\nclaim_idle 500ms;\n"
                    "fault_handlers on;\n"
                    "queue c {\n  handler crash;\n  max_attempts 5;\n"
                    "  timeout 2m;\n  memory_limit 64m;\n"
                    "  max_jobs_per_worker 100;\n  nice 0;\n}\n") == 0,
       "supervision directives parse: %s", err);
    ok(conf.shutdown_timeout_ms == 3000 && conf.claim_idle_ms == 500
       && conf.fault_handlers == 1, "global values");
    ok(conf.queues[0].max_attempts == 5
       && conf.queues[0].timeout_ms == 120000
       && conf.queues[0].memory_limit == 64LL * 1024 * 1024
       && conf.queues[0].max_jobs == 100 && conf.queues[0].nice == 0,
       "queue values");
    offload_conf_free(&conf);

    ok(parse(&conf, "log /tmp/x.log json warn;\n" Q) == 0
       && conf.log_json == 1 && conf.log_level == OFFLOAD_LOG_WARN,
       "log json, level after the format");
    offload_conf_free(&conf);

    ok(parse(&conf, Q) == 0 && conf.log_json == 0, "text logs by default");
    offload_conf_free(&conf);

    ok(parse(&conf, "queue e { handler echo; timeout off; "
                    "memory_limit off; }\n") == 0
       && conf.queues[0].timeout_ms == 0 && conf.queues[0].memory_limit == 0,
       "timeout off, memory_limit off");
    offload_conf_free(&conf);

    ok(parse(&conf, Q) == 0, "defaults parse");
    ok(conf.shutdown_timeout_ms == 10000 && conf.claim_idle_ms == 5000
       && conf.fault_handlers == 0, "global defaults: 10s, 5s, off");
    ok(conf.queues[0].max_attempts == 2 && conf.queues[0].timeout_ms == 60000
       && conf.queues[0].memory_limit == 0 && conf.queues[0].max_jobs == 0
       && conf.queues[0].nice == 10,
       "queue defaults: 2 attempts, 60s, no limits, nice 10");
    offload_conf_free(&conf);

    bad("queue c { handler crash; }\n",
        "t.conf:1: handler \"crash\" of queue \"c\" crashes on purpose; it "
        "needs \"fault_handlers on\"", "a fault handler without "
        "fault_handlers on");
    bad("fault_handlers yes;\n" Q, "t.conf:1: invalid value \"yes\" in "
        "\"fault_handlers\" (expected on or off)", "fault_handlers yes");
    bad("queue e { handler echo; max_attempts 0; }\n",
        "t.conf:1: invalid \"max_attempts\" value \"0\" (expected "
        "1..100)", "max_attempts 0");
    bad("queue e { handler echo; timeout x; }\n",
        "t.conf:1: invalid time \"x\" in \"timeout\"", "timeout x");
    bad("queue e { handler echo; memory_limit 10; }\n",
        "t.conf:1: invalid \"memory_limit\" value \"10\" (expected off or "
        "a size of at least 1m, like 256m)", "memory_limit below 1m");
    bad("queue e { handler echo; max_jobs_per_worker -1; }\n",
        "t.conf:1: invalid \"max_jobs_per_worker\" value \"-1\" (expected "
        "0..2147483647, 0 for no limit)", "max_jobs_per_worker -1");
    bad("queue e { handler echo; nice 20; }\n",
        "t.conf:1: invalid \"nice\" value \"20\" (expected 0..19)",
        "nice 20");

    ok(offload_conf_parse_size("512k", &bytes) == 0 && bytes == 512 * 1024,
       "size 512k");
    ok(offload_conf_parse_size("2G", &bytes) == 0
       && bytes == 2LL * 1024 * 1024 * 1024, "size 2G");
    ok(offload_conf_parse_size("100", &bytes) == 0 && bytes == 100,
       "bare size is bytes");
    ok(offload_conf_parse_size("m", &bytes) == -1, "unit without number");
    ok(offload_conf_parse_size("5t", &bytes) == -1, "unknown unit");
    ok(offload_conf_parse_size("2048g", &bytes) == -1, "over 1 TiB");
}


/* user and redis_user: the Unix user to run as, resolved while parsing so
 * that "-t" finds a missing one; the Redis ACL user, which needs a
 * password. */
static void
test_users(void)
{
    offload_conf_t   conf;
    struct group    *gr;
    struct passwd   *pw;

    pw = getpwnam("nobody");
    gr = getgrnam("nogroup");

    ok(parse(&conf, Q) == 0 && conf.user == NULL && conf.redis.user == NULL,
       "no user, no redis_user by default");
    offload_conf_free(&conf);

    ok(parse(&conf, "user nobody;\n" Q) == 0, "user nobody (%s)", err);
    ok(pw != NULL && conf.user != NULL && strcmp(conf.user, "nobody") == 0
       && conf.uid == pw->pw_uid && conf.gid == pw->pw_gid,
       "user nobody: its uid and primary group");
    offload_conf_free(&conf);

    ok(parse(&conf, "user nobody nogroup;\n" Q) == 0
       && gr != NULL && conf.gid == gr->gr_gid, "user nobody nogroup");
    offload_conf_free(&conf);

    bad(Q "\nuser no-such-user-x;\n",
        "t.conf:3: unknown user \"no-such-user-x\" in \"user\"",
        "unknown user");
    bad("user nobody no-such-group-x;\n" Q,
        "t.conf:1: unknown group \"no-such-group-x\" in \"user\"",
        "unknown group");
    bad("user;\n" Q, "t.conf:1: invalid number of arguments in \"user\" "
        "directive", "user without a name");
    bad("user nobody nogroup extra;\n" Q, "t.conf:1: invalid number of "
        "arguments in \"user\" directive", "user with three arguments");
    bad("user nobody;\nuser nobody;\n" Q,
        "t.conf:2: \"user\" directive is duplicate", "user twice");
    bad("queue e { handler echo; user nobody; }\n",
        "t.conf:1: \"user\" directive is not allowed here",
        "user in a queue block");

    ok(parse(&conf, "redis_user offload-sidecar;\npassword pw;\n" Q) == 0
       && strcmp(conf.redis.user, "offload-sidecar") == 0
       && strcmp(conf.redis.password, "pw") == 0, "redis_user with a password");
    offload_conf_free(&conf);

    bad(Q "redis_user sidecar;\n", "t.conf:2: \"redis_user\" needs "
        "\"password\"", "redis_user without a password");
    bad("redis_user '';\npassword pw;\n" Q, "t.conf:1: empty redis_user",
        "empty redis_user");
    bad("redis_user a b;\npassword pw;\n" Q, "t.conf:1: invalid number of "
        "arguments in \"redis_user\" directive", "redis_user a b");
}


/* Loads text from a temp file: the redis host is resolved then, once. */
static int
load_text(offload_conf_t *conf, const char *text, char *path, char *err,
    size_t errlen)
{
    int  fd, rc;

    strcpy(path, "/tmp/conf_test.XXXXXX");
    fd = mkstemp(path);
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t) strlen(text)) {
        return -2;
    }
    close(fd);

    rc = offload_conf_load(conf, path, err, errlen);
    unlink(path);
    return rc;
}


static void
test_resolve(void)
{
    char            path[64], err[OFFLOAD_CONF_ERR_MAX], want[128];
    offload_conf_t  conf;

    ok(load_text(&conf, "redis localhost:6390;\n" Q, path, err, sizeof(err))
       == 0
       && (strcmp(conf.redis.addr.host, "127.0.0.1") == 0
           || strcmp(conf.redis.addr.host, "::1") == 0)
       && conf.redis.addr.port == 6390,
       "a redis host name is resolved once, at load (%s)", err);
    offload_conf_free(&conf);

    ok(load_text(&conf, "redis 127.0.0.1:6390;\n" Q, path, err, sizeof(err))
       == 0 && strcmp(conf.redis.addr.host, "127.0.0.1") == 0,
       "an address stays as it is");
    offload_conf_free(&conf);

    ok(load_text(&conf, "node_name n;\nredis no-such-host.invalid:1;\n" Q,
                 path, err, sizeof(err))
       == -1, "an unknown redis host is refused");
    snprintf(want, sizeof(want), "%s:2: cannot resolve redis host "
             "\"no-such-host.invalid\"", path);
    ok(strncmp(err, want, strlen(want)) == 0, "with file:line: %s", err);

    ok(parse(&conf, "redis no-such-host.invalid:1;\n" Q) == 0,
       "parsing alone does not resolve");
    offload_conf_free(&conf);
}


/* A queue's own Redis: what its block says, the rest inherited from the
 * top level whether written before or after the block; resolved at load
 * like the top level's. */
static void
test_queue_redis(void)
{
    char                         path[64], err[OFFLOAD_CONF_ERR_MAX];
    offload_conf_t               conf;
    const offload_conf_queue_t  *a, *b;

    ok(parse(&conf, "queue a { handler echo; }\n"
                    "queue b { handler echo; redis 10.0.0.2:6380; db 2;\n"
                    "          redis_user bee; password pb; }\n"
                    "redis 10.0.0.1:6379;\npassword top;\ndb 1;\n"
                    "redis_timeout 700ms;\n") == 0,
       "a queue names its own redis (%s)", err);
    a = &conf.queues[0];
    b = &conf.queues[1];
    ok(strcmp(a->redis.addr.host, "10.0.0.1") == 0
       && a->redis.addr.port == 6379 && a->redis.db == 1
       && a->redis.user == NULL && strcmp(a->redis.password, "top") == 0
       && a->redis.timeout_ms == 700,
       "a queue without one inherits the top level's");
    ok(offload_redis_endpoint_same(&a->redis, &conf.redis),
       "the same endpoint as the top level");
    ok(strcmp(b->redis.addr.host, "10.0.0.2") == 0
       && b->redis.addr.port == 6380 && b->redis.db == 2
       && strcmp(b->redis.user, "bee") == 0
       && strcmp(b->redis.password, "pb") == 0
       && b->redis.timeout_ms == 700,
       "the queue's own redis, db, redis_user and password");
    ok(!offload_redis_endpoint_same(&a->redis, &b->redis),
       "another endpoint");
    offload_conf_free(&conf);

    ok(parse(&conf, "password top;\nqueue b { handler echo; "
                    "redis 10.0.0.2:6380; }\n") == 0
       && strcmp(conf.queues[0].redis.password, "top") == 0
       && conf.queues[0].redis.db == 0,
       "each directive inherits on its own: password");

    offload_conf_free(&conf);

    bad("queue b {\n handler echo;\n redis_user u;\n}\n",
        "t.conf:3: \"redis_user\" needs \"password\"",
        "a queue's redis_user without a password");
    bad("queue b {\n handler echo;\n redis a:b:c;\n}\n",
        "t.conf:3: invalid redis address \"a:b:c\" (expected "
        EXPECTED_ADDR, "a queue's bad redis address");
    bad(Q "redis 127.0.0.1 wait_replicas=x;\n",
        "t.conf:2: invalid redis parameter \"wait_replicas=x\" (expected "
        "wait_replicas=0..16 or all)", "a bad wait_replicas");
    bad(Q "redis sentinel://127.0.0.1:1;\n",
        "t.conf:2: invalid sentinel address \"sentinel://127.0.0.1:1\" "
        "(expected sentinel://host:port[,host:port...]/<master name>)",
        "sentinels without a master name");
    bad(Q "redis sentinel://a:1,unix:/x/m;\n",
        "t.conf:2: invalid sentinel \"unix:/x\" in "
        "\"sentinel://a:1,unix:/x/m\" (expected host:port or [ipv6]:port)",
        "a unix sentinel");

    ok(parse(&conf, Q "redis sentinel://10.0.0.1:26380,[::1],h/mymaster "
                    "wait_replicas=1;\n") == 0
       && conf.redis.nsentinels == 3
       && strcmp(conf.redis.sentinels[0].host, "10.0.0.1") == 0
       && conf.redis.sentinels[0].port == 26380
       && strcmp(conf.redis.sentinels[1].host, "::1") == 0
       && conf.redis.sentinels[1].port == 26379
       && strcmp(conf.redis.sentinels[2].host, "h") == 0
       && conf.redis.sentinels[2].port == 26379
       && strcmp(conf.redis.master, "mymaster") == 0
       && conf.redis.wait_replicas == 1
       && conf.queues[0].redis.nsentinels == 3
       && conf.queues[0].redis.wait_replicas == 1,
       "sentinels (port 26379 by default), master, wait_replicas, "
       "inherited (%s)", err);
    offload_conf_free(&conf);

    ok(parse(&conf, Q "redis sentinel://10.0.0.1/m wait_replicas=all;\n")
       == 0
       && conf.redis.wait_replicas == OFFLOAD_WAIT_ALL
       && conf.queues[0].redis.wait_replicas == OFFLOAD_WAIT_ALL,
       "wait_replicas=all, inherited (%s)", err);
    offload_conf_free(&conf);
    bad("queue b {\n handler echo;\n db 1;\n db 2;\n}\n",
        "t.conf:4: \"db\" directive is duplicate", "db twice in a queue");

    ok(parse(&conf, Q "redis cluster://10.0.0.1:7001,[::1],h;\n"
                    "queue b { handler echo; redis cluster://10.0.0.9; }\n")
       == 0
       && conf.redis.nseeds == 3
       && strcmp(conf.redis.seeds[0].host, "10.0.0.1") == 0
       && conf.redis.seeds[0].port == 7001
       && strcmp(conf.redis.seeds[1].host, "::1") == 0
       && conf.redis.seeds[1].port == 6379
       && conf.redis.seeds[2].port == 6379
       && conf.redis.slot == offload_redis_control_slot()
       && conf.redis.slot == (int) offload_key_slot("ctl", 3)
       && conf.queues[0].redis.nseeds == 3
       && conf.queues[0].redis.slot == (int) offload_key_slot("echo", 4)
       && conf.queues[1].redis.nseeds == 1
       && conf.queues[1].redis.seeds[0].port == 6379
       && conf.queues[1].redis.slot == (int) offload_key_slot("b", 1),
       "cluster seeds (port 6379 by default), inherited; each queue's "
       "slot its name's (%s)", err);
    ok(!offload_redis_endpoint_same(&conf.queues[0].redis, &conf.redis)
       && offload_redis_endpoint_same_keys(&conf.queues[0].redis,
                                           &conf.redis)
       && offload_redis_endpoint_is_control(&conf.redis)
       && !offload_redis_endpoint_is_control(&conf.queues[0].redis)
       && !offload_redis_endpoint_same_keys(&conf.queues[1].redis,
                                            &conf.redis),
       "a cluster's endpoints: one keyspace, a connection per slot");
    offload_conf_free(&conf);
    ok(parse(&conf, Q "redis cluster://c:3,a:1,b:2;\n"
                    "queue b { handler echo; redis cluster://b:2,c:3,a:1; }\n")
       == 0
       && strcmp(conf.redis.seeds[0].host, "a") == 0
       && offload_redis_endpoint_same_keys(&conf.queues[1].redis,
                                           &conf.redis),
       "seed lists are sets: the same seeds in another order, one cluster "
       "(%s)", err);
    offload_conf_free(&conf);
    bad(Q "redis cluster://a:1,b:2;\n"
        "queue b {\n handler echo;\n redis cluster://b:2,c:3;\n}\n",
        "t.conf:5: queue \"b\": its cluster seeds differ from queue "
        "\"echo\"'s but share a seed: every seed list of one cluster must "
        "name the same seeds", "two seed lists of one cluster");
    bad(Q "redis cluster://a:1/x;\n",
        "t.conf:2: invalid cluster seed \"a:1/x\" in \"cluster://a:1/x\" "
        "(expected cluster://host:port[,host:port...])", "a seed with a path");
    bad(Q "redis cluster://a:1;\ndb 3;\n",
        "t.conf:2: \"db\" 3 with a \"redis cluster://...\": a Redis Cluster "
        "has only db 0", "db with a cluster");
    bad("redis cluster://a:1;\nqueue b {\n handler echo;\n db 1;\n}\n",
        "t.conf:2: \"db\" 1 with a \"redis cluster://...\": a Redis Cluster "
        "has only db 0", "a queue's db with an inherited cluster");
    ok(load_text(&conf, Q "redis cluster://127.0.0.1:1 wait_replicas=1;\n",
                 path, err, sizeof(err))
       == 0
       && conf.queues[0].redis.nseeds == 1
       && conf.queues[0].redis.wait_replicas == 1,
       "wait_replicas with a cluster (%s)", err);
    offload_conf_free(&conf);
    ok(load_text(&conf, Q "redis cluster://127.0.0.1:1 wait_replicas=all;\n",
                 path, err, sizeof(err))
       == 0
       && conf.queues[0].redis.wait_replicas == OFFLOAD_WAIT_ALL,
       "wait_replicas=all with a cluster (%s)", err);
    offload_conf_free(&conf);

    ok(load_text(&conf, "queue b { handler echo; redis localhost:6391; }\n",
                 path, err, sizeof(err))
       == 0
       && (strcmp(conf.queues[0].redis.addr.host, "127.0.0.1") == 0
           || strcmp(conf.queues[0].redis.addr.host, "::1") == 0)
       && conf.queues[0].redis.addr.port == 6391,
       "a queue's redis host is resolved at load (%s)", err);
    offload_conf_free(&conf);
}


/* load_module: repeatable, a relative path is the config file's
 * folder's. */
static void
test_load_module(void)
{
    static const char  text[] = "load_module /opt/a.so;\n"
                                "load_module plugins/b.so;\n" Q;
    offload_conf_t     conf;

    ok(offload_conf_parse(&conf, "/etc/offload/s.conf", text,
                          sizeof(text) - 1, err, sizeof(err)) == 0
       && conf.nmodules == 2, "two load_module");
    is_str(conf.modules[0].path, "/opt/a.so", "absolute path kept");
    is_str(conf.modules[1].path, "/etc/offload/plugins/b.so",
           "relative path from the config's folder");
    ok(conf.modules[1].line == 2, "its line");
    offload_conf_free(&conf);

    ok(offload_conf_parse(&conf, "s.conf", text, sizeof(text) - 1, err,
                          sizeof(err)) == 0
       && strcmp(conf.modules[1].path, "./plugins/b.so") == 0,
       "a config in the current folder: ./, not the library path");
    offload_conf_free(&conf);

    bad("queue echo { load_module /a.so; handler echo; }\n",
        "t.conf:1: \"load_module\" directive is not allowed here",
        "load_module in a queue");
}


/* The argv a queue's command became, joined with '|' for comparing. */
static void
is_argv(const char *text, const char *want, const char *what)
{
    int             i;
    char            got[256] = "";
    offload_conf_t  conf;

    if (parse(&conf, text) != 0) {
        ok(0, "%s: parsed (%s)", what, err);
        return;
    }

    for (i = 0; conf.queues[0].command[i] != NULL; i++) {
        snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%s",
                 i ? "|" : "", conf.queues[0].command[i]);
    }

    is_str(got, want, "%s", what);
    offload_conf_free(&conf);
}


/* command: split like simple shell words, no shell; with handler exec
 * only, which needs it. */
static void
test_command(void)
{
    offload_conf_t  conf;

    ok(parse(&conf, "queue t {\n  handler exec;\n"
                    "  command \"/usr/bin/python3 /srv/t.py\";\n}\n") == 0,
       "handler exec with a command (%s)", err);
    is_str(conf.queues[0].handler->name, "exec", "the handler is exec");
    is_str(conf.queues[0].command_text, "/usr/bin/python3 /srv/t.py",
           "the command as written");
    ok(conf.queues[0].command_line == 3, "its line");
    offload_conf_free(&conf);

    is_argv("queue t { handler exec; command \"a  b\tc\"; }\n", "a|b|c",
            "blanks separate words");
    is_argv("queue t { handler exec; command \"/bin/sh -c 'echo \\\"x y\\\" "
            ">&2; exit 3'\"; }\n", "/bin/sh|-c|echo \"x y\" >&2; exit 3",
            "single quotes keep a word whole, a shell is asked for");
    is_argv("queue t { handler exec; command 'p \"a b\" c\\\\ d'; }\n",
            "p|a b|c d", "double quotes and a backslash");
    is_argv("queue t { handler exec; command 'p \"\"'; }\n", "p|",
            "an empty word");
    is_argv("queue t { handler exec; command node \"/srv/my app.js\"; }\n",
            "node|/srv/my app.js", "several arguments: one word each");

    bad("queue t { handler exec; }\n",
        "t.conf:1: queue \"t\": \"handler exec\" needs a \"command\"",
        "exec without a command");
    bad("queue t {\n handler echo;\n command \"/bin/true\";\n}\n",
        "t.conf:3: queue \"t\": \"command\" needs \"handler exec\" (its "
        "handler is \"echo\")", "a command with another handler");
    bad("queue t { handler exec; command \"p 'x\"; }\n",
        "t.conf:1: invalid \"command\" \"p 'x\": unterminated quote",
        "an unterminated quote");
    bad("queue t { handler exec; command \"  \"; }\n",
        "t.conf:1: invalid \"command\" \"  \": no program", "no program");
    bad("queue t { handler exec; command a; command b; }\n",
        "t.conf:1: \"command\" directive is duplicate", "two commands");
}


int
main(void)
{
    test_full();
    test_supervision();
    test_defaults();
    test_times();
    test_errors();
    test_misc();
    test_users();
    test_resolve();
    test_queue_redis();
    test_load_module();
    test_command();
    return done_testing();
}
