/*
 * offload_proto.c -- key names, job and result encoding, the completion
 * script: everything both ends of a queue must agree on.
 *
 * Encoding is done by hand into caller buffers, with no allocation, because
 * the module calls it on the nginx request path.
 */

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "offload_proto.h"
#include "offload_slot.h"


/* A record status that ends its job for good (Lua, of the expression s):
 * only `offloadctl retry` makes such a record queued again. */
#define OFFLOAD_ENDED_LUA(s)                                                 \
    "(" s " == 'done' or " s " == 'failed' or " s " == 'dead')"

/*
 * mark(set, till, id): marks a sync job cancelled in its queue's
 * cancelled set (workers drop a marked job unrun while its mark holds:
 * till, ms by Redis' clock), prunes the marks past, and makes the set live
 * as long as its latest mark.  now_ms defined before it.
 */
#define OFFLOAD_MARK_LUA                                                     \
    "local function mark(set, till, id)\n"                                   \
    "  local now = tonumber(now_ms())\n"                                     \
    "  redis.call('ZREMRANGEBYSCORE', set, '-inf', '(' .. now)\n"            \
    "  redis.call('ZADD', set, till, id)\n"                                  \
    "  local last = redis.call('ZRANGE', set, -1, -1, 'WITHSCORES')[2]\n"    \
    "  redis.call('PEXPIRE', set, math.max(1, tonumber(last) - now))\n"      \
    "end\n"

/*
 * A job still queued (or retrying) past its deadline ends expired, at a
 * read of its record or at a submission of its Idempotency-Key (which is
 * then free): expire(rec, id, h, ttl), h the record's fields (a table),
 * marks h and rec expired, finished_at the deadline, makes rec live at
 * least ttl ms more, and publishes id for long polls.  An async job's start
 * script then never runs it, even where the worker's clock is behind
 * Redis'.  A sync job's record is not told when a worker takes it: it
 * expires only while its entry is in the stream and delivered to no
 * worker, and is then marked cancelled for OFFLOAD_EXPIRED_MARK_MS (the
 * worker that takes it drops it, even one whose clock is behind Redis' by
 * less than that: a resubmission of its key may have made a new job; an
 * XDEL of the entry would make Redis 7.0 count the group's lag one too
 * many for good).  The stream and the cancelled set are named from the
 * record's queue: keys of the record's slot, not declared.  now_ms defined
 * before it.
 */
#define OFFLOAD_EXPIRE_LUA                                                   \
    OFFLOAD_MARK_LUA                                                         \
    "local function keep(rec, ttl)\n"                                        \
    "  if redis.call('PTTL', rec) < tonumber(ttl) then\n"                    \
    "    redis.call('PEXPIRE', rec, ttl)\n"                                  \
    "  end\n"                                                                \
    "end\n"                                                                  \
    "local function fields(rec)\n"                                           \
    "  local raw = redis.call('HGETALL', rec)\n"                             \
    "  if #raw == 0 then return nil end\n"                                   \
    "  local h = {}\n"                                                       \
    "  for i = 1, #raw - 1, 2 do h[raw[i]] = raw[i + 1] end\n"               \
    "  return h\n"                                                           \
    "end\n"                                                                  \
    "local function expire(rec, id, h, ttl)\n"                               \
    "  if (h.status ~= 'queued' and h.status ~= 'retrying')"                 \
    " or not h.deadline or tonumber(h.deadline) > tonumber(now_ms()) then\n" \
    "    return\n"                                                           \
    "  end\n"                                                                \
    "  if h.sync then\n"                                                     \
    "    if not (h.entry and h.queue) then return end\n"                     \
    "    local stream = '" OFFLOAD_STREAM_HEAD "' .. h.queue .. '"           \
    OFFLOAD_STREAM_TAIL "'\n"                                                \
    "    local r = redis.pcall('XRANGE', stream, h.entry, h.entry)\n"        \
    "    if r.err or #r == 0 then return end\n"                              \
    "    local p = redis.pcall('XPENDING', stream, '" OFFLOAD_GROUP "',"     \
    " h.entry, h.entry, 1)\n"                                                \
    "    if p.err or #p > 0 then return end\n"                               \
    "    mark('offload:{' .. h.queue .. '}:cancelled',"                      \
    " tonumber(now_ms()) + " OFFLOAD_STR(OFFLOAD_EXPIRED_MARK_MS) ", id)\n"  \
    "  end\n"                                                                \
    "  h.status, h.finished_at = 'expired', h.deadline\n"                    \
    "  redis.call('HSET', rec, 'status', h.status, 'finished_at',"           \
    " h.finished_at)\n"                                                      \
    "  keep(rec, ttl)\n"                                                     \
    "  redis.call('PUBLISH', '" OFFLOAD_JOBS_DONE "', id)\n"                 \
    "end\n"

/*
 * A job's record, read before its result is stored (the locals rec,
 * rec_ttl, rec_status set): ended (it exists, an async job's or a keyed
 * sync job's, and was not cancelled while the job ran: that is its end
 * already) makes the result live rec_ttl ms, not ttl_ms.  over: another
 * run of the job ended it first (done, failed, dead, or an async job's
 * expired when this end is not that expiry): a node that stopped for
 * longer than claim_idle (a paused VM, SIGSTOP) finishes a job another
 * node claimed and ended meanwhile.  Its end stays the record's: one job,
 * one end.  (A keyed sync job whose expiry mark lapsed may still run: its
 * end is taken, so that its Idempotency-Key keeps it.)
 */
#define OFFLOAD_RECORD_READ_LUA                                              \
    "  local rec_was = rec and rec ~= '' and redis.call('HMGET', rec,"       \
    " 'status', 'sync', 'waited', 'finished_at')\n"                          \
    "  local was = rec_was and rec_was[1]\n"                                 \
    "  local ended = was and was ~= 'cancelled'\n"                           \
    "  local over = ended and (" OFFLOAD_ENDED_LUA("was")                    \
    " or was == 'expired' and rec_status ~= 'expired' and not rec_was[2])\n" \
    "  local result_ms = ended and rec_ttl or ttl_ms\n"

/*
 * The end of a job with a record, after its result is stored: the record
 * takes rec_status and finished_at (an expiry a read of the record saw
 * first keeps its time, the deadline) and lives rec_ttl ms from now (and so
 * does a result stored by an earlier run), and the id is published for
 * long polls: an async job's always, a keyed sync job's only once a read
 * marked its record "waited" (its own client waits on its reply channel;
 * a duplicate or a long poll reads the record first, in a script, so a
 * job that ends after the mark publishes, and one that ended before it
 * is seen ended by that read).
 */
#define OFFLOAD_RECORD_END_LUA                                               \
    "  if ended and not over then\n"                                         \
    "    local seen = rec_status == 'expired' and rec_was[1] == 'expired'"   \
    " and rec_was[4]\n"                                                      \
    "    redis.call('HSET', rec, 'status', rec_status, 'finished_at',"       \
    " seen or now_ms())\n"                                                   \
    "    redis.call('PEXPIRE', rec, rec_ttl)\n"                              \
    "    if stored == 0 then redis.call('PEXPIRE', rkey, rec_ttl) end\n"     \
    "    if not rec_was[2] or rec_was[3] then\n"                             \
    "      redis.call('PUBLISH', '" OFFLOAD_JOBS_DONE "',"                  \
    " " OFFLOAD_JOB_RECORD_ID_LUA("rec") ")\n"                              \
    "    end\n"                                                              \
    "  end\n"

/*
 * finish(): one job's answer, shared by the completion and dead-letter
 * scripts below (each acks and deletes the entry itself; now_ms defined
 * before it).  Stores the result rkey unless stored already, publishes
 * it on channel ("": none), ends the record rec ("" or nil: none); returns
 * 1 when this call stored the result, 0 when an earlier run had, or an
 * error reply for a staging key that is not whole.  A staged result (a
 * list: its header line, then its body in slices) is renamed into place,
 * after checking it is whole (result is then its number of elements).
 * Whatever is stored is read back for the publish without loading a big
 * one into Lua (that would hold up Redis as long as one big command): a
 * list only by its first element, the header, for the notice
 * "ON<version> <job id>"; a string by its length, and over
 * OFFLOAD_NOTICE_OVER bytes (stored by an older sidecar) by its head; the
 * waiting nginx reads the stored result.  LLEN tells a list (a string
 * answers WRONGTYPE, caught by pcall; a missing key 0).  A string this
 * call stored is result: published (or its notice) with no read back.
 * Without a reply channel (a job submitted "fire and forget") nothing is
 * read back nor published.  A channel with a hash tag ("{...}", as Redis
 * Cluster reads one) is a sharded channel, published with SPUBLISH (Redis
 * 7): its subscriber SSUBSCRIBEs on the queue's shard; any other with
 * PUBLISH (a plain find of '{' first: the pattern alone cost Redis about
 * 4,000 instructions per job on a channel without one, 3% of an echo
 * job's, callgrind).  An SPUBLISH that Redis refuses (on a cluster, a
 * hash tag in another slot than the queue's; an ACL user without
 * +spublish: NOPERM) is a PUBLISH instead, caught by pcall: it must not
 * fail the call, whose earlier jobs are stored and published already but
 * not yet acked.  The pcall costs the common case nothing more than a
 * call.
 */
