"""Remove secrets from everything that leaves the process: the one place that knows what a secret
looks like.

Each output redacts as its LAST step, after any escaping, cutting or formatting, with one
`Redactor` built from the settings' secrets: PR comments and check runs, the branch doc entry, the
commit message, every block sent to the LLM, log records (`redacted_logs`), JSON output and the
one-line error on stderr. Matching reads through markdown escapes (`ghp\\_…`) and the zero-width
spaces the report inserts after `@`, so escaping first cannot hide a secret.

Redacted: the token formats in `FORMATS` (GitHub, Anthropic, OpenAI, AWS, W&B, Slack, JWT, Hugging
Face, PyPI, npm, …), credentials in URLs, PEM private keys, the values of secret-named keys
(`DB_PASSWORD=…`, `"private_key_id": …`, `--token …`) and the configured secrets verbatim.
Kept, because reports need them as evidence: tokenizer specials (`pad_token = '</s>'`), `*_key`
names whose values are not random (`dataset_key=imagenet-2012-train-v2`, `sort_key`, a
`cache_key` that is a hash), bare hex hashes and git SHAs, run ids and W&B run paths. A W&B API
key is 40 hex, like a SHA: it is redacted only where it is clearly a key (a key-ish name,
`wandb login`, a netrc `password`).

`mask` and `strip_credentials` are the light strength, for a client library's or git's own error
text: only the secrets the caller knows, and URL userinfo, go (as `***`).
"""

from __future__ import annotations

import bisect
import logging
import re
import string
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

REDACTED = "[REDACTED]"
REDACTED_KEY = "[REDACTED PRIVATE KEY]"
MASK = "***"

Span = tuple[int, int, str]  # (start, end, replacement) in the text being read


class HasSecrets(Protocol):
    def secrets(self) -> list[str]: ...


@dataclass(frozen=True)
class TokenFormat:
    """A secret recognised by its shape, wherever it appears; `group` is the part to replace.
    The pattern runs only on text that holds one of `hints` (lower case): most text holds none,
    and a scan per format would dominate the time redaction takes."""

    name: str
    pattern: re.Pattern[str]
    hints: tuple[str, ...]
    group: int | str = 0
    replacement: str = REDACTED
    # A match counts only where no letter or digit comes before it (`ghp_` may follow `_` or `=`).
    # Checked here, not in the pattern: a pattern that starts with its literal prefix is found
    # many times faster than one that starts with a look-behind.
    word_start: bool = False


def _format(
    name: str,
    hints: str,
    pattern: str,
    group: int | str = 0,
    flags: int = 0,
    replacement: str = REDACTED,
    word_start: bool = True,
) -> TokenFormat:
    return TokenFormat(name, re.compile(pattern, flags), tuple(hints.split()), group, replacement, word_start)


_ALNUM = frozenset(string.ascii_letters + string.digits)
_URL_HOST = r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])"

