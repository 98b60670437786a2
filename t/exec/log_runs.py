#!/usr/bin/python3
# log_runs.py <file> -- an exec handler for t/34-node-name-taken.t: each
# job appends "start <tag> <pid>" to the file, sleeps its payload's "ms",
# then answers its tag: how many times a job ran is in the file.

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..",
                                "sdk", "python"))
import offload_handler  # noqa: E402


def run(payload, job):
    with open(sys.argv[1], "a") as f:
        f.write("start %s %d\n" % (payload["tag"], os.getpid()))
    time.sleep(payload.get("ms", 0) / 1000.0)
    return {"tag": payload["tag"]}


offload_handler.run(run)
