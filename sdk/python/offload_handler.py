"""offload_handler -- write an offload job handler in Python.

A queue runs it with `handler exec; command "/usr/bin/python3 my.py";`:
each worker keeps one python process that reads one job a line on stdin
and writes one answer a line on stdout (docs/HANDLERS.md, "The framing").
Standard library only.

    import offload_handler

    def reverse(payload, job):
        if not isinstance(payload.get("text"), str):
            raise offload_handler.JobError("bad_input", "no text")
        return {"text": payload["text"][::-1]}

    offload_handler.run(reverse)

The handler gets the job's payload (decoded JSON) and a Job (id,
request_id, attempt, ran_before, deadline) and returns the result
(anything json can encode).  JobError(code, message) fails the job with 422 and that code;
Retry(code, message) fails this attempt for now (a service down, a lock
taken): the job runs again after the queue's retry_backoff while it has
attempts left (max_attempts) before its deadline, else that is its 422; any
other exception fails it with code "handler_error" and its message, and is
logged with its traceback.  job.count(name, n=1) and job.observe(name, x)
record handler metrics (docs/HANDLERS.md, "Metrics"): a counter and a
histogram under a name of letters, digits, '.', '_' and '-', which the
node publishes per queue; a value they cannot record (a negative count, a
NaN) raises ValueError.  stdout belongs to the protocol: from the import
of this module on, print(), and whatever subprocesses and C code write to
descriptor 1, go to stderr, which the sidecar logs, a line at a time,
tagged with the job.
"""

import json
import math
import os
import sys
import traceback

__all__ = ["Job", "JobError", "Retry", "run"]


class JobError(Exception):
    """Fails the job: the client gets 422 and {"error": {code, message}}.
    code is letters, digits and '_' (anything else: "handler_error")."""

    def __init__(self, code, message=""):
        super().__init__(message)
        self.code = code
        self.message = message


class Retry(JobError):
    """Fails this attempt of the job for now: it runs again later (the
    queue's retry_backoff, max_attempts), or, none left, gets this 422."""


class Job:
    """What the request says about the job being run."""

    __slots__ = ("id", "request_id", "traceparent", "tracestate", "attempt",
                 "ran_before", "deadline")

    def count(self, name, n=1):
        """Adds n (an int, 0 or more) to the counter name."""
        n = int(n)
        if not 0 <= n < 2**63:
            raise ValueError("count(%r, %d): n must be 0 to 2**63 - 1"
                             % (name, n))
        _metric(_metric_name(name), "count", n)

    def observe(self, name, value):
        """Adds one observation of value (a finite number) to the
        histogram name."""
        value = float(value)
        if not math.isfinite(value):
            raise ValueError("observe(%r, %r): not a finite number"
                             % (name, value))
        _metric(_metric_name(name), "observe", value)

    def __init__(self, request):
        self.id = request["id"]
        self.request_id = request.get("rid", "")
        # W3C trace context: nginx's span is the parent; "" when none
        self.traceparent = request.get("traceparent", "")
        self.tracestate = request.get("tracestate", "")
        self.attempt = request.get("attempt", 1)
        # a run of it may have begun before (a retry, a run a stop cut
        # short): work that is not idempotent looks first
        self.ran_before = request.get("ran_before", False)
        # ms since the epoch when the client stops waiting; 0: none
        self.deadline = request.get("deadline", 0)


# One encoder for every answer: compact (an answer is one line), and NaN
# or Infinity, which are not JSON, fail the job instead of the framing.
_encode = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


def _take_stdio():
    """The protocol keeps its pipes on descriptors of its own from the
    import on (a print while a model loads, before run(), would be taken
    for the first job's answer); descriptor 1 becomes stderr and 0
    /dev/null: what uses them below Python's sys.stdout and sys.stdin (a
    subprocess, os.system, a C extension) is logged, never taken for an
    answer, and reads no job."""
    sys.stdout.flush()
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    lines = os.fdopen(os.dup(0), "r", encoding="utf-8")
    os.dup2(2, 1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    sys.stdout = sys.stderr
    return out, lines


_out, _lines = _take_stdio()


def _metric_name(name):
    """A metric line the bridge cannot read ends the process (and reruns
    the job): a bad value fails the job here instead, as any exception."""
    if not isinstance(name, str):
        raise TypeError("a metric name is a str, not %s"
                        % type(name).__name__)
    return name


def _metric(name, kind, value):
    """A metric line goes before the answer (the answer flushes both)."""
    _out.write(_encode({"metric": name, kind: value}) + "\n")


def _int(digits):
    """A JSON integer: one longer than int() takes (sys.int_info's 4300
    digits, against quadratic parsing) is a float, as JavaScript reads it,
    rather than an exception that would end the process."""
    try:
        return int(digits)
    except ValueError:
        return float(digits)


def _text(value, fallback):
    """str(value), or fallback when that raises (a __str__ of the
    handler's): an exception with no text fails its job, not the
    process."""
    try:
        return str(value)
    except Exception:
        return fallback


def _answer(handler, request):
    job = Job(request)
    try:
        result = _encode(handler(request["payload"], job))
        return '{"id":%s,"result":%s}' % (_encode(job.id), result)
    except JobError as e:
        error = {"code": _text(e.code, "handler_error"),
                 "message": _text(e.message, type(e).__name__)}
        if isinstance(e, Retry):
            error["retry"] = True
    except Exception as e:  # the job fails, the process goes on
        traceback.print_exc()
        error = {"code": "handler_error",
                 "message": _text(e, "") or type(e).__name__}
    return _encode({"id": job.id, "error": error})


def run(handler):
    """Runs handler on each job until stdin closes (the worker stops)."""
    out = _out
    if os.environ.pop("OFFLOAD_WAIT_READY", None) == "1":
        # the queue's wait_ready: what the program loaded before run() is
        # loaded, and its worker may now give it jobs (the processes it
        # starts are no handlers: they are not told)
        out.write('{"ready":true}\n')
        out.flush()
    decode = json.JSONDecoder(parse_int=_int).decode
    for line in _lines:
        out.write(_answer(handler, decode(line)) + "\n")
        out.flush()
