"""offload_client -- submit jobs to offload queues from Python, straight
through Redis, and get their results.  Standard library and redis-py only
(Debian: python3-redis).  docs/PROTOCOL.md, "Submitting jobs from your own
code", says what goes over the wire.

    import redis
    from offload_client import Client

    jobs = Client(redis.Redis(port=6379))
    job_id = jobs.submit("echo", {"hello": "world"})     # fire and forget
    result = jobs.result("echo", job_id)                 # None until done
    result = jobs.submit("echo", {"hello": 1}, wait=True, timeout=5)
    result.status, result.json()                         # 200, {'hello': 1}

With Redis Sentinel, give Client the master the sentinels name:

    jobs = Client(sentinel_redis([("10.0.0.5", 26379), ("10.0.0.6", 26379)],
                                 "jobs", sentinel_password="..."))

With Redis Cluster, give Client a redis.cluster.RedisCluster (or
cluster_redis(seeds)): each job goes to its queue's master, redis-py
following MOVED and ASK; the result is pushed on the queue's own reply
channel, offload:{<queue>}:reply:<nonce>, SSUBSCRIBEd on that master.
redis-py 4.3 (Debian 12) has no sharded pub/sub: the SSUBSCRIBE is a raw
command on a connection of its own to the master the slot map names.

    jobs = Client(cluster_redis([("10.0.0.5", 6379), ("10.0.0.6", 6379)]))
"""

import json
import secrets
import time

import redis
import redis.cluster
import redis.sentinel

PROTO_VERSION = 1
BODY_MAX = 511 * 1048576    # OFFLOAD_BODY_MAX: what a job can carry
BODY_OVER = 1048576         # a bigger payload goes through its body key
SLICE = 262144              # ... in slices of this many bytes
BODY_GRACE_MS = 60000
BODY_NO_DEADLINE_MS = 86400000
MS_MAX = 315360000000       # OFFLOAD_CLIENT_MS_MAX: a longer deadline or
                            # timeout counts as this (10 years)
# A result list (PROTOCOL.md, "Big payloads"): its header line, then slices
# of a body of at most BODY_MAX; more elements, or a longer one, are not a
# worker's, and are not read.
RESULT_ELEMENTS_MAX = BODY_MAX // SLICE + 2


def _not_json(name):
    raise ValueError("%s is not JSON" % name)


class OffloadError(Exception):
    """The job could not be submitted, or its result not read."""


class UnknownQueue(OffloadError):
    """No worker ever served the queue: nothing was written."""


class Timeout(OffloadError):
    """No result within the time given (Redis may have been unreachable
    meanwhile: a wait goes on through that).  job_id is the job's."""

    def __init__(self, job_id, timeout, why=None):
        super().__init__("no result for job %s within %ss%s"
                         % (job_id, timeout,
                            " (last: %s)" % why if why else ""))
        self.job_id = job_id


class OutcomeUnknown(OffloadError):
    """The job's XADD went and no answer came (a timeout, a connection
    broken under it; redis-py does not tell a connection that could not
    be made apart): the job may have been queued.  job_id is its id (the
    client picks it): wait() or result() on it say later whether it ran,
    and submitted again it may run twice.  The body key of a payload over
    1 MB is kept to its lifetime."""

    def __init__(self, job_id, why):
        super().__init__("job %s may have been queued (no answer to its "
                         "XADD: %s)" % (job_id, why))
        self.job_id = job_id


