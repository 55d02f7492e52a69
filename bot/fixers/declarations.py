"""Where a Python config style declares its keys: argparse `add_argument` calls, dataclass fields
(tyro, simple_parsing, HfArgumentParser), and module-level globals (nanoGPT-style globals that an
exec'd config file and `--key=value` flags override). Used to add a missing key in the style the
repo already uses, to rename an unknown key to an existing one, and to map a flag to its key.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

from bot.fixers.text import end_of

# A config file exec'd into the module's globals, nanoGPT's configurator pattern.
_EXEC_CONFIG = re.compile(r"exec\(\s*open\(|globals\(\)\s*\[|config_keys\s*=")


@dataclass
class Argument:
    """One `add_argument(...)` call."""

    options: list[str]  # "--learning-rate", "-l"
    dest: str  # "learning_rate"
    holder: str  # the object called: "parser", "group"
    line: int  # first line of the statement (1-based)
    end_line: int  # its last line
    has_default: bool
    action: str | None = None
    help: str = ""  # its help text, when a plain string
    kind: str | None = None  # "int" | "float" | "str" | "bool": its type=, action or default says


@dataclass
class Field:
    name: str
    line: int
    end_line: int  # the field's last line, its docstring included
    annotation: str


@dataclass
class DataClass:
    name: str
    line: int
    fields: list[Field] = field(default_factory=list)
    indent: str = "    "


@dataclass
class Global:
    name: str
    line: int
    end_line: int
    kind: str = ""  # the type of its literal value: "float", "int", "str", "bool"…


def arguments(text: str) -> list[Argument]:
    """The `add_argument` calls of a module, in source order, each a statement of its own."""
    tree = _parse(text)
    if tree is None:
        return []
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)):
            continue
        call = node.value
        func = call.func
        if not (isinstance(func, ast.Attribute) and func.attr == "add_argument"):
            continue
        options = [a.value for a in call.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        if not options:
            continue
        keywords = {kw.arg: kw.value for kw in call.keywords if kw.arg}
        dest = _constant(keywords.get("dest")) or _dest(options)
        found.append(
            Argument(
                options=options,
                dest=dest,
                holder=ast.unparse(func.value),
                line=node.lineno,
                end_line=end_of(node.value)[0],
                has_default="default" in keywords,
                action=_constant(keywords.get("action")),
                help=_constant(keywords.get("help")) or "",
                kind=_argument_kind(keywords),
            )
        )
    return sorted(found, key=lambda a: a.line)


def _argument_kind(keywords: dict[str, ast.expr]) -> str | None:
    """The value type an `add_argument` call declares: its `type=`, a store_true/false action,
    else its default's type."""
    kind, action, default = keywords.get("type"), keywords.get("action"), keywords.get("default")
    if isinstance(kind, ast.Name) and kind.id in ("int", "float", "str"):
        return kind.id
    if _constant(action) in ("store_true", "store_false"):
        return "bool"
    if kind is None and isinstance(default, ast.Constant) and default.value is not None:
        return type(default.value).__name__
    return None


def dest_of(options: list[str]) -> str:
    return _dest(options)


def _dest(options: list[str]) -> str:
    long = next((o for o in options if o.startswith("--")), None)
    chosen = long or options[0]
    return chosen.lstrip("-").replace("-", "_")


def dataclasses(text: str) -> list[DataClass]:
    """Module-level classes decorated with `@dataclass` (or `@dataclasses.dataclass(...)`)."""
    tree = _parse(text)
    if tree is None:
        return []
    lines = text.split("\n")
    found = []
    for node in tree.body:
        if not isinstance(node, ast.ClassDef) or not any(_is_dataclass(d) for d in node.decorator_list):
            continue
        cls = DataClass(node.name, node.lineno)
        body = node.body
        for i, statement in enumerate(body):
            if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
                end = end_of(statement.value)[0] if statement.value else statement.lineno
                following = body[i + 1] if i + 1 < len(body) else None
                if _is_docstring(following):
                    end = end_of(following.value)[0]  # type: ignore[union-attr]
                cls.fields.append(Field(statement.target.id, statement.lineno, end, ast.unparse(statement.annotation)))
        if cls.fields:
            first = lines[cls.fields[0].line - 1]
            cls.indent = first[: len(first) - len(first.lstrip())]
        found.append(cls)
    return found


