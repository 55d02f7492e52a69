"""The branch's docs page: the fix log the bot keeps in `docs/<branch>.md`."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from bot.core.errors import BadInput
from bot.core.secrets import Redactor
from bot.repo.branch_doc import FixEntry, add_fix_entry, doc_path

ENTRY = FixEntry(
    attempt=2,
    category="nan_loss",
    summary="Loss is NaN\nat step 131",
    root_cause="learning rate 10 is too high",
    fixer="rule:lower-lr",
    files=["src/config.py"],
    run_id="abc123",
    when=datetime(2025, 3, 4, 5, 6, tzinfo=timezone.utc),
)


def test_branch_doc_is_created_with_title_and_section(tmp_path):
    rel = add_fix_entry(tmp_path, "team/exp-b", ENTRY, Redactor())
    assert rel == doc_path("team/exp-b") == "docs/team-exp-b.md"
    text = (tmp_path / rel).read_text()
    assert text.startswith("# team/exp-b\n\n## Fixes\n\n### 2025-03-04 05:06 UTC — attempt 2\n")
    assert "- **Failed:** `nan_loss` — Loss is NaN at step 131\n" in text
    assert "- **Root cause:** learning rate 10 is too high\n" in text
    assert "- **Changed:** `src/config.py` (rule:lower-lr)\n" in text
    assert text.endswith("- **Failed run:** `abc123`\n")


def test_branch_doc_entry_keeps_the_rest_of_the_file(tmp_path):
    original = (
        "# exp-a\r\n\r\nWhy: test a high lr.\r\n\r\n## Fixes\r\n\r\n### old entry\r\n\r\n"
        "## Results\r\n\r\n```\r\n## Fixes\r\n```\r\nno trailing newline"
    )
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs/exp-a.md").write_bytes(original.encode())
    add_fix_entry(tmp_path, "exp-a", ENTRY, Redactor())
    add_fix_entry(tmp_path, "exp-a", ENTRY, Redactor())
    text = (tmp_path / "docs/exp-a.md").read_bytes().decode()
    head, rest = text.split("### old entry\r\n\r\n", 1)
    assert head == "# exp-a\r\n\r\nWhy: test a high lr.\r\n\r\n## Fixes\r\n\r\n"
    assert rest.count("### 2025-03-04 05:06 UTC — attempt 2\r\n") == 2 and "\n" not in rest.replace("\r\n", "")
    assert rest.endswith("\r\n## Results\r\n\r\n```\r\n## Fixes\r\n```\r\nno trailing newline")
    assert rest.index("attempt 2") < rest.index("## Results")


def test_branch_doc_refuses_a_page_that_links_out_of_the_worktree(tmp_path):
    outside = tmp_path / "outside.md"
    outside.write_text("secret\n")
    (tmp_path / "wt/docs").mkdir(parents=True)
    (tmp_path / "wt/docs/exp-a.md").symlink_to(outside)
    with pytest.raises(BadInput):
        add_fix_entry(tmp_path / "wt", "exp-a", ENTRY, Redactor())
    assert outside.read_text() == "secret\n"


def test_branch_doc_section_added_at_the_end_when_missing(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs/exp-a.md").write_text("# exp-a\n\nNotes without newline")
    add_fix_entry(tmp_path, "exp-a", ENTRY, Redactor())
    text = (tmp_path / "docs/exp-a.md").read_text()
    assert text.startswith("# exp-a\n\nNotes without newline\n\n## Fixes\n\n### 2025")


def test_the_teams_nested_page_of_a_branch_is_used_when_it_exists(tmp_path):
    (tmp_path / "docs" / "exp").mkdir(parents=True)
    (tmp_path / "docs" / "exp" / "warmup.md").write_text("# Warmup\n\nWhy: warm up.\n")

    rel = add_fix_entry(tmp_path, "exp/warmup", ENTRY, Redactor())

    assert rel == doc_path("exp/warmup", tmp_path) == "docs/exp/warmup.md"
    assert (tmp_path / rel).read_text().startswith("# Warmup\n\nWhy: warm up.\n\n## Fixes\n")
    assert not (tmp_path / "docs" / "exp-warmup.md").exists()


def test_the_flat_page_wins_when_both_exist_and_is_the_default(tmp_path):
    assert doc_path("exp/warmup", tmp_path) == "docs/exp-warmup.md"
    (tmp_path / "docs" / "exp").mkdir(parents=True)
    (tmp_path / "docs" / "exp" / "warmup.md").write_text("nested\n")
    (tmp_path / "docs" / "exp-warmup.md").write_text("flat\n")
    assert doc_path("exp/warmup", tmp_path) == "docs/exp-warmup.md"
