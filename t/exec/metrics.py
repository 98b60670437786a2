#!/usr/bin/python3
# metrics.py -- an exec handler for t/16-handler-metrics.t: each job counts
# {"n": n} under exec.lines and observes {"size": x} under exec.size
# through the SDK's metric lines, then answers {"ok": true}.

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..",
                                "sdk", "python"))
import offload_handler  # noqa: E402


def run(payload, job):
    job.count("exec.lines", payload.get("n", 1))
    job.observe("exec.size", payload.get("size", 0))
    return {"ok": True}


offload_handler.run(run)
