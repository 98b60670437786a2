#!/usr/bin/python3
# slow_start.py <seconds> [<MB>] -- an exec handler for t/15-exec-ready.t
# that loads for that long (and that many MB, touched) before it calls the
# SDK's run() (a model, say), talking on stderr meanwhile, more than its
# pipe holds, then saying it loaded with print() (stdout: the SDK's import
# made it stderr); then answers each job its pid and when it became ready.

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..",
                                "sdk", "python"))
import offload_handler  # noqa: E402

for i in range(3000):
    sys.stderr.write("loading, step %d of 3000 %s\n" % (i, "." * 40))
sys.stderr.flush()
model = b"m" * (int(sys.argv[2]) << 20) if len(sys.argv) > 2 else b""
time.sleep(float(sys.argv[1]))
print("loaded in %s s" % sys.argv[1])
ready_at = time.time()


def answer(payload, job):
    return {"pid": os.getpid(), "ready_at": ready_at}


offload_handler.run(answer)
