#!/usr/bin/python3
# stray.py -- an exec handler for t/15-exec-unruly.t that speaks the
# framing itself (no SDK), so that it can write to its stdout when no
# job asked: it answers each job its pid and attempt; a payload
# {"stray": ms} makes it write one more line that many ms after the
# answer, then say so on stderr.

import json
import os
import sys
import threading


def stray(ms):
    def later():
        sys.stdout.write("a line nobody asked for\n")
        sys.stdout.flush()
        sys.stderr.write("wrote a stray line\n")
        sys.stderr.flush()
    threading.Timer(ms / 1000.0, later).start()


for line in sys.stdin:
    req = json.loads(line)
    answer = {"id": req["id"],
              "result": {"pid": os.getpid(), "attempt": req["attempt"]}}
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()
    if "stray" in req["payload"]:
        stray(req["payload"]["stray"])