#define OFFLOAD_FINISH_LUA                                                   \
    "local function finish(rkey, result, channel, stage, rec, rec_ttl,"      \
    " rec_status, ttl_ms)\n"                                                 \
    OFFLOAD_RECORD_READ_LUA                                                  \
    "  local stored = 0\n"                                                   \
    "  if stage then\n"                                                      \
    "    if redis.call('LLEN', stage) ~= tonumber(result) then\n"            \
    "      return redis.error_reply('STAGE staging key ' .. stage .."        \
    " ' is missing or does not hold ' .. result .. ' elements')\n"           \
    "    end\n"                                                              \
    "    if redis.call('EXISTS', rkey) == 1 then\n"                          \
    "      redis.call('UNLINK', stage)\n"                                    \
    "    else\n"                                                             \
    "      redis.call('RENAME', stage, rkey)\n"                              \
    "      redis.call('PEXPIRE', rkey, result_ms)\n"                         \
    "      stored = 1\n"                                                     \
    "    end\n"                                                              \
    "  elseif redis.call('SET', rkey, result, 'NX', 'PX', result_ms) then\n" \
    "    stored = 1\n"                                                       \
    "  end\n"                                                                \
    "  local msg = false\n"                                                  \
    "  local elements = channel ~= '' and (stored == 0 or stage)"            \
    " and redis.pcall('LLEN', rkey)\n"                                       \
    "  if channel == '' then\n"                                              \
    "    msg = false\n"                                                      \
    "  elseif not elements then\n"                                           \
    "    msg = result\n"                                                     \
    "    if #msg > " OFFLOAD_STR(OFFLOAD_NOTICE_OVER) " then\n"              \
    "      local head = string.match(string.sub(msg, 1, 256),"               \
    " '^OR(%d+ [^ ]+)')\n"                                                   \
    "      msg = head and 'ON' .. head\n"                                    \
    "    end\n"                                                              \
    "  elseif type(elements) == 'number' and elements > 0 then\n"            \
    "    local head = string.match(redis.call('LINDEX', rkey, 0),"           \
    " '^OR(%d+ [^ ]+)')\n"                                                   \
    "    if head then msg = 'ON' .. head end\n"                              \
    "  elseif redis.call('STRLEN', rkey) > "                                 \
    OFFLOAD_STR(OFFLOAD_NOTICE_OVER) " then\n"                               \
    "    local head = string.match(redis.call('GETRANGE', rkey, 0, 255),"    \
    " '^OR(%d+ [^ ]+)')\n"                                                   \
    "    if head then msg = 'ON' .. head end\n"                              \
    "  else\n"                                                               \
    "    msg = redis.call('GET', rkey)\n"                                    \
    "  end\n"                                                                \
    "  if msg then\n"                                                        \
    "    local sent = string.find(channel, '{', 1, true)"                    \
    " and string.find(channel, '^[^{]*{[^}]+}')"                             \
    " and redis.pcall('SPUBLISH', channel, msg)\n"                           \
    "    if type(sent) ~= 'number' then\n"                                   \
    "      redis.call('PUBLISH', channel, msg)\n"                            \
    "    end\n"                                                              \
    "  end\n"                                                                \
    OFFLOAD_RECORD_END_LUA                                                   \
    "  return stored\n"                                                      \
    "end\n"

/*
 * The order of every script that settles an entry otherwise than by its
 * completion (KEYS[1] the stream, ARGV[1] the group, ARGV[2] the entry):
 * a read first, then a write that changes nothing, then the writes, then
 * the ack last.  Redis may refuse a script's command halfway (an ACL
 * without it, a key of another type): the script stops there with what it
 * did kept.  Acked first, an entry a later command failed was neither
 * pending nor settled: it vanished.  Acked last, a refused script leaves
 * its entry pending, to be sent again or read again.  Of the writes, the
 * XADD (a dead letter, a copy) goes last: the others may be made twice
 * (SET NX, HSET, PEXPIRE), a second dead letter would be a second job.
 *
 * pending(id) is the guard, a read: true when the entry is still pending,
 * false when someone else settled it (or its stream or group is gone:
 * NOGROUP), or another error, to return.  Only the caller that finds it
 * pending acts on it: a job failed twice at once (its node lost and
 * claimed by two others) is handled once.
 *
 * Then the no-op XACK and XDEL of entry 0-0, before anything changes: an
 * ACL that lacks them refuses the script there.  And under maxmemory
 * (noeviction) Redis refuses only a script's first write that adds data
 * (a script without flags; script.c, scriptVerifyOOM: not once it has run
 * a write command, which it cannot undo): XACK is that first write, which
 * adds nothing, so the writes after it are never refused for memory.
 */
#define OFFLOAD_PENDING_LUA                                                  \
    "local function pending(id)\n"                                           \
    "  local held = redis.pcall('XPENDING', KEYS[1], ARGV[1], id, id, 1)\n"  \
    "  if held.err then\n"                                                   \
    "    if string.find(held.err, '^NOGROUP') then return false end\n"       \
    "    return held\n"                                                      \
    "  end\n"                                                                \
    "  return #held > 0\n"                                                   \
    "end\n"

#define OFFLOAD_NOOP_WRITE_LUA                                               \
    "redis.call('XACK', KEYS[1], ARGV[1], '0-0')\n"                          \
    "redis.call('XDEL', KEYS[1], '0-0')\n"

#define OFFLOAD_SETTLE_GUARD_LUA                                             \
    OFFLOAD_PENDING_LUA                                                      \
    "local is_pending = pending(ARGV[2])\n"                                  \
    "if is_pending ~= true then return is_pending end\n"                     \
    OFFLOAD_NOOP_WRITE_LUA

/*
 * Adds a dead letter (f, its fields) to the dead-letter stream key, which
 * keeps its maxlen newest: the letters beyond go one by one, each big
 * job's body key with it.  MAXLEN ~ would trim whole nodes of the stream
 * unseen, and a body key (OFFLOAD_DEAD_BODY_TTL long) would stay a week
 * with no letter naming it, beyond the reach of `offloadctl purge`.  The
 * body keys are in the dead stream's slot (one hash tag).
 */
#define OFFLOAD_DEAD_ADD_LUA                                                 \
    "local function dead_add(key, maxlen, f)\n"                              \
    "  redis.call('XADD', key, '*', unpack(f))\n"                            \
    "  local over = redis.call('XLEN', key) - tonumber(maxlen)\n"            \
    "  if over <= 0 then return end\n"                                       \
    "  local bodies = string.sub(key, 1, -5) .. 'body:'\n"                   \
    "  for _, e in ipairs(redis.call('XRANGE', key, '-', '+', 'COUNT',"      \
    " over)) do\n"                                                           \
    "    local id, big = nil, false\n"                                       \
    "    for i = 1, #e[2] - 1, 2 do\n"                                       \
    "      if e[2][i] == '" OFFLOAD_F_ID "' then id = e[2][i + 1]\n"         \
    "      elseif e[2][i] == '" OFFLOAD_F_BODY "' then big = true end\n"     \
    "    end\n"                                                              \
    "    if id and big then redis.call('UNLINK', bodies .. id) end\n"        \
    "    redis.call('XDEL', key, e[1])\n"                                    \
    "  end\n"                                                                \
    "end\n"

/* The ack, last. */
#define OFFLOAD_SETTLE_ACK_LUA                                               \
    "redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])\n"                        \
    "redis.call('XDEL', KEYS[1], ARGV[2])\n"

/*
 * The completion of one or more jobs (OFFLOAD_COMPLETE_ARGS arguments
 * each): each finished, then the entries acked and deleted, all in one
 * XACK and one XDEL, except that a job with a body key ('b' in its shape)
 * is acked alone and its body unlinked when this call acked its entry (a
 * completion that finds the entry no longer pending, dead-lettered or
 * failed and requeued meanwhile, leaves the body to whoever took it; a job
 * without the shape's 'b' has no body key).  UNLINK: Redis frees a big
 * value off its main thread.  A staging error stops at that job: the jobs
 * before it are acked and deleted, the rest left pending.  Most jobs
 * have an empty shape: it is tested before any string.find, which costs
 * Redis about 4% of its work for an echo job (callgrind).
 */
const char  offload_complete_script[] =
    OFFLOAD_NOW_LUA
    OFFLOAD_FINISH_LUA
    "local stream, group, ttl_ms = KEYS[1], ARGV[1], ARGV[2]\n"
    "local ids, plain, stored, err, k = {}, {}, 0, nil, 2\n"
    "for a = 3, #ARGV - " OFFLOAD_STR(OFFLOAD_COMPLETE_ARGS) " + 1, "
    OFFLOAD_STR(OFFLOAD_COMPLETE_ARGS) " do\n"
    "  local id, shape = ARGV[a], ARGV[a + 3]\n"
    "  local rkey, body, stage, rec = KEYS[k], nil, nil, nil\n"
    "  k = k + 1\n"
    "  if shape ~= '' then\n"
    "    if string.find(shape, 'b', 1, true) then body = KEYS[k]; k = k + 1"
    " end\n"
    "    if string.find(shape, 's', 1, true) then stage = KEYS[k]; k = k + 1"
    " end\n"
    "  end\n"
    "  if ARGV[a + 4] ~= '' then rec = KEYS[k]; k = k + 1 end\n"
    "  local r = finish(rkey, ARGV[a + 1], ARGV[a + 2], stage, rec,"
    " ARGV[a + 4], ARGV[a + 5], ttl_ms)\n"
    "  if type(r) == 'table' then err = r; break end\n"
    "  stored = stored + r\n"
    "  ids[#ids + 1] = id\n"
    "  if not body then\n"
    "    plain[#plain + 1] = id\n"
    "  elseif redis.call('XACK', stream, group, id) == 1 then\n"
    "    redis.call('UNLINK', body)\n"
    "  end\n"
    "end\n"
    "if #plain > 0 then redis.call('XACK', stream, group, unpack(plain))"
    " end\n"
    "if #ids > 0 then redis.call('XDEL', stream, unpack(ids)) end\n"
    "return err or stored\n";

