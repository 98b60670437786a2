#!/usr/bin/python3
# reverse.py -- {"text": "abc"} -> {"text": "cba"}; 422 bad_input without a
# string "text".  The Python twin of the C example plugin's example.reverse:
#
#   queue reverse { handler exec; workers 2;
#                   command "/usr/bin/python3 /srv/offload/reverse.py"; }
#
# (a path from /: the process runs in the sidecar's working directory)

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import offload_handler  # noqa: E402


def reverse(payload, job):
    text = payload.get("text") if isinstance(payload, dict) else None
    if not isinstance(text, str):
        raise offload_handler.JobError(
            "bad_input", 'the input must be an object with a string "text"')
    print("reversing %d characters" % len(text))    # to the sidecar's log
    return {"text": text[::-1]}


offload_handler.run(reverse)
