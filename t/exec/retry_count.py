#!/usr/bin/python3
# retry_count.py -- an exec handler for t/61-retries.t: each run appends
# "<job id> <attempt> <ms since the epoch>" to the file {"log": path} names,
# then fails for now (offload_handler.Retry) while the attempt is before
# {"ok_at": n}, and answers {"attempt": n, "ran_before": 0 or 1} on it.
# {"sleep": s} makes a
# run take s seconds after its line is written (t/41-sync-cancel.t).

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..",
                                "sdk", "python"))
import offload_handler  # noqa: E402


def run(payload, job):
    with open(payload["log"], "a") as log:
        log.write("%s %d %d\n" % (job.id, job.attempt, time.time() * 1000))
    time.sleep(payload.get("sleep", 0))
    if job.attempt < payload.get("ok_at", 1):
        raise offload_handler.Retry("not_yet",
                                    "attempt %d is too early" % job.attempt)
    return {"attempt": job.attempt, "ran_before": int(job.ran_before)}


offload_handler.run(run)
