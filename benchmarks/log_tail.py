"""tail_lines cost on a 1 MiB and a 4 GiB log: it must not depend on the file size.

Usage: python benchmarks/log_tail.py [DIR]   (DIR for the temporary files, default: the system temp dir)
The 4 GiB file is sparse (a hole, then a real 256 KiB tail), so it costs no disk space; both files
are deleted afterwards.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.diagnosis import tail_lines  # noqa: E402

TAIL = 256 << 10
REPEATS = 20


def write_log(path: Path, size: int) -> None:
    """A file of `size` bytes whose last 256 KiB are real log text (hole before it when sparse)."""
    line = b"\x1b[32mstep 12345\x1b[0m loss=0.4321 lr=3e-4 \r 50%|#####     | 5/10\n"
    body = line * (TAIL // len(line)) + b"Traceback (most recent call last):\nRuntimeError: CUDA out of memory.\n"
    with path.open("wb") as f:
        f.truncate(size - len(body))
        f.seek(size - len(body))
        f.write(body)


def best_time(path: Path) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter()
        lines = tail_lines(path, n=200)
        best = min(best, time.perf_counter() - start)
    assert lines[-1] == "RuntimeError: CUDA out of memory.", lines[-1]
    return best


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory(dir=argv[1] if len(argv) > 1 else None) as tmp:
        small, big = Path(tmp, "small.log"), Path(tmp, "big.log")
        write_log(small, 1 << 20)
        write_log(big, 4 << 30)
        t_small, t_big = best_time(small), best_time(big)
        print(
            f"1 MiB log: {t_small * 1e3:.3f} ms   4 GiB log: {t_big * 1e3:.3f} ms   "
            f"ratio 4GiB/1MiB: {t_big / t_small:.2f}  (best of {REPEATS}, n=200)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
