/*
 * offload_proto.h -- the wire protocol between the nginx module and the
 * sidecar, in one place.
 *
 * Both sides compile proto/offload_proto.c, so key names, field names, the
 * protocol version and the encoding of jobs and results cannot drift apart.
 * Plain C99, no nginx, libev or hiredis types: the module and the sidecar
 * wrap these helpers in their own I/O.  docs/PROTOCOL.md is the prose twin.
 */

#ifndef OFFLOAD_PROTO_H
#define OFFLOAD_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define OFFLOAD_PROTO_VERSION      1

#define OFFLOAD_QUEUE_NAME_MAX     64
/* The bounds nginx's offload_redis and the sidecar's redis take alike:
 * wait_replicas=<n> (0: no WAIT) and db */
#define OFFLOAD_WAIT_REPLICAS_MAX  16
#define OFFLOAD_DB_MAX             65535
/* A job id the module makes: 11 hex of its nonce, the 5-hex slot tag of
 * its queue's slot (offload_slot_tag()), 16 hex of sequence. */
#define OFFLOAD_JOB_ID_LEN         32
#define OFFLOAD_JOB_ID_TAG_AT      11     /* from 0 */
/* Longest job id an entry may carry (a program writing to Redis itself
 * may choose its own ids). */
#define OFFLOAD_JOB_ID_MAX         128
#define OFFLOAD_NONCE_LEN          16

/* Consumer group of every queue's stream. */
#define OFFLOAD_GROUP              "workers"

/*
 * Keys.  Queue keys are hash-tagged so one queue lives in one cluster slot
 * (so are the cancel lists of running jobs, one per queue and node: see
 * OFFLOAD_CANCEL_FMT); node-level keys (the registry, drain flags, events,
 * crashes) all carry the tag {ctl}, so they share one slot too.
 */
/* a number macro as a string literal, for the scripts' text */
#define OFFLOAD_STR(n)             OFFLOAD_STR_(n)
#define OFFLOAD_STR_(n)            #n

/* a queue's stream: OFFLOAD_STREAM_HEAD <queue> OFFLOAD_STREAM_TAIL, a
 * job's result: OFFLOAD_STREAM_HEAD <queue> OFFLOAD_RESULT_MID <job id>, put
 * together by hand (offload_stream_key, offload_result_key): nginx makes
 * both for every job */
#define OFFLOAD_STREAM_HEAD        "offload:{"
#define OFFLOAD_STREAM_TAIL        "}:jobs"
#define OFFLOAD_RESULT_MID         "}:result:"
#define OFFLOAD_BODY_FMT           "offload:{%.*s}:body:%.*s"
#define OFFLOAD_STAGE_FMT          "offload:{%.*s}:stage:%.*s:%s"
#define OFFLOAD_REPLY_HEAD         "offload:reply:"
#define OFFLOAD_REPLY_MID          "}:reply:"
#define OFFLOAD_REPLY_FMT          OFFLOAD_REPLY_HEAD "%.*s"
#define OFFLOAD_QUEUE_REPLY_FMT                                              \
    OFFLOAD_STREAM_HEAD "%.*s" OFFLOAD_REPLY_MID "%.*s"
#define OFFLOAD_NODE_PREFIX        "offload:{ctl}:node:"
#define OFFLOAD_NODE_FMT           OFFLOAD_NODE_PREFIX "%s"
#define OFFLOAD_NODE_RUNS_FMT      OFFLOAD_NODE_PREFIX "%s:runs"
#define OFFLOAD_NODES_KEY          "offload:{ctl}:nodes"
/* Every queue a node served, and when it last did (ms by Redis' clock): a
 * hash the nodes write every heartbeat.  offload_nodes_script reads from
 * it the queues no live node serves, whose jobs wait for nobody: they
 * would vanish from status and metrics with their last node otherwise. */
#define OFFLOAD_QUEUES_KEY         "offload:{ctl}:queues"
#define OFFLOAD_DRAIN_FMT          "offload:{ctl}:drain:%s"
/* A drain flag lives this long after its node last read it (every
 * heartbeat): that of a node gone for good does not stay for ever. */
#define OFFLOAD_DRAIN_TTL_S        604800
#define OFFLOAD_LEASE_FMT          "offload:{ctl}:lease:%s"

/* A worker's consumer name: node, queue, slot.  A worker restarted in the
 * same slot is the same consumer and finds what its predecessor held. */
#define OFFLOAD_CONSUMER_FMT       "%s:%s:%d"
#define OFFLOAD_CONSUMER_MAX       160
#define OFFLOAD_DEAD_FMT           "offload:{%.*s}:dead"
/* A queue's jobs waiting out a retry_backoff: a sorted set, score the next
 * attempt's time (ms since the epoch), member the entry's fields. */
#define OFFLOAD_RETRY_FMT          "offload:{%.*s}:retry"
/*
 * A queue's sync jobs whose clients went away (sidecar/worker/worker.c, the
 * module's cleanup): a sorted set, member the job id, score its deadline
 * (ms since the epoch), after which the job would not run anyway.  Pruned
 * of past deadlines on every add and every check; the key expires after
 * its last deadline.
 */
#define OFFLOAD_CANCELLED_FMT      "offload:{%.*s}:cancelled"
#define OFFLOAD_EVENTS_KEY         "offload:{ctl}:events"
#define OFFLOAD_CRASHES_KEY        "offload:{ctl}:crashes"

/*
 * An asynchronous job's record: a hash (queue, status, attempts,
 * submitted_at, started_at, finished_at, next_attempt_at; times in ms since
 * the epoch) with a TTL, made with the job's entry by
 * offload_submit_async_script.  Its entry carries "rec <result TTL ms>".
 * A job that reaches an end publishes its id on OFFLOAD_JOBS_DONE, for
 * whoever waits for it (GET /jobs/<id>?wait=): an async job always, a
 * sync job with an Idempotency-Key only once a read marked it "waited".
 * Other sync jobs have none.
 *
 * Its key is offload:job:{<tag>}:<id>, <tag> the id's characters 12..16
 * (1-based): the slot tag of the job's queue, so the record is in its
 * queue's slot (one script touches both on a Redis Cluster), and anyone
 * finds it from the id alone.  offload_job_record_key() builds it in C,
 * OFFLOAD_JOB_RECORD_LUA(id) in a script, OFFLOAD_JOB_RECORD_ID_LUA(rec)
 * gives a script the id back.
 */
#define OFFLOAD_JOB_RECORD_PREFIX  "offload:job:"
#define OFFLOAD_JOB_RECORD_LUA(id)                                           \
    "('" OFFLOAD_JOB_RECORD_PREFIX "{' .. string.sub(" id ", 12, 16)"        \
    " .. '}:' .. " id ")"
#define OFFLOAD_JOB_RECORD_ID_LUA(rec)                                       \
    "string.match(" rec ", '^" OFFLOAD_JOB_RECORD_PREFIX "{[^}]*}:(.*)$')"
