"""The PR comment as a terminal shows it: no markers, escapes or markup; the comment unchanged."""

from __future__ import annotations

from bot.cli.markdown import inline, to_terminal
from bot.diagnosis.model import Diagnosis
from bot.fixers.model import FixProposal
from bot.loop import report

DIAGNOSIS = Diagnosis(
    category="nan_loss",
    retryable=False,
    summary="Loss is inf at step 91 with learning_rate 25, @alice <b>",
    evidence=["FloatingPointError: Loss is inf at step 91"],
    location={"file": "src/train.py", "line": 27, "function": "train"},
)
PROPOSAL = FixProposal(fixer="rule:lower-lr", description="lower learning_rate from 25 to 2.5", root_cause="too high")


def _fix_comment() -> str:
    return report.fix_body(
        proposal=PROPOSAL,
        diagnosis=DIAGNOSIS,
        next_step="Re-launching job.",
        diff="--- a/src/config.py\n+++ b/src/config.py\n@@ -1 +1 @@\n-lr = 25\n+lr = 2.5\n",
        log=[],
        attempt=1,
        max_attempts=3,
        failed_run={"id": "abc123", "url": None},
        commit="0123456789abcdef",
        new_run={"id": "def456", "url": "https://wandb.ai/t/p/runs/def456"},
    )


def test_a_fix_comment_reads_as_plain_text():
    comment = _fix_comment()
    text = to_terminal(comment)
    for syntax in ("<!--", "<details", "<summary>", "</details>", "```", "\\_", "**", "|---|", "`"):
        assert syntax not in text, syntax
    lines = text.splitlines()
    assert lines[0] == "Fix applied: lower learning_rate from 25 to 2.5"
    assert (
        "Diagnosis: nan_loss — Loss is inf at step 91 with learning_rate 25, @alice <b> (src/train.py:27 in train)"
        in lines
    )
    assert "Change:" in lines and "    +lr = 2.5" in lines
    assert "Key log lines:" in lines and "    FloatingPointError: Loss is inf at step 91" in lines
    assert "Attempt     1 of 3" in lines and "New run     def456 (https://wandb.ai/t/p/runs/def456)" in lines
    assert comment == _fix_comment(), "the PR comment itself is unchanged"
    assert comment.startswith(report.MARKER) and "learning\\_rate" in comment


def test_inline_markup_and_escapes():
    assert inline(r"a \*b\* \`c\` \| d") == "a *b* `c` | d"
    assert inline("`` a`b ``, **bold**, [`run`](https://x/y)") == "a`b, bold, run (https://x/y)"
    assert inline("`\\_keep\\_`") == "\\_keep\\_", "code spans are shown as written"
    assert inline("@\u200bbob") == "@bob"


def test_a_table_with_pipes_in_code_and_escapes_stays_aligned():
    text = to_terminal("| | |\n|---|---|\n| Fixer | `a|b` |\n| Reason | x \\| y |\n")
    assert text.splitlines() == ["Fixer   a|b", "Reason  x | y"]


def test_the_nothing_to_fix_and_gave_up_comments():
    assert to_terminal(report.none_body(branch="exp-a", run={"id": "r1", "state": "finished"})) == (
        "Nothing to fix: the latest run of exp-a (r1) is finished.\n"
    )
    text = to_terminal(
        report.gave_up_body(
            reason="no rule fixes `code_error`",
            diagnosis=DIAGNOSIS.to_json(),
            attempts=[{"number": 1, "category": "code_error", "failed_run": "r1", "fixer": None, "commit": None}],
        )
    )
    # The reason's backticks were escaped to show as written on GitHub: so they show here too.
    assert text.startswith("Gave up: no rule fixes `code_error`\n")
    assert "- attempt 1: code_error in run r1 → no fix" in text
