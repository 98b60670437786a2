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
request_id, attempt, deadline) and returns the result (anything json can
encode).  JobError(code, message) fails the job with 422 and that code;
Retry(code, message) fails this attempt for now (a service down, a lock
taken): the job runs again after the queue's retry_backoff while it has
attempts left (max_attempts) before its deadline, else that is its 422; any
other exception fails it with code "handler_error" and its message, and is
logged with its traceback.  job.count(name, n=1) and job.observe(name, x)
record handler metrics (docs/HANDLERS.md, "Metrics"): a counter and a
histogram under a name of letters, digits, '.', '_' and '-', which the
node publishes per queue.  stdout belongs to the protocol: print() goes to
stderr, which the sidecar logs, a line at a time, tagged with the job.
"""

import io
import json
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
                 "deadline")

    def count(self, name, n=1):
        """Adds n (an int, 0 or more) to the counter name."""
        _metric({"metric": name, "count": int(n)})

    def observe(self, name, value):
        """Adds one observation of value (a finite number) to the
        histogram name."""
        _metric({"metric": name, "observe": float(value)})

    def __init__(self, request):
        self.id = request["id"]
        self.request_id = request.get("rid", "")
        # W3C trace context: nginx's span is the parent; "" when none
        self.traceparent = request.get("traceparent", "")
        self.tracestate = request.get("tracestate", "")
        self.attempt = request.get("attempt", 1)
        # ms since the epoch when the client stops waiting; 0: none
        self.deadline = request.get("deadline", 0)


# One encoder for every answer: compact (an answer is one line), and NaN
# or Infinity, which are not JSON, fail the job instead of the framing.
_encode = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


_out = sys.stdout


def _metric(line):
    """A metric line goes before the answer (the answer flushes both)."""
    _out.write(_encode(line) + "\n")


def _answer(handler, request):
    job = Job(request)
    try:
        result = _encode(handler(request["payload"], job))
        return '{"id":%s,"result":%s}' % (_encode(job.id), result)
    except JobError as e:
        error = {"code": str(e.code), "message": str(e.message)}
        if isinstance(e, Retry):
            error["retry"] = True
    except Exception as e:  # the job fails, the process goes on
        traceback.print_exc()
        error = {"code": "handler_error",
                 "message": str(e) or type(e).__name__}
    return _encode({"id": job.id, "error": error})


def run(handler):
    """Runs handler on each job until stdin closes (the worker stops)."""
    global _out
    out = _out = sys.stdout
    sys.stdout = sys.stderr
    lines = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8")
    decode = json.JSONDecoder().decode
    for line in lines:
        out.write(_answer(handler, decode(line)) + "\n")
        out.flush()