class _MasterConnection(redis.sentinel.SentinelManagedConnection):
    """A connection to the master the sentinels name that checks, as
    liboffload does, that it answers ROLE as a master: a stale sentinel
    can name a replica, or a Redis gone.  That sentinel is then asked last
    and the next one's master tried, each sentinel once."""

    def _connect_retry(self):
        if self._sock or not self.connection_pool.is_master:
            return super()._connect_retry()
        sentinels = self.connection_pool.sentinel_manager.sentinels
        why = None
        for _ in range(len(sentinels)):
            host, port = self.connection_pool.get_master_address()
            try:
                self.connect_to((host, port))
                why = self._not_master()
            except (redis.ConnectionError, redis.TimeoutError) as e:
                why = "%s:%s, named the master: %s" % (host, port, e)
            if why is None:
                return None
            self.disconnect()
            # discover_master put the sentinel that named it first
            sentinels.append(sentinels.pop(0))
        raise redis.sentinel.MasterNotFoundError(
            "no sentinel names a usable master (the last: %s)" % why)

    def _not_master(self):
        """None if this Redis says it is a master, else what it said."""
        self.send_command("ROLE")
        try:
            role = self.read_response()
        except redis.exceptions.NoPermissionError:
            # a user without +role (README's offload-submitter) cannot
            # ask: a stale sentinel's replica then shows itself by
            # READONLY, retried
            return None
        except redis.exceptions.ResponseError as e:
            role = [str(e)]
        if isinstance(role, list) and role:
            role = role[0].decode() if isinstance(role[0], bytes) else role[0]
        if role == "master":
            return None
        return "%s:%s, named the master, answers ROLE with %s" % (
            self.host, self.port, role)


def sentinel_redis(sentinels, master, sentinel_password=None,
                   sentinel_user=None, socket_timeout=5.0,
                   socket_connect_timeout=2.0, **login):
    """A redis.Redis on the master named master by the sentinels (a list
    of (host, port)), for Client: redis-py's Sentinel asks them before each
    new connection, and the master named must answer ROLE as one (else the
    next sentinel is asked, MasterNotFoundError after all).  A command
    that meets a broken connection or READONLY (a failover) is sent once
    more on a new one, so a Client outlives a failover; a job submitted as
    the master dies may then be added twice.
    sentinel_password and sentinel_user are the sentinels' own login
    (AUTH before asking); login (password=, username=, db=) the master's.
    Each sentinel and the master get the timeouts given, in seconds."""
    timeouts = {"socket_timeout": socket_timeout,
                "socket_connect_timeout": socket_connect_timeout}
    sentinel_login = dict(timeouts)
    if sentinel_password is not None:
        sentinel_login["password"] = sentinel_password
    if sentinel_user is not None:
        sentinel_login["username"] = sentinel_user
    return redis.sentinel.Sentinel(
        sentinels, sentinel_kwargs=sentinel_login, **timeouts).master_for(
        master, retry_on_error=[redis.ConnectionError],
        connection_class=_MasterConnection, **login)


def cluster_redis(seeds, socket_timeout=5.0, socket_connect_timeout=2.0,
                  **login):
    """A redis.cluster.RedisCluster for Client, from seeds (a list of
    (host, port)): any reachable one gives the slot map.  login
    (password=, username=) is the masters'; a cluster has only db 0.  Each
    node gets the timeouts given, in seconds."""
    return redis.cluster.RedisCluster(
        startup_nodes=[redis.cluster.ClusterNode(h, p) for h, p in seeds],
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_connect_timeout, **login)


class _ShardedReplies:
    """A queue's reply channel SSUBSCRIBEd on the master of its slot, on a
    connection of its own (redis-py 4.3 has no sharded pub/sub): what
    Client.wait reads as it reads a PubSub.  A MOVED answer, or a master
    gone (a failover), has the slot map asked again and the master it
    names then tried, a few times."""

    TRIES = 5

    def __init__(self, cluster, channel):
        for tries in range(self.TRIES):
            self.node = cluster.get_node_from_key(channel)
            kwargs = self.node.redis_connection.connection_pool \
                .connection_kwargs
            self.conn = redis.Connection(**kwargs)
            try:
                self.conn.send_command("SSUBSCRIBE", channel)
                self.conn.read_response()
                return
            except (redis.ResponseError,    # MOVED, TRYAGAIN, CLUSTERDOWN
                    redis.ConnectionError, redis.TimeoutError):
                self.conn.disconnect()
                if tries + 1 == self.TRIES:
                    raise
                time.sleep(0.05 * tries)
                cluster.nodes_manager.initialize()

    def moved(self):
        """Whether Redis took the channel away (its slot moved): a
        "sunsubscribe" waiting to be read, or the connection gone."""
        try:
            while self.conn.can_read(timeout=0):
                if self.get_message(0) is None:
                    return False
        except redis.ConnectionError:
            return True
        return False

    def get_message(self, timeout):
        if not self.conn.can_read(timeout=timeout):
            return None
        m = self.conn.read_response()
        kind = m[0].decode() if isinstance(m[0], bytes) else m[0]
        if kind == "sunsubscribe":
            raise redis.ConnectionError("the reply channel's slot moved")
        return {"type": "message" if kind == "smessage" else kind,
                "data": m[2]}

    def close(self):
        self.conn.disconnect()


