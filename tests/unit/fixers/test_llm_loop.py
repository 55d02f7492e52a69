"""The LLM conversation beyond one proposal: look-up rounds and their limits, the answers other
than a patch, tokens and cost per round, and what is marked for the cache. Through the real
client against the local Messages API."""

from __future__ import annotations

import json

import pytest

from bot.fixers.llm.client import GaveUp, Limits, NoSafeFix, RelaunchAdvised, fix_with_llm, propose_llm_fix
from bot.runs.model import RunInfo
from tests.support.fake_anthropic import tool_answer
from tests.unit.fixers.test_llm import GOOD_FIX, context, fake, repo, settings, user_text

__all__ = ["fake", "repo", "settings"]  # fixtures shared with test_llm

pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")

USAGE = {"input_tokens": 1000, "output_tokens": 100, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}


def read(path: str, start: int = 1, end: int = 20):
    return tool_answer({"path": path, "start": start, "end": end}, name="read_file", usage=USAGE)


def results_of(body: dict) -> list[dict]:
    return [b for b in body["messages"][-1]["content"] if b.get("type") == "tool_result"]


def test_look_ups_are_answered_then_the_patch_applied(repo, fake, settings):
    fake.script(
        read("src/config.py"),
        tool_answer({"pattern": "lr", "glob": "**/*.py"}, name="grep", usage=USAGE),
        tool_answer(GOOD_FIX, usage=USAGE),
    )
    proposal = fix_with_llm(context(repo), settings)
    assert '"lr": 0.25,' in (repo / "src/config.py").read_text()
    first, second = results_of(fake.bodies[1])[0], results_of(fake.bodies[2])[0]
    assert '     2\t    "lr": 25.0,  # learning rate' in first["content"][0]["text"]
    assert "src/config.py:2:" in second["content"][0]["text"]
    rounds = [e for e in proposal.evidence if e.startswith("round ")]
    assert rounds == [
        "round 1 (look-up: read_file src/config.py): 1000 in, 0 cache write, 0 cache read, 100 out, $0.0045",
        "round 2 (look-up: grep lr): 1000 in, 0 cache write, 0 cache read, 100 out, $0.0045",
        "round 3 (answer: propose_fix): 1000 in, 0 cache write, 0 cache read, 100 out, $0.0045",
    ]
    assert proposal.tokens == {"input": 3000, "output": 300, "cache_read": 0, "cache_write": 0, "requests": 3}
    assert proposal.cost_usd == pytest.approx(3 * 0.0045)


def test_only_the_fixed_prefix_is_cached_until_the_conversation_goes_on(repo, fake, settings):
    fake.script(read("src/config.py"), tool_answer(GOOD_FIX))
    fix_with_llm(context(repo), settings)
    first, second = fake.bodies
    assert "cache_control" not in json.dumps(first["messages"])
    assert first["tools"][-1]["cache_control"] and first["system"][-1]["cache_control"]
    marked = [b for m in second["messages"] for b in m["content"] if "cache_control" in b]
    assert marked == [second["messages"][-1]["content"][-1]], "only the newest turn carries the marker"
    # the fake reports the fixed prefix written once, then read
    assert fake.bodies[0]["tools"] == fake.bodies[1]["tools"]


def test_look_up_rounds_are_limited_then_an_answer_is_required(repo, fake, settings):
    fake.script(*[read("src/train.py") for _ in range(3)], tool_answer(GOOD_FIX))
    fix_with_llm(context(repo), settings, limits=Limits(lookup_rounds=2))
    last = results_of(fake.bodies[3])[0]
    assert last["is_error"] and "No more look-ups" in last["content"][0]["text"]
    assert len(fake.bodies) == 4


def test_a_model_that_keeps_looking_gives_up_with_its_cost(repo, fake, settings):
    fake.always(read("src/train.py"))
    with pytest.raises(GaveUp, match="kept looking things up past the limit") as err:
        fix_with_llm(context(repo), settings, limits=Limits(lookup_rounds=2))
    assert len(fake.bodies) == 4 and err.value.cost_usd > 0
    assert (repo / "src/config.py").read_text().count("25.0") == 1, "nothing applied"


def test_look_up_characters_are_limited(repo, fake, settings):
    fake.script(read("src/train.py", 1, 500), read("src/config.py"), tool_answer(GOOD_FIX))
    fix_with_llm(context(repo), settings, limits=Limits(lookup_chars=50))
    assert "No more look-ups" in results_of(fake.bodies[2])[0]["content"][0]["text"]


def test_total_tokens_are_limited(repo, fake, settings):
    fake.always(read("src/train.py"))
    with pytest.raises(GaveUp, match="token limit"):
        fix_with_llm(context(repo), settings, limits=Limits(total_tokens=2_000))
    assert len(fake.bodies) == 2  # 1100 tokens a round: the third is not sent


def test_relaunch_answer_needs_no_edit_and_no_repair(repo, fake, settings):
    fake.script(tool_answer({"reason": "SIGKILL from the scheduler's preemption"}, name="relaunch_unchanged"))
    with pytest.raises(RelaunchAdvised) as advice:
        fix_with_llm(context(repo), settings)
    proposal = advice.value.proposal
    assert proposal.fixer == "llm:claude-sonnet-4-5:relaunch" and proposal.edits == []
    assert proposal.root_cause == "SIGKILL from the scheduler's preemption" and proposal.cost_usd > 0
    assert len(fake.bodies) == 1


def test_no_safe_fix_answer_gives_up_at_once(repo, fake, settings):
    fake.script(
        tool_answer({"root_cause": "The dataset is corrupt.", "look_at": "the shard at /data/7"}, name="no_safe_fix")
    )
    with pytest.raises(NoSafeFix, match="A human should look at: the shard at /data/7") as err:
        fix_with_llm(context(repo), settings)
    assert err.value.attempts == [] and err.value.tokens["input"] > 0
    assert len(fake.bodies) == 1


def test_propose_without_applying_returns_a_relaunch_proposal(repo, fake, settings):
    fake.script(tool_answer({"reason": "a lost node"}, name="relaunch_unchanged"))
    proposal = propose_llm_fix(context(repo), settings)
    assert proposal.fixer.endswith(":relaunch") and not proposal.edits


def test_a_look_up_beside_an_answer_is_answered_as_skipped_in_a_repair(repo, fake, settings):
    bad = dict(GOOD_FIX, edits=[{"path": "src/config.py", "search": "nope", "replace": "x"}])
    both = tool_answer(bad)
    both.body["content"].insert(
        0, {"type": "tool_use", "id": "toolu_side", "name": "read_file", "input": {"path": "main.py"}}
    )
    fake.script(both, tool_answer(GOOD_FIX))
    fix_with_llm(context(repo), settings)
    results = results_of(fake.bodies[1])
    assert [r["tool_use_id"] for r in results][0] == "toolu_side" and "not run" in json.dumps(results[0])
    assert "search text not found" in json.dumps(results[1])


def test_the_prompt_carries_the_exit_status_and_signal(repo, fake, settings):
    fake.script(tool_answer(GOOD_FIX))
    run = RunInfo(id="r-1", state="crashed", exit_code=137, steps=40)
    propose_llm_fix(context(repo, run=run), settings)
    text = user_text(fake.bodies[0])
    assert "state: crashed" in text and "exit status: 137 (killed by signal 9, SIGKILL)" in text
    assert "steps logged: 40" in text
