#!/usr/bin/python3
# leak_fds.py -- an exec handler for t/64-fd-leak.t that leaks a file
# descriptor a job (a file opened and never closed, as a forgotten
# `open()` in a long-lived process does), and answers the payload.

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..",
                                "sdk", "python"))
import offload_handler  # noqa: E402

leaked = []


def run(payload, job):
    leaked.append(open(os.devnull))
    return payload


offload_handler.run(run)
