"""The real-repo cases themselves (quick: no training): the subset every run takes covers each
repository and each kind of breakage, and each case is well formed."""

from __future__ import annotations

import pytest

from tests.support.realrepos import REALREPOS, load_cases, spec

CASES = load_cases()
KINDS = {"missing_key", "wrong_name", "diverging_lr", "data_path", "requirement", "missing_import", "config_syntax"}


def test_the_subset_covers_every_repository_and_every_kind():
    subset = [case for case in CASES if case.ci]
    assert {case.repo for case in subset} == {case.repo for case in CASES}
    assert {case.kind for case in subset} == {case.kind for case in CASES} == KINDS


def test_each_case_is_well_formed():
    if not REALREPOS.is_dir():
        pytest.skip(f"{REALREPOS} is absent")
    assert len({case.id for case in CASES}) == len(CASES) >= 16
    for case in CASES:
        assert spec(case.repo)["expect"] in ("decrease", "increase"), case.id
        assert case.expect.changed and case.reference, case.id
