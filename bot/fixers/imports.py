"""What an import failure names: the missing module, or the name missing from a module."""

from __future__ import annotations

import ast
import difflib
import re
from dataclasses import dataclass
from pathlib import Path

from bot.diagnosis.model import Diagnosis
from bot.fixers.text import failure_texts, repo_files

_NO_MODULE = re.compile(r"No module named ['\"]([\w.]+)['\"]")
_NO_NAME = re.compile(r"cannot import name ['\"](\w+)['\"] from ['\"]([\w.]+)['\"]")


@dataclass
class MissingImport:
    module: str  # "src.modles", or the module the name was imported from
    name: str | None  # "Nett" for "cannot import name 'Nett' from 'src.model'"
    line: str  # the message line it came from, for the evidence


def missing_import(diagnosis: Diagnosis) -> MissingImport | None:
    """The module (or module + name) that an ImportError/ModuleNotFoundError could not find."""
    for text in failure_texts(diagnosis):
        found = _NO_MODULE.search(text)
        if found:
            return MissingImport(found.group(1), None, text.strip())
        found = _NO_NAME.search(text)
        if found:
            return MissingImport(found.group(2), found.group(1), text.strip())
    return None


CUTOFF = 0.8  # difflib ratio: "modles"/"models" 0.83, "Nett"/"Net" 0.86, "einops"/"einops_utils" 0.67


def local_package_dir(root: Path, top: str, beside: str | None = None) -> Path | None:
    """The folder holding the repo's own top-level module `top`, or one closely named (a typo):
    next to the failing file `beside`, the repo root, or src/."""
    bases = [Path(root) / beside] if beside else []
    bases = [b.parent for b in bases] + [Path(root), Path(root) / "src"]
    for base in bases:
        if top in modules_in(base):
            return base
    for base in bases:
        if difflib.get_close_matches(top, modules_in(base), n=1, cutoff=CUTOFF):
            return base
    return None


def modules_in(folder: Path) -> list[str]:
    """Names importable from `folder`: its .py files and its folders that hold .py files."""
    if not folder.is_dir():
        return []
    files = [p.stem for p in folder.glob("*.py") if p.stem != "__init__"]
    packages = [p.name for p in folder.iterdir() if p.is_dir() and any(p.glob("*.py"))]
    return sorted(files + packages)


def repo_defines(root: Path, top: str) -> bool:
    """Whether any folder of the repo has a module or package named `top`."""
    for rel in repo_files(root, (".py",)):
        parts = rel.split("/")
        if parts[-1] == f"{top}.py" or top in parts[:-1]:
            return True
    return False


def defined_names(text: str) -> list[str]:
    """The names a module's source defines or imports at its top level."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return []
    names = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names += [t.id for t in targets if isinstance(t, ast.Name)]
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names += [(a.asname or a.name).split(".")[0] for a in node.names]
    return names
