#!/usr/bin/python3
# unprintable.py -- an exec handler for t/15-exec.t: {"unprintable": 1}
# raises an exception whose str() raises too, {"unprintable_message": 1} a
# JobError whose message does, {"library_stdout": 1} writes a line to its
# stdout as a library may (sys.stdout, and descriptor 1); anything answers
# the process's pid.

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..",
                                "sdk", "python"))
import offload_handler  # noqa: E402


class Unprintable(Exception):
    def __str__(self):
        raise RuntimeError("no text for this one")


def handle(payload, job):
    if "unprintable" in payload:
        raise Unprintable()
    if "unprintable_message" in payload:
        raise offload_handler.JobError("bad_input", Unprintable())
    if "library_stdout" in payload:
        sys.stdout.write("a line of a library on sys.stdout\n")
        sys.stdout.flush()
        os.write(1, b"a line of a library on descriptor 1\n")
    return {"pid": os.getpid()}


offload_handler.run(handle)
