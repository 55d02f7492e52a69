"""Sanity checks on a run's early metrics: is the loss finite, and is it not running away?"""

from __future__ import annotations

import math
from typing import SupportsFloat, SupportsIndex

LOSS_KEYS = ("loss", "train/loss", "train_loss", "training_loss")
DIVERGENCE_FACTOR = 10.0  # the loss grew tenfold over its early minimum…
RISING_STEPS = 3  # …and rose on each of the last steps
# What float() accepts: text, bytes-likes, and objects with __float__ or __index__.
_FLOAT_INPUTS = (str, bytes, bytearray, memoryview, SupportsFloat, SupportsIndex)


def loss_key(rows: list[dict]) -> str | None:
    """The history key that holds the training loss, if any."""
    keys = {k for row in rows for k in row}
    for key in LOSS_KEYS:
        if key in keys:
            return key
    candidates = sorted(k for k in keys if k.lower().endswith("loss") and not k.startswith("_"))
    return candidates[0] if candidates else None


def as_float(value: object) -> float | None:
    """W&B stores NaN and infinities as strings in JSON; numbers may also arrive as text."""
    if isinstance(value, bool) or not isinstance(value, _FLOAT_INPUTS):
        return None  # None, lists, dicts: float() would refuse them
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def loss_problem(rows: list[dict]) -> str | None:
    """A one-line reason why the loss in these history rows is not sane, or None."""
    key = loss_key(rows)
    if key is None:
        return None
    read = [(row.get("_step"), as_float(row[key])) for row in rows if key in row]
    points = [(step, value) for step, value in read if value is not None]
    for step, value in points:
        if not math.isfinite(value):
            return f"{key} is {value} at step {step}"
    return _divergence(key, points)


def _divergence(key: str, points: list[tuple[object, float]]) -> str | None:
    values = [value for _, value in points]
    if len(values) < RISING_STEPS + 2:
        return None
    floor = min(values[: len(values) // 2])
    last = values[-1]
    tail = values[-(RISING_STEPS + 1) :]
    rising = all(b > a for a, b in zip(tail, tail[1:], strict=False))
    if rising and last > DIVERGENCE_FACTOR * max(abs(floor), 1e-12):
        return f"{key} is diverging: {floor:.4g} → {last:.4g} by step {points[-1][0]}"
    return None