FORMATS: tuple[TokenFormat, ...] = (
    # PEM private keys (also PGP blocks), and a block cut off by the end of a log tail.
    _format(
        "pem",
        "private",
        r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\Z)",
        flags=re.S,
        replacement=REDACTED_KEY,
        word_start=False,
    ),
    _format(
        "github",
        "ghp_ gho_ ghu_ ghs_ ghr_ github_pat_",
        r"(?:gh[pousr]_[A-Za-z0-9]{16,}|github_pat_[A-Za-z0-9_]{20,})",
    ),
    _format("anthropic", "sk-ant-", r"sk-ant-[A-Za-z0-9_\-]{8,}"),
    _format("openai", "sk-", r"sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{16,}"),
    _format("stripe", "k_live_ k_test_", r"[rs]k_(?:live|test)_[A-Za-z0-9]{16,}"),
    _format("aws-access-key-id", "akia asia", r"A(?:KIA|SIA)[A-Z0-9]{16}\b"),
    _format("google-api-key", "aiza", r"AIza[0-9A-Za-z_\-]{35}"),
    _format("huggingface", "hf_", r"hf_[A-Za-z0-9]{30,}"),
    _format("pypi", "pypi-", r"pypi-[A-Za-z0-9_\-]{50,}"),
    _format("npm", "npm_", r"npm_[A-Za-z0-9]{36}(?![A-Za-z0-9])"),
    _format("gitlab", "glpat-", r"glpat-[A-Za-z0-9_\-]{20,}"),
    _format("slack", "xox", r"xox[abposr]-[A-Za-z0-9\-]{10,}"),
    _format("slack-app", "xapp-", r"xapp-\d-[A-Za-z0-9\-]{10,}"),
    _format(
        "slack-webhook",
        "hooks.slack.com",
        r"hooks\.slack\.com/(?:services|workflows|triggers)/(?P<s>[A-Za-z0-9/_\-]{8,})",
        "s",
        word_start=False,
    ),
    _format(
        "discord-webhook",
        "/api/webhooks/",
        r"discord(?:app)?\.com/api/webhooks/\d+/(?P<s>[A-Za-z0-9_\-]{20,})",
        "s",
        word_start=False,
    ),
    _format("sendgrid", "sg.", r"SG\.[A-Za-z0-9_\-]{16,}\.[A-Za-z0-9_\-]{16,}"),
    _format("databricks", "dapi", r"dapi[0-9a-f]{32}(?![0-9a-f])"),
    _format("replicate", "r8_", r"r8_[A-Za-z0-9]{37}(?![A-Za-z0-9])"),
    _format("jwt", "eyj", r"eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"),
    _format("wandb-local", "local-", r"local-[0-9a-f]{20,}\b"),
    _format("wandb-login", "login", r"(?i)wandb\s+login\s+(?:--?[\w-]+(?:[= ]\S+)?\s+)*(?P<s>[0-9a-f]{40})\b", "s"),
    _format("netrc", "machine", r"(?i)machine\s+\S+\s+login\s+\S+\s+password\s+(?P<s>\S+)", "s"),
    _format("netrc-password", "password", r"(?i)password\s+(?P<s>[0-9a-f]{40})\b", "s"),
    _format(
        "authorization",
        "authorization",
        r"(?i)(?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?(?:(?:bearer|basic|token|digest)\s+)?(?P<s>[^\s\"',)]+)",
        "s",
    ),
    _format("bearer", "bearer", r"(?i)bearer\s+(?P<s>[A-Za-z0-9._~+/=\-]{8,})", "s"),
    _format("x-access-token", "x-access-token:", r"x-access-token:(?P<s>[^@\s]+)@", "s", word_start=False),
    # scheme://user:password@host — the password may hold `/`, `@` and `:`: it runs to the last
    # `@` that a host follows. Bounded, so a long line cannot make the search quadratic. The
    # scheme is not part of the pattern: `://` alone is found fast.
    _format(
        "url-credentials",
        "://",
        r"://[^\s:/@\"'<>`]{0,128}:(?P<s>[^\s\"'<>`]{1,256})@(?=" + _URL_HOST + r"(?:[:/?#\s\"'<>`),;\]|\\]|$))",
        "s",
        word_start=False,
    ),
)

# `host:8080/path@x` is a port and a path, not a password.
_PORT = re.compile(r"\d{1,5}(?:[/?#]|$)")

# NAME=value, NAME: value, "NAME": "value", --name value. The name is bounded so a long run of
# dotted words cannot make the search quadratic.
_PAIR = re.compile(
    r"""(?P<name>\b[A-Za-z_][\w.\-]{0,100})(?P<q1>["']?)[ \t]*[:=][ \t]*"""
    r"""(?:(?P<q>["'])(?P<qval>[^"'\n]*)(?P=q)|(?P<val>\[[^\[\]\n]{0,40}\]|[^\s"',;}\])]+))"""
)
_SEPARATOR = re.compile(r"[\"']?[ \t]*[:=]")
_FLAG = re.compile(r"--(?P<name>[A-Za-z][\w\-]{0,60})[ \t]+(?P<val>[^\s\"'\-][^\s\"']*)")