#define OFFLOAD_JOBS_DONE          "offload:jobs:done"

/*
 * An Idempotency-Key's memory: a string "<job id> <SHA1 of the payload>"
 * per queue and key, with the key's TTL (offload_idempotency_ttl), set by
 * offload_submit_script with the first job's entry and record.  A key is
 * at most OFFLOAD_IDEM_KEY_MAX characters: its Redis key is longer than
 * OFFLOAD_KEY_MAX.
 */
#define OFFLOAD_IDEM_FMT           "offload:{%.*s}:idem:%.*s"
#define OFFLOAD_IDEM_KEY_MAX       255
#define OFFLOAD_IDEM_REDIS_KEY_MAX (OFFLOAD_KEY_MAX + OFFLOAD_IDEM_KEY_MAX)

/*
 * Running async jobs cancelled (offload_cancel_running on): a list per
 * queue and node, of "<queue> <slot> <job id>", pushed by
 * offload_job_script (in the queue's slot, with the job's record), popped
 * by the node's supervisor (sidecar/supervisor/cancel.c) for each of its
 * queues, which kills the worker still running that job.  It lives
 * OFFLOAD_CANCEL_TTL_MS after its last push: a node gone for good leaves
 * nothing behind.
 */
#define OFFLOAD_CANCEL_FMT         "offload:{%s}:cancel:%s"
#define OFFLOAD_CANCEL_TTL_MS      60000

/*
 * The job each busy worker of a queue runs, by its consumer name: a hash
 * per queue, <consumer> -> <entry id>, written by the node's supervisor
 * while the worker is busy (sidecar/supervisor/running.c).  After the
 * whole node's death, the slot's next worker fails one attempt of the
 * entry named there if its consumer still holds it; the others it holds
 * were only read.  A field goes with its consumer (offload_forget_
 * consumers_script).
 */
#define OFFLOAD_RUNNING_FMT        "offload:{%s}:running"

/* How long a sync job that expired by Redis' clock (a read of its record,
 * a submission of its Idempotency-Key) stays marked cancelled for the
 * workers: one whose clock is behind Redis' by less drops it unrun. */
#define OFFLOAD_EXPIRED_MARK_MS    60000

/* Capped streams keep about this many entries (XADD MAXLEN ~). */
#define OFFLOAD_DEAD_MAXLEN        10000
#define OFFLOAD_EVENTS_MAXLEN      10000

/* offload:{ctl}:crashes, a list, keeps the latest crash reports (newest first)
 * so a status read does not scan offload:{ctl}:events for them. */
#define OFFLOAD_CRASHES_MAX        10

/* Room for any key of a queue or a job the formats above produce, with
 * its NUL: the longest, a result or body key, is "offload:{" queue
 * "}:result:" id (9 + 64 + 9 + 128 + 1 = 211 bytes).  The staging key,
 * which also names a consumer, is the only longer one. */
#define OFFLOAD_KEY_MAX            256

/* Published on a reply channel by its owner to prove the subscription. */
#define OFFLOAD_REPLY_PING         "ping"

/* Stream entry field names of a job. */
#define OFFLOAD_F_VERSION          "v"
#define OFFLOAD_F_ID               "id"
#define OFFLOAD_F_PAYLOAD          "payload"
#define OFFLOAD_F_REPLY            "reply"
#define OFFLOAD_F_DEADLINE         "deadline"
#define OFFLOAD_F_SUBMITTED        "submitted"
#define OFFLOAD_F_ATTEMPT          "attempt"
#define OFFLOAD_F_REQUEST_ID       "rid"
#define OFFLOAD_F_BODY             "body"
#define OFFLOAD_F_RECORD           "rec"
#define OFFLOAD_F_TRACEPARENT      "tp"
#define OFFLOAD_F_TRACESTATE       "ts"
/* set by a hand back on the entry whose run a stop cut short */
#define OFFLOAD_F_INTERRUPTED      "interrupted"
/* how many times a claim gave the entry back unstarted (no mark said its
 * lost node ran it) */
#define OFFLOAD_F_LOST             "lost"

/* A claim gives an unmarked entry back unchanged at most this many times;
 * then it fails the entry's attempt as a marked one's: a job that takes
 * its node down before its mark (0.1 s) still ends dead-lettered. */
#define OFFLOAD_LOST_FREE          2

/*
 * W3C Trace Context.  A traceparent is "00-<trace id>-<parent id>-<flags>":
 * 55 characters, 32 + 16 + 2 lowercase hex digits, neither id all zeros.
 * A tracestate travels only beside a valid traceparent, and only up to
 * OFFLOAD_TRACESTATE_MAX printable ASCII characters (the spec's 32 members
 * hold about that much; longer ones are dropped, not cut).
 */
#define OFFLOAD_TRACEPARENT_LEN    55
#define OFFLOAD_TRACE_ID_AT        3
#define OFFLOAD_TRACE_ID_LEN       32
#define OFFLOAD_SPAN_ID_AT         36
#define OFFLOAD_SPAN_ID_LEN        16
#define OFFLOAD_TRACE_FLAGS_AT     53
#define OFFLOAD_TRACESTATE_MAX     512

/*
 * Big payloads stay out of single Redis commands: Redis runs one command at
 * a time, and a 64 MB argument or reply holds up every other client for
 * hundreds of ms.  A body over OFFLOAD_BODY_OVER bytes is written to its
 * body key (OFFLOAD_BODY_FMT: queue, job id), a list of slices of
 * OFFLOAD_SLICE bytes (MULTI, RPUSH, PEXPIRE, EXEC, then RPUSHes: a list
 * grows without copying what it holds, a string grown by APPEND does not)
 * before its entry is added with an empty payload and "body <length>"; a
 * worker reads it back with LLEN and LINDEX, an element per command.  The
 * key lives until the job's deadline plus OFFLOAD_BODY_GRACE_MS; a dead
 * letter keeps it OFFLOAD_DEAD_BODY_TTL seconds, so the job can be retried.
 * A result over OFFLOAD_NOTICE_OVER is written the same way to a staging
 * key (OFFLOAD_STAGE_FMT: queue, job id, consumer), its header line alone
 * first, which the completion script renames to the result key.
 */
#define OFFLOAD_BODY_OVER          1048576
/* The largest body a job takes: Redis takes strings of at most 512 MB
 * (proto-max-bulk-len), and an echo's result is the body and a header
 * line.  An entry claiming more is not a job. */
#define OFFLOAD_BODY_MAX           (511 * 1024 * 1024)
#define OFFLOAD_SLICE              262144
#define OFFLOAD_BODY_GRACE_MS      60000
/* The body key of a job without a deadline lives this long, plus the
 * grace: a body is a big thing to keep in Redis for ever. */
#define OFFLOAD_BODY_NO_DEADLINE_MS  86400000
#define OFFLOAD_DEAD_BODY_TTL      604800


