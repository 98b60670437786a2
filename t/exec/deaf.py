#!/usr/bin/python3
# deaf.py -- an exec handler for t/15-exec-unruly.t that answers its first
# job (its pid and attempt), then closes its stdin and stays, reading
# nothing: the worker's next job must go to a fresh process.

import json
import os
import sys
import time

req = json.loads(sys.stdin.readline())
answer = {"id": req["id"],
          "result": {"pid": os.getpid(), "attempt": req["attempt"]}}
sys.stdout.write(json.dumps(answer) + "\n")
sys.stdout.flush()
os.close(0)
time.sleep(1000)
