"""The PR comment's markdown as plain text for a terminal.

The comment (`bot.loop.report`) is GitHub markdown: a hidden `<!-- … -->` marker, `<details>`
blocks, fenced code, a two-column table, inline code and links, and untrusted text escaped
(`learning\\_rate`). A terminal shows none of that syntax: markers go, a details block becomes
its title and its content, code blocks are indented, the table is aligned, escapes are undone.
The comment itself (posted on the PR, and in `fix --json`) is never changed.
"""

from __future__ import annotations

import re

_COMMENT = re.compile(r"^\s*<!--.*-->\s*$")
_DETAILS = re.compile(r"^\s*<details[^>]*>\s*<summary>(.*?)</summary>\s*$")
_END_DETAILS = re.compile(r"^\s*</details>\s*$")
_FENCE = re.compile(r"^(`{3,}|~{3,})[^`]*$")
_TABLE_RULE = re.compile(r"^\|?(\s*:?-+:?\s*\|)+\s*:?-*:?\s*\|?$")
_CODE_SPAN = re.compile(r"(?<!\\)(`+)(.+?)(?<!`)\1(?!`)", re.S)
_LINK = re.compile(r"(?<!\\)\[((?:[^\]\\]|\\.)*)\]\(([^)\s]+)\)")
_ESCAPED = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|<>~])")
_STRONG = re.compile(r"\*\*(.+?)\*\*")
CODE_INDENT = "    "


def to_terminal(markdown: str) -> str:
    """`markdown` as a terminal shows it best: no markers, escapes or markup left."""
    out: list[str] = []
    table: list[str] = []
    fence: str | None = None
    for line in markdown.splitlines():
        if fence is not None:
            if line.strip() == fence:
                fence = None
            else:
                out.append(CODE_INDENT + line)
            continue
        if line.startswith("|"):
            table.append(line)
            continue
        out += _table(table)
        table = []
        if (opened := _FENCE.match(line)) is not None:
            fence = opened.group(1)
        elif (details := _DETAILS.match(line)) is not None:
            out.append(inline(details.group(1)) + ":")
        elif not (_COMMENT.match(line) or _END_DETAILS.match(line)):
            out.append(inline(line))
    out += _table(table)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip() + "\n"


def inline(text: str) -> str:
    """One line of markdown as plain text: code spans as their content, links as
    `label (url)`, emphasis and escapes undone."""
    text = _LINK.sub(lambda m: f"{m.group(1)} ({m.group(2)})", text)
    parts = []
    position = 0
    for span in _CODE_SPAN.finditer(text):
        parts.append(_plain(text[position : span.start()]))
        parts.append(_code(span.group(2)))
        position = span.end()
    parts.append(_plain(text[position:]))
    return "".join(parts).replace("\u200b", "")


def _plain(text: str) -> str:
    return _ESCAPED.sub(r"\1", _STRONG.sub(r"\1", text))


def _code(content: str) -> str:
    if len(content) > 1 and content.startswith(" ") and content.endswith(" ") and content.strip():
        return content[1:-1]
    return content


def _table(lines: list[str]) -> list[str]:
    """A markdown table as aligned columns, its rule and empty header rows dropped."""
    rows = [[inline(cell) for cell in _cells(line)] for line in lines if not _TABLE_RULE.match(line)]
    rows = [row for row in rows if any(cell.strip() for cell in row)]
    if not rows:
        return []
    widths = [max(len(row[i]) for row in rows if i < len(row)) for i in range(max(map(len, rows)))]
    return ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]


def _cells(line: str) -> list[str]:
    """The cells of a table row, split at pipes that are neither escaped nor in code."""
    cells, cell, ticks, i = [], "", 0, 0
    body = line.strip().removeprefix("|").removesuffix("|") if not line.strip().endswith("\\|") else line.strip()[1:]
    while i < len(body):
        char = body[i]
        if char == "\\" and i + 1 < len(body):
            cell += body[i : i + 2]
            i += 2
            continue
        if char == "`":
            run = len(body[i:]) - len(body[i:].lstrip("`"))
            ticks = 0 if ticks == run else (run if ticks == 0 else ticks)
            cell += body[i : i + run]
            i += run
            continue
        if char == "|" and ticks == 0:
            cells.append(cell.strip())
            cell = ""
        else:
            cell += char
        i += 1
    cells.append(cell.strip())
    return cells