typedef struct {
    const char  *data;
    size_t       len;
} offload_str_t;


/* A job as it travels in a stream entry.  Strings point into the caller's
 * buffers (the request, or the hiredis reply): nothing is copied.
 *
 * Only the version, the id and the payload (or body) are required: a
 * program may submit "fire and forget" jobs straight through Redis.  No
 * reply channel: the result is stored, not published.  No deadline:
 * OFFLOAD_NO_DEADLINE, later than any time, so every "deadline passed?"
 * comparison says no.  No submitted time: 0 (the worker then counts the
 * queue time from the entry id's, the time Redis added the entry).  No
 * attempt: 1. */
typedef struct {
    int            version;
    offload_str_t  id;
    offload_str_t  payload;       /* empty when body_len > 0 */
    int64_t        body_len;      /* > 0: the payload is in the body key */
    offload_str_t  reply;         /* pub/sub channel, empty: none */
    offload_str_t  request_id;    /* nginx $request_id, for correlation */
    int64_t        deadline_ms;   /* absolute, ms since the epoch */
    int64_t        submitted_ms;  /* ms since the epoch, 0: not given */
    int            attempt;       /* 1 on first delivery */
    int64_t        record_ttl_ms; /* > 0: the job has a record, its result
                                     and record stay this long */
    offload_str_t  traceparent;   /* valid, version 00, or empty */
    offload_str_t  tracestate;    /* empty without a traceparent */
    int            interrupted;   /* a run of it was cut short by a stop:
                                     it may have run in part */
} offload_entry_t;

#define OFFLOAD_NO_DEADLINE        INT64_MAX

/* The earliest deadline and submit time an entry may give, 2001-09-09 in
 * ms since the epoch: one before it is a time in seconds, which would
 * expire every job unrun (and read it queued for 50 years) */
#define OFFLOAD_EPOCH_MS_MIN       1000000000000LL

#define OFFLOAD_JOB_FIELDS_AT      4     /* XADD key NOMKSTREAM * */
#define OFFLOAD_JOB_ARGC           (OFFLOAD_JOB_FIELDS_AT + 2 * 12)

/* Numbers in a job's argv are formatted into this scratch space. */
typedef struct {
    char  deadline[24];
    char  submitted[24];
    char  attempt[12];
    char  body_len[24];
    char  record_ttl[24];
} offload_job_scratch_t;


/* A result as published on the reply channel and stored under the result
 * key: one header line, then the JSON body answered to the client.
 *
 *   OR<version> <job id> <http status> <queue us> <run us> <cpu us>
 *       <rss growth kB>\n<body>
 *
 * The last two (the job's CPU time, user + system, and how much it raised
 * its worker's peak RSS) may be missing in results of older sidecars: they
 * decode as -1 then.
 */
typedef struct {
    int            version;
    offload_str_t  id;
    int            status;        /* HTTP status to answer: 200, 422, 504... */
    int64_t        queue_us;      /* submitted -> picked up by a worker */
    int64_t        run_us;        /* handler run time */
    int64_t        cpu_us;        /* the handler's CPU time, user + sys */
    int64_t        rss_kb;        /* its growth of the worker's peak RSS */
    offload_str_t  body;          /* JSON */
} offload_result_t;

#define OFFLOAD_RESULT_HEADER_MAX  136

/*
 * A result longer than this is not published whole: Redis drops a
 * subscriber that receives over 32 MB (client-output-buffer-limit pubsub),
 * and one big message holds up every result behind it on the channel.  The
 * completion script publishes a notice "ON<version> <job id>" instead and
 * the receiver GETs the stored result.
 */
#define OFFLOAD_NOTICE_OVER        1048576


int offload_queue_name_valid(const char *name, size_t len);

/* How long a lost Redis connection waits before its next connect, the same
 * in nginx and the sidecar: 100 ms, 200 ms, 400 ms ... up to 2 s, each
 * +-25% so that many processes do not reconnect in lockstep after a Redis
 * restart.  retries: connects tried since it was last up (0 first); rnd:
 * a non-negative random number. */
#define OFFLOAD_RECONNECT_MIN_MS   100
#define OFFLOAD_RECONNECT_MAX_MS   2000

unsigned offload_reconnect_delay_ms(unsigned retries, long rnd);

/* A new link's setup PING answered with this error is answered all the
 * same (1): a user whose ACL has no +ping (NOPERM), a Redis loading its
 * data (LOADING) or running a long script (BUSY), which the link's
 * commands meet as on a link made before.  Any other error (NOAUTH: a
 * password Redis requires now; maxclients) refuses the link. */
int offload_ping_error_answers(const char *err);

/* n in decimal at p, without a NUL (20 bytes at most); returns the end.
 * For the hot paths, where snprintf()'s format parsing costs more than
 * the digits: a job's argv, a command's RESP lines, Server-Timing. */
char *offload_decimal(char *p, uint64_t n);

/* Parses s (len bytes) as 1 to max_digits decimal digits, nothing else,
 * into *out (max_digits 18 at most: no overflow).  Returns 0, or -1. */
int offload_decimal_parse(const char *s, size_t len, size_t max_digits,
    int64_t *out);

/* The key formatters return the length written (like snprintf), or -1 if
 * it did not fit. */
int offload_stream_key(char *buf, size_t size, const char *queue, size_t qlen);
int offload_result_key(char *buf, size_t size, const char *queue, size_t qlen,
    const char *id, size_t idlen);
int offload_dead_key(char *buf, size_t size, const char *queue, size_t qlen);
int offload_reply_channel(char *buf, size_t size, const char *nonce,
    size_t nlen);
/* A reply channel in the queue's slot (a sharded channel: SPUBLISHed, to
 * a submitter that SSUBSCRIBEd on the queue's master of a cluster). */
int offload_queue_reply_channel(char *buf, size_t size, const char *queue,
    size_t qlen, const char *nonce, size_t nlen);
int offload_body_key(char *buf, size_t size, const char *queue, size_t qlen,
    const char *id, size_t idlen);
int offload_stage_key(char *buf, size_t size, const char *queue, size_t qlen,
    const char *id, size_t idlen, const char *consumer);
int offload_job_record_key(char *buf, size_t size, const char *id,
    size_t idlen);
int offload_idem_key(char *buf, size_t size, const char *queue, size_t qlen,
    const char *key, size_t klen);
int offload_cancelled_key(char *buf, size_t size, const char *queue,
    size_t qlen);

/* Copies a field of len bytes (src may be NULL: none) as a C string into
 * dst of size bytes, cut to fit. */
void offload_str_copy(char *dst, size_t size, const char *src, size_t len);

/* 1 when Redis refuses a command (err, its error) for now and may take it
 * later: out of memory (maxmemory reached under noeviction), a script
 * running too long, its data still loading, a failed background save
 * (MISCONF), too few replicas, a cluster slot not served now.  The rest (a
 * script error, a key of another type, an ACL, an unknown command) does
 * not pass by itself. */
