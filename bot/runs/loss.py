"""Is a run learning? The verdicts the bot draws from a run's logged history rows.

Which metric is judged: the training loss, found by name (`loss_key`): `loss`, `train/loss`,
`train_loss`, `training_loss` and their Lightning step/epoch forms first, then any other key
ending in `loss` that is not a validation or test loss nor one part of a sum (`losses/…`,
RL's `losses/value_loss`). Returns and rewards (`charts/episodic_return`) are not losses:
higher is better, and a few early RL steps are noise, so they are only checked to be finite;
while one rises, a loss logged beside it is not judged by its growth either (`return_improved`).

The verdicts, over the rows given (oldest first; callers pass the run's first rows with its
last, so "where it started" is the run's own start):

- `loss_problem` (a failed run, whatever its exit state): a loss or return that is NaN or
  infinite anywhere in the rows, or a training loss that *exploded*: its latest value is more
  than twice its first logged value (for a first value at or below zero: more than its own
  size above it), or it *spiked*: at some row it rose above fifty times its first value,
  whatever came after. No batch noise does that (a spike of a healthy run is a few times its
  start), and the weights such a step leaves are wrecked, as the run's evaluation shows: timm at
  lr 20 printed 2.21 → 13,900 → 339 → … → 2.69 and ended at chance accuracy, its validation loss
  50 times the untrained model's; at lr 2.0, 2.21 → 221 → 30 → … → 1.30, still at chance.
  4.6 → 446 → 15 exploded; 4.6 → 9.0 did not; 2.21 → 60 → 35 → 1.9 did not.
- `learning_problem` (is a relaunched run verified at `verify.min_steps`?): `loss_problem`, or
  a training loss that is *running away*: it rose at each of its last `RISING_ROWS` values and
  ended more than `RISE_MARGIN` above its lowest. A run logging no loss at all is judged on its
  numbers being finite and on its progress (the caller's step count), nothing else.
- `loss_rising`: weaker, for evidence only: the loss ended above where it started, or rose over
  its last rows. With an overflow in `math.exp(loss)` it says the loss was on its way up.
- `printed_loss_problem`: `loss_problem` for a loss read off the console (bot.runs.console_loss),
  one batch per value, so noisier: non-finite, spiked, or exploded with each of its last
  `SETTLE_ROWS` values above twice its first (one noisy batch is not an explosion).
- `baseline_problem`: a loss that stays finite and falls may still be far worse than the base
  branch's run at the same point (an epoch-mean log of a learning rate 10,000x too high: 1341,
  22.8, 9.5 against 1.57, 0.62, 0.23). See its doc for what is compared and why it is safe.
- `baseline_stall` (a relaunch only): at the same point as a base-branch run that learnt, a loss
  no better than that run's untrained start. See its doc.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from typing import Any, SupportsFloat, SupportsIndex

LOSS_KEYS = (
    "loss",
    "train/loss",
    "train_loss",
    "training_loss",
    "train/loss_step",
    "train/loss_epoch",
    "train_loss_step",
    "train_loss_epoch",
    "loss/train",
)
EXPLODE_FACTOR = 2.0  # latest loss above twice its first value: exploded
SPIKE_FACTOR = 50.0  # any loss above fifty times its first value: spiked (no batch noise does that)
RISING_ROWS = 4  # at min_steps: rose on each of the last three steps…
RISE_MARGIN = 1.2  # …to more than 20% above its lowest value
SETTLE_ROWS = 3  # a printed loss exploded when each of its last three values did
# Against a baseline (see `baseline_problem` for why these are safe):
BASELINE_FACTOR = 10.0  # far worse: above ten times the baseline's loss at the same point…
SCALE_BAND = 2.0  # …its ratio to the baseline not constant within 2x (a loss on another scale)…
CLOSING = 2.0  # …not closing the gap (its ratio halved since the point before)…
FLOOR_SHARE = 0.5  # …and above half the baseline's first value (not a higher floor: label smoothing)
LEARNT_SHARE = 0.5  # a baseline that learnt by a point: below half its first value there
STALL_SHARE = 0.9  # a relaunch no better than untrained: above 90% of the baseline's first value
# How two runs' rows are matched, best first: a training step both log, one loss per epoch, W&B's row.
STEP_KEYS = ("trainer/global_step", "global_step", "train/global_step", "step", "epoch", "_step")
# Keys that are not the training loss: evaluation losses, and parts of a sum ("losses/…").
NOT_TRAINING = re.compile(r"(?i)(?:^|[/_.\-])(?:val|valid|validation|eval|test|dev)(?:[/_.\-]|$)|^losses?[/.]")
_RETURN = re.compile(r"(?i)(?:^|[/_.\-])(?:episodic_)?(?:return|reward)s?(?:[/_.\-]|$)")
# What float() accepts: text, bytes-likes, and objects with __float__ or __index__.
_FLOAT_INPUTS = (str, bytes, bytearray, memoryview, SupportsFloat, SupportsIndex)

Rows = list[dict[str, Any]]
Point = tuple[object, float]  # (step, value)


def loss_key(rows: Rows) -> str | None:
    """The history key that holds the training loss, if any."""
    keys = {k for row in rows for k in row}
    for key in LOSS_KEYS:
        if key in keys:
            return key
    candidates = sorted(
        k for k in keys if k.lower().endswith("loss") and not k.startswith("_") and not NOT_TRAINING.search(k)
    )
    trained = [k for k in candidates if "train" in k.lower()]
    ranked = trained or candidates
    return ranked[0] if ranked else None


def is_return_key(key: str) -> bool:
    """A return or reward: higher is better, never judged as a loss."""
    return bool(_RETURN.search(key))


def as_float(value: object) -> float | None:
    """W&B stores NaN and infinities as strings in JSON; numbers may also arrive as text."""
    if isinstance(value, bool) or not isinstance(value, _FLOAT_INPUTS):
        return None  # None, lists, dicts: float() would refuse them
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def merge_rows(*parts: Iterable[dict[str, Any]]) -> Rows:
    """Rows from several reads (a run's first rows, then its last), once each, in step order."""
    seen: dict[object, dict[str, Any]] = {}
    unstepped: Rows = []
    for rows in parts:
        for row in rows:
            step = row.get("_step")
            if step is None:
                unstepped.append(row)
            else:
                seen.setdefault(step, row)
    ordered = sorted(seen.items(), key=lambda kv: as_float(kv[0]) or 0.0)
    return [row for _, row in ordered] + unstepped


def non_finite(rows: Rows) -> str | None:
    """A loss or return logged as NaN or ±inf, the first one found."""
    found = _first_non_finite(rows)
    return f"{found[0]} is {found[1]} at step {_step(found[2])}" if found else None


def _first_non_finite(rows: Rows) -> tuple[str, float, dict[str, Any]] | None:
    for row in rows:
        for key, value in row.items():
            if str(key).startswith("_") or not ("loss" in str(key).lower() or is_return_key(str(key))):
                continue
            number = as_float(value)
            if number is not None and not math.isfinite(number):
                return str(key), number, row
    return None


def loss_problem(rows: Rows) -> str | None:
    """Why these rows show a failed run (a non-finite or exploded loss), or None."""
    found = non_finite(rows)
    if found:
        return found
    key = loss_key(rows)
    return _exploded(key, _points(rows, key)) if key and not return_improved(rows) else None


def return_improved(rows: Rows) -> bool:
    """Whether the run logs a return or reward (RL) that ended no lower than it began (the mean
    of its last third of values against its first third's). A policy-gradient loss sums over an
    episode's steps, so it grows as episodes grow longer, which is the policy learning:
    REINFORCE on CartPole logged loss 0.147 → 1.85 while its return rose. Such a loss is not
    judged by its growth; only non-finite values count."""
    keys = sorted({str(k) for row in rows for k in row if is_return_key(str(k)) and not str(k).startswith("_")})
    for key in keys:
        values = [v for _, v in _points(rows, key) if math.isfinite(v)]
        third = len(values) // 3
        if third and sum(values[-third:]) >= sum(values[:third]):
            return True
    return False


def printed_loss_problem(rows: Rows) -> str | None:
    """Why a loss printed on the console shows a failed run (see the module doc), or None."""
    bad = _first_non_finite(rows)
    if bad:
        return f"printed {bad[0]} is {bad[1]}"
    key = loss_key(rows)
    if key is None:
        return None
    points = _points(rows, key)
    values = [value for _, value in points]
    # One batch above twice the start early on is not yet an explosion; the last few all above it are.
    if len(values) > SETTLE_ROWS and _exploded_from(values[0], min(values[-SETTLE_ROWS:])):
        return f"printed {key} is diverging: {values[0]:.4g} → {values[-1]:.4g}"
    spiked = _spiked(points)
    if spiked:
        return f"printed {key} spiked: {values[0]:.4g} → {spiked[1]:.4g}"
    return None


def learning_problem(rows: Rows) -> str | None:
    """Why these rows do not show a run that learns (see the module doc), or None."""
    found = loss_problem(rows)
    if found:
        return found
    key = loss_key(rows)
    return _running_away(key, _points(rows, key)) if key and not return_improved(rows) else None


def started_like(rows: Rows, baseline: Rows, judge: Callable[[Rows], str | None]) -> bool:
    """Whether the baseline's own loss, up to the step the run has reached, fails `judge` too,
    and the run's latest loss is within EXPLODE_FACTOR of the highest the baseline had by then:
    the transient start of the base's own set-up (Adadelta's or a warm restart's first steps
    rising to 5x, then learning), which the baseline went through and learnt after. A
    non-finite loss is never excused."""
    key = loss_key(rows)
    if key is None or non_finite(rows) or not baseline:
        return False
    points = _points(rows, key)
    reached = points[-1][0] if points else None
    if not isinstance(reached, int | float):
        return False
    early = [row for row in baseline if isinstance(step := _step(row), int | float) and step <= reached]
    highest = max((value for _, value in _points(early, key)), default=None)
    if highest is None or judge(early) is None:
        return False
    return points[-1][1] <= EXPLODE_FACTOR * highest


def loss_rising(rows: Rows) -> bool:
    """The training loss ended above its first value, or rose over its last rows."""
    key = loss_key(rows)
    if key is None:
        return False
    values = [value for _, value in _points(rows, key) if math.isfinite(value)]
    if len(values) < 2:
        return False
    tail = values[-RISING_ROWS:]
    return values[-1] > values[0] or (len(tail) == RISING_ROWS and _strictly_rising(tail))


def _points(rows: Rows, key: str) -> list[Point]:
    read = [(_step(row), as_float(row[key])) for row in rows if key in row]
    return [(step, value) for step, value in read if value is not None]


def _step(row: dict[str, Any]) -> object:
    return row.get("_step", row.get("step", "?"))


def _exploded(key: str, points: list[Point]) -> str | None:
    if len(points) < 2:
        return None
    first, (step, last) = points[0][1], points[-1]
    if _exploded_from(first, last):
        return f"{key} is diverging: {first:.4g} → {last:.4g} by step {step}"
    spiked = _spiked(points)
    if spiked:
        return f"{key} spiked: {first:.4g} → {spiked[1]:.4g} at step {spiked[0]}"
    return None


def _spiked(points: list[Point]) -> Point | None:
    """The first point above SPIKE_FACTOR times the first value (a positive one: a loss), if any."""
    first = points[0][1] if points else 0.0
    if not first > 0:
        return None
    return next(((step, value) for step, value in points[1:] if value > SPIKE_FACTOR * first), None)


def _exploded_from(first: float, value: float) -> bool:
    """`value` is more than EXPLODE_FACTOR times `first` (for a first value at or below zero: more
    than its own size above it). A first value of 0 is a placeholder logged before training: no
    scale to judge against."""
    return first != 0 and value > first + (EXPLODE_FACTOR - 1) * abs(first)


def _running_away(key: str, points: list[Point]) -> str | None:
    values = [value for _, value in points]
    if len(values) < RISING_ROWS:
        return None
    tail = values[-RISING_ROWS:]
    lowest = min(values)
    if _strictly_rising(tail) and tail[-1] > lowest + (RISE_MARGIN - 1) * abs(lowest):
        return (
            f"{key} is rising: {lowest:.4g} → {tail[-1]:.4g} over its last {RISING_ROWS} values (step {points[-1][0]})"
        )
    return None


def _strictly_rising(values: list[float]) -> bool:
    return all(b > a for a, b in zip(values, values[1:], strict=False))


def baseline_problem(rows: Rows, baseline: Rows, against: str) -> str | None:
    """Why the run's loss is far worse than a baseline's (the base branch's run that learnt), or
    None. `rows` and `baseline` are the two runs' rows (history rows, or both printed rows);
    `against` names the baseline in the message ("main's run abc123").

    Compared: the baseline's training loss key, at the points both runs log (the same training
    step, else the same epoch, else W&B's row: `comparable`). Diverged when, at the latest such
    point, the run's loss is above BASELINE_FACTOR times the baseline's, its latest value (later
    ones included) still is, it is above FLOOR_SHARE of the baseline's first value, its ratio to
    the baseline was not constant (within SCALE_BAND over at least two points) and it is not
    closing the gap (its ratio did not fall by CLOSING since the point before).

    Why a run that learns is not flagged: at the same step of the same code and data, a variant
    that works (another learning rate that still learns, a larger model, more regularisation)
    stays within a few times the baseline's loss; ten times is not noise. A loss on another scale
    (a sum where the baseline has a mean, a weighted loss) keeps a near-constant ratio from its
    first point; a higher floor (label smoothing against a baseline that memorised its data)
    ends far below where the baseline started; a slow start that catches up closes the gap. With
    one point in common there is no trend to tell a scale from a divergence: no verdict."""
    key = loss_key(baseline)
    if key is None:
        return None
    pairs = comparable(rows, baseline, key)
    if len(pairs) < 2:
        return None
    label, at, value, base = pairs[-1]
    ratios = [run / ref for _, _, run, ref in pairs]
    latest = _points(rows, key)[-1][1]
    base_first = _points(baseline, key)[0][1]
    if not (
        value > BASELINE_FACTOR * base
        and latest > BASELINE_FACTOR * base
        and latest > FLOOR_SHARE * base_first
        and max(ratios) > SCALE_BAND * min(ratios)
        and ratios[-1] * CLOSING > ratios[-2]
    ):
        return None
    return f"{key} {_short(latest)} at {label} {_short(at)} against {_short(base)} on {against}"


def baseline_stall(rows: Rows, baseline: Rows, against: str) -> str | None:
    """Why a relaunched run is not verified beside a baseline that learnt, or None: at the latest
    point both logged, the baseline's loss is below LEARNT_SHARE of its first value, while the
    run's is no better than the baseline's untrained start (above STALL_SHARE of it), more than
    twice the baseline's, and no longer falling (not STALL_SHARE below its lowest over the second
    half of the points; three at least).

    A relaunch that trains no better than an untrained model is no fix, though its loss stays
    finite: a learning rate 100x too high left pytorch/examples' MNIST at 2.31 (chance) against
    main's 0.29, and a language model at 8.3 against 2.0, above main's untrained 4.5. A slow start
    that is catching up is still falling fast (2.3, 30, 25, 8, 2.5: not flagged)."""
    key = loss_key(baseline)
    pairs = comparable(rows, baseline, key) if key is not None else []
    if len(pairs) < 3 or key is None:
        return None
    label, at, value, base = pairs[-1]
    base_first = _points(baseline, key)[0][1]
    recent = [run for _, _, run, _ in pairs[len(pairs) // 2 : -1]]
    if not (
        base < LEARNT_SHARE * base_first
        and value > STALL_SHARE * base_first
        and value > 2 * base
        and value > STALL_SHARE * min(recent)
    ):
        return None
    return (
        f"{key} {_short(value)} at {label} {_short(at)} is no better than untrained: "
        f"{against} fell from {_short(base_first)} to {_short(base)} by then"
    )


Pair = tuple[str, float, float, float]  # (what the point is: "step"/"epoch", where, run's loss, baseline's)


def comparable(rows: Rows, baseline: Rows, key: str) -> list[Pair]:
    """The points where both runs logged `key`, finite and positive (a ratio needs both), in the
    run's order, matched by the first of STEP_KEYS that both runs log with each loss value and
    whose values meet; a key tried and unmatched is not fallen back from, so two runs logged in
    different units are not compared at all."""
    for step_key in STEP_KEYS:
        mine, theirs = _by_step(rows, key, step_key), _by_step(baseline, key, step_key)
        if mine is None or theirs is None:
            continue
        label = "epoch" if step_key == "epoch" else "step"
        return [(label, at, value, theirs[at]) for at, value in mine.items() if at in theirs]
    return []


def _by_step(rows: Rows, key: str, step_key: str) -> dict[float, float] | None:
    """The run's finite, positive `key` values by `step_key`; None unless every row with the loss
    has the step, each step once (an epoch logged many times is no one point)."""
    found: dict[float, float] = {}
    for row in rows:
        if key not in row:
            continue
        at, value = as_float(row.get(step_key)), as_float(row[key])
        if at is None or at in found:
            return None
        if value is not None and math.isfinite(value) and value > 0:
            found[at] = value
    return found or None


def _short(value: float) -> str:
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:.3g}"
