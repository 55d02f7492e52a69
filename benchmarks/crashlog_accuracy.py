"""Category accuracy of the diagnosis on the real crash-log tails in shared/data/crashlogs.

Usage: python benchmarks/crashlog_accuracy.py [CRASHLOG_DIR]
Only the text after the `---` line of each file is given to the classifier.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.diagnosis import diagnose_text  # noqa: E402

DEFAULT_DIR = ROOT.parent / "shared" / "data" / "crashlogs"


def log_text(path: Path) -> str:
    """The log part of a corpus file: everything after the first `---` line."""
    text = path.read_text(encoding="utf-8", errors="replace")
    _head, sep, body = text.partition("\n---\n")
    return body if sep else text


def measure(folder: Path) -> tuple[float, dict[str, tuple[int, int]], list[tuple[str, str, str]]]:
    """(overall accuracy, {category: (right, total)}, [(file, expected, got)] for the misses)."""
    per: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    misses: list[tuple[str, str, str]] = []
    for path in sorted(folder.glob("*/*.txt")):
        expected = path.parent.name
        got = diagnose_text(log_text(path)).category
        per[expected][1] += 1
        if got == expected:
            per[expected][0] += 1
        else:
            misses.append((str(path.relative_to(folder)), expected, got))
    total = sum(t for _, t in per.values())
    right = sum(r for r, _ in per.values())
    return (right / total if total else 0.0), {c: tuple(v) for c, v in sorted(per.items())}, misses


def main(argv: list[str]) -> int:
    folder = Path(argv[1]) if len(argv) > 1 else DEFAULT_DIR
    if not folder.is_dir():
        print(f"skipped: no crash-log folder at {folder}")
        return 0
    accuracy, per, misses = measure(folder)
    for category, (right, total) in per.items():
        print(f"{category:16s} {right:3d}/{total:<3d} {right / total:6.1%}")
    total = sum(t for _, t in per.values())
    print(f"{'overall':16s} {sum(r for r, _ in per.values()):3d}/{total:<3d} {accuracy:6.1%}")
    for name, expected, got in misses:
        print(f"MISS {name}: expected {expected}, got {got}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