const char  offload_stage_first_script[] =
    "return {redis.call('UNLINK', KEYS[1]),"
    " redis.call('RPUSH', KEYS[1], ARGV[1]),"
    " redis.call('PEXPIRE', KEYS[1], ARGV[2])}\n";

const char  offload_requeue_script[] =
    OFFLOAD_SETTLE_GUARD_LUA
    "local id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 3))\n"
    OFFLOAD_SETTLE_ACK_LUA
    "return id\n";

/* A job whose record says cancelled, or done (another run of it ended
 * first: its node stopped for longer than claim_idle and went on), is no
 * dead letter: its entry is settled, nothing else.  Not failed nor dead:
 * this script may have set them itself before Redis refused its XADD. */
const char  offload_dead_script[] =
    OFFLOAD_SETTLE_GUARD_LUA
    OFFLOAD_NOW_LUA
    OFFLOAD_FINISH_LUA
    OFFLOAD_DEAD_ADD_LUA
    "local rec, rec_ttl, rec_status = KEYS[5], nil, 'dead'\n"
    "for i = 7, #ARGV - 1, 2 do\n"
    "  local f, v = ARGV[i], ARGV[i + 1]\n"
    "  if f == '" OFFLOAD_F_RECORD "' then rec_ttl = v\n"
    "  elseif f == 'reason' and v == 'job_timeout' then rec_status = 'failed'\n"
    "  end\n"
    "end\n"
    "if not rec_ttl then rec = nil end\n"
    "if rec then\n"
    "  local status = redis.call('HGET', rec, 'status')\n"
    "  if status == 'cancelled' or status == 'done' then\n"
    "    redis.call('UNLINK', KEYS[4])\n"
    OFFLOAD_SETTLE_ACK_LUA
    "    return 0\n"
    "  end\n"
    "end\n"
    "local stored = finish(KEYS[2], ARGV[3], ARGV[5], nil, rec, rec_ttl,"
    " rec_status, tostring(tonumber(ARGV[4]) * 1000))\n"
    "redis.call('PEXPIRE', KEYS[4], " OFFLOAD_STR(OFFLOAD_DEAD_BODY_TTL)
    " * 1000)\n"
    "dead_add(KEYS[3], ARGV[6], {unpack(ARGV, 7)})\n"
    OFFLOAD_SETTLE_ACK_LUA
    "return stored\n";

const char  offload_retry_later_script[] =
    OFFLOAD_SETTLE_GUARD_LUA
    "local status = redis.call('HGET', KEYS[3], 'status')\n"
    "if status ~= 'cancelled' then\n"
    "  redis.call('ZADD', KEYS[2], ARGV[3],"
    " cmsgpack.pack({unpack(ARGV, 5)}))\n"
    "  if status then\n"
    "    redis.call('HSET', KEYS[3], 'status', 'retrying', 'next_attempt_at',"
    " ARGV[3], 'attempts', ARGV[4])\n"
    "  end\n"
    "end\n"
    OFFLOAD_SETTLE_ACK_LUA
    "return 1\n";

/*
 * Due retries back to their stream: each XADDed, then ZREMed.  A no-op
 * ZREM first (a member no retry has): an ACL without ZREM refuses the
 * script before its first XADD, which otherwise a refused ZREM left done,
 * adding the same job again at every pass.  Being the first write, it
 * also lets the XADDs through under maxmemory (scriptVerifyOOM, as for
 * the settling scripts): each is a move, its ZREM frees as much.
 */
const char  offload_retry_due_script[] =
    "local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1],"
    " 'LIMIT', 0, ARGV[2])\n"
    "if #due == 0 then return 0 end\n"
    "redis.call('ZREM', KEYS[1], '')\n"
    "for _, m in ipairs(due) do\n"
    "  redis.call('XADD', KEYS[2], '*', unpack(cmsgpack.unpack(m)))\n"
    "  redis.call('ZREM', KEYS[1], m)\n"
    "end\n"
    "return #due\n";

const char  offload_handback_script[] =
    "local n = 0\n"
    "local held = {}\n"
    "if #ARGV > 4 then\n"
    "  for i = 5, #ARGV do\n"
    "    local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i],"
    " 1, ARGV[2])\n"
    "    held[#held + 1] = p[1]\n"
    "  end\n"
    "else\n"
    "  held = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 10000,"
    " ARGV[2])\n"
    "end\n"
    "if #held == 0 then return 0 end\n"
    OFFLOAD_NOOP_WRITE_LUA
    "for _, p in ipairs(held) do\n"
    "  local id = p[1]\n"
    "  if id ~= ARGV[3] then\n"
    "    local e = redis.call('XRANGE', KEYS[1], id, id)\n"
    "    local f = e[1] and e[1][2] or {}\n"
    "    local job, rec, sync, h, lost = nil, false, false, {}, nil\n"
    "    local marked = id ~= ARGV[4]\n"
    "    for i = 1, #f - 1, 2 do\n"
    "      if f[i] == '" OFFLOAD_F_ID "' then job = f[i + 1]\n"
    "      elseif f[i] == '" OFFLOAD_F_RECORD "' then rec = true\n"
    "      elseif f[i] == '" OFFLOAD_F_REPLY "' then sync = true\n"
    "      elseif f[i] == '" OFFLOAD_F_LOST "' then lost = i + 1\n"
    "      elseif f[i] == '" OFFLOAD_F_INTERRUPTED "' then marked = true end\n"
    "    end\n"
    "    if #ARGV > 4 and lost then\n"
    "      f[lost] = tostring((tonumber(f[lost]) or 0) + 1)\n"
    "    elseif #ARGV > 4 then\n"
    "      f[#f + 1] = '" OFFLOAD_F_LOST "'\n"
    "      f[#f + 1] = '1'\n"
    "    end\n"
    "    if rec and job then\n"
    "      rec = " OFFLOAD_JOB_RECORD_LUA("job") "\n"
    "      h = redis.call('HMGET', rec, 'status', 'node', 'queue', 'slot')\n"
    "    end\n"
    "    if e[1] then\n"
    "      if not marked then\n"
    "        f[#f + 1] = '" OFFLOAD_F_INTERRUPTED "'\n"
    "        f[#f + 1] = '1'\n"
    "      end\n"
    "      local new = redis.call('XADD', KEYS[1], '*', unpack(f))\n"
    "      if h[1] == 'running' and h[2] and h[3] and h[4]"
    " and h[2] .. ':' .. h[3] .. ':' .. h[4] == ARGV[2] then\n"
    "        redis.call('HSET', rec, 'status', 'queued')\n"
    "      elseif h[1] == 'queued' and sync then\n"
    "        redis.call('HSET', rec, 'entry', new)\n"
    "      end\n"
    "      n = n + 1\n"
    "    end\n"
    "    redis.call('XACK', KEYS[1], ARGV[1], id)\n"
    "    redis.call('XDEL', KEYS[1], id)\n"
    "  end\n"
    "end\n"
    "return n\n";

const char  offload_bad_job_script[] =
    OFFLOAD_SETTLE_GUARD_LUA
    OFFLOAD_DEAD_ADD_LUA
    "local e = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])\n"
    "local ours = {entry = 1, reason = 1, report = 1, dead_at = 1}\n"
    "local f = {}\n"
    "local raw = e[1] and e[1][2] or {}\n"
    "for i = 1, math.min(#raw, 2000) - 1, 2 do\n"
    "  if not ours[raw[i]] then\n"
    "    f[#f + 1] = raw[i]\n"
    "    f[#f + 1] = raw[i + 1]\n"
    "  end\n"
    "end\n"
    "for _, v in ipairs({'entry', ARGV[2], 'reason', 'bad_job', 'report',"
    " ARGV[4], 'dead_at', ARGV[5]}) do\n"
    "  f[#f + 1] = v\n"
    "end\n"
    "if KEYS[3] then\n"
    "  redis.call('PEXPIRE', KEYS[3], " OFFLOAD_STR(OFFLOAD_DEAD_BODY_TTL)
    " * 1000)\n"
    "end\n"
    "dead_add(KEYS[2], ARGV[3], f)\n"
    OFFLOAD_SETTLE_ACK_LUA
    "return 1\n";

const char  offload_prune_nodes_script[] =
    "local live = {}\n"
    "for _, name in ipairs(redis.call('SMEMBERS', KEYS[1])) do\n"
    "  if redis.call('EXISTS', ARGV[1] .. name) == 0 then\n"
    "    redis.call('SREM', KEYS[1], name)\n"
    "  else\n"
    "    live[#live + 1] = name\n"
    "  end\n"
    "end\n"
    "return live\n";