int offload_refusal_passes(const char *err);

/* 1 if err, the error an EXEC got, leaves its MULTI open: EXEC renamed
 * away, or refused by a Redis 6 ACL.  Every later command of the
 * connection would be queued into that MULTI, so the connection must go.
 * Not EXECABORT (Redis discarded the transaction: a queued command, or
 * EXEC itself under a Redis 7 ACL, was refused), nor "EXEC without MULTI"
 * (MULTI itself was refused, and the commands ran one by one), nor a
 * cluster's MOVED, ASK, TRYAGAIN or CLUSTERDOWN (the slot of its keys
 * moved or is not served: Redis discarded the transaction). */
int offload_exec_left_multi_open(const char *err);

/* 1 if err, EXEC's error, is a Redis Cluster redirect, MOVED or ASK: the
 * transaction's slot moved on, not a refusal of MULTI or EXEC. */
int offload_redirect(const char *err);

/* 1 if ch is a reply channel a job may name: "offload:reply:<nonce>" or
 * "offload:{<tag>}:reply:<nonce>" (a cluster's sharded channel, in its
 * queue's slot; one of another slot is PUBLISHed instead), the two the
 * Redis ACL users are given (README) and no other; else 0.  Another
 * channel's answer is refused (NOPERM) with its whole completion: the
 * worker retried it for seconds before it gave up. */
int offload_reply_channel_ok(const offload_str_t *ch);

/* 0 if s (len bytes) is a traceparent a receiver accepts: version 00 of
 * exactly OFFLOAD_TRACEPARENT_LEN, or a later version (not ff) that starts
 * with the same layout; -1 otherwise. */
int offload_traceparent_check(const char *s, size_t len);

/* 0 if s is a tracestate worth passing on: 1 .. OFFLOAD_TRACESTATE_MAX
 * printable ASCII characters; -1 otherwise. */
int offload_tracestate_check(const char *s, size_t len);

/* The status a job's record ends with, for a result's HTTP status and
 * error code (NULL: none): "done" (2xx), "expired" (504 expired), "dead"
 * (502 worker_crashed or out_of_memory), otherwise "failed". */
const char *offload_record_status(int status, const char *code);

/* Fills argv/argvlen (OFFLOAD_JOB_ARGC slots) with an XADD of the job to the
 * stream key, with a "body" field when job->body_len > 0, without "reply"
 * when it is empty, "deadline" when it is OFFLOAD_NO_DEADLINE, "submitted"
 * when it is 0.  Returns the argument count. */
int offload_job_argv(const offload_entry_t *job, const char *stream_key,
    offload_job_scratch_t *scratch, const char **argv, size_t *argvlen);

/* Decodes a stream entry's field/value pairs (2 * npairs strings).  Returns 0,
 * or -1 with *err naming what is missing or malformed. */
int offload_job_decode(offload_entry_t *job, const offload_str_t *fields,
    size_t nfields, const char **err);

/* Writes the header line of an encoded result; the body follows it.  Returns
 * the header length, or -1 if it did not fit. */
int offload_result_header(char *buf, size_t size, const offload_result_t *res);

/* Parses an encoded result (header + body) without copying.  Returns 0, or
 * -1 with *err saying why. */
int offload_result_decode(offload_result_t *res, const char *msg, size_t len,
    const char **err);

/* The job id of a notice "ON<version> <job id>".  Returns 0, or -1 for a
 * message that is not a notice. */
int offload_notice_decode(offload_str_t *id, const char *msg, size_t len);

/* The 16-hex sequence at the end of a job id, for the module's lookups.
 * Returns 0, or -1 for an id that is not one of ours. */
int offload_job_id_seq(const char *id, size_t len, uint64_t *seq);

/* Formats a job id from a nonce (OFFLOAD_NONCE_LEN hex chars; its first
 * OFFLOAD_JOB_ID_TAG_AT are used), the slot tag of the queue's slot
 * (OFFLOAD_SLOT_TAG_LEN hex chars) and a sequence number into buf
 * (OFFLOAD_JOB_ID_LEN bytes, no NUL). */
void offload_job_id_format(char *buf, const char *nonce, const char *tag,
    uint64_t seq);


/*
 * The completion script: the worker's one atomic step after handlers ran,
 * for one job or several (a worker completes the jobs of a batch that
 * finished in the same turn of its loop in one call).
 *
 *   KEYS[1] stream          ARGV[1] group
 *   then for each job:      ARGV[2] result TTL in ms
 *   its result key,         then OFFLOAD_COMPLETE_ARGS for each job:
 *   its body key if its       entry id,
 *   shape has 'b',            encoded result, or for a staged one the
 *   its staging key if          staging list's number of elements,
 *   its shape has 's',        reply channel, "": none (the job was
 *   its record key if it        submitted "fire and forget"),
 *   has a record TTL          shape: "" or 'b' (the entry has a body
 *                               key) and/or 's' (the result is staged),
 *                             the record's TTL in ms, "": the job has
 *                               no record, its end status
 *
 * Every key a job's completion touches is declared (all in the queue's
 * slot): on a Redis Cluster with that slot half moved, Redis answers ASK
 * or TRYAGAIN for the whole call rather than let it miss a key.
 *
 * For each job in order: stores the result unless one is there already (a
 * job run twice keeps its first result).  A result over
 * OFFLOAD_NOTICE_OVER bytes comes staged: the worker wrote it to its
 * staging key as a list, its header line alone, then its body in slices;
 * the script renames it to the result key and sets its TTL, or unlinks it
 * when a result is there already.  A staging key missing or of another
 * number of elements than said is an error reply ("STAGE ...") and that
 * job and those after it are left as they were (pending): the worker
 * stages again (it completes a staged job alone).  Then publishes the
 * stored result (a list, or a string over OFFLOAD_NOTICE_OVER bytes: a
 * notice of it, built from its header; a big result is never loaded into
 * Lua; nothing without a channel), and, with a record, only if that
 * record exists and is not cancelled, the record takes the end status and
 * finished_at, the record and the result live the record's TTL (the
 * result is stored with that TTL), and the job id is published on
 * OFFLOAD_JOBS_DONE (a sync job's record only when marked "waited" by a
 * read).  Then the entries are acked and deleted (one XACK, one XDEL),
 * and the body key of a job whose entry this call acked is unlinked (the
 * job is done; an entry acked already was dead-lettered or requeued,
 * which keep the body).  Store happens before notify and before ack,
 * inside one script, so no crash between the steps can lose an answer.
 * Returns how many results this call stored (0: earlier runs had).
 */
#define OFFLOAD_COMPLETE_ARGS  6
extern const char  offload_complete_script[];

