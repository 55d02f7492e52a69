"""What a conversation with the model costs, from the usage the API reports.

`PRICES` holds list prices in USD per million tokens; cache writes cost 1.25x input, cache reads
0.1x. A model not in the table is priced as Sonnet, the default model, so cost is never
silently zero. Input is reported in its three parts (uncached, written to the cache, read from
it), since they are priced apart and the uncached part alone understates what was sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# model-id prefix -> (input, output) USD per million tokens; the longest matching prefix wins.
PRICES: dict[str, tuple[float, float]] = {
    "claude-opus-4-5": (5.0, 25.0),
    "claude-opus-4-6": (5.0, 25.0),
    "claude-opus-4": (15.0, 75.0),
    "claude-sonnet-4": (3.0, 15.0),
    "claude-3-7-sonnet": (3.0, 15.0),
    "claude-haiku-4": (1.0, 5.0),
    "claude-3-5-haiku": (0.8, 4.0),
}
DEFAULT_PRICE = (3.0, 15.0)
CACHE_WRITE_FACTOR, CACHE_READ_FACTOR = 1.25, 0.1
TOKEN_KINDS = ("input", "cache_write", "cache_read", "output")


def price(model: str) -> tuple[float, float]:
    matches = [p for p in PRICES if model.startswith(p)]
    return PRICES[max(matches, key=len)] if matches else DEFAULT_PRICE


def cost_usd(model: str, tokens: dict[str, int]) -> float:
    per_in, per_out = price(model)
    total = (
        tokens.get("input", 0) * per_in
        + tokens.get("output", 0) * per_out
        + tokens.get("cache_write", 0) * per_in * CACHE_WRITE_FACTOR
        + tokens.get("cache_read", 0) * per_in * CACHE_READ_FACTOR
    )
    return round(total / 1_000_000, 6)


def zero_tokens() -> dict[str, int]:
    return {"input": 0, "output": 0, "cache_read": 0, "cache_write": 0}


def usage_tokens(usage: Any) -> dict[str, int]:
    """The four token counts of one response's `usage`."""
    return {
        "input": getattr(usage, "input_tokens", None) or 0,
        "output": getattr(usage, "output_tokens", None) or 0,
        "cache_read": getattr(usage, "cache_read_input_tokens", None) or 0,
        "cache_write": getattr(usage, "cache_creation_input_tokens", None) or 0,
    }


def usage_text(tokens: dict[str, int], cost: float | None = None) -> str:
    """`1200 in, 900 cache write, 0 cache read, 300 out, $0.0123`."""
    parts = [
        f"{tokens.get('input', 0)} in",
        f"{tokens.get('cache_write', 0)} cache write",
        f"{tokens.get('cache_read', 0)} cache read",
        f"{tokens.get('output', 0)} out",
    ]
    return ", ".join(parts) + (f", ${cost:.4f}" if cost is not None else "")


@dataclass(frozen=True)
class RoundUsage:
    """One request of a conversation: what it asked for and what it cost."""

    number: int
    purpose: str  # "answer", "look-up: read_file x.py", "repair"
    tokens: dict[str, int]
    cost_usd: float

    def text(self) -> str:
        return f"round {self.number} ({self.purpose}): {usage_text(self.tokens, self.cost_usd)}"


@dataclass
class Ledger:
    """Tokens and cost per round and in total, for one model."""

    model: str
    rounds: list[RoundUsage] = field(default_factory=list)

    def add(self, purpose: str, tokens: dict[str, int]) -> None:
        self.rounds.append(RoundUsage(len(self.rounds) + 1, purpose, tokens, cost_usd(self.model, tokens)))

    def relabel_last(self, purpose: str) -> None:
        if self.rounds:
            last = self.rounds[-1]
            self.rounds[-1] = RoundUsage(last.number, purpose, last.tokens, last.cost_usd)

    @property
    def tokens(self) -> dict[str, int]:
        total = zero_tokens()
        for r in self.rounds:
            for key in total:
                total[key] += r.tokens.get(key, 0)
        return total

    @property
    def cost(self) -> float:
        return cost_usd(self.model, self.tokens)

    @property
    def total(self) -> int:
        return sum(self.tokens.values())