# Names whose value is a secret whatever it looks like.
_SECRET_NAME = re.compile(
    r"(?i)(?:secrets?|passwords?|passwd|passphrase|(?:^|[_.\-])pwd|credentials?|token|cookie|"
    r"api[_.\-]?key|private[_.\-]?key(?:[_.\-]?id)?|access[_.\-]?key(?:[_.\-]?id)?|"
    r"(?:secret|auth|encryption|signing|master|license|hmac|webhook|wandb|ssh|session|account)[_.\-]?key|"
    r"(?:^|[_.\-])auth|(?:^|[_.\-])dsn)$"
)
# `*_token` names of a tokenizer's special tokens: their values are vocabulary, never secrets.
_TOKENIZER_NAME = re.compile(
    r"(?i)(?:^|[_.\-])(?:pad|eos|bos|unk|sep|cls|mask|sos|start|end|stop|image|audio|video|special|"
    r"additional_special|decoder_start|eot|eod|eom|boi|eoi|think|fim_[a-z]+)_tokens?$"
)
_KEY_NAME = re.compile(r"(?:(?i:(?:^|[_.\-])key)|[a-z0-9]Key)$")  # dataset_key, sortKey, key
# Values that name or stand for a value rather than hold one: dotted names, literals, a
# tokenizer's specials (`</s>`, `[PAD]`, `<|endoftext|>`), placeholders, `${VAR}`, a call.
_NOT_A_SECRET = re.compile(
    r"[A-Za-z_]+(?:\.[A-Za-z_]+)+|None|True|False|true|false|null|none|nil|undefined|"
    r"<[^<>\s]{1,40}>|\[[^\[\]\n]{1,40}\]|\*+|x{3,}|X{3,}|\.\.\.|…|"
    r"\$\{?[A-Za-z_][\w.:\-]*\}?|%\([\w.]+\)s|[A-Za-z_][\w.]*[(\[]"
)
_TOKENISH = re.compile(r"^(?=.*\d)(?=.*[A-Za-z])[A-Za-z0-9_+/=.\-]{16,}$")
_HEX = re.compile(r"[0-9a-fA-F]+")
_SEGMENT = re.compile(r"[A-Za-z0-9+=]{12,}")

# Markdown escapes (any ASCII punctuation after `\`), the `\n` of a repr or of JSON, and
# zero-width spaces: read through them.
_READ_THROUGH = re.compile(r"\\([!-/:-@\[-`{-~])|\\([nrt])|\u200b")
_STRING_ESCAPES = {"n": "\n", "r": "\r", "t": "\t"}
_ZWSP = "\u200b"


class Redactor:
    """Redaction with the configured `secrets` and every known format; build one per settings."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Each as given and without surrounding whitespace (a key file's last newline).
        given = {v for s in secrets if s and s.strip() for v in (s, s.strip())}
        self.secrets = tuple(sorted(given, key=len, reverse=True))

    @classmethod
    def from_settings(cls, settings: HasSecrets | None) -> Redactor:
        return cls(settings.secrets() if settings is not None else ())

    def text(self, text: str) -> str:
        """`text` with every secret replaced: the last step before it leaves the process."""
        if not text:
            return text
        view, where = _readable(text)
        spans = _merge(self._spans(view))
        return _replace(text, spans, where) if spans else text

    def lines(self, lines: Iterable[str]) -> list[str]:
        """Lines redacted together, so a multi-line PEM block is caught whole."""
        lines = list(lines)
        if not lines:
            return []
        return self.text("\n".join(lines)).split("\n")

    def value(self, value: Any) -> Any:
        """Decoded JSON with every string (keys too) redacted, and the string values of
        secret-named keys (`db_password`, `api_key`, …) replaced outright."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        if isinstance(value, dict):
            return {
                self.text(k) if isinstance(k, str) else k: (
                    REDACTED if isinstance(v, str) and v and is_secret(str(k), v) else self.value(v)
                )
                for k, v in value.items()
            }
        return value

    def _spans(self, text: str) -> Iterator[Span]:
        for secret in self.secrets:
            start = text.find(secret)
            while start >= 0:
                yield start, start + len(secret), REDACTED
                start = text.find(secret, start + len(secret))
        lowered = text.lower()
        for fmt in FORMATS:
            if not any(hint in lowered for hint in fmt.hints):
                continue
            for m in fmt.pattern.finditer(text):
                if fmt.word_start and m.start() > 0 and text[m.start() - 1] in _ALNUM:
                    continue
                start, end = m.span(fmt.group)
                if start < end and not (fmt.name == "url-credentials" and _PORT.match(m.group(fmt.group))):
                    yield start, end, fmt.replacement
        yield from _named_values(text)


