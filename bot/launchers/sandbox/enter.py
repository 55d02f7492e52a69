"""The first step of a sandboxed job, run by path: `python -I -S enter.py '<json>' -- ARGV...`.

It joins the run's cgroups, makes the job the kernel's first choice when the host runs out of
memory, ignores the signals a stop sends (bubblewrap must outlive its job's graceful stop; the
job gets them back inside), sets the rlimits, and execs ARGV (bubblewrap). It imports nothing
of the bot, so it starts fast and the same way from the bot, the supervisor or a test.

The JSON: {"cgroups": [cgroup.procs paths], "oom_score_adj": int, "ignore": [signal numbers],
"rlimits": {"RLIMIT_NPROC": [soft, hard], ...}}
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
from typing import Any

FAILED = 125  # like env(1) and timeout(1): the wrapper failed, the job never ran


def enter(setup: dict[str, Any]) -> None:
    for procs in setup.get("cgroups", []):
        with open(procs, "w") as f:
            f.write("0")  # "0": the writer itself
    if setup.get("oom_score_adj") is not None:
        try:
            with open("/proc/self/oom_score_adj", "w") as f:
                f.write(str(setup["oom_score_adj"]))
        except OSError:
            pass  # a nicety for the host, not a limit
    for signum in setup.get("ignore", []):
        signal.signal(signum, signal.SIG_IGN)
    for name, (soft, hard) in setup.get("rlimits", {}).items():
        resource.setrlimit(getattr(resource, name), (soft, hard))


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: enter.py JSON -- ARGV...", file=sys.stderr)
        return FAILED
    try:
        enter(json.loads(argv[0]))
        os.execvp(argv[2], argv[2:])
    except (OSError, ValueError) as exc:
        print(f"fix-and-relaunch: could not start the sandbox: {exc}", file=sys.stderr)
    return FAILED


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
