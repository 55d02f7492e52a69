"""What the PR comment does with untrusted text: no mentions, HTML, links or broken code blocks."""

from __future__ import annotations

from bot.diagnosis.model import Diagnosis
from bot.fixers.model import FixProposal
from bot.loop import report


def test_inline_text_cannot_mention_link_or_render_html():
    text = report.inline("KeyError: 'missing @octocat <img src=x onerror=y> [click](https://evil)'")
    assert "@octocat" not in text and "@\u200boctocat" in text
    assert "\\<img" in text and "<img" not in text.replace("\\<", "")
    assert "[click]" not in text and "\\[click\\]" in text


def test_code_spans_and_blocks_outlast_the_backticks_inside():
    assert report.code("rule:lower-lr") == "`rule:lower-lr`"
    assert report.code("a`b") == "``a`b``"
    block = report.fenced("doc with ```` inside")
    assert block.startswith("`````\n") and block.endswith("\n`````")


def test_a_fix_body_escapes_what_came_from_the_log_and_the_model():
    diagnosis = Diagnosis(
        category="code_error",
        retryable=False,
        summary="ValueError: ping @team <b>now</b>",
        evidence=["ValueError: ping @team", "```"],
    )
    proposal = FixProposal(fixer="llm:model", description="use [the row count](https://x)", root_cause="@admin said so")
    body = report.fix_body(
        proposal=proposal,
        diagnosis=diagnosis,
        next_step="Re-launching job.",
        diff="+ x = 1\n```\n",
        log=[],
        attempt=1,
        max_attempts=3,
        failed_run={"id": "r-1", "state": "failed", "steps": 3, "url": None},
        commit="abc1234567",
        new_run=None,
    )
    assert body.startswith(report.MARKER + "\n**Fix applied:** use \\[the row count\\]")
    prose = body.split("<details")[0]  # log lines and diffs sit in code blocks, inert
    assert "@team" not in prose and "@admin" not in prose and "<b>" not in prose
    assert "````diff\n" in body, "the diff's fence is longer than the backticks inside it"
    assert "| Fixer | `llm:model` |" in body