const char  offload_forget_consumers_script[] =
    "local live = {}\n"
    "for i = 3, #ARGV do live[ARGV[i]] = true end\n"
    "local consumers = redis.pcall('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])\n"
    "if consumers.err then return 0 end\n"
    "local slot_at = ':' .. ARGV[2] .. ':'\n"
    "local function mark_settled(name)\n"
    "  local mark = redis.call('HGET', KEYS[2], name)\n"
    "  if not mark then return true end\n"
    "  local p = redis.pcall('XPENDING', KEYS[1], ARGV[1], mark, mark, 1)\n"
    "  return type(p) == 'table' and p[1] == nil\n"
    "end\n"
    "local n = 0\n"
    "for _, c in ipairs(consumers) do\n"
    "  local f = {}\n"
    "  for j = 1, #c, 2 do f[c[j]] = c[j + 1] end\n"
    "  local name = f['name']\n"
    "  local node, rest = string.match(name, '^([^:]+)(:.*)$')\n"
    "  if node and not live[node] and f['pending'] == 0\n"
    "     and (rest == ':claim'\n"
    "          or (string.sub(rest, 1, #slot_at) == slot_at\n"
    "              and string.match(rest, '^%d+$', #slot_at + 1)))\n"
    "     and mark_settled(name) then\n"
    "    local gone = redis.pcall('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1],"
    " name)\n"
    "    if type(gone) == 'table' then return n end\n"
    "    redis.call('HDEL', KEYS[2], name)\n"
    "    n = n + 1\n"
    "    if n == " OFFLOAD_STR(OFFLOAD_FORGET_CONSUMERS_MAX) " then break end\n"
    "  end\n"
    "end\n"
    "return n\n";

const char  offload_touch_script[] =
    "for i = 2, #ARGV do\n"
    "  local held = redis.pcall('XPENDING', KEYS[1], ARGV[1], '-', '+',"
    " 10000, ARGV[i])\n"
    "  if held.err then return 0 end\n"
    "  if #held > 0 then\n"
    "    local args = {'XCLAIM', KEYS[1], ARGV[1], ARGV[i], 0}\n"
    "    for _, p in ipairs(held) do table.insert(args, p[1]) end\n"
    "    table.insert(args, 'JUSTID')\n"
    "    redis.call(unpack(args))\n"
    "  end\n"
    "end\n"
    "return 1\n";

const char  offload_queues_stamp_script[] =
    "for i = 2, #ARGV do\n"
    "  redis.call('HSET', KEYS[1], ARGV[i], ARGV[1])\n"
    "end\n"
    "local forget = tonumber(ARGV[1]) - "
    OFFLOAD_STR(OFFLOAD_DRAIN_TTL_S) " * 1000\n"
    "local stamps = redis.pcall('HGETALL', KEYS[1])\n"
    "if stamps.err then return end\n"
    "for i = 1, #stamps, 2 do\n"
    "  local at = tonumber(stamps[i + 1])\n"
    "  if not at or at < forget then\n"
    "    redis.pcall('HDEL', KEYS[1], stamps[i])\n"
    "  end\n"
    "end\n";

const char  offload_queue_stats_script[] =
    OFFLOAD_NOW_LUA
    OFFLOAD_QUEUE_FIGURES_LUA
    "local now = tonumber(now_ms())\n"
    "local out = {}\n"
    "for i = 1, #KEYS, 3 do\n"
    "  local lag, pending, oldest, found =\n"
    "    queue_figures(KEYS[i], ARGV[1], now)\n"
    "  if not found and ARGV[(i + 2) / 3 + 1] == '1' then\n"
    "    redis.pcall('XGROUP', 'CREATE', KEYS[i], ARGV[1], '0', 'MKSTREAM')\n"
    "  end\n"
    "  local held = {}\n"
    "  local p = redis.pcall('XPENDING', KEYS[i], ARGV[1])\n"
    "  if not p.err and p[4] then\n"
    "    for _, c in ipairs(p[4]) do\n"
    "      held[#held + 1] = c[1]\n"
    "      held[#held + 1] = tonumber(c[2])\n"
    "    end\n"
    "  end\n"
    "  out[#out + 1] = { lag, pending, oldest,"
    " redis.call('XLEN', KEYS[i + 1]), held,"
    " redis.call('ZCARD', KEYS[i + 2]) }\n"
    "end\n"
    "return out\n";

const char  offload_cancel_sync_script[] =
    OFFLOAD_NOW_LUA
    OFFLOAD_MARK_LUA
    "if redis.pcall('EXISTS', ARGV[3]) == 0 then return 0 end\n"
    "mark(KEYS[1], ARGV[1], ARGV[2])\n"
    "return 1\n";

const char  offload_drop_cancelled_script[] =
    OFFLOAD_NOW_LUA
    OFFLOAD_PENDING_LUA
    "local now = tonumber(now_ms())\n"
    "local out, ids, k = {}, {}, 2\n"
    "for i = 2, #ARGV - 1, 2 do\n"
    "  k = k + 1\n"
    "  local mark = redis.call('ZSCORE', KEYS[2], ARGV[i + 1])\n"
    "  if mark and tonumber(mark) >= now then\n"
    "    local is_pending = pending(ARGV[i])\n"
    "    if type(is_pending) == 'table' then return is_pending end\n"
    "    if is_pending then ids[#ids + 1] = { ARGV[i], KEYS[k], ARGV[i + 1] }"
    " end\n"
    "    out[#out + 1] = ARGV[i]\n"
    "  end\n"
    "end\n"
    OFFLOAD_NOOP_WRITE_LUA
    "redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. now)\n"
    "for n, d in ipairs(ids) do\n"
    "  redis.call('UNLINK', d[2])\n"
    "  redis.call('ZREM', KEYS[2], d[3])\n"
    "  ids[n] = d[1]\n"
    "end\n"
    "if #ids > 0 then\n"
    "  redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))\n"
    "  redis.call('XDEL', KEYS[1], unpack(ids))\n"
    "end\n"
    "return out\n";

/* One pass over the entry's fields; the record's numbers are written as
 * strings ('0', '1'): Redis formats a Lua number passed to redis.call
 * with snprintf("%.17g"), about 2,700 instructions each (callgrind). */
const char  offload_submit_script[] =
    OFFLOAD_NOW_LUA
    OFFLOAD_EXPIRE_LUA
    OFFLOAD_BACKLOG_LUA
    "local idem, sha, sync, trace = KEYS[3], nil, false, nil\n"
    "for i = 8, #ARGV - 1, 2 do\n"
    "  local f = ARGV[i]\n"
    "  if f == '" OFFLOAD_F_PAYLOAD "' then\n"
    "    sha = idem and redis.sha1hex(ARGV[i + 1])\n"
    "  elseif f == '" OFFLOAD_F_REPLY "' then\n"
    "    sync = true\n"
    "  elseif f == '" OFFLOAD_F_TRACEPARENT "' then\n"
    "    trace = string.sub(ARGV[i + 1], 4, 35)\n"
    "  end\n"
    "end\n"
    "if idem then\n"
    "  local prev = redis.call('GET', idem)\n"
    "  local id, was = false, nil\n"
    "  if prev then id, was = string.match(prev, '^(%x+) (%x+)$') end\n"
    "  local rec = id and " OFFLOAD_JOB_RECORD_LUA("id") "\n"
    "  local h = rec and fields(rec)\n"
    "  if h then expire(rec, id, h, ARGV[3]) end\n"
    "  local unrun = h and (h.status == 'expired' or h.status == 'cancelled')"
    " and not h.started_at and h.attempts == '0'\n"
    "  if h and h.status and not unrun then\n"
    "    if was ~= sha then return { 'reused', id } end\n"
    "    return { 'dup', id, h.status }\n"
    "  end\n"
    "end\n"
    "if ARGV[4] == 'unserved' then return { 'unserved' } end\n"
    "if ARGV[4] ~= '0' then\n"
    "  local full = offload_backlog_full(KEYS[2], ARGV[5], tonumber(ARGV[4]))\n"
    "  if type(full) == 'table' then return full end\n"
    "  if full then return { 'full', full } end\n"
    "end\n"
    "local id = redis.call('XADD', KEYS[2], 'NOMKSTREAM', '*',"
    " unpack(ARGV, 8))\n"
    "if not id then return false end\n"
    /* nginx's reading of Redis' clock may run a few ms ahead of it: a
     * job is not submitted after Redis took it (nor after it started),
     * and its deadline keeps its span */
    "local submitted, deadline = ARGV[2], ARGV[7]\n"
    "local ahead = tonumber(submitted) - tonumber(now_ms())\n"
    "if ahead > 0 then\n"
    "  submitted = now_ms()\n"
    "  deadline = string.format('%d', tonumber(deadline) - ahead)\n"
    "end\n"
    "local rec = { 'queue', ARGV[1], 'status', 'queued', 'attempts', '0',"
    " 'submitted_at', submitted, 'deadline', deadline }\n"
    "if sync then\n"
    "  rec[#rec + 1], rec[#rec + 2] = 'sync', '1'\n"
    "  rec[#rec + 1], rec[#rec + 2] = 'entry', id\n"
    "end\n"
    "if trace then rec[#rec + 1], rec[#rec + 2] = 'trace_id', trace end\n"
    "redis.call('HSET', KEYS[1], unpack(rec))\n"
    "redis.call('PEXPIRE', KEYS[1], ARGV[3])\n"
    "if idem then\n"
    "  redis.call('SET', idem, " OFFLOAD_JOB_RECORD_ID_LUA("KEYS[1]")
    " .. ' ' .. sha, 'PX', ARGV[6])\n"
    "end\n"
    "return id\n";

