"""What the sandbox costs and which of its limits hold on this machine, measured.

    python benchmarks/sandbox_limits.py [--runs 20]

Prints: how each limit is enforced here (bot.launchers.sandbox.enforcement: cgroups tried, the
uid known); the time to start and end a command that does nothing, with and without the
sandbox (p50/p95); and, for each limit, a job that breaks it: the reason it was stopped for,
how long that took, and how far past the limit it got (the disk limit is a watch, so a fast
writer gets some way past it before it is stopped).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.core.settings import Settings  # noqa: E402
from bot.launchers.sandbox import enforcement, run_command, sandbox_for, tool  # noqa: E402

PY = sys.executable
BREAKERS = {
    "memory": ({"memory": "256M"}, f"{PY} -c 'x = []\nwhile True: x.append(bytearray(8 << 20))'"),
    "processes": ({"processes": 64, "wall_time": "3s"}, ":(){ :|:& };:; wait"),
    "cpu_time": ({"cpu_time": 2}, "while :; do :; done"),
    "disk (one file)": ({"disk": "64M"}, "head -c 1000000000 /dev/zero > big.bin"),
    "disk (many files)": (
        {"disk": "64M"},
        "i=0; while :; do head -c 4194304 /dev/zero > fill-$i.bin || exit 1; i=$((i+1)); done",
    ),
    "wall_time": ({"wall_time": "2s"}, "sleep 60"),
}


def timings(sandbox, worktree: Path, runs: int) -> list[float]:
    taken = []
    for _ in range(runs):
        started = time.perf_counter()
        run_command(["true"], cwd=worktree, env=os.environ, timeout=60, sandbox=sandbox, name="bench")
        taken.append(time.perf_counter() - started)
    return taken


def written(worktree: Path) -> int:
    return sum(p.stat().st_size for p in worktree.glob("*.bin"))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    found = tool.check()
    if found.tool is None:
        print(f"no sandbox here: {found.problem}")
        return 1
    print(f"{found.tool.version}; euid {os.geteuid()}")
    for name, how in enforcement().items():
        print(f"  {name:10} {how}")
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(state_dir=Path(tmp) / "state")
        worktree = Path(tmp) / "worktree"
        worktree.mkdir()
        print(f"\nstart and end `true` ({args.runs} runs):")
        for label, sandbox in (("plain", None), ("sandbox", sandbox_for({"launch": {"sandbox": "on"}}, settings))):
            taken = sorted(timings(sandbox, worktree, args.runs))
            p95 = taken[min(len(taken) - 1, int(len(taken) * 0.95))]
            print(f"  {label:8} p50 {statistics.median(taken) * 1000:6.1f} ms   p95 {p95 * 1000:6.1f} ms")
        print("\na job breaking each limit:")
        for name, (limits, script) in BREAKERS.items():
            for stale in worktree.glob("*.bin"):
                stale.unlink()
            sandbox = sandbox_for({"launch": {"sandbox": {"mode": "on", **limits}}}, settings)
            started = time.perf_counter()
            done = run_command(
                ["bash", "-c", script], cwd=worktree, env=os.environ, timeout=120, sandbox=sandbox, name="b"
            )
            took = time.perf_counter() - started
            extra = f", wrote {written(worktree) / (1 << 20):.0f} MiB" if "disk" in name else ""
            print(
                f"  {name:17} {took:5.1f} s  exit {done.returncode}{extra}: {done.reason or done.output.strip()[-80:]}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
