"""The algorithm registry: one declaration per algorithm; constraints are data that can describe themselves."""

from __future__ import annotations

import re

import pytest

from rlx.algorithms import ALGORITHMS, Family, Severity, Status
from rlx.algorithms.registry import MISSING_VALUE, Algorithm, AlgorithmRegistry, eq, is_true, lt
from rlx.errors import UsageError

EXPECTED = {
    "ppo",
    "gspo-decoupled",
    "grpo",
    "drgrpo",
    "dapo",
    "gspo",
    "gmpo",
    "cispo",
    "sapo",
    "rloo",
    "reinforce_pp",
    "remax",
    "aepo",
    "aspo",
    "gepo",
    "vapo",
    "gad",
}


def test_all_seventeen_algorithms_are_declared_once():
    assert set(ALGORITHMS.names()) == EXPECTED
    assert len(ALGORITHMS) == 17


@pytest.mark.parametrize("algo", list(ALGORITHMS), ids=lambda a: a.name)
def test_declaration_fields(algo: Algorithm):
    assert re.fullmatch(r"\d{4}\.\d{4,5}", algo.paper), algo.paper
    assert algo.summary and "\n" not in algo.summary
    assert isinstance(algo.family, Family) and isinstance(algo.status, Status)
    assert set(algo.to_dict()) == {"name", "summary", "paper", "family", "status"}
    for c in algo.constraints:
        assert re.fullmatch(r"RLX4\d\d", c.code), c.code
        assert c.message and c.hint and c.title and c.explanation
        assert isinstance(c.severity, Severity)
        assert c.describe()


def test_aepo_paper_is_the_agentic_entropy_balanced_one():
    # "AEPO" names three papers (algorithms.md 3.7); the registry keys them by arXiv id.
    assert ALGORITHMS.get("aepo").paper == "2510.14545"
    assert ALGORITHMS.get("aspo").paper == "2508.19201"


def test_lookup_aliases_and_did_you_mean():
    assert ALGORITHMS.get("GSPO").name == "gspo"
    assert ALGORITHMS.get("reinforce++").name == "reinforce_pp"
    with pytest.raises(UsageError) as e:
        ALGORITHMS.get("gspoo")
    assert "did you mean 'gspo'" in e.value.hint


def test_duplicate_registration_is_refused():
    reg = AlgorithmRegistry()
    a = ALGORITHMS.get("grpo")
    reg.register(a)
    with pytest.raises(ValueError, match="already registered"):
        reg.register(a)


def test_conditions_evaluate_and_describe():
    values = {"n": 1, "kl": True}
    get = lambda p: values.get(p, MISSING_VALUE)  # noqa: E731
    cond = lt("n", 2) & is_true("kl")
    assert cond(get) is True
    assert cond.text == "n < 2 and kl is true"
    assert (~cond)(get) is False
    assert lt("missing", 2)(get) is False  # absent or wrongly typed values never trip a rule
    assert lt("kl", 2)(get) is False  # a bool is not a number
    assert eq("n", 1)(get)


def test_group_size_rule_fires_below_two_for_every_group_method():
    for algo in ALGORITHMS:
        codes = {c.code for c in algo.constraints if c.when(lambda p: 1 if p.endswith("rollout.n") else MISSING_VALUE)}
        if algo.family is Family.GROUP:
            assert "RLX401" in codes, algo.name
        else:
            assert "RLX401" not in codes, algo.name


def test_a_name_that_is_another_algorithms_alias_is_refused():
    from dataclasses import replace

    reg = AlgorithmRegistry()
    reg.register(ALGORITHMS.get("ppo"))
    clash = replace(ALGORITHMS.get("grpo"), name="gae", aliases=())  # "gae" is PPO's alias
    with pytest.raises(ValueError, match="'gae' is already registered, by 'ppo'"):
        reg.register(clash)


def test_every_builtin_spec_comes_through_the_entry_point_group():
    from importlib.metadata import entry_points

    from rlx.algorithms import BUILTIN_ENTRY, GROUP
    from rlx.algorithms.catalog import BUILTIN

    eps = [ep for ep in entry_points(group=GROUP) if ep.name == BUILTIN_ENTRY]
    assert eps, f"rlx's own entry point of group {GROUP} is not installed (pip install -e .)"
    assert [a.name for a in eps[0].load()] == [a.name for a in BUILTIN] == ALGORITHMS.names()[: len(BUILTIN)]
    assert all(a.origin == "rlx" for a in BUILTIN)