/*
 * The gate of an async job's run.  First, whether its entry is still this
 * worker's (ARGV[7] its consumer): a node stopped for longer than
 * claim_idle (a paused VM, SIGSTOP) finds the entries it had read claimed
 * by another node, failed an attempt and run again there; running them
 * too would run each job twice.  A stream or group gone (an error) is
 * left to the steps below.  Then a cancelled job, or one another run
 * ended (an entry still pending with its record ended: a completion
 * whose ack Redis refused), is settled unrun.
 */
const char  offload_job_start_script[] =
    OFFLOAD_NOW_LUA
    OFFLOAD_PENDING_LUA
    "local mine = redis.pcall('XPENDING', KEYS[1], ARGV[1], ARGV[2],"
    " ARGV[2], 1, ARGV[7])\n"
    "if type(mine) == 'table' and not mine.err and #mine == 0 then\n"
    "  return 'claimed'\n"
    "end\n"
    "local status = redis.call('HGET', KEYS[2], 'status')\n"
    "if status == 'cancelled' or " OFFLOAD_ENDED_LUA("status") " then\n"
    "  local is_pending = pending(ARGV[2])\n"
    "  if is_pending ~= true then return is_pending or 0 end\n"
    OFFLOAD_NOOP_WRITE_LUA
    "  redis.call('UNLINK', KEYS[3])\n"
    OFFLOAD_SETTLE_ACK_LUA
    "  return status\n"
    "end\n"
    "if status == 'expired' then return status end\n"
    "if status and (ARGV[6] or '') ~= ''\n"
    "   and tonumber(now_ms()) >= tonumber(ARGV[6]) then\n"
    "  return 'expired'\n"
    "end\n"
    "if status then\n"
    "  redis.call('HSET', KEYS[2], 'status', 'running', 'started_at',"
    " now_ms(), 'attempts', ARGV[3], 'node', ARGV[4], 'slot', ARGV[5])\n"
    "end\n"
    "return 1\n";

/* The result key and the cancel list are built from the record's queue
 * and node, which the caller (who knows only the id) cannot declare: they
 * are in the record's slot.  On a Redis Cluster with that slot half moved,
 * Redis refuses such a key gone from this node with an error (never a
 * silent nil): the cancel list is pushed before the record is touched, so
 * that error leaves nothing half done.  A big result (a list) is
 * answered by its length: the module reads its elements on its bulk
 * connection (joined here, it would stall Redis while it is copied and
 * written, and the command connection while it is read).  A job still
 * queued past its deadline ends expired at a read; a sync job's record (a
 * job with an Idempotency-Key) is not told when a worker starts it, so
 * its entry must be in the stream and delivered to no worker yet. */
const char  offload_job_script[] =
    OFFLOAD_NOW_LUA
    OFFLOAD_EXPIRE_LUA
    "local h = fields(KEYS[1])\n"
    "if not h then return false end\n"
    "expire(KEYS[1], ARGV[2], h, ARGV[3])\n"
    "local ongoing = h.status == 'queued' or h.status == 'running'"
    " or h.status == 'retrying'\n"
    "if h.sync and ongoing and not h.waited then\n"
    "  redis.call('HSET', KEYS[1], 'waited', 1)\n"
    "end\n"
    "local outcome = 'ok'\n"
    "if ARGV[1] == 'cancel' or ARGV[1] == 'unmatched' then\n"
    "  local waiting = h.status == 'queued' or h.status == 'retrying'\n"
    "  local stop = h.status == 'running' and ARGV[4] == 'running'"
    " and h.node and h.slot\n"
    "  if h.sync and waiting then\n"
    "    outcome = 'waited'\n"
    "  elseif (waiting or stop) and ARGV[1] == 'unmatched' then\n"
    "    outcome = 'unmatched'\n"
    "  elseif waiting or stop then\n"
    "    if stop then\n"
    "      local list = 'offload:{' .. h.queue .. '}:cancel:' .. h.node\n"
    "      redis.call('RPUSH', list, h.queue .. ' ' .. h.slot .. ' '"
    " .. ARGV[2])\n"
    "      redis.call('PEXPIRE', list, " OFFLOAD_STR(OFFLOAD_CANCEL_TTL_MS)
    ")\n"
    "    end\n"
    "    h.status, h.finished_at = 'cancelled', now_ms()\n"
    "    redis.call('HSET', KEYS[1], 'status', h.status, 'finished_at',"
    " h.finished_at)\n"
    "    keep(KEYS[1], ARGV[3])\n"
    "    redis.call('PUBLISH', '" OFFLOAD_JOBS_DONE "', ARGV[2])\n"
    "    outcome = 'cancelled'\n"
    "  elseif h.status == 'running' then\n"
    "    outcome = 'running'\n"
    "  else\n"
    "    outcome = 'finished'\n"
    "  end\n"
    "end\n"
    "local res = false\n"
    "if h.queue and not ongoing then\n"
    "  local key = 'offload:{' .. h.queue .. '}:result:' .. ARGV[2]\n"
    "  res = redis.pcall('GET', key)\n"
    "  if type(res) == 'table' then\n"
    "    res = redis.call('LLEN', key)\n"
    "  end\n"
    "end\n"
    "return { outcome, h.queue or false, h.status or false,"
    " h.attempts or false, h.submitted_at or false, h.started_at or false,"
    " h.finished_at or false,"
    " h.status == 'retrying' and h.next_attempt_at or false, res,"
    " h.trace_id or false }\n";


static const char  hex[] = "0123456789abcdef";


int
offload_queue_name_valid(const char *name, size_t len)
{
    size_t  i;
    char    c;

    if (len == 0 || len > OFFLOAD_QUEUE_NAME_MAX) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        c = name[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
        {
            return 0;
        }
    }

    return 1;
}


static int
fitted(int n, size_t size)
{
    return (n < 0 || (size_t) n >= size) ? -1 : n;
}


int
offload_ping_error_answers(const char *err)
{
    return strncmp(err, "NOPERM", 6) == 0 || strncmp(err, "LOADING", 7) == 0
           || strncmp(err, "BUSY", 4) == 0;
}


unsigned
offload_reconnect_delay_ms(unsigned retries, long rnd)
{
    unsigned  ms;

    ms = OFFLOAD_RECONNECT_MIN_MS << (retries < 5 ? retries : 5);
    if (ms > OFFLOAD_RECONNECT_MAX_MS) {
        ms = OFFLOAD_RECONNECT_MAX_MS;
    }

    return ms - ms / 4 + (unsigned) (rnd % (ms / 2 + 1));
}


/*
 * OFFLOAD_STREAM_HEAD <queue> <tail> <id>, as snprintf() with
 * "offload:{%.*s}<tail>%.*s" would, queue and id each up to a NUL; by
 * hand: nginx makes a stream key and a result key for every job, and
 * snprintf()'s format parsing was most of their cost.
 */
static int
queue_key(char *buf, size_t size, const char *queue, size_t qlen,
    const char *tail, size_t tlen, const char *id, size_t idlen)
{
    char    *p;
    size_t   head, len;

    head = sizeof(OFFLOAD_STREAM_HEAD) - 1;
    qlen = strnlen(queue, qlen);
    idlen = strnlen(id, idlen);
    len = head + qlen + tlen + idlen;

    if (len >= size || len > INT_MAX) {
        return -1;
    }

    memcpy(buf, OFFLOAD_STREAM_HEAD, head);
    p = buf + head;
    memcpy(p, queue, qlen);
    p += qlen;
    memcpy(p, tail, tlen);
    p += tlen;
    memcpy(p, id, idlen);
    buf[len] = '\0';

    return (int) len;
}


int
offload_stream_key(char *buf, size_t size, const char *queue, size_t qlen)
{
    return queue_key(buf, size, queue, qlen, OFFLOAD_STREAM_TAIL,
                     sizeof(OFFLOAD_STREAM_TAIL) - 1, "", 0);
}


int
offload_result_key(char *buf, size_t size, const char *queue, size_t qlen,
    const char *id, size_t idlen)
{
    return queue_key(buf, size, queue, qlen, OFFLOAD_RESULT_MID,
                     sizeof(OFFLOAD_RESULT_MID) - 1, id, idlen);
}


int
offload_reply_channel(char *buf, size_t size, const char *nonce, size_t nlen)
{
    return fitted(snprintf(buf, size, OFFLOAD_REPLY_FMT, (int) nlen, nonce),
                  size);
}


int
offload_queue_reply_channel(char *buf, size_t size, const char *queue,
    size_t qlen, const char *nonce, size_t nlen)
{
    return fitted(snprintf(buf, size, OFFLOAD_QUEUE_REPLY_FMT, (int) qlen,
                           queue, (int) nlen, nonce),
                  size);
}


