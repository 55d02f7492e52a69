"""Reading the repo config's YAML with the line of every key, and saying what is wrong with it:
every problem at once, each with the file, the line, the key path and, for an unknown key,
the known key it most looks like.

The YAML comes from a branch anyone with push access can write, so reading it is bounded:
a document over `MAX_BYTES`, nested deeper than `MAX_DEPTH` or expanding (through aliases)
past `MAX_NODES` values is a problem to report, never a crash.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from bot.core.errors import BadInput

MAX_BYTES = 256 * 1024  # a real config is a few hundred bytes; this bounds parse time and memory
MAX_DEPTH = 50
MAX_NODES = 10_000

_TOO_DEEP = f"is nested too deeply (more than {MAX_DEPTH} levels)"
# libyaml's loader where PyYAML was built with it (its wheels are): fast on a large file, and it
# refuses nesting past 1000 levels itself, where the pure-Python one would recurse.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class ConfigProblem:
    source: str
    path: str  # dotted key path, e.g. "launch.slurm.time" or "fix.allowed_paths[2]"; "" for the file
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        # A message that names its key itself (a nested key's, say) is not prefixed with it again.
        named = self.message.startswith(f"'{self.path}'") or self.message.startswith(f"'{self.path}.")
        return f"{where}: '{self.path}' {self.message}" if self.path and not named else f"{where}: {self.message}"


class ConfigError(BadInput):
    """A repo config that cannot be used; `problems` lists every problem found, in file order."""

    def __init__(self, problems: Sequence[ConfigProblem]):
        self.problems = sorted(problems, key=lambda p: (p.line or 0, p.path))
        super().__init__("\n".join(str(p) for p in self.problems))

    @classmethod
    def one(cls, source: str, path: str, message: str, line: int | None = None) -> ConfigError:
        return cls([ConfigProblem(source, path, message, line)])


@dataclass
class Document:
    """The YAML's value and the line each key path starts on."""

    source: str
    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)

    def line_of(self, path: Path_) -> int | None:
        for end in range(len(path), -1, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return None


def read_yaml(text: str, source: str) -> Document:
    """The document in `text` (None when empty), with its lines; ConfigError when it is not
    valid YAML or is too large or deep to be a config."""
    if len(text.encode("utf-8", "surrogateescape")) > MAX_BYTES:
        raise ConfigError.one(source, "", f"is over {MAX_BYTES // 1024} KiB; a repo config is a few lines")
    if not text.strip():
        return Document(source, None)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return Document(source, None)
        lines = _key_lines(node, source)
        data = loader.construct_document(node)
    except yaml.YAMLError as exc:
        if "nesting depth" in str(getattr(exc, "problem", "")):  # libyaml stops at 1000 levels
            raise ConfigError.one(source, "", _TOO_DEEP) from None
        raise ConfigError.one(source, "", f"not valid YAML{_where(exc)}") from None
    except RecursionError:  # the pure-Python composer recurses once per level
        raise ConfigError.one(source, "", _TOO_DEEP) from None
    finally:
        loader.dispose()
    return Document(source, data, lines)


def _key_lines(root: yaml.Node, source: str) -> dict[Path_, int]:
    """Walked without recursion, counting every value an alias repeats."""
    lines: dict[Path_, int] = {(): root.start_mark.line + 1}
    stack: list[tuple[Path_, yaml.Node]] = [((), root)]
    seen = 0
    while stack:
        path, node = stack.pop()
        seen += 1
        if seen > MAX_NODES:
            raise ConfigError.one(source, "", f"expands to more than {MAX_NODES} values; a repo config is a few lines")
        if len(path) > MAX_DEPTH:
            raise ConfigError.one(source, "", _TOO_DEEP)
        for key, child, line in _children(node):
            lines.setdefault((*path, key), line)
            stack.append(((*path, key), child))
    return lines


def _children(node: yaml.Node) -> Iterator[tuple[str | int, yaml.Node, int]]:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.start_mark)
            yield key, value_node, key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield index, item, item.start_mark.line + 1


