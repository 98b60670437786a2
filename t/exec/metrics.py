#!/usr/bin/python3
# metrics.py -- an exec handler for t/16-handler-metrics.t: each job counts
# {"n": n} under exec.lines and observes {"size": x} under exec.size
# through the SDK's metric lines, then answers {"ok": true}.  {"bad": 1}
# counts -1 (the SDK must fail the job, not write a line that ends the
# process); {"shell": 1} runs echo in a subprocess first (its output must
# not reach the protocol's pipe).

import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..",
                                "sdk", "python"))
import offload_handler  # noqa: E402


def run(payload, job):
    if payload.get("bad"):
        job.count("exec.lines", -1)
    if payload.get("shell"):
        subprocess.run(["echo", "a line from a subprocess"], check=True)
    job.count("exec.lines", payload.get("n", 1))
    job.observe("exec.size", payload.get("size", 0))
    return {"ok": True}


offload_handler.run(run)