int
offload_dead_key(char *buf, size_t size, const char *queue, size_t qlen)
{
    return fitted(snprintf(buf, size, OFFLOAD_DEAD_FMT, (int) qlen, queue),
                  size);
}


int
offload_body_key(char *buf, size_t size, const char *queue, size_t qlen,
    const char *id, size_t idlen)
{
    return fitted(snprintf(buf, size, OFFLOAD_BODY_FMT, (int) qlen, queue,
                           (int) idlen, id),
                  size);
}


/* as OFFLOAD_JOB_RECORD_LUA(): the tag is what the id has of its
 * characters 12..16 */
int
offload_job_record_key(char *buf, size_t size, const char *id, size_t idlen)
{
    size_t  at, taglen;

    at = idlen < OFFLOAD_JOB_ID_TAG_AT ? idlen : OFFLOAD_JOB_ID_TAG_AT;
    taglen = idlen - at < OFFLOAD_SLOT_TAG_LEN ? idlen - at
                                               : OFFLOAD_SLOT_TAG_LEN;

    return fitted(snprintf(buf, size, OFFLOAD_JOB_RECORD_PREFIX "{%.*s}:%.*s",
                           (int) taglen, id + at, (int) idlen, id),
                  size);
}


int
offload_cancelled_key(char *buf, size_t size, const char *queue, size_t qlen)
{
    return fitted(snprintf(buf, size, OFFLOAD_CANCELLED_FMT, (int) qlen,
                           queue),
                  size);
}


void
offload_str_copy(char *dst, size_t size, const char *src, size_t len)
{
    if (src == NULL) {                  /* no field */
        len = 0;

    } else if (len >= size) {
        len = size - 1;
    }

    memcpy(dst, src != NULL ? src : "", len);

    dst[len] = '\0';
}


/* 1 if s[0 .. n) are lowercase hex digits, not all '0' when nonzero is
 * asked for; 0 otherwise. */
static int
lower_hex(const char *s, size_t n, int nonzero)
{
    size_t  i;
    int     any = 0;

    for (i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return 0;
        }

        any |= s[i] != '0';
    }

    return any || !nonzero;
}


int
offload_refusal_passes(const char *err)
{
    size_t              i, n;
    static const char  *passing[] = {
        "OOM", "BUSY", "LOADING", "MISCONF", "MASTERDOWN", "NOREPLICAS",
        "TRYAGAIN", "CLUSTERDOWN", "READONLY"
    };

    for (i = 0; i < sizeof(passing) / sizeof(passing[0]); i++) {
        n = strlen(passing[i]);

        if (strncmp(err, passing[i], n) == 0
            && (err[n] == ' ' || err[n] == '\0'))
        {
            return 1;
        }
    }

    return 0;
}


int
offload_exec_left_multi_open(const char *err)
{
    return strncmp(err, "EXECABORT", 9) != 0
           && strstr(err, "without MULTI") == NULL
           && !offload_redirect(err)
           && strncmp(err, "TRYAGAIN", 8) != 0
           && strncmp(err, "CLUSTERDOWN", 11) != 0;
}


int
offload_redirect(const char *err)
{
    return strncmp(err, "MOVED ", 6) == 0 || strncmp(err, "ASK ", 4) == 0;
}


int
offload_reply_channel_ok(const offload_str_t *ch)
{
    size_t       head;
    const char  *tail;

    static const char  plain[] = OFFLOAD_REPLY_HEAD;
    static const char  mid[] = OFFLOAD_REPLY_MID;

    if (ch->len > sizeof(plain) - 1
        && memcmp(ch->data, plain, sizeof(plain) - 1) == 0)
    {
        return 1;
    }

    head = sizeof(OFFLOAD_STREAM_HEAD) - 1;

    if (ch->len <= head || memcmp(ch->data, OFFLOAD_STREAM_HEAD, head) != 0) {
        return 0;
    }

    /* the tag, then the rest: the first '}' ends it */
    tail = memchr(ch->data + head, '}', ch->len - head);

    return tail != NULL && tail > ch->data + head
           && (size_t) (ch->data + ch->len - tail) > sizeof(mid) - 1
           && memcmp(tail, mid, sizeof(mid) - 1) == 0;
}


int
offload_traceparent_check(const char *s, size_t len)
{
    if (len < OFFLOAD_TRACEPARENT_LEN
        || !lower_hex(s, 2, 0) || (s[0] == 'f' && s[1] == 'f'))
    {
        return -1;
    }

    /* a later version may append fields after a '-' */
    if ((s[0] == '0' && s[1] == '0') ? len != OFFLOAD_TRACEPARENT_LEN
        : len > OFFLOAD_TRACEPARENT_LEN && s[OFFLOAD_TRACEPARENT_LEN] != '-')
    {
        return -1;
    }

    if (s[2] != '-' || s[OFFLOAD_SPAN_ID_AT - 1] != '-'
        || s[OFFLOAD_TRACE_FLAGS_AT - 1] != '-'
        || !lower_hex(s + OFFLOAD_TRACE_ID_AT, OFFLOAD_TRACE_ID_LEN, 1)
        || !lower_hex(s + OFFLOAD_SPAN_ID_AT, OFFLOAD_SPAN_ID_LEN, 1)
        || !lower_hex(s + OFFLOAD_TRACE_FLAGS_AT, 2, 0))
    {
        return -1;
    }

    return 0;
}


int
offload_tracestate_check(const char *s, size_t len)
{
    size_t  i;

    if (len == 0 || len > OFFLOAD_TRACESTATE_MAX) {
        return -1;
    }

    for (i = 0; i < len; i++) {
        if (s[i] < 0x20 || s[i] > 0x7e) {
            return -1;
        }
    }

    return 0;
}


const char *
offload_record_status(int status, const char *code)
{
    if (status >= 200 && status < 300) {
        return "done";
    }

    if (code == NULL) {
        return "failed";
    }

    if (status == 504 && strcmp(code, "expired") == 0) {
        return "expired";
    }

    if (status == 502 && (strcmp(code, "worker_crashed") == 0
                          || strcmp(code, "out_of_memory") == 0))
    {
        return "dead";
    }

    return "failed";
}


int
offload_idem_key(char *buf, size_t size, const char *queue, size_t qlen,
    const char *key, size_t klen)
{
    return fitted(snprintf(buf, size, OFFLOAD_IDEM_FMT, (int) qlen, queue,
                           (int) klen, key),
                  size);
}


int
offload_stage_key(char *buf, size_t size, const char *queue, size_t qlen,
    const char *id, size_t idlen, const char *consumer)
{
    return fitted(snprintf(buf, size, OFFLOAD_STAGE_FMT, (int) qlen, queue,
                           (int) idlen, id, consumer),
                  size);
}


static void
put_arg(const char **argv, size_t *argvlen, int *argc, const char *data,
    size_t len)
{
    argv[*argc] = data;
    argvlen[*argc] = len;
    (*argc)++;
}


#define put_field(name, data, len)                                           \
    put_arg(argv, argvlen, &argc, name, sizeof(name) - 1);                   \
    put_arg(argv, argvlen, &argc, data, len)


char *
offload_decimal(char *p, uint64_t n)
{
    char  digits[20], *d = digits + sizeof(digits);

    do {
        *--d = (char) ('0' + n % 10);
        n /= 10;
    } while (n);

    /* a loop, not memcpy(): a call costs more than the few digits */
    while (d < digits + sizeof(digits)) {
        *p++ = *d++;
    }

    return p;
}


/*
 * n in decimal as "%lld" writes it, NUL-terminated, into buf (21 bytes
 * hold any long long); returns its length.  By hand: snprintf() took most
 * of the instructions of a job's argv, on the nginx request path.
 */
static size_t
put_int(char *buf, long long n)
{
    char  *p = buf;

    if (n < 0) {
        *p++ = '-';
    }

    p = offload_decimal(p, n < 0 ? 0 - (unsigned long long) n
                                 : (unsigned long long) n);
    *p = '\0';

    return (size_t) (p - buf);
}


int
offload_job_argv(const offload_entry_t *job, const char *stream_key,
    offload_job_scratch_t *scratch, const char **argv, size_t *argvlen)
{
    int                argc = 0;
    static const char  version[] = { '0' + OFFLOAD_PROTO_VERSION, '\0' };

    /* NOMKSTREAM: workers create their queues' streams; a name nobody
     * serves gets nil, not a stream that fills Redis for good. */
    put_arg(argv, argvlen, &argc, "XADD", 4);
    put_arg(argv, argvlen, &argc, stream_key, strlen(stream_key));
    put_arg(argv, argvlen, &argc, "NOMKSTREAM", 10);
    put_arg(argv, argvlen, &argc, "*", 1);

    put_field(OFFLOAD_F_VERSION, version, 1);
    put_field(OFFLOAD_F_ID, job->id.data, job->id.len);
    put_field(OFFLOAD_F_PAYLOAD, job->payload.data, job->payload.len);

    if (job->reply.len > 0) {
        put_field(OFFLOAD_F_REPLY, job->reply.data, job->reply.len);
    }

    if (job->deadline_ms != OFFLOAD_NO_DEADLINE) {
        put_field(OFFLOAD_F_DEADLINE, scratch->deadline,
                  put_int(scratch->deadline, job->deadline_ms));
    }

    if (job->submitted_ms != 0) {
        put_field(OFFLOAD_F_SUBMITTED, scratch->submitted,
                  put_int(scratch->submitted, job->submitted_ms));
    }

    put_field(OFFLOAD_F_ATTEMPT, scratch->attempt,
              put_int(scratch->attempt, job->attempt));
    put_field(OFFLOAD_F_REQUEST_ID, job->request_id.data,
              job->request_id.len);

    if (job->body_len > 0) {
        put_field(OFFLOAD_F_BODY, scratch->body_len,
                  put_int(scratch->body_len, job->body_len));
    }

    if (job->record_ttl_ms > 0) {
        put_field(OFFLOAD_F_RECORD, scratch->record_ttl,
                  put_int(scratch->record_ttl, job->record_ttl_ms));
    }

    if (job->traceparent.len > 0) {
        put_field(OFFLOAD_F_TRACEPARENT, job->traceparent.data,
                  job->traceparent.len);

        if (job->tracestate.len > 0) {
            put_field(OFFLOAD_F_TRACESTATE, job->tracestate.data,
                      job->tracestate.len);
        }
    }

    return argc;
}