def _named_values(text: str) -> Iterator[Span]:
    pos = 0
    while m := _PAIR.search(text, pos):
        group = "qval" if m.group("q") else "val"
        if m.group(group) and is_secret(m.group("name"), m.group(group)):
            yield m.start(group), m.end(group), REDACTED
            pos = m.end()
        elif _names_a_pair(text, m, group):  # `Root cause: DB_PASSWORD=…`
            pos = m.start(group)
        else:
            pos = m.end()
    for m in _FLAG.finditer(text):
        name = m.group("name")
        if m.start() > 0 and (text[m.start() - 1] in _ALNUM or text[m.start() - 1] in "_-"):
            continue
        if _SECRET_NAME.search(name) and not _TOKENIZER_NAME.search(name) and not _NOT_A_SECRET.fullmatch(m["val"]):
            yield m.start("val"), m.end("val"), REDACTED


def _names_a_pair(text: str, m: re.Match[str], group: str) -> bool:
    """Whether a pair's value is itself the name of the next pair."""
    value = m.group(group)
    return bool(value) and ("=" in value or ":" in value or bool(_SEPARATOR.match(text, m.end())))


def is_secret(name: str, value: str) -> bool:
    """Whether `value`, found under `name`, is a secret (a token format is caught anyway)."""
    if _NOT_A_SECRET.fullmatch(value) or _TOKENIZER_NAME.search(name):
        return False
    if _SECRET_NAME.search(name):
        return True
    if name.lower() == "key":  # `wandb.login(key=…)`, but not `sorted(x, key=len)`
        return bool(_TOKENISH.match(value))
    return bool(_KEY_NAME.search(name)) and _looks_random(value)


def _looks_random(value: str) -> bool:
    """A long run of mixed letters and digits that is not a hex hash: a key, not a dataset name."""
    for run in _SEGMENT.findall(value):
        if _HEX.fullmatch(run):
            continue
        mixed_case = any(c.islower() for c in run) and any(c.isupper() for c in run)
        has_digit = any(c.isdigit() for c in run)
        if (mixed_case and has_digit) or (len(run) >= 20 and (mixed_case or has_digit)):
            return True
    return False


class _Positions:
    """Where each character of a view is in the text it was read from: runs of characters that
    are contiguous in both, looked up by bisection (a list per character would cost 1 MB per MB)."""

    def __init__(self) -> None:
        self.view: list[int] = []  # where each run starts in the view
        self.text: list[int] = []  # ... and in the text

    def add(self, view_at: int, text_at: int) -> None:
        self.view.append(view_at)
        self.text.append(text_at)

    def __getitem__(self, k: int) -> int:
        run = bisect.bisect_right(self.view, k) - 1
        return self.text[run] + (k - self.view[run])


def _readable(text: str) -> tuple[str, _Positions | None]:
    """`text` as a reader sees it (markdown and string escapes read, zero-width spaces dropped),
    and where each of its characters is in `text` (None: the same place)."""
    if "\\" not in text and _ZWSP not in text:
        return text, None
    pieces: list[str] = []
    where = _Positions()
    length = done = 0
    for m in _READ_THROUGH.finditer(text):
        if m.start() > done:
            where.add(length, done)
            pieces.append(text[done : m.start()])
            length += m.start() - done
        if m.group(1) is not None or m.group(2) is not None:  # `\_` reads `_`, `\n` a newline
            where.add(length, m.start() + 1)
            pieces.append(m.group(1) if m.group(1) is not None else _STRING_ESCAPES[m.group(2)])
            length += 1
        done = m.end()
    if done < len(text):
        where.add(length, done)
        pieces.append(text[done:])
    return "".join(pieces), where


