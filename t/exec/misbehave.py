#!/usr/bin/python3
# misbehave.py -- an exec handler for t/15-exec.t that does, on request,
# what a handler process can do wrong.  It answers its pid and the attempt,
# after what the payload asks: {"say": "..."} logs a line to stderr,
# {"chatter": n} n lines of 100 bytes, {"sleep": s} sleeps s seconds,
# {"exit": n} exits with n, {"grow": mb} keeps mb MB more resident,
# {"bad": "json" | "id" | "both" | "neither"} writes a broken answer and
# waits to be killed, {"fail": code} fails the job with that code,
# {"deep": n} answers arrays nested n deep, {"flood": mb} writes mb MB of
# one answer line, 1 MB at a time, and waits to be killed.

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..",
                                "sdk", "python"))
import offload_handler  # noqa: E402

kept = []
BROKEN = {
    "json": '{"id": oops}',
    "id": '{"id":"not-this-job","result":1}',
    "both": '{"id":"%s","result":1,"error":{"code":"x","message":"y"}}',
    "neither": '{"id":"%s"}',
}


def misbehave(payload, job):
    if "say" in payload:
        print(payload["say"])
    for i in range(payload.get("chatter", 0)):
        print("chatter %05d " % i + "x" * 86)
    if "sleep" in payload:
        time.sleep(payload["sleep"])
    if "exit" in payload:
        sys.stderr.flush()
        os._exit(payload["exit"])
    if "grow" in payload:
        kept.append(b"x" * (payload["grow"] << 20))
    if "bad" in payload:
        line = BROKEN[payload["bad"]]
        # the SDK's own protocol stream (descriptor 1 is stderr now): only
        # a test that breaks the protocol on purpose writes to it
        out = offload_handler._out
        out.write((line % job.id if "%s" in line else line) + "\n")
        out.flush()
        time.sleep(60)
    if "flood" in payload:
        out = offload_handler._out
        for _ in range(payload["flood"]):
            out.write("x" * (1 << 20))
        out.flush()
        time.sleep(60)
    if "fail" in payload:
        raise offload_handler.JobError(payload["fail"], "failed on request")
    if "deep" in payload:
        deep = []
        for _ in range(payload["deep"] - 1):
            deep = [deep]
        return deep
    return {"pid": os.getpid(), "attempt": job.attempt}


offload_handler.run(misbehave)