/*
 * A big result's staging list begun without MULTI/EXEC, for a worker whose
 * Redis refuses them (an ACL, EXEC renamed away): UNLINK what an earlier
 * try left, RPUSH the header line, PEXPIRE, in one step, so that no
 * staging list lives without its lifetime.  Answers their three replies,
 * as EXEC would.
 *   KEYS[1] staging key     ARGV[1] header line    ARGV[2] TTL (ms)
 */
extern const char  offload_stage_first_script[];

/*
 * The scripts of a job whose worker died (sidecar/supervisor/reclaim.c).
 * Each first checks the entry is pending (XPENDING, a read) and does
 * nothing (returns nil) when it is not; then its writes; it acks and
 * deletes the entry last, so one Redis refuses halfway (an ACL, a key of
 * another type) leaves the entry pending (offload_proto.c,
 * OFFLOAD_PENDING_LUA).  So do the retry-later, bad-job, start and
 * drop-cancelled scripts below.
 *
 * Requeue: the job runs again, as a new entry at the stream's tail.
 *   KEYS[1] stream          ARGV[1] group     ARGV[2] entry id
 *                           ARGV[3..] the new entry's field/value pairs
 * Returns the new entry id.
 *
 * Dead: the job is out of attempts: it goes to the dead-letter stream and
 * its answer is completed as offload_complete_script does (never staged),
 * except that its body key is kept OFFLOAD_DEAD_BODY_TTL seconds (PEXPIRE)
 * for `offloadctl retry`.
 *   KEYS[1] stream          ARGV[1] group     ARGV[2] entry id
 *                           ARGV[3] encoded result
 *                           ARGV[4] result TTL in seconds
 *                           ARGV[5] reply channel, "": none
 *   KEYS[2] result key      ARGV[6] the dead-letter stream's MAXLEN
 *   KEYS[3] dead stream     ARGV[7..] the dead entry's field/value pairs
 *   KEYS[4] the job's body key
 *   KEYS[5] its record, only for an entry with "rec"
 * An entry with "rec" has its record (if it exists) marked "dead", or
 * "failed" for reason job_timeout, as the completion does; a job whose
 * record says cancelled (offload_cancel_running: it ran on) is only
 * deleted with its body key, no dead letter, and it returns 0.
 *
 * Hand back: the entries a consumer holds, except one, go back to the
 * queue unchanged (a worker that stopped or died before running them, or
 * was stopped running one: a stop's shutdown_timeout), but for the one
 * whose run the stop cut short, which gets "interrupted 1" (a worker that
 * finds it expired does not say it never ran).  A job's record
 * (an entry with "rec"; read before the entry's writes, undeclared, in
 * the queue's slot) that says running, on this consumer (its node, queue
 * and slot), says queued again, and a sync job's (its reply channel) that
 * says queued names the new entry, as a read of it expects.
 * Given ids (ARGV[5..]), only those of them the consumer still holds go
 * back, each with its "lost" count one up: a claimer hands back the
 * entries of its page a lost node had only read, not what it holds of
 * other pages or refused failures.
 *   KEYS[1] stream          ARGV[1] group     ARGV[2] consumer
 *                           ARGV[3] entry id to leave alone, or ""
 *                           ARGV[4] entry id cut short, or ""
 *                           ARGV[5..] only these entries (optional)
 * Returns how many entries went back.
 *
 * Bad job: an entry nobody can run (not a job: fields missing or
 * malformed) moves to the dead-letter stream with its own fields (at most
 * 1000, none named like the four added) plus entry, reason "bad_job",
 * report and dead_at.  The body key, when the entry names a usable job id,
 * is kept OFFLOAD_DEAD_BODY_TTL seconds, as for a dead job.
 *   KEYS[1] stream          ARGV[1] group     ARGV[2] entry id
 *   KEYS[2] dead stream     ARGV[3] MAXLEN    ARGV[4] report (JSON)
 *   KEYS[3] body key        ARGV[5] dead_at (ms)
 *           (optional)
 */
extern const char  offload_requeue_script[];
extern const char  offload_dead_script[];

/*
 * The scripts of a transient failure (offload_job_retry();
 * sidecar/core/retry.c).
 *
 * Retry later: a worker moves the entry it failed to the queue's retry
 * set, acked and deleted in the same step (never lost, never twice): the
 * member is the new entry's fields, MessagePack-encoded (binary-safe),
 * the score its next attempt's time.  When the job has a record (async
 * jobs), its status becomes "retrying" with next_attempt_at and attempts
 * (the attempts made so far); no record is made.  A job whose record says
 * cancelled (while it ran) is only acked and deleted: it ended.  Does
 * nothing (nil) when the entry was not pending.
 *   KEYS[1] stream          ARGV[1] group     ARGV[2] entry id
 *   KEYS[2] retry set       ARGV[3] next attempt (ms since the epoch)
 *   KEYS[3] job record      ARGV[4] attempts made
 *                           ARGV[5..] the new entry's field/value pairs
 *
 * Retry due: moves the retries due by ARGV[1] (at most ARGV[2]) back to
 * the stream, each an XADD and a ZREM in one step: supervisors of several
 * nodes may run it at once, and each retry moves once.
 *   KEYS[1] retry set       ARGV[1] now (ms since the epoch)
 *   KEYS[2] stream          ARGV[2] at most this many
 * Returns how many moved.
 */
extern const char  offload_retry_later_script[];
extern const char  offload_retry_due_script[];
extern const char  offload_handback_script[];
extern const char  offload_bad_job_script[];

/*
 * Prune: forgets the names in offload:{ctl}:nodes whose registry entry expired
 * (nodes gone for good, or renamed), so a status read does not look each
 * of them up forever.  A node that only lost Redis for a while adds itself
 * again with its next heartbeat.
 *   KEYS[1] offload:{ctl}:nodes
 *   ARGV[1] the node key prefix, "offload:{ctl}:node:"
 * Returns the names that stay: the live nodes.
 */
extern const char  offload_prune_nodes_script[];

/*
 * Forget consumers: deletes from a queue's group the consumers offload
 * named (<node>:<queue>:<slot>, <node>:claim) of nodes not among the live
 * ones, so the group does not keep one for every host name a node ever
 * had.  XGROUP DELCONSUMER drops a consumer's pending entries with it (they
 * would never run), so one that holds any stays until a claim has taken
 * them.  One deleted while a worker of a live node still used it costs
 * nothing: Redis makes it again at the worker's next delivery.  Its field
 * in the queue's running hash (OFFLOAD_RUNNING_FMT) goes with it, once
 * the entry the field names is pending no more: a claimer that still
 * holds it (Redis refused its failure) is to find it marked next time.
 *   KEYS[1] stream   KEYS[2] running hash
 *   ARGV[1] group   ARGV[2] queue   ARGV[3..] live nodes
 * Returns how many went, at most OFFLOAD_FORGET_CONSUMERS_MAX a call.
 */
#define OFFLOAD_FORGET_CONSUMERS_MAX  100
extern const char  offload_forget_consumers_script[];