def _is_dataclass(decorator: ast.expr) -> bool:
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
    return name in ("dataclass", "define", "frozen")


def _is_docstring(node: ast.stmt | None) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def config_globals(text: str) -> list[Global]:
    """Module-level `name = <literal>` assignments of a module that lets a config file or flags
    override its globals (nanoGPT's `exec(open('configurator.py').read())`); [] otherwise.

    Only those before the override (or the `config_keys` snapshot of them): the loop's own state
    set after it (`iter_num = 0`, `best_val_loss = 1e9`) is not config, and a key declared
    among it could be neither overridden nor logged."""
    if not _EXEC_CONFIG.search(text):
        return []
    tree = _parse(text)
    if tree is None:
        return []
    found = []
    for node in tree.body:
        if _overrides_globals(text, node):
            break
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            if (value := _literal(node.value)) is not _NOT_LITERAL:
                found.append(Global(node.targets[0].id, node.lineno, end_of(node.value)[0], type(value).__name__))
    return found


def _overrides_globals(text: str, node: ast.stmt) -> bool:
    """A statement that runs the override (a definition that only mentions it does not)."""
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return False
    return bool(_EXEC_CONFIG.search(ast.get_source_segment(text, node) or ""))


_NOT_LITERAL = object()


def _literal(node: ast.expr) -> object:
    try:
        return ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError):
        return _NOT_LITERAL


def _constant(node: ast.expr | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _parse(text: str) -> ast.Module | None:
    try:
        return ast.parse(text)
    except SyntaxError:
        return None


@dataclass
class Section:
    """The keys a script sets by attribute in one section of a config object (minGPT's CfgNode:
    `C.trainer.learning_rate = 5e-4` sets `learning_rate` of section `trainer`), and the
    `Class.method()` calls that build the section's defaults (`C.trainer = Trainer.get_default_config()`)."""

    keys: list[str] = field(default_factory=list)
    builders: list[tuple[str, str]] = field(default_factory=list)


def attribute_section(text: str, section: list[str]) -> Section:
    found = Section()
    for node in ast.walk(_parse(text) or ast.Module(body=[], type_ignores=[])):
        if not isinstance(node, ast.Assign):
            continue
        for target in node.targets:
            chain = _attribute_chain(target)
            if chain[1:-1] == section and chain[-1] not in found.keys:
                found.keys.append(chain[-1])
            if chain[1:] == section and (builder := _class_call(node.value)):
                found.builders.append(builder)
    return found


def built_keys(text: str, builder: tuple[str, str]) -> list[str]:
    """The keys `Class.method()` sets on the config object it builds (`C.batch_size = 64`)."""
    cls_name, method = builder
    keys: list[str] = []
    for cls in ast.walk(_parse(text) or ast.Module(body=[], type_ignores=[])):
        if not isinstance(cls, ast.ClassDef) or cls.name != cls_name:
            continue
        for fn in cls.body:
            if isinstance(fn, ast.FunctionDef) and fn.name == method:
                keys += [
                    c[1]
                    for n in ast.walk(fn)
                    if isinstance(n, ast.Assign)
                    for c in map(_attribute_chain, n.targets)
                    if len(c) == 2 and c[1] not in keys
                ]
    return keys


def _attribute_chain(node: ast.expr) -> list[str]:
    """`C.trainer.lr` → ['C', 'trainer', 'lr']; [] for anything but a name's attributes."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return [node.id, *reversed(parts)] if isinstance(node, ast.Name) and parts else []


def _class_call(node: ast.expr) -> tuple[str, str] | None:
    """`Trainer.get_default_config()` → ('Trainer', 'get_default_config')."""
    if not isinstance(node, ast.Call) or node.args or node.keywords:
        return None
    chain = _attribute_chain(node.func)
    return (chain[0], chain[1]) if len(chain) == 2 else None
