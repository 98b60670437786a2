#!/usr/bin/python3
# pty_relay.py command [args...] -- runs the command on a pseudo-terminal
# and appends what it writes there to the file $PTY_OUT, as a terminal
# shows it.  SIGUSR1 types Ctrl-S (XOFF: the terminal stops taking output,
# its writers block), SIGUSR2 Ctrl-Q (XON); SIGTERM goes to the command.

import os
import pty
import signal
import sys

pid, master = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])

signal.signal(signal.SIGUSR1, lambda *_: os.write(master, b'\x13'))
signal.signal(signal.SIGUSR2, lambda *_: os.write(master, b'\x11'))
signal.signal(signal.SIGTERM, lambda *_: os.kill(pid, signal.SIGTERM))

with open(os.environ['PTY_OUT'], 'ab', buffering=0) as out:
    while True:
        try:
            data = os.read(master, 65536)
        except InterruptedError:
            continue
        except OSError:         # EIO: the command and its children left
            break
        if not data:
            break
        out.write(data)

_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
