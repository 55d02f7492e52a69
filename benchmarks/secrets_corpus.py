"""The redaction corpus through every output of the bot: leaks and destroyed evidence per output,
and how fast redaction reads a log.

Usage: python benchmarks/secrets_corpus.py [--no-server]
Each secret format's carrier and each evidence string goes through each output (PR comments,
check runs, app messages, branch doc, commit message, LLM prompt and request, logs, JSON and
terminal output, progress lines, stderr, and the log of a real `serve` process unless --no-server). Done when: 0 leaks, 0 destroyed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.core.secrets import Redactor  # noqa: E402
from tests.support.output_boundaries import Outputs  # noqa: E402
from tests.support.secrets_corpus import EVIDENCE, SECRETS, kept, leaks  # noqa: E402


def corpus(outputs: Outputs, server: bool) -> tuple[int, int]:
    total_leaks = total_destroyed = 0
    print(f"{'output':28} {'leaks':>12} {'destroyed':>12}  seconds")
    for name, send in outputs.boundaries(server=server).items():
        start = time.perf_counter()
        leaked = [s.name for s in SECRETS if leaks(send(s.carrier), s)]
        destroyed = [e.name for e in EVIDENCE if not kept(send(e.carrier), e)]
        total_leaks, total_destroyed = total_leaks + len(leaked), total_destroyed + len(destroyed)
        print(
            f"{name:28} {len(leaked):>5} of {len(SECRETS):<4} {len(destroyed):>5} of {len(EVIDENCE):<4}"
            f"  {time.perf_counter() - start:6.2f}"
        )
        for what in leaked + destroyed:
            print(f"    {what}")
    return total_leaks, total_destroyed


def throughput() -> None:
    """A 1 MB training log with a few secrets in it, plain and as escaped markdown."""
    lines = [
        f"step {i} loss {1.0 / (i + 1):.6f} lr 3e-4 grad_norm 1.25 dataset_key=imagenet-2012-train-v2"
        for i in range(12_000)
    ]
    for i, secret in enumerate(SECRETS):
        lines[i * 250] = secret.one_line
    text = "\n".join(lines)
    redactor = Redactor(["configured-secret-0123456789"])
    quiet = "\n".join(lines[1:250])  # no secret: most formats are skipped on their hints
    samples = (
        ("log with no secret", quiet * 48),
        ("log with 42 secrets", text),
        ("same, escaped", text.replace("_", "\\_")),
    )
    for label, sample in samples:
        start = time.perf_counter()
        redactor.text(sample)
        seconds = time.perf_counter() - start
        print(f"redact {label}: {len(sample) / 1e6:.2f} MB in {seconds:.3f} s ({len(sample) / 1e6 / seconds:.1f} MB/s)")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--no-server", action="store_true", help="skip the real `serve` process")
    args = parser.parse_args()
    formats, evidence = len({s.name for s in SECRETS}), len(EVIDENCE)
    print(f"corpus: {formats} secret formats, {evidence} evidence strings")
    with tempfile.TemporaryDirectory() as tmp:
        outputs = Outputs(Path(tmp))
        try:
            total_leaks, total_destroyed = corpus(outputs, server=not args.no_server)
        finally:
            outputs.close()
    print(f"total: {total_leaks} leaks, {total_destroyed} destroyed evidence")
    throughput()
    return 0 if total_leaks == total_destroyed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