def _where(exc: yaml.YAMLError) -> str:
    """Where the YAML is broken and why, without quoting the file (it may not be ours to show)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or "cannot be parsed"
    if mark is None:
        return f": {problem}"
    return f" at line {mark.line + 1}, column {mark.column + 1}: {problem}"


# -- pydantic's errors as the user's problems --------------------------------------------------

# What each kind of error says; `{…}` are filled from the error's context.
_TEXT = {
    "int_type": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "string_type": "a string",
    "bool_type": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "greater_than_equal": "at least {ge}",
    "greater_than": "more than {gt}",
    "finite_number": "a finite number",
    "literal_error": "one of {expected}",
    "string_too_short": "a non-empty string",
}


def problems_from(
    exc: ValidationError, document: Document, model: type[BaseModel], patterns: Mapping[str, str]
) -> list[ConfigProblem]:
    """One problem per key path: a union's alternatives are said together. `patterns` says in
    words what each string pattern of the model asks for."""
    problems: list[ConfigProblem] = []
    by_path: dict[Path_, list[str]] = {}
    values: dict[Path_, Any] = {}
    unknown: set[Path_] = set()
    for error in exc.errors(include_url=False):
        path, value = _in_document(error["loc"], document.data)
        if error["type"] == "extra_forbidden":
            unknown.add(path)
            continue
        if error["type"] == "value_error":  # a rule across keys: its own sentence
            message = str(error["msg"]).removeprefix("Value error, ")
            problems.append(ConfigProblem(document.source, _dotted(path), message, document.line_of(path)))
            continue
        by_path.setdefault(path, [])
        text = _expected(error, patterns)
        if text not in by_path[path]:
            by_path[path].append(text)
        values[path] = value
    problems += [_unknown(path, document, model) for path in sorted(unknown, key=str)]
    for path, texts in by_path.items():
        problems.append(
            ConfigProblem(document.source, _dotted(path), _value_message(texts, values[path]), document.line_of(path))
        )
    return problems


def _in_document(loc: tuple[Any, ...], data: Any) -> tuple[Path_, Any]:
    """The error's path in the user's document (a union's branch names dropped) and the value there."""
    path: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            if isinstance(node, dict) and isinstance(part, str) and not path_is_tag(part):
                path.append(part)  # a key the model wants and the document lacks
                node = None
            break
        path.append(part)
    return tuple(path), node


def path_is_tag(part: str) -> bool:
    """pydantic names a union's branches and validators in `loc` (`constrained-str`,
    `function-after[…]`); they are not keys of the file."""
    return "[" in part or part.startswith(("constrained-", "function-")) or part in ("int", "float", "str", "bool")


def _expected(error: Any, patterns: Mapping[str, str]) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "string_pattern_mismatch":
        return patterns.get(str(ctx.get("pattern")), f"a string matching {ctx.get('pattern')}")
    text = _TEXT.get(kind)
    if text is None:
        return str(error["msg"]).lower()
    return text.format(**{k: _number(v) for k, v in ctx.items()})


def _number(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _value_message(texts: list[str], value: Any) -> str:
    if value is None and all(not t.startswith(("at least", "more than", "one of")) for t in texts):
        return "must not be empty"
    return f"must be {' or '.join(texts)}, got {_describe(value)}"


def _describe(value: Any) -> str:
    text = repr(value)
    text = text if len(text) <= 60 else text[:57] + "..."
    return f"{type(value).__name__} {text}"


def _unknown(path: Path_, document: Document, model: type[BaseModel]) -> ConfigProblem:
    known = _known_keys(model, path[:-1])
    key = str(path[-1])
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f" (did you mean '{_dotted((*path[:-1], close[0]))}'?)" if close else f" (known: {', '.join(known)})"
    return ConfigProblem(document.source, _dotted(path), f"is not a known key{hint}", document.line_of(path))


def _known_keys(model: type[BaseModel], path: Path_) -> list[str]:
    current: Any = model
    for part in path:
        fields = getattr(current, "model_fields", {})
        if part not in fields:
            return []
        current = fields[part].annotation
    return list(getattr(current, "model_fields", {}))


def _dotted(path: Path_) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
