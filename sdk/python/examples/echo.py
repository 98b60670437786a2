#!/usr/bin/python3
# echo.py -- answers with its input: the built-in "echo" through the exec
# bridge, what `BENCH_ONLY=exec make bench` measures the bridge with.

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import offload_handler  # noqa: E402

offload_handler.run(lambda payload, job: payload)
