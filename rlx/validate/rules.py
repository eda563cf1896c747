"""The rule registry: each rule's code, title, severity, explanation and check live together (ruff-style).

A rule is declared where its check is written:

    @rule("RLX201", "train batch not divisible by the GPU count", ERROR, category="verl", explanation=...)
    def batch_divisible(ctx):
        if ...:
            yield ctx.finding(path, message, hint)

Rules that are raised while reading input (RLX0xx, override syntax and unknown keys) have no check function: the
pipeline emits them with `RULES[code]`. Algorithm constraints (RLX4xx, `rlx/algorithms/catalog.py`) are listed by
`all_rules()` next to these. `rlx.rulebook` adds the doctor's health checks (RLX9xx), so `rlx rules` and the docs
show one table; validation itself never imports the doctor, a later stage.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from rlx.algorithms.registry import Severity

ERROR, WARNING, INFO = Severity.ERROR, Severity.WARNING, Severity.INFO

CATEGORIES = {
    "input": "Input: reading YAML files safely",
    "schema": "Schema: keys, types, ranges, removed and inert settings",
    "verl": "verl's own checks (verl.utils.config.validate_config), statically",
    "names": "Names: estimators, losses and other registered names",
    "algorithm": "Algorithm constraints, from the algorithm registry",
    "resources": "Resources: GPUs, parallelism and sequence lengths",
    "health": "Run health: checks `rlx runs doctor` applies to a run's metric histories",
}


@dataclass(frozen=True)
class Finding:
    """What a check yields: the config path, the message, the fix. The runner adds code, severity and source."""

    path: str
    message: str
    hint: str = ""
    severity: Severity | None = None  # overrides the rule's default (a few rules warn or err by case)
    source: str | None = None  # overrides the provenance lookup (input problems name file:line)
    code: str | None = None  # set for algorithm constraints, whose codes live in the algorithm registry


@dataclass(frozen=True)
class Rule:
    code: str
    title: str
    severity: Severity
    category: str
    explanation: str
    check: Callable[[Any], Iterable[Finding]] | None = None
    origin: str = "rlx"  # "rlx" for validator rules, else the algorithms whose constraint this code is
    when: str = ""  # for algorithm constraints: the condition, as the registry describes it

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "title": self.title,
            "severity": self.severity.value,
            "category": self.category,
            "explanation": self.explanation,
            "origin": self.origin,
            "when": self.when,
        }


RULES: dict[str, Rule] = {}


def rule(code: str, title: str, severity: Severity, *, category: str, explanation: str):
    """Declare a rule; used bare (`register(...)`) for rules without a check, or as a decorator on the check."""

    def deco(fn: Callable[[Any], Iterable[Finding]] | None) -> Callable[[Any], Iterable[Finding]] | None:
        if code in RULES:
            raise ValueError(f"rule code {code} is declared twice")
        if category not in CATEGORIES:
            raise ValueError(f"unknown rule category {category!r}")
        RULES[code] = Rule(code, title, severity, category, " ".join(explanation.split()), fn)
        return fn

    return deco


def declare(code: str, title: str, severity: Severity, *, category: str, explanation: str) -> Rule:
    """A rule emitted by the pipeline itself (no check function)."""
    rule(code, title, severity, category=category, explanation=explanation)(None)
    return RULES[code]


def _load_checks() -> None:
    # Importing the check modules registers their rules.
    from rlx.validate.checks import algorithm, inputs, names, resources, schema, verl  # noqa: F401


def checks() -> Iterator[Rule]:
    """The rules with a check function, in code order."""
    _load_checks()
    for code in sorted(RULES):
        if RULES[code].check is not None:
            yield RULES[code]


def all_rules() -> list[Rule]:
    """rlx's validator rules and the algorithm registry's constraint codes, sorted by code."""
    _load_checks()
    from rlx.algorithms import ALGORITHMS

    out = dict(RULES)
    users: dict[str, list[str]] = {}
    for algo in ALGORITHMS:
        for c in algo.constraints:
            users.setdefault(c.code, [])
            if algo.name not in users[c.code]:
                users[c.code].append(algo.name)
    for code, c in ALGORITHMS.constraint_codes().items():
        if code in out:
            raise ValueError(f"{code} is both a validator rule and an algorithm constraint")
        out[code] = Rule(
            code,
            c.title,
            c.severity,
            "algorithm",
            " ".join(c.explanation.split()),
            origin=", ".join(users[code]),
            when=c.describe(),
        )
    return [out[k] for k in sorted(out)]