int
offload_decimal_parse(const char *s, size_t len, size_t max_digits,
    int64_t *out)
{
    size_t   i;
    int64_t  n = 0;

    if (len == 0 || len > max_digits) {
        return -1;
    }

    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        n = n * 10 + (s[i] - '0');
    }

    *out = n;
    return 0;
}


/* Parses a whole decimal string; -1 on anything else. */
static int
parse_int64(const offload_str_t *s, int64_t *out)
{
    return offload_decimal_parse(s->data, s->len, 18, out);
}


static int
str_is(const offload_str_t *s, const char *lit)
{
    size_t  len = strlen(lit);

    return s->len == len && memcmp(s->data, lit, len) == 0;
}


int
offload_job_decode(offload_entry_t *job, const offload_str_t *fields,
    size_t nfields, const char **err)
{
    size_t          i;
    int64_t         n;
    unsigned        seen = 0;
    const offload_str_t  *name, *value;

    enum {
        HAVE_VERSION = 1, HAVE_ID = 2, HAVE_PAYLOAD = 4
    };

    memset(job, 0, sizeof(*job));
    job->deadline_ms = OFFLOAD_NO_DEADLINE;
    job->attempt = 1;

    if (nfields % 2 != 0) {
        *err = "odd number of fields";
        return -1;
    }

    for (i = 0; i < nfields; i += 2) {
        name = &fields[i];
        value = &fields[i + 1];

        if (str_is(name, OFFLOAD_F_VERSION)) {
            if (parse_int64(value, &n) != 0) {
                *err = "bad version";
                return -1;
            }
            job->version = (int) n;
            seen |= HAVE_VERSION;

        } else if (str_is(name, OFFLOAD_F_ID)) {
            if (value->len == 0 || value->len > OFFLOAD_JOB_ID_MAX) {
                *err = "bad id";
                return -1;
            }
            job->id = *value;
            seen |= HAVE_ID;

        } else if (str_is(name, OFFLOAD_F_PAYLOAD)) {
            job->payload = *value;
            seen |= HAVE_PAYLOAD;

        } else if (str_is(name, OFFLOAD_F_REPLY)) {
            /* empty: none, as absent ("fire and forget") */
            if (value->len > 0 && !offload_reply_channel_ok(value)) {
                *err = "bad reply channel: not offload:reply:<nonce> nor "
                       "offload:{<tag>}:reply:<nonce>";
                return -1;
            }
            job->reply = *value;

        } else if (str_is(name, OFFLOAD_F_DEADLINE)) {
            if (parse_int64(value, &job->deadline_ms) != 0) {
                *err = "bad deadline";
                return -1;
            }

            if (job->deadline_ms < OFFLOAD_EPOCH_MS_MIN) {
                *err = "bad deadline: before 2001, in seconds? (ms since "
                       "the epoch)";
                return -1;
            }

        } else if (str_is(name, OFFLOAD_F_SUBMITTED)) {
            if (parse_int64(value, &job->submitted_ms) != 0) {
                *err = "bad submitted time";
                return -1;
            }

            if (job->submitted_ms != 0
                && job->submitted_ms < OFFLOAD_EPOCH_MS_MIN)
            {
                *err = "bad submitted time: before 2001, in seconds? (ms "
                       "since the epoch)";
                return -1;
            }

        } else if (str_is(name, OFFLOAD_F_ATTEMPT)) {
            if (parse_int64(value, &n) != 0 || n < 1 || n > 1000000) {
                *err = "bad attempt";
                return -1;
            }
            job->attempt = (int) n;

        } else if (str_is(name, OFFLOAD_F_REQUEST_ID)) {
            job->request_id = *value;

        } else if (str_is(name, OFFLOAD_F_BODY)) {
            if (parse_int64(value, &job->body_len) != 0
                || job->body_len == 0 || job->body_len > OFFLOAD_BODY_MAX)
            {
                *err = "bad body length";
                return -1;
            }

        } else if (str_is(name, OFFLOAD_F_RECORD)) {
            if (parse_int64(value, &job->record_ttl_ms) != 0) {
                *err = "bad record TTL";
                return -1;
            }

        } else if (str_is(name, OFFLOAD_F_TRACEPARENT)) {
            job->traceparent = *value;

        } else if (str_is(name, OFFLOAD_F_TRACESTATE)) {
            job->tracestate = *value;

        } else if (str_is(name, OFFLOAD_F_INTERRUPTED)) {
            job->interrupted = 1;
        }

        /* unknown fields are ignored: a newer sender may add some */
    }

    if (!(seen & HAVE_VERSION)) {
        *err = "no version";
        return -1;
    }

    if (job->version != OFFLOAD_PROTO_VERSION) {
        *err = "unsupported protocol version";
        return -1;
    }

    /* Trace context is a courtesy: a bad one is dropped, not the job. */
    if (job->traceparent.len > 0
        && (job->traceparent.len != OFFLOAD_TRACEPARENT_LEN
            || offload_traceparent_check(job->traceparent.data,
                                         job->traceparent.len)
               != 0))
    {
        job->traceparent.len = 0;
    }

    if (job->traceparent.len == 0
        || offload_tracestate_check(job->tracestate.data,
                                    job->tracestate.len)
           != 0)
    {
        job->tracestate.len = 0;
    }

    /* A job with a record is the module's: its id is lowercase hex.  The
     * scripts find the id again in the record key's name, which another id
     * (a '}' in its slot tag) would not give back. */
    if (job->record_ttl_ms > 0) {
        for (i = 0; i < job->id.len; i++) {
            if (memchr(hex, job->id.data[i], 16) == NULL) {
                *err = "bad id";
                return -1;
            }
        }
    }

    /* reply, deadline, submitted and attempt may be left out: a program
     * submitting jobs itself may not care (offload_entry_t says how) */
    if (!(seen & HAVE_ID) || !((seen & HAVE_PAYLOAD) || job->body_len > 0)) {
        *err = "missing field";
        return -1;
    }

    if (job->body_len > 0 && job->payload.len > 0) {
        *err = "both a payload and a body";
        return -1;
    }

    return 0;
}


/*
 * As snprintf() with "OR%d %.*s %d %lld %lld %lld %lld\n" would, the id up
 * to a NUL; by hand: snprintf() took ~3,000 instructions a call (this ~580)
 * of the ~19,800 a worker spends on a job.  The numbers are written aside
 * first: their length decides whether the line fits.
 */
int
offload_result_header(char *buf, size_t size, const offload_result_t *res)
{
    char               nums[5 * sizeof(" -9223372036854775808")], *p;
    size_t             i, idlen, nlen, len;
    const int64_t      n[] = { res->status, res->queue_us, res->run_us,
                               res->cpu_us, res->rss_kb };
    /* the version is one digit, as in a job's argv */
    static const char  head[] = { 'O', 'R', '0' + OFFLOAD_PROTO_VERSION,
                                  ' ' };

    /* each " <n>", put_int()'s NUL overwritten by the next one's space */
    p = nums;
    for (i = 0; i < sizeof(n) / sizeof(n[0]); i++) {
        *p++ = ' ';
        p += put_int(p, n[i]);
    }
    *p++ = '\n';

    idlen = strnlen(res->id.data, res->id.len);
    nlen = (size_t) (p - nums);
    len = sizeof(head) + idlen + nlen;

    if (len >= size || len > INT_MAX) {
        return -1;
    }

    memcpy(buf, head, sizeof(head));
    memcpy(buf + sizeof(head), res->id.data, idlen);
    memcpy(buf + sizeof(head) + idlen, nums, nlen);
    buf[len] = '\0';

    return (int) len;
}


/* Takes the next space- or newline-terminated token from [*p, end). */
static int
next_token(const char **p, const char *end, char stop, offload_str_t *tok)
{
    const char  *s = *p;

    while (*p < end && **p != stop) {
        if (**p == ' ' || **p == '\n') {
            return -1;
        }
        (*p)++;
    }

    if (*p == end || *p == s) {
        return -1;
    }

    tok->data = s;
    tok->len = (size_t) (*p - s);
    (*p)++;
    return 0;
}


