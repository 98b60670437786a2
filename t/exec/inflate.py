#!/usr/bin/python3
# inflate.py -- an exec handler for t/48-big-result-freed.t: {"bytes": n}
# answers {"data": "xx..."} of n characters, a big result from a small job
# (a body over 1 MB cannot carry an Idempotency-Key).

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..",
                                "sdk", "python"))
import offload_handler  # noqa: E402


def inflate(payload, job):
    return {"data": "x" * int(payload["bytes"])}


offload_handler.run(inflate)