/*
 * Touch: resets the idle time of every entry the given consumers hold, so
 * that XAUTOCLAIM (which sees only idle times) never takes a job from a
 * live worker, however long the job runs.  The supervisor runs it for its
 * own workers every claim_idle / 2.  XCLAIM ... JUSTID leaves the delivery
 * counts alone.
 *   KEYS[1] stream          ARGV[1] group     ARGV[2..] consumers
 */
extern const char  offload_touch_script[];

/*
 * Now, ms since the epoch by Redis' clock, as a decimal string: TIME's
 * seconds and the first three of its microseconds' six digits, asked once
 * per script call (a call's jobs end at one instant).  A string, not a
 * number: a Lua number passed to redis.call goes through snprintf("%.17g")
 * in Redis, and TIME's answer made a number through tonumber twice: with
 * a TIME per job, 11,600 of the 110,700 instructions Redis spent per job
 * completing keyed sync jobs in batches of 5 (callgrind).
 * tonumber(now_ms()) where a number is wanted.
 */
#define OFFLOAD_NOW_LUA                                                      \
    "local now_text = false\n"                                               \
    "local function now_ms()\n"                                              \
    "  if not now_text then\n"                                               \
    "    local t = redis.call('TIME')\n"                                     \
    "    now_text = t[1] .. string.sub('00000' .. t[2], -6, -4)\n"           \
    "  end\n"                                                                \
    "  return now_text\n"                                                    \
    "end\n"

/*
 * queue_figures(stream, group, now), Lua, now ms by Redis' clock (the
 * caller's one now_ms()): a queue's figures, by reads only
 * (offload_queue_stats_script, and offload_nodes_script for a queue no
 * node serves): the entries no consumer of group has read (its lag, or,
 * when Redis cannot tell it after deletions, the stream's length less the
 * pending ones), the entries read and not acknowledged, the age in ms of
 * the oldest unread one by Redis' clock (0: none), and whether the group
 * exists.
 */
#define OFFLOAD_QUEUE_FIGURES_LUA                                            \
    "local function queue_figures(stream, group, now)\n"                     \
    "  local lag, pending, last, found = false, 0, '0-0', false\n"           \
    "  local groups = redis.pcall('XINFO', 'GROUPS', stream)\n"              \
    "  if not groups.err then\n"                                             \
    "    for _, g in ipairs(groups) do\n"                                    \
    "      local f = {}\n"                                                   \
    "      for j = 1, #g, 2 do f[g[j]] = g[j + 1] end\n"                     \
    "      if f['name'] == group then\n"                                     \
    "        lag, pending = f['lag'], f['pending']\n"                        \
    "        last, found = f['last-delivered-id'], true\n"                   \
    "      end\n"                                                            \
    "    end\n"                                                              \
    "  end\n"                                                                \
    "  if not lag then\n"                                                    \
    "    lag = math.max(0, redis.call('XLEN', stream) - pending)\n"          \
    "  end\n"                                                                \
    "  local oldest = 0\n"                                                   \
    "  local e = redis.call('XRANGE', stream, '(' .. last, '+',"             \
    " 'COUNT', 1)\n"                                                         \
    "  if e[1] then\n"                                                       \
    "    oldest = math.max(0,"                                               \
    " now - tonumber(string.match(e[1][1], '^%d+')))\n"                      \
    "  end\n"                                                                \
    "  return lag, pending, oldest, found\n"                                 \
    "end\n"

/*
 * Queues served: a node's heartbeat stamps the queues it serves here
 * (offload:{ctl}:queues, by Redis' clock), and forgets those nobody
 * stamped within OFFLOAD_DRAIN_TTL_S (a queue renamed or retired long
 * ago), so the hash holds what status and admission still read, not every
 * queue name ever served (an ACL user without +hgetall or +hdel, from
 * before, only stamps).
 *   KEYS[1] offload:{ctl}:queues   ARGV[1] now, ms by Redis' clock
 *                                  ARGV[2..] the queues served
 */
extern const char  offload_queues_stamp_script[];

/*
 * Queue stats: for each queue, what its stream holds.
 *   KEYS[3i-2] stream       ARGV[1] group
 *   KEYS[3i-1] dead stream  ARGV[i+1] '1': the queue is served here
 *   KEYS[3i]   retry set
 * A served queue whose stream or group is gone (Redis restarted empty, a
 * FLUSHALL, a DEL) gets them again here, within a heartbeat, not when its
 * workers next read (after the jobs they run: minutes): meanwhile nginx
 * answers its jobs 404 unknown_queue.  A refusal (OOM, an ACL) is let be.
 * Returns, per queue, { backlog, pending, oldest, dead, held, retrying }:
 * entries
 * no consumer has read (the group's lag, or, when Redis cannot tell it
 * after deletions, the stream's length less the pending ones), entries read
 * and not acknowledged, the age in ms of the oldest unread entry by Redis'
 * clock (0: none), the dead-letter stream's length, and the consumers that
 * hold pending entries with their counts (name, count, name, count...),
 * and the jobs waiting in the retry set.
 */
extern const char  offload_queue_stats_script[];

/*
 * Retry: a dead letter goes back on its queue as a new job: attempt 1,
 * submitted now, with the deadline span it had (none if it had none); its
 * stored answer (the error) is deleted so the new run can store its own.  A
 * job whose body is in its body key keeps it there ("body <length>", empty
 * payload) and the key lives the new deadline span (without a deadline
 * OFFLOAD_BODY_NO_DEADLINE_MS) plus OFFLOAD_BODY_GRACE_MS; when the key
 * is gone the script answers an error saying so and changes nothing.  An
 * async job's entry keeps its "rec", and its record, when it is still
 * there, is a queued job's again: status queued, attempts 0, no
 * finished_at, started_at, node, slot or next_attempt_at, the new deadline,
 * and it lives the deadline span (or OFFLOAD_BODY_NO_DEADLINE_MS) plus its
 * TTL ("rec").
 *   KEYS[1] dead stream     ARGV[1] the dead entry's id
 *   KEYS[2] stream          ARGV[2] now, ms since the epoch
 *   KEYS[3] the job's result key (the dead entry's "id" field's)
 *   KEYS[4] the job's body key
 *   KEYS[5] the job's record, only for an entry with "rec"
 * Returns the job id, or nil when the dead entry is not there.
 */
extern const char  offload_retry_script[];

/*
 * The backlog of offload_max_backlog, a Lua function for the scripts that
 * check it before their XADD (the module's admission script, the submit
 * script): offload_backlog_full(stream, group, limit) is false while the
 * backlog is below limit (a number, at least 1), else the backlog, the
 * group's lag (entries not delivered yet), or, when Redis 7.0 cannot tell
 * it after deletions, the stream's length less the pending entries
 * (workers delete what they finished); an error of XLEN or XINFO
 * (WRONGTYPE, NOPERM...) as an error table, for the script to return.  A
 * stream's lag is at most its length (what is not delivered yet is in
 * it): a stream shorter than limit, or one that does not exist (XLEN 0),
 * is below it without an XINFO GROUPS (with its answer made a Lua table,
 * about 21,000 instructions of Redis' against an XLEN's 3,700:
 * callgrind); the XADD after it says NOMKSTREAM.
 * No EXISTS, no table of the group's fields: it runs for every job.
 */
