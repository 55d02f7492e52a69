"""Second, blind generalisation check: crash-log tails written before the classifier was read.

Blind accuracy, measured before any rule was changed for these logs: 53/61 = 86.9% (category);
misses: code_error 1, config_error 3, distributed 1, infra 1, unknown 2. One retryable miss.
Two of those misses (segfaults, labelled code_error/unknown blind) were relabelled infra afterwards to follow
the project's convention from real logs; the other six were fixed by general rules. After: 61/61.

tests/logs/generalise2/<category>/<name>.log are hand-written tails in the formats the tools really
print (PyTorch, NCCL/torchrun, DeepSpeed, Accelerate, Lightning, HF, JAX, TF/Keras, Slurm, Kubernetes,
Ray, W&B, …), each with a header (`category:`, `retryable:`), a `---` line, then the log.
A rule written for one of these logs' own text is a rule that will not generalise: fix rules generally.
"""
from __future__ import annotations

from pathlib import Path

from bot.diagnosis import diagnose_text

FOLDER = Path(__file__).resolve().parent / "logs" / "generalise2"
MIN_ACCURACY = 0.95


def _load(path: Path) -> tuple[dict[str, str], str]:
    text = path.read_text(encoding="utf-8")
    head, sep, body = text.partition("\n---\n")
    assert sep, f"{path}: no '---' line after the header"
    fields = dict(line.split(":", 1) for line in head.splitlines() if ":" in line)
    return {k.strip(): v.strip() for k, v in fields.items()}, body


def _results():
    rows = []
    for path in sorted(FOLDER.glob("*/*.log")):
        header, body = _load(path)
        assert header["category"] == path.parent.name, f"{path}: header disagrees with its folder"
        d = diagnose_text(body)
        rows.append((path.relative_to(FOLDER), header, d))
    return rows


def test_generalise2_category_accuracy():
    rows = _results()
    assert len(rows) >= 50
    misses = [(str(p), h["category"], d.category, d.summary) for p, h, d in rows if d.category != h["category"]]
    for name, want, got, summary in misses:
        print(f"MISS {name}: expected {want}, got {got} -- {summary}")
    accuracy = 1 - len(misses) / len(rows)
    print(f"generalise2: {len(rows) - len(misses)}/{len(rows)} = {accuracy:.1%}")
    assert accuracy >= MIN_ACCURACY, "\n".join(f"{n}: expected {w}, got {g}" for n, w, g, _ in misses)


def test_generalise2_retryable_when_category_right():
    """Retryable follows the category (infra, transient distributed); checked where the category is right."""
    wrong = [(str(p), h["retryable"], d.retryable) for p, h, d in _results()
             if d.category == h["category"] and "retryable" in h and (h["retryable"] == "true") != d.retryable]
    for name, want, got in wrong:
        print(f"RETRYABLE MISS {name}: expected {want}, got {got}")
    assert len(wrong) <= 2, wrong
