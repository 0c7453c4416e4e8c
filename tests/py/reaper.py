"""Runs a command as a child subreaper and reaps everything it leaves behind.

usage: reaper.py COMMAND [ARGS...]

PID 1 on the test machines reaps no orphans, and Chromium leaves helper processes whose
parent exits first. Marked as a subreaper (prctl PR_SET_CHILD_SUBREAPER), this process
inherits them instead, waits for them, kills whatever is still running a few seconds after
the command ends, and exits with the command's status.
"""

import ctypes
import os
import signal
import subprocess
import sys
import time

PR_SET_CHILD_SUBREAPER = 36


def children():
    """Pids whose parent is this process."""
    me = os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == me:
            found.append(int(entry))
    return found


def reap_all(command):
    """Collects every child that has exited. waitpid(-1) may collect the command itself:
    its status is then recorded on `command`, since Popen, finding no child left to wait
    for (ECHILD), would report 0 and hide a failure."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        if pid == command.pid and command.returncode is None:
            command.returncode = os.waitstatus_to_exitcode(status)


def main():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        print("reaper: prctl failed", file=sys.stderr)
    command = subprocess.Popen(sys.argv[1:])
    signal.signal(signal.SIGTERM, lambda *_: command.terminate())
    while command.poll() is None:
        reap_all(command)
        time.sleep(0.1)
    deadline = time.time() + 5
    while children() and time.time() < deadline:
        reap_all(command)
        time.sleep(0.1)
    for pid in children():
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    time.sleep(0.1)
    reap_all(command)
    while children():
        try:
            os.wait()
        except ChildProcessError:
            break
    code = command.returncode
    # Killed by signal N: exit 128 + N, as a shell reports it.
    sys.exit(code if code >= 0 else 128 - code)


main()
