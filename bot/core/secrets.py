"""Remove secrets from text before it is printed, posted or returned: the one place that does.

Two strengths:
- `redact` (and `redact_lines`, `redact_value`) for text written by others (logs, run configs,
  proposals): known token shapes, secret-named values and the given secrets become `[REDACTED]`;
- `mask` and `strip_credentials` for a client library's or git's own error text, where only the
  secrets the caller knows (and URL userinfo) need to go: they become `***`.

Bare 40-hex strings are NOT redacted: they are almost always git SHAs (`commit 3f2a…`), which
reports need. A W&B API key has the same shape, so a 40-hex value is redacted only where it is
clearly a key: after a key-ish name (`WANDB_API_KEY=…`, `api_key: …`), after `wandb login`, or
as a netrc `password`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

REDACTED = "[REDACTED]"
MASK = "***"

# `scheme://userinfo@`: the credentials part of a URL.
_USERINFO = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")

# Token shapes that are secrets wherever they appear.
_TOKENS: list[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = [
    # PEM private keys, also a block cut off by the end of a log tail.
    (
        re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)", re.S),
        "[REDACTED PRIVATE KEY]",
    ),
    (re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{16,}|github_pat_[A-Za-z0-9_]{20,})\b"), REDACTED),
    (re.compile(r"\bsk-ant-[A-Za-z0-9_\-]{8,}"), REDACTED),
    (re.compile(r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{16,}"), REDACTED),
    (re.compile(r"\bhf_[A-Za-z0-9]{30,}\b"), REDACTED),  # Hugging Face
    (re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"), REDACTED),
    (re.compile(r"\blocal-[0-9a-f]{20,}\b"), REDACTED),  # W&B local-server keys
    (re.compile(r"(?i)(\bwandb\s+login\s+(?:--?[\w-]+(?:[= ]\S+)?\s+)*)([0-9a-f]{40})\b"), rf"\1{REDACTED}"),
    (re.compile(r"(?i)(\bpassword\s+)([0-9a-f]{40})\b"), rf"\1{REDACTED}"),  # ~/.netrc
    (
        re.compile(r"(?i)(\bauthorization\s*[:=]\s*[\"']?)(?:(bearer|basic|token)\s+)?[^\s\"',)]+"),
        lambda m: m.group(1) + (m.group(2) + " " if m.group(2) else "") + REDACTED,
    ),
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=\-]{8,}"), rf"\1 {REDACTED}"),
    (re.compile(r"(x-access-token:)[^@\s]+@"), rf"\1{REDACTED}@"),
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/\s@]+:)[^@\s/]+@"), rf"\1{REDACTED}@"),  # user:pass@host
]

# NAME=value, NAME: value, "NAME": "value". Any value is redacted when the name names a secret;
# a name that merely ends in "key" (full_key, sort_key) only when the value looks like a token,
# so evidence such as omegaconf's `full_key: data.train` survives.
_PAIR = re.compile(
    r"""(?P<name>\b[A-Za-z_][\w.-]*)(?P<q1>["']?)(?P<sep>\s*[:=]\s*)"""
    r"""(?:(?P<q>["'])(?P<qval>[^"'\n]*)(?P=q)|(?P<val>[^\s"',;}\])]+))"""
)
_STRONG = re.compile(r"(?i)secret|passw(?:or)?d|api[_-]?key|apikey|credential|token$|(?:^|[_.-])pwd$|private[_-]?key")
_WEAK = re.compile(r"(?i)key$")
# A dotted name without digits, a literal, or a tokenizer's special token (`[PAD]`, `<|endoftext|>`):
# code that refers to a value, not a secret itself.
_CODE_VALUE = re.compile(r"[A-Za-z_]+(?:\.[A-Za-z_]+)+|None|True|False|null|none|\[[A-Z]+\]|<\|?[a-z_]+\|?>")
_TOKENISH = re.compile(r"^(?=.*\d)(?=.*[A-Za-z])[A-Za-z0-9_+/=.\-]{16,}$")


def redact(text: str, extra_secrets: Iterable[str] = ()) -> str:
    """`text` with known secret shapes, secret-named values and `extra_secrets` replaced."""
    for secret in sorted({s for s in extra_secrets if s and s.strip()}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    for pattern, repl in _TOKENS:
        text = pattern.sub(repl, text)
    return _PAIR.sub(_redact_pair, text)


def redact_lines(lines: Iterable[str], extra_secrets: Iterable[str] = ()) -> list[str]:
    """Redact a list of lines together, so a multi-line PEM block is caught whole."""
    lines = list(lines)
    if not lines:
        return []
    return redact("\n".join(lines), extra_secrets).split("\n")


def _redact_pair(m: re.Match[str]) -> str:
    name = m.group("name")
    value = m.group("qval") if m.group("q") else m.group("val")
    # An already-redacted value is cut at its "]" by the value pattern: leave it whole.
    if not value or value.startswith(REDACTED[:-1]) or not _is_secret(name, value):
        return m.group(0)
    start, end = m.span("qval") if m.group("q") else m.span("val")
    whole = m.group(0)
    return whole[: start - m.start()] + REDACTED + whole[end - m.start() :]


def _is_secret(name: str, value: str) -> bool:
    if _CODE_VALUE.fullmatch(value):  # `pad_token = tokenizer.eos_token` names a value, holds none
        return False
    if _STRONG.search(name):
        return True
    return bool(_WEAK.search(name) and _TOKENISH.match(value))


def redact_value(value: Any, extra_secrets: Iterable[str] = ()) -> Any:
    """Decoded JSON (a run's config, summary, history) with every string redacted, and the
    values of secret-named keys (`db_password`, `api_key`, …) replaced outright."""
    secrets = list(extra_secrets)
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, list):
        return [redact_value(v, secrets) for v in value]
    if isinstance(value, dict):
        return {
            k: REDACTED if isinstance(v, str) and _is_secret(str(k), v) else redact_value(v, secrets)
            for k, v in value.items()
        }
    return value


def mask(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with each of the known `secrets` replaced by `***`; nothing else changes."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text


def strip_credentials(text: str, secrets: Iterable[str] = ()) -> str:
    """`https://user:token@host` → `https://host`, and any known secret value → `***`."""
    return mask(_USERINFO.sub(r"\1", text), secrets)