def _merge(spans: Iterable[Span]) -> list[Span]:
    """Overlapping spans as one; a private key keeps its own label."""
    merged: list[Span] = []
    for start, end, label in sorted(spans):
        if merged and start < merged[-1][1]:
            last = merged[-1]
            merged[-1] = (last[0], max(last[1], end), REDACTED_KEY if REDACTED_KEY in (last[2], label) else last[2])
        else:
            merged.append((start, end, label))
    return merged


def _replace(text: str, spans: list[Span], where: _Positions | None) -> str:
    out: list[str] = []
    done = 0
    for start, end, label in spans:
        if where is not None:
            start, end = _escape_start(text, where, start), where[end - 1] + 1
        out += [text[done:start], label]
        done = end
    out.append(text[done:])
    return "".join(out)


def _escape_start(text: str, where: _Positions, start: int) -> int:
    """Where the span starting at view position `start` starts in `text`: an escaping backslash
    just before it goes with it (a literal one, itself escaped, stays)."""
    at = where[start]
    escaped = at > 0 and text[at - 1] == "\\" and (start == 0 or where[start - 1] != at - 1)
    return at - 1 if escaped else at


# -- the functional forms, for code that has no Redactor at hand ------------------------------


def redact(text: str, extra_secrets: Iterable[str] = ()) -> str:
    """`text` with known secret shapes, secret-named values and `extra_secrets` replaced."""
    return Redactor(extra_secrets).text(text)


def redact_lines(lines: Iterable[str], extra_secrets: Iterable[str] = ()) -> list[str]:
    """Redact a list of lines together, so a multi-line PEM block is caught whole."""
    return Redactor(extra_secrets).lines(lines)


def redact_value(value: Any, extra_secrets: Iterable[str] = ()) -> Any:
    """Decoded JSON with every string redacted and secret-named keys' values replaced."""
    return Redactor(extra_secrets).value(value)


# -- logs ---------------------------------------------------------------------------------------


class RedactingFilter(logging.Filter):
    """Redacts a record's message (its args merged in), traceback and stack in place."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # bad %-args: keep what there is, redacted
            message = f"{record.msg} {record.args!r}"
        record.msg, record.args = self.redactor.text(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redactor.text(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redactor.text(record.stack_info)
        return True


class _RedactingRecordFactory:
    """Makes every record through `base`, then redacts it: all loggers and handlers, including
    handlers configured later (the server's `basicConfig`) and logging's last resort."""

    def __init__(self, base: Callable[..., logging.LogRecord], redaction: RedactingFilter) -> None:
        self.base = base
        self.redaction = redaction

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.base(*args, **kwargs)
        self.redaction.filter(record)
        return record


@contextmanager
def redacted_logs(redactor: Redactor) -> Iterator[RedactingFilter]:
    """Every log record made inside the block is redacted; the process's logging is restored after."""
    previous = logging.getLogRecordFactory()
    base = previous.base if isinstance(previous, _RedactingRecordFactory) else previous
    redaction = RedactingFilter(redactor)
    logging.setLogRecordFactory(_RedactingRecordFactory(base, redaction))
    try:
        yield redaction
    finally:
        logging.setLogRecordFactory(previous)


# -- masking in error text --------------------------------------------------------------------

# `scheme://userinfo@`: the credentials part of a URL (a password may hold `/`, `@`, `:`).
_USERINFO = re.compile(
    r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?:[^\s:/@]*:(?P<pw>[^\s\"'<>`]{1,256})|[^/@\s]+)@(?=" + _URL_HOST + ")"
)


def mask(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with each of the known `secrets` replaced by `***`; nothing else changes."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text


def strip_credentials(text: str, secrets: Iterable[str] = ()) -> str:
    """`https://user:token@host` → `https://host`, and any known secret value → `***`."""
    return mask(_USERINFO.sub(_without_userinfo, text), secrets)


def _without_userinfo(m: re.Match[str]) -> str:
    pw = m.group("pw")
    return m.group(0) if pw and _PORT.match(pw) else m.group(1)