class Result:
    """A job's result: an HTTP-like status and a JSON body (str)."""

    def __init__(self, encoded):
        header, _, self.body = encoded.partition(b"\n")
        fields = header.decode().split(" ")
        if not fields[0].startswith("OR") or len(fields) < 5:
            raise OffloadError("not a result: %r" % header[:64])
        self.job_id = fields[1]
        self.status = int(fields[2])
        self.queue_us, self.run_us = int(fields[3]), int(fields[4])
        self.body = self.body.decode()

    @property
    def ok(self):
        return 200 <= self.status < 300

    def json(self):
        return json.loads(self.body)


class Client:
    """Submits jobs and reads results through one redis.Redis (or one
    redis.cluster.RedisCluster: each queue on its master)."""

    CLOCK_AGE = 10.0        # s: Redis' clock's offset asked again after
    CLOCK_RTT_MAX = 0.25    # s: a slower TIME says too little
    CLOCK_RETRY = 1.0       # s: asked again after a TIME that told nothing

    def __init__(self, r):
        self.r = r
        self.cluster = isinstance(r, redis.cluster.RedisCluster)
        self.nonce = secrets.token_hex(8)   # 16 hex digits, as nginx's
        self.seq = 0
        self.channel = "offload:reply:" + self.nonce
        self.pubsub = None
        self.last_waited = None
        self.clock_base_ms = None
        self.clock_at = None

    def _subscribe(self, queue, timeout):
        """The reply channel subscribed before a job is added, Redis'
        confirmation read (within timeout seconds): the XADD goes on
        another connection, which Redis may serve first.  On a cluster the
        queue's own, on its master (again when its slot moved)."""
        if self.cluster:
            channel = "offload:{%s}:reply:%s" % (queue, self.nonce)
            if self.pubsub is not None and (channel != self.channel
                                            or self.pubsub.moved()):
                self.pubsub.close()
                self.pubsub = None
            self.channel = channel
            if self.pubsub is None:
                self.pubsub = _ShardedReplies(self.r, channel)
        elif self.pubsub is None:
            pubsub = self.r.pubsub()
            end = time.monotonic() + timeout
            try:
                pubsub.subscribe(self.channel)
                while True:
                    msg = pubsub.get_message(
                        timeout=max(0.0, end - time.monotonic()))
                    if msg is not None and msg["type"] == "subscribe":
                        break
                    if time.monotonic() >= end:
                        raise OffloadError("the reply channel %s was not "
                                           "subscribed within %ss"
                                           % (self.channel, timeout))
            except BaseException:
                pubsub.close()
                raise
            self.pubsub = pubsub

    def _node(self, key):
        """A redis.Redis on the master of key (for a transaction)."""
        if self.cluster:
            return self.r.get_node_from_key(key).redis_connection
        return self.r

    def _redis_now_ms(self, key):
        """Now in ms since the epoch by the clock of key's Redis
        (docs/PROTOCOL.md, "One clock"), whatever this host's says: the
        monotonic clock plus how far Redis' was ahead of it (a step of
        the wall clock changes nothing), asked (TIME) every CLOCK_AGE
        seconds, or CLOCK_RETRY after a TIME refused (an ACL) or too
        slow; the wall clock until it first answers.  One for all of a
        cluster's masters: their clocks are taken to agree."""
        mono = time.monotonic()
        if self.clock_at is None or mono - self.clock_at >= self.CLOCK_AGE:
            self.clock_at = mono - self.CLOCK_AGE + self.CLOCK_RETRY
            try:
                sec, usec = self._node(key).time()
            except redis.ResponseError:
                pass
            else:
                rtt = time.monotonic() - mono
                if rtt <= self.CLOCK_RTT_MAX:
                    self.clock_base_ms = int(
                        (sec - mono - rtt / 2) * 1000 + usec // 1000)
                    self.clock_at = mono
        if self.clock_base_ms is None:
            return int(time.time() * 1000)
        return int(time.monotonic() * 1000) + self.clock_base_ms

    def submit(self, queue, payload, wait=False, timeout=30.0,
               deadline=None):
        """Submits payload (JSON text, or anything json.dumps takes) to
        queue.  Returns the job id; with wait=True, the Result, waited for
        at most timeout seconds (the job's deadline too, unless deadline
        says otherwise; without wait, no deadline unless given: None is
        none, and seconds are over 0, as offloadctl --deadline takes
        them; liboffload's deadline_ms 0 is none too).  Raises
        UnknownQueue, OutcomeUnknown (the job may have been queued: its
        job_id), Timeout, OffloadError, ValueError (a payload not JSON or
        too big, a deadline or timeout of 0 or less: nothing was added), or
        redis-py's errors (nothing was added)."""
        if deadline is not None and not deadline > 0:
            raise ValueError("deadline is seconds over 0, or None for none, "
                             "not %r" % (deadline,))
        if not timeout > 0:
            raise ValueError("timeout is seconds over 0, not %r"
                             % (timeout,))
        # what the worker would refuse is refused here, before anything is
        # written: NaN and Infinity, which Python's json takes, are not JSON
        if isinstance(payload, (str, bytes)):
            json.loads(payload, parse_constant=_not_json)
            body = payload.encode() if isinstance(payload, str) else payload
        else:
            body = json.dumps(payload, separators=(",", ":"),
                              allow_nan=False).encode()
        if len(body) > BODY_MAX:
            raise ValueError("a payload of %d bytes: a job carries at most "
                             "%d" % (len(body), BODY_MAX))

        self.seq += 1
        job_id = "%s%016x" % (self.nonce, self.seq)
        stream = "offload:{%s}:jobs" % queue
        now = self._redis_now_ms(stream)
        timeout = min(timeout, MS_MAX / 1000)
        if deadline is None and wait:
            deadline = timeout
        if deadline is not None:
            deadline = min(deadline, MS_MAX / 1000)
        fields = {"v": PROTO_VERSION, "id": job_id, "submitted": now,
                  "attempt": 1}
        if deadline is not None:
            fields["deadline"] = now + int(deadline * 1000)
        if wait:
            # subscribed before the job is added: no result can be missed
            self._subscribe(queue, timeout)
            fields["reply"] = self.channel

        if len(body) > BODY_OVER:
            life = int(deadline * 1000) if deadline else BODY_NO_DEADLINE_MS
            self._write_body(queue, stream, job_id, body, life)
            fields["payload"], fields["body"] = "", len(body)
        else:
            fields["payload"] = body

        try:
            added = self.r.xadd(stream, fields, nomkstream=True)
        except (redis.ConnectionError, redis.TimeoutError) as e:
            # the entry may be there: its body stays, and a wait for it
            # listens on the channel it names
            if wait:
                self._listen(stream, job_id)
            raise OutcomeUnknown(job_id, e) from e
        if added is None:
            self.r.unlink("offload:{%s}:body:%s" % (queue, job_id))
            raise UnknownQueue("unknown queue %r" % queue)
        if not wait:
            return job_id
        self._listen(stream, job_id)
        return self.wait(queue, job_id, timeout)

    def _listen(self, stream, job_id):
        """After the XADD of a job waited for: its result comes on the
        subscription, unless on a cluster the XADD followed a MOVED past
        it: the result key, then, and a new subscription at the next
        submit."""
        if self.cluster and self.r.get_node_from_key(stream) != \
                self.pubsub.node:
            self.pubsub.close()
            self.pubsub = None
        else:
            self.last_waited = job_id

    def _write_body(self, queue, stream, job_id, body, life_ms):
        # PROTOCOL.md "Big payloads: the body key": a list of slices, the
        # first with the key's lifetime in one transaction, the others
        # RPUSHX (a key gone meanwhile is not made again without one).
        if not self.r.exists(stream):
            raise UnknownQueue("unknown queue %r" % queue)
        key = "offload:{%s}:body:%s" % (queue, job_id)
        tx = self._node(key).pipeline(transaction=True)
        tx.rpush(key, body[:SLICE])
        tx.pexpire(key, life_ms + BODY_GRACE_MS)
        if tx.execute() != [1, True]:
            raise OffloadError("could not write the body key " + key)
        for n, at in enumerate(range(SLICE, len(body), SLICE), start=2):
            if self.r.rpushx(key, body[at:at + SLICE]) != n:
                self.r.unlink(key)
                raise OffloadError("the body key %s went while written"
                                   % key)

    def result(self, queue, job_id):
        """The job's stored Result, or None (unknown, not finished, or
        expired)."""
        key = "offload:{%s}:result:%s" % (queue, job_id)
        try:
            encoded = self.r.get(key)
        except redis.ResponseError:         # WRONGTYPE: a big one, a list
            encoded = self._result_list(key)
        return Result(encoded) if encoded is not None else None

    def _result_list(self, key):
        """A result stored as a list, joined, or None (gone).  A list
        longer than a result can be, or an element over a slice, is not a
        worker's: refused before any more is read.  A broken or hostile
        Redis cannot have the client read without end: one element too
        big is read whole before it is refused (redis-py reads a reply
        whole), at most Redis' proto-max-bulk-len (512 MB by default)."""
        n = self.r.llen(key)
        if not isinstance(n, int) or not 0 <= n <= RESULT_ELEMENTS_MAX:
            raise OffloadError("the result list %s has %r elements: not a "
                               "result" % (key, n))
        parts = []
        for i in range(n):
            part = self.r.lindex(key, i)
            if part is None:
                return None                 # expired while read
            if not isinstance(part, bytes) or len(part) > SLICE:
                raise OffloadError("the result list %s holds an element "
                                   "that is not a result's" % key)
            parts.append(part)
        return b"".join(parts) if parts else None

    def wait(self, queue, job_id, timeout=30.0):
        """The job's Result within timeout seconds, else Timeout.  Pushed
        to this client for a job it submitted with wait=True; looked for
        in the result key every few ms otherwise."""
        end = time.monotonic() + min(timeout, MS_MAX / 1000)
        pause = 0.001
        pushed = job_id == self.last_waited and self.pubsub is not None
        lost = None
        while time.monotonic() < end:
            if not pushed:
                # Redis away for a while (a restart, a failover): asked
                # again, not raised without the job's id, which a caller
                # would take for a job to submit again
                try:
                    res = self.result(queue, job_id)
                except (redis.ConnectionError, redis.TimeoutError) as e:
                    res, lost = None, e
                if res is not None:
                    return res
                time.sleep(min(pause, max(0, end - time.monotonic())))
                pause = min(pause * 2, 0.05)
                continue
            try:
                msg = self.pubsub.get_message(
                    timeout=max(0.0, end - time.monotonic()))
            except redis.ConnectionError:
                # the master went (a failover): the result key then, and
                # a new subscription at the next submit
                self.pubsub.close()
                self.pubsub, pushed = None, False
                continue
            if msg is None or msg["type"] != "message":
                continue
            data = msg["data"]
            if data.startswith(b"OR") and data.split(b" ", 2)[1:2] == \
                    [job_id.encode()]:
                return Result(data)
            if data == b"ON%d %s" % (PROTO_VERSION, job_id.encode()):
                pushed = False      # over 1 MB: stored, looked for there
                continue
        try:
            res = self.result(queue, job_id)
        except (redis.ConnectionError, redis.TimeoutError) as e:
            raise Timeout(job_id, timeout, e) from e
        if res is None:
            raise Timeout(job_id, timeout, lost)
        return res
