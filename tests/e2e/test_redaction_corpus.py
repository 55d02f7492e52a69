"""The redaction corpus through every output of the bot: no secret format leaks from any of them,
and no piece of evidence is destroyed by any of them. A boundary that skipped redaction (or ran
it before its escaping) fails here. See tests/support/secrets_corpus.py for the corpus and
tests/support/output_boundaries.py for the outputs."""

from __future__ import annotations

import pytest

from bot.core.secrets import FORMATS
from tests.support.output_boundaries import Outputs
from tests.support.secrets_corpus import EVIDENCE, SECRETS, kept, leaks

pytestmark = pytest.mark.slow  # real git, a real `serve` process, real launches

BOUNDARIES = [
    "comment:fix",
    "comment:relaunch",
    "comment:gave_up",
    "comment:dry_run",
    "comment:nothing_to_fix",
    "comment:posted_by_server",
    "check_run:stopped",
    "check_run:concluded",
    "app_message",
    "branch_doc",
    "commit_message",
    "llm_prompt",
    "llm_request",
    "log",
    "json_output",
    "terminal_text",
    "progress",
    "stderr",
    "serve_log",
]


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    found = Outputs(tmp_path_factory.mktemp("outputs"))
    yield found
    found.close()


def test_the_corpus_is_large_enough_and_every_output_is_tested(outputs):
    assert len({s.name for s in SECRETS}) == len(SECRETS) >= 25
    assert len({e.name for e in EVIDENCE}) == len(EVIDENCE) >= 15
    assert sorted(outputs.boundaries()) == sorted(BOUNDARIES)


def test_every_format_is_in_the_corpus_and_found_through_its_hint():
    for fmt in FORMATS:
        carriers = [s.carrier for s in SECRETS if fmt.pattern.search(s.carrier)]
        assert carriers, f"no carrier of the corpus is a {fmt.name}"
        assert all(any(h in c.lower() for h in fmt.hints) for c in carriers), fmt.name


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_no_secret_leaks(outputs, boundary):
    send = outputs.boundaries()[boundary]
    leaked = {}
    for secret in SECRETS:
        text = send(secret.carrier)
        assert text.strip(), f"{boundary} produced nothing for {secret.name}"
        if found := leaks(text, secret):
            leaked[secret.name] = (found, text[:400])
    assert not leaked, f"{boundary} leaked {len(leaked)} of {len(SECRETS)}: {leaked}"


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_no_evidence_is_destroyed(outputs, boundary):
    send = outputs.boundaries()[boundary]
    destroyed = {}
    for evidence in EVIDENCE:
        text = send(evidence.carrier)
        if not kept(text, evidence):
            destroyed[evidence.name] = text[:400]
    assert not destroyed, f"{boundary} destroyed {len(destroyed)} of {len(EVIDENCE)}: {destroyed}"


def test_a_redacted_output_is_redacted_again_unchanged(outputs):
    for secret in SECRETS:
        once = outputs.redactor.text(secret.carrier)
        assert outputs.redactor.text(once) == once, secret.name
