"""Docs are generated from the registries; a stale file fails here (regenerate with `python -m rlx.docgen`)."""

from __future__ import annotations

from rlx.algorithms import ALGORITHMS
from rlx.docgen import DOC, algorithms_markdown


def test_algorithms_doc_is_up_to_date():
    assert DOC.read_text(encoding="utf-8") == algorithms_markdown(), "run `python -m rlx.docgen`"


def test_algorithms_doc_covers_every_algorithm_and_rule():
    text = algorithms_markdown()
    for a in ALGORITHMS:
        assert f"(`{a.name}`)" in text
        for c in a.constraints:
            assert c.code in text
