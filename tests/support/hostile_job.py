"""A hostile training job: committed to a branch as `hostile.py`, run by the bot like any job.

    python hostile.py read PATH...       print what it can read of each path, and of /proc/*/environ
    python hostile.py write PATH...      try to create each file
    python hostile.py signal             SIGKILL every process it can see, then kill(-1)
    python hostile.py forkbomb           the classic, in bash
    python hostile.py bigfile            one file, grown without end
    python hostile.py manyfiles          4 MiB files, without end
    python hostile.py memory             allocate 16 MiB at a time, without end
    python hostile.py connect HOST PORT  open a TCP connection

Each line it prints starts with REACHED (it got through) or BLOCKED (it did not).
"""

import os
import signal
import socket
import sys
import time


def read(paths):
    print("ENV", " ".join(sorted(os.environ)), flush=True)
    for path in paths:
        try:
            with open(path, "rb") as f:
                print("REACHED", path, f.read(200), flush=True)
        except OSError as exc:
            print("BLOCKED", path, exc.strerror, flush=True)
    for pid in sorted(p for p in os.listdir("/proc") if p.isdigit()):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                print("ENVIRON", pid, f.read().replace(b"\0", b" ")[:2000], flush=True)
        except OSError as exc:
            print("BLOCKED environ", pid, exc.strerror, flush=True)


def write(paths):
    for path in paths:
        try:
            with open(path, "w") as f:
                f.write("owned\n")
            print("REACHED", path, flush=True)
        except OSError as exc:
            print("BLOCKED", path, exc.strerror, flush=True)


def kill_everyone():
    me = os.getpid()
    pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    print("VISIBLE", pids, flush=True)
    for pid in pids:
        if pid != me:
            try:
                os.kill(pid, signal.SIGKILL)
                print("REACHED kill", pid, flush=True)
            except OSError as exc:
                print("BLOCKED kill", pid, exc.strerror, flush=True)
    os.kill(-1, signal.SIGKILL)


def bigfile():
    chunk = b"x" * (1 << 20)
    with open("big.bin", "wb") as f:
        while True:
            f.write(chunk)


def manyfiles():
    chunk = b"x" * (4 << 20)
    n = 0
    while True:
        with open(f"fill-{n}.bin", "wb") as f:
            f.write(chunk)
        n += 1


def memory():
    hoard = []
    while True:
        hoard.append(bytearray(16 << 20))
        print("HOLDING", len(hoard) * 16, "MiB", flush=True)


def connect(host, port):
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
        print("REACHED", host, port, flush=True)
    except OSError as exc:
        print("BLOCKED", host, port, exc, flush=True)


def main(mode, args):
    if mode == "read":
        read(args)
    elif mode == "write":
        write(args)
    elif mode == "signal":
        kill_everyone()
    elif mode == "forkbomb":
        os.execvp("bash", ["bash", "-c", ":(){ :|:& };:; wait; sleep 600"])
    elif mode == "bigfile":
        bigfile()
    elif mode == "manyfiles":
        manyfiles()
    elif mode == "memory":
        memory()
    elif mode == "connect":
        connect(*args)
    time.sleep(0.1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