#define OFFLOAD_BACKLOG_LUA                                                  \
    "local function offload_backlog_full(stream, group, limit)\n"            \
    "  local len = redis.pcall('XLEN', stream)\n"                            \
    "  if type(len) ~= 'number' then return len end\n"                       \
    "  if len < limit then return false end\n"                               \
    "  local groups = redis.pcall('XINFO', 'GROUPS', stream)\n"              \
    "  if groups.err then return groups end\n"                               \
    "  local lag, pending = false, 0\n"                                      \
    "  for _, g in ipairs(groups) do\n"                                      \
    "    if g[2] == group then\n"                                            \
    "      for j = 3, #g, 2 do\n"                                            \
    "        if g[j] == 'lag' then lag = g[j + 1]\n"                         \
    "        elseif g[j] == 'pending' then pending = g[j + 1] end\n"         \
    "      end\n"                                                            \
    "    end\n"                                                              \
    "  end\n"                                                                \
    "  if not lag then lag = math.max(0, len - pending) end\n"               \
    "  return lag >= limit and lag\n"                                        \
    "end\n"

/*
 * Submit: a job that has a record (an async job, or one submitted with an
 * Idempotency-Key) is added with its record in one step, so no job exists
 * without its record, and no record without its job.  Every key its caller
 * can name is declared (the queue's slot): on a Redis Cluster with that
 * slot half moved, Redis answers ASK or TRYAGAIN for the whole script,
 * never runs it where the stream is not (a new record is on neither
 * node); the record of the job an idempotency key names (its id is in
 * the key's value), and when that job expires here the queue's cancelled
 * set, are touched undeclared (the same slot), and Redis refuses such a
 * key with an error, never a silent nil, when it moved: before any write
 * (the record is read first).  EVAL wants read and write
 * access to its keys: the module's ACL user has it for EVAL alone
 * (README); inside, the stream takes an XADD.
 *   KEYS[1] record          ARGV[1] queue
 *   KEYS[2] stream          ARGV[2] submitted_at (ms; the record's is
 *                           Redis' TIME when that is earlier, and its
 *                           deadline as much earlier)
 *   KEYS[3] the idempotency ARGV[3] the record's TTL in ms
 *     key (absent: none)    ARGV[4] offload_max_backlog, 0: none; or
 *                           "unserved": no worker serves the queue (the
 *                           caller's view), add nothing new
 *                           ARGV[5] group
 *                           ARGV[6] the idempotency key's TTL in ms
 *                           ARGV[7] the job's deadline (ms): a read of
 *                           the job still queued past it says expired
 *                           ARGV[8..] the entry's field/value pairs
 * With an idempotency key that names a job whose record still exists,
 * that job first expires if it is past its deadline (as a read would
 * expire it); one that ended expired or cancelled without ever starting
 * (no started_at, attempts 0) no longer holds the key.  Of a job that
 * does, nothing is written: it returns { "dup", id, status } when the
 * payload's SHA1 is the one stored, else { "reused", id }.  Then
 * "unserved" returns { "unserved" }, and with a backlog limit, a backlog
 * at or over it returns { "full", backlog }.
 * Otherwise the entry, its record and the idempotency key (id and payload
 * SHA1, ARGV[6] ms) are written; it returns the entry id, or nil when the
 * stream does not exist (NOMKSTREAM: nothing written).  The record of a
 * sync job (its entry has a reply channel) has "sync 1": its client waits
 * for it, a cancel leaves it alone, and workers run it without the start
 * script.
 *
 * Start: a worker's step before it runs an async job.  A job
 * cancelled meanwhile is acked and deleted (its body key unlinked) and
 * returns "cancelled" (0 if its entry is no longer pending: someone else
 * has it): it never runs (nor runs again: a job cancelled while it ran
 * comes back here when its killed worker's entries are handed back).  A
 * job a read marked expired (by Redis' clock: the worker's may be behind)
 * returns "expired": the worker answers it expired without running it.
 * Otherwise the record (if still there) takes status running, started_at,
 * attempts, node and slot, and it returns 1 (a job past its deadline by
 * the worker's clock is then answered expired without running too).
 *   KEYS[1] stream          ARGV[1] group     ARGV[2] entry id
 *   KEYS[2] record          ARGV[3] attempt
 *   KEYS[3] body key        ARGV[4] the worker's node, ARGV[5] its slot
 *                           (kept in the record, for a cancel)
 *
 * Job: what GET and DELETE /jobs/<id> do, in one step.
 *   KEYS[1] record          ARGV[1] "get", "cancel", or "unmatched"
 *                           (a cancel with an If-Match no entity tag of
 *                           the job meets: what it would do, not done)
 *                           ARGV[2] job id
 *                           ARGV[3] the record's TTL in ms after a cancel
 *                           (at least: a longer one, e.g. an
 *                           Idempotency-Key's, is kept)
 *                           ARGV[4] "running": a running job is
 *                           cancelled too (offload_cancel_running on),
 *                           else "queued"
 * Returns nil for no record, else { outcome, queue, status, attempts,
 * submitted_at, started_at, finished_at, next_attempt_at, result }, a
 * field missing nil; outcome "ok" (get), "cancelled" ("unmatched" where
 * ARGV[1] "unmatched" would have cancelled), "running",
 * "finished" or "waited" (cancel: only a queued or retrying job is
 * cancelled, or with ARGV[4] "running" a running one too, whose record
 * names its node and slot: "<queue> <slot> <id>" is pushed on the node's
 * OFFLOAD_CANCEL_FMT list; a sync job (its client waits for it) is left
 * alone, "waited"; a cancel publishes the id on OFFLOAD_JOBS_DONE); result
 * the stored result once the job ended (a big one's elements joined), else
 * nil.  A queued or retrying job whose deadline passed (by Redis' clock)
 * is marked expired first (finished_at its deadline, the record's TTL at
 * least ARGV[3], its id published), whatever ARGV[1]: no worker reached it
 * in time (a sync job's record, which says queued while it runs, only
 * while its entry is in the stream and delivered to no worker).  A sync
 * job's record (an Idempotency-Key's) not ended yet is marked "waited 1":
 * only then does its end publish its id (a duplicate or a long poll reads
 * it before it waits).
 */
extern const char  offload_submit_script[];
extern const char  offload_job_start_script[];
extern const char  offload_job_script[];