int
offload_result_decode(offload_result_t *res, const char *msg, size_t len,
    const char **err)
{
    const char     *p = msg, *end = msg + len, *last;
    int64_t         n;
    offload_str_t   tok, cpu, rss;

    memset(res, 0, sizeof(*res));

    if (len < 2 || msg[0] != 'O' || msg[1] != 'R') {
        *err = "not a result";
        return -1;
    }
    p += 2;

    if (next_token(&p, end, ' ', &tok) != 0 || parse_int64(&tok, &n) != 0) {
        *err = "bad version";
        return -1;
    }

    if (n != OFFLOAD_PROTO_VERSION) {
        *err = "unsupported protocol version";
        return -1;
    }
    res->version = (int) n;

    /* An id with a NUL byte cannot be ours: the header and the result key
     * cut it there, as "%.*s" does. */
    if (next_token(&p, end, ' ', &res->id) != 0
        || memchr(res->id.data, '\0', res->id.len) != NULL)
    {
        *err = "bad id";
        return -1;
    }

    if (next_token(&p, end, ' ', &tok) != 0 || parse_int64(&tok, &n) != 0
        || n < 100 || n > 599)
    {
        *err = "bad status";
        return -1;
    }
    res->status = (int) n;

    if (next_token(&p, end, ' ', &tok) != 0
        || parse_int64(&tok, &res->queue_us) != 0)
    {
        *err = "bad queue time";
        return -1;
    }

    /* The run time ends the line in results of older sidecars. */
    res->cpu_us = -1;
    res->rss_kb = -1;
    last = p;
    if (next_token(&p, end, '\n', &tok) != 0) {
        p = last;
        if (next_token(&p, end, ' ', &tok) != 0) {
            *err = "bad run time";
            return -1;
        }

        if (next_token(&p, end, ' ', &cpu) != 0
            || next_token(&p, end, '\n', &rss) != 0
            || parse_int64(&cpu, &res->cpu_us) != 0
            || parse_int64(&rss, &res->rss_kb) != 0)
        {
            *err = "bad resource use";
            return -1;
        }
    }

    if (parse_int64(&tok, &res->run_us) != 0) {
        *err = "bad run time";
        return -1;
    }

    res->body.data = p;
    res->body.len = (size_t) (end - p);
    return 0;
}


int
offload_notice_decode(offload_str_t *id, const char *msg, size_t len)
{
    const char     *p = msg + 2, *end = msg + len;
    int64_t         n;
    offload_str_t   tok;

    if (len < 2 || msg[0] != 'O' || msg[1] != 'N'
        || next_token(&p, end, ' ', &tok) != 0 || parse_int64(&tok, &n) != 0
        || n != OFFLOAD_PROTO_VERSION || p == end)
    {
        return -1;
    }

    id->data = p;
    id->len = (size_t) (end - p);

    return memchr(p, ' ', id->len) || memchr(p, '\n', id->len) ? -1 : 0;
}


int
offload_job_id_seq(const char *id, size_t len, uint64_t *seq)
{
    size_t    i;
    uint64_t  n = 0;
    char      c;

    if (len != OFFLOAD_JOB_ID_LEN) {
        return -1;
    }

    for (i = 0; i < OFFLOAD_JOB_ID_LEN; i++) {
        c = id[i];

        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return -1;
        }

        if (i >= OFFLOAD_NONCE_LEN) {
            n = (n << 4) | (uint64_t) (c <= '9' ? c - '0' : c - 'a' + 10);
        }
    }

    *seq = n;
    return 0;
}


void
offload_job_id_format(char *buf, const char *nonce, const char *tag,
    uint64_t seq)
{
    int  i;

    memcpy(buf, nonce, OFFLOAD_JOB_ID_TAG_AT);
    memcpy(buf + OFFLOAD_JOB_ID_TAG_AT, tag, OFFLOAD_SLOT_TAG_LEN);

    for (i = OFFLOAD_JOB_ID_LEN - 1; i >= OFFLOAD_NONCE_LEN; i--) {
        buf[i] = hex[seq & 0xf];
        seq >>= 4;
    }
}


int
offload_addr_has_login(const char *text, size_t len)
{
    return !(len >= sizeof("unix:") - 1
             && memcmp(text, "unix:", sizeof("unix:") - 1) == 0)
           && memchr(text, '@', len) != NULL;
}


int
offload_addr_parse(offload_addr_t *addr, const char *text, size_t len)
{
    const char  *host, *colon, *bracket;
    long         n;
    size_t       hlen, plen, i;

    memset(addr, 0, sizeof(*addr));

    /* A NUL byte would silently cut the host or the path short. */
    if (memchr(text, '\0', len) != NULL) {
        return -1;
    }

    if (len > 5 && memcmp(text, "unix:", 5) == 0) {
        if (len - 5 >= sizeof(addr->host) || text[5] != '/') {
            return -1;
        }
        memcpy(addr->host, text + 5, len - 5);
        addr->is_unix = 1;
        return 0;
    }

    if (len > 0 && text[0] == '[') {
        /* "[v6]" or "[v6]:port", as in URLs; the host is kept bare */
        bracket = memchr(text, ']', len);
        if (bracket == NULL) {
            return -1;
        }
        host = text + 1;
        hlen = (size_t) (bracket - host);
        colon = bracket + 1 < text + len ? bracket + 1 : NULL;

        if (hlen == 0 || memchr(host, ':', hlen) == NULL
            || (colon != NULL && *colon != ':'))
        {
            return -1;
        }

    } else {
        host = text;
        colon = memchr(text, ':', len);
        hlen = colon ? (size_t) (colon - text) : len;
    }

    if (hlen == 0 || hlen >= sizeof(addr->host)) {
        return -1;
    }
    memcpy(addr->host, host, hlen);
    addr->port = 6379;

    if (colon) {
        /* Decimal digits only (up to 7, leading zeros allowed): strtol()
         * would also take a sign or leading spaces. */
        plen = len - (size_t) (colon + 1 - text);
        if (plen == 0 || plen > 7) {
            return -1;
        }

        n = 0;
        for (i = 0; i < plen; i++) {
            if (colon[1 + i] < '0' || colon[1 + i] > '9') {
                return -1;
            }
            n = n * 10 + (colon[1 + i] - '0');
        }

        if (n < 1 || n > 65535) {
            return -1;
        }
        addr->port = (int) n;
    }

    return 0;
}


int
offload_addr_format(const offload_addr_t *addr, char *buf, size_t size)
{
    if (addr->is_unix) {
        return snprintf(buf, size, "unix:%s", addr->host);
    }

    return snprintf(buf, size, strchr(addr->host, ':') ? "[%s]:%d" : "%s:%d",
                    addr->host, addr->port);
}


const char  offload_retry_script[] =
    OFFLOAD_NOW_LUA
    "local e = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])[1]\n"
    "if not e then return false end\n"
    "local f = {}\n"
    "for i = 1, #e[2], 2 do f[e[2][i]] = e[2][i + 1] end\n"
    "local now = tonumber(now_ms())\n"
    "local span = (tonumber(f.deadline) or 0) -"
    " (tonumber(f.submitted) or 0)\n"
    "if span <= 0 then span = 30000 end\n"
    "local job = {'v', f.v, 'id', f.id, 'payload', f.payload or '',\n"
    "  'submitted', now, 'attempt', 1, 'rid', f.rid or ''}\n"
    "for _, k in ipairs({'reply', 'tp', 'ts', '" OFFLOAD_F_RECORD "'}) do\n"
    "  if f[k] then\n"
    "    job[#job + 1] = k\n"
    "    job[#job + 1] = f[k]\n"
    "  end\n"
    "end\n"
    "local life = " OFFLOAD_STR(OFFLOAD_BODY_NO_DEADLINE_MS) "\n"
    "if f.deadline then\n"
    "  job[#job + 1] = 'deadline'\n"
    "  job[#job + 1] = now + span\n"
    "  life = span\n"
    "end\n"
    "if f.body and redis.call('EXISTS', KEYS[4]) == 0 then\n"
    "  return redis.error_reply('the body of job ' .. f.id .. ' (' .."
    " KEYS[4] .. ') is gone (expired or deleted): it cannot run again')\n"
    "end\n"
    "local rec = KEYS[5]\n"
    "if f." OFFLOAD_F_RECORD " and rec and redis.call('EXISTS', rec) == 1"
    " then\n"
    "  redis.call('HDEL', rec, 'finished_at', 'started_at', 'node', 'slot',"
    " 'next_attempt_at')\n"
    "  redis.call('HSET', rec, 'status', 'queued', 'attempts', 0)\n"
    "  if f.deadline then redis.call('HSET', rec, 'deadline', now + span)"
    " end\n"
    "  redis.call('PEXPIRE', rec, life + (tonumber(f."
    OFFLOAD_F_RECORD ") or 0))\n"
    "end\n"
    "if f.body then\n"
    "  redis.call('PEXPIRE', KEYS[4], life + "
    OFFLOAD_STR(OFFLOAD_BODY_GRACE_MS) ")\n"
    "  job[6] = ''\n"
    "  job[#job + 1] = 'body'\n"
    "  job[#job + 1] = f.body\n"
    "end\n"
    "redis.call('XADD', KEYS[2], '*', unpack(job))\n"
    "redis.call('XDEL', KEYS[1], ARGV[1])\n"
    "redis.call('UNLINK', KEYS[3])\n"
    "return f.id\n";