/*
 * Cancel sync: the module's step when a sync job's client goes away before
 * its answer: the job id goes into the queue's cancelled set, scored by
 * its deadline; marks past their deadline go (by Redis' clock); the key
 * lives until the latest deadline it holds.  Nothing is written for a
 * queue without a stream: the client may leave before the XADD's nil
 * answer came, and no job was queued (its name is in the queue's slot,
 * read undeclared: the ACL rules from before it keep working; a read
 * refused, the slot being moved, marks the job as before).
 *   KEYS[1] cancelled set   ARGV[1] the job's deadline (ms)
 *                           ARGV[2] job id
 *                           ARGV[3] the queue's stream
 *
 * Drop cancelled: a worker's step before it runs a batch it read, taken
 * only when the cancelled set is not empty (a ZCARD pipelined after each
 * read tells).  Prunes marks past their deadline; each entry whose job id
 * is marked is acked (if pending), deleted, its body key unlinked and its
 * mark removed; a marked entry no longer pending is only returned (not
 * run), left alone.
 *   KEYS[1] stream          ARGV[1] group
 *   KEYS[2] cancelled set   ARGV[2..] entry id, job id, entry id, ...
 *   KEYS[3..] the body key of each job, in the same order
 * Returns the entry ids dropped.
 */
extern const char  offload_cancel_sync_script[];
extern const char  offload_drop_cancelled_script[];

/*
 * Nodes: every live node's registry document in one round trip, for
 * offload_status, offload_metrics and offloadctl.
 *   KEYS[1] offload:{ctl}:nodes
 *   KEYS[2] offload:{ctl}:crashes
 *   KEYS[3] offload:{ctl}:queues
 *                           ARGV[1] "json" or "prom"
 *                           ARGV[2] sort workers by: memory, cpu, queue
 *                                   (entries held), restarts, jobs, or ""
 *                           ARGV[3] at most this many workers, or ""
 *                           ARGV[4] the node key prefix, "offload:{ctl}:node:"
 *                           ARGV[5] a name for this Redis, or absent
 *                           ARGV[6] "1": label the Prometheus samples
 *                                   redis="<ARGV[5]>"
 *                           ARGV[7] "0": "cache" leaves the Prometheus
 *                                   families out (most of its work)
 * "json" returns the members "nodes" (the documents), "queues" (merged
 * over the nodes), "workers" (every worker of every node, flattened with
 * its node and queue, sorted, limited), "workers_total" and "crashes"
 * (the list offload:{ctl}:crashes, newest first), as the inside
 * of a JSON object without its braces.  A queue several nodes serve gets
 * its run-time quantiles from their windows' fine buckets added
 * (offload:{ctl}:node:<name>:runs), when every one of them has published them
 * (JSON and "cache").  A queue some node served within OFFLOAD_DRAIN_TTL_S
 * (KEYS[3]) that no live node serves is "unserved": its figures are read
 * from its stream here, and "unserved_ms" says since when, by Redis'
 * clock (not on a Cluster: a node stamps only the queues of its control
 * shard, and the script reads no other shard's keys).  "prom"
 * returns the nodes' figures as Prometheus text, and each queue's live
 * nodes (offload_queue_nodes).  "cache" (what nginx keeps in its status
 * cache) returns everything unsorted and unlimited, as an array: the
 * nodes' documents, the queues' members and the crash reports, each
 * joined by commas; an array of the workers' JSON; an array of the
 * Prometheus families, a header then its samples for each; an array of
 * integers, the workers' sort keys (memory, cpu, queue, restarts, jobs,
 * times 1000), five per worker; last, the malformed documents (below)
 * joined by commas.  With ARGV[5] every document, queue and worker says
 * "redis":ARGV[5].
 * A document not of the types the script relies on is left out and
 * named: {"node":..., "error":...} in the member "malformed_nodes" (JSON)
 * and the last element (cache), offload_node_malformed{node} 1 (prom).
 * The node keys are read without being declared in KEYS: this script
 * needs a single Redis, not a Cluster.
 */
extern const char  offload_nodes_script[];


/* Checks that buf is one well-formed JSON text (RFC 8259) without building
 * anything.  Returns 0, or -1 with *offset and *err set.  Nesting is limited
 * to OFFLOAD_JSON_MAX_DEPTH (*err is then offload_json_too_deep): a job's
 * payload, and its result.  offload_json_check_payload() also takes a
 * \u escape of a UTF-16 surrogate only in a high-low pair (a job's payload:
 * many parsers refuse the text otherwise).  offload_json_check_framed()
 * allows one level more: a value at the limit framed by one object (an
 * exec handler's answer line around its result). */
#define OFFLOAD_JSON_MAX_DEPTH     512

extern const char  offload_json_too_deep[];

int offload_json_check(const char *buf, size_t len, size_t *offset,
    const char **err);
int offload_json_check_payload(const char *buf, size_t len, size_t *offset,
    const char **err);
int offload_json_check_framed(const char *buf, size_t len, size_t *offset,
    const char **err);

/* The same check fed piece by piece: init, scan each piece in order (0 so
 * far so good, -1 invalid), then end (0 for one whole JSON text).  On -1,
 * offset is where the input went wrong and err says how. */
typedef struct {
    size_t        offset;         /* bytes scanned so far */
    const char   *err;
    const char   *literal;        /* "true", "false" or "null" in progress */
    size_t        literal_at;
    int           depth;
    int           max_depth;
    int           state;
    int           sub;
    int           in_key;
    unsigned      hex;            /* a \uXXXX's value so far */
    int           low;            /* it is a high surrogate's low */
    int           pairs;          /* surrogate escapes only in pairs */
    unsigned char utf8_lo;
    unsigned char utf8_hi;
    char          stack[OFFLOAD_JSON_MAX_DEPTH + 1];   /* and a frame */
} offload_json_scan_t;

void offload_json_scan_init(offload_json_scan_t *s);
int offload_json_scan(offload_json_scan_t *s, const char *buf, size_t len);
int offload_json_scan_end(offload_json_scan_t *s);


/* A Redis address: "host:port", "host" (port 6379), "[ipv6]:port",
 * "[ipv6]" or "unix:/path".  An IPv6 host is kept without its brackets, as
 * getaddrinfo() and hiredis take it. */
typedef struct {
    char  host[256];              /* or the socket path when unix is set */
    int   port;
    int   is_unix;
} offload_addr_t;

int offload_addr_parse(offload_addr_t *addr, const char *text, size_t len);

/* Whether an address holds a URL's login ("redis://user:secret@host"), as
 * one used to redis-cli may write: no form takes one, and its error must
 * not repeat it into a log.  A unix socket's path may hold an '@'. */
int offload_addr_has_login(const char *text, size_t len);

/* Writes the address as offload_addr_parse() reads it ("[::1]:6379") into
 * buf; returns what snprintf() returns. */
int offload_addr_format(const offload_addr_t *addr, char *buf, size_t size);

#endif /* OFFLOAD_PROTO_H */
