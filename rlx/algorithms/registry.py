"""The algorithm registry: the one place algorithm names live.

An `Algorithm` is an algorithm's one spec: its declaration and constraints, where its preset is, its option defaults,
the verl names it registers and the module that registers them. rlx's own are declared in `catalog.py`; every spec,
rlx's and a third party's, is loaded through the `rlx.algorithms` entry-point group (`rlx.algorithms.load`). Presets,
the validator, the verl plugin, the smoke engine, the doctor, the CLI listings, shell completion and the docs all read
`ALGORITHMS`; no other module hard-codes an algorithm name. Constraints are data: a rule code, a
severity, the config path it concerns, a condition that can describe itself, a message and a hint.

This module imports nothing heavy: `rlx algos` must stay fast.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

Getter = Callable[[str], Any]
"""Reads a verl config value by dotted path; returns `MISSING_VALUE` when the key is absent."""


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


MISSING_VALUE: Any = _Missing()


class Family(str, Enum):
    GROUP = "group-relative"  # the baseline comes from the other samples of the same prompt: needs rollout.n > 1
    CRITIC = "critic-based"  # the baseline comes from a learned value model
    SINGLE = "single-sample"  # a per-sample baseline (ReMax's greedy rollout, REINFORCE++'s batch baseline)


class Status(str, Enum):
    READY = "ready"  # verl runs it: natively, or through rlx's verl plugin
    PLANNED = "planned"  # declared, not yet implemented: `train` refuses it


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True)
class Condition:
    """A predicate over a config that can say what it tests (for docs and `rlx rules explain`)."""

    text: str
    test: Callable[[Getter], bool]

    def __call__(self, get: Getter) -> bool:
        try:
            return bool(self.test(get))
        except (TypeError, ValueError):  # a value of the wrong type: the schema rules report that, not this one
            return False

    def __and__(self, other: Condition) -> Condition:
        return Condition(f"{self.text} and {other.text}", lambda g: self(g) and other(g))

    def __or__(self, other: Condition) -> Condition:
        return Condition(f"({self.text} or {other.text})", lambda g: self(g) or other(g))

    def __invert__(self) -> Condition:
        return Condition(f"not ({self.text})", lambda g: not self(g))


def _num(v: Any) -> float:
    if isinstance(v, bool) or v is None or v is MISSING_VALUE:
        raise TypeError(v)
    return float(v)


def lt(path: str, bound: float) -> Condition:
    return Condition(f"{path} < {bound}", lambda g: _num(g(path)) < bound)


def le(path: str, bound: float) -> Condition:
    return Condition(f"{path} <= {bound}", lambda g: _num(g(path)) <= bound)


def gt(path: str, bound: float) -> Condition:
    return Condition(f"{path} > {bound}", lambda g: _num(g(path)) > bound)


def ge(path: str, bound: float) -> Condition:
    return Condition(f"{path} >= {bound}", lambda g: _num(g(path)) >= bound)


def eq(path: str, value: Any) -> Condition:
    return Condition(f"{path} == {value!r}", lambda g: g(path) == value)


def ne(path: str, value: Any) -> Condition:
    return Condition(f"{path} != {value!r}", lambda g: g(path) != value)


def one_of(path: str, values: Iterable[Any]) -> Condition:
    vals = tuple(values)
    return Condition(f"{path} in {list(vals)}", lambda g: g(path) in vals)


def is_true(path: str) -> Condition:
    return Condition(f"{path} is true", lambda g: g(path) is True)


def is_false(path: str) -> Condition:
    return Condition(f"{path} is false", lambda g: g(path) is False)


def is_null(path: str) -> Condition:
    return Condition(f"{path} is null", lambda g: g(path) is None or g(path) is MISSING_VALUE)


def outside_open(path: str, lo: float, hi: float) -> Condition:
    return Condition(f"{path} not in ({lo}, {hi})", lambda g: not lo < _num(g(path)) < hi)


def gt_path(path: str, other: str) -> Condition:
    return Condition(f"{path} > {other}", lambda g: _num(g(path)) > _num(g(other)))


def le_path(path: str, other: str) -> Condition:
    return Condition(f"{path} <= {other}", lambda g: _num(g(path)) <= _num(g(other)))


def custom(text: str, test: Callable[[Getter], bool]) -> Condition:
    return Condition(text, test)


@dataclass(frozen=True)
class Constraint:
    """One rule an algorithm imposes on the config. `message` and `hint` may use `{value}` (the value at `path`).

    A hint may also be a function of the config (a `Getter`): when the fix depends on other values (the overlong
    buffer that fits this max_resp_len, the micro batch sizes a switch makes verl require), the hint proposes them.
    """

    code: str
    severity: Severity
    path: str
    when: Condition
    title: str
    message: str
    hint: str | Callable[[Getter], str]
    explanation: str = ""

    def hint_for(self, get: Getter) -> str:
        """The hint for one config (`{value}` not yet filled in)."""
        return self.hint(get) if callable(self.hint) else self.hint

    def describe(self) -> str:
        return self.when.text


@dataclass(frozen=True)
class Algorithm:
    """One RL post-training algorithm, as rlx knows it."""

    name: str  # CLI name: `rlx train --algo <name>`; also the built-in preset's name
    title: str  # display name, e.g. "GSPO"
    summary: str  # one line
    paper: str  # arXiv id: "AEPO" names three papers, the id says which
    family: Family
    status: Status
    adv_estimator: str  # verl's `algorithm.adv_estimator` (or rlx's plugin estimator)
    loss_mode: str  # verl's `actor_rollout_ref.actor.policy_loss.loss_mode` (or rlx's plugin loss)
    constraints: tuple[Constraint, ...] = ()
    needs_rlx_entrypoint: bool = False  # needs rlx's verl trainer extension (entropy, reward extras, values, groups)
    plugin_names: Mapping[str, str] = field(default_factory=dict)  # {"policy_loss"|"adv_estimator": registered name}
    aliases: tuple[str, ...] = ()
    inferable: bool = True  # False: a variant of another algorithm's (adv, loss) pair, chosen only by name
    # The rest of the spec: what other stages used to spell by name.
    preset_file: str | None = None  # its preset YAML; None: rlx's built-in `presets/<name>.yaml`
    options: Mapping[str, Any] = field(default_factory=dict)  # defaults of `algorithm.rlx.<name>` (rlx.ops.options)
    verl_module: str | None = None  # imported in every verl process (by rlx.verl_plugin) to register `plugin_names`
    clip_level: str | None = None  # what `actor/pg_clipfrac` counts: "token" or "sequence" (the doctor's RLX922)
    # What rlx's two trainers (rlx.verl_entry on verl, the smoke engine on CPU) do for it beyond calling its
    # registered verl functions; both read these, neither spells an algorithm. The inputs a registered loss or
    # estimator takes beyond verl's call (entropy, entropy_stats, log_denom, values, session_keys, reward extras)
    # are its keyword-only parameters and need no entry here.
    nll_option: str | None = None  # option of `algorithm.rlx.<name>` weighing a positive-example NLL term on the actor
    teacher_option: str | None = None  # option of `algorithm.rlx.<name>` naming the teacher-response column: when set,
    # the critic is trained as a discriminator and its score is the reward
    origin: str = "rlx"  # the distribution that contributed the spec (its `rlx.algorithms` entry point)

    @property
    def preset(self) -> str:
        return self.name

    @property
    def ready(self) -> bool:
        return self.status is Status.READY

    def to_dict(self) -> dict[str, Any]:
        out = {
            "name": self.name,
            "summary": self.summary,
            "paper": f"arXiv:{self.paper}",
            "family": self.family.value,
            "status": self.status.value,
        }
        if self.origin != "rlx":
            out["origin"] = self.origin
        return out


class AlgorithmRegistry:
    """Name -> Algorithm, in declaration order. Third-party algorithms register the same way rlx's own do."""

    def __init__(self) -> None:
        self._by_name: dict[str, Algorithm] = {}

    def register(self, algo: Algorithm) -> Algorithm:
        for key in (algo.name, *algo.aliases):
            taken = self.find(key)
            if taken is not None:
                raise ValueError(f"algorithm name '{key}' is already registered, by '{taken.name}' from {taken.origin}")
        self._by_name[algo.name] = algo
        return algo

    def names(self) -> list[str]:
        return list(self._by_name)

    def __iter__(self):
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    def __contains__(self, name: object) -> bool:
        return self.find(name) is not None if isinstance(name, str) else False

    def find(self, name: str) -> Algorithm | None:
        key = name.strip().lower()
        if key in self._by_name:
            return self._by_name[key]
        for algo in self._by_name.values():
            if key in algo.aliases:
                return algo
        return None

    def get(self, name: str) -> Algorithm:
        """The algorithm called `name`, or a ConfigError with a did-you-mean."""
        algo = self.find(name)
        if algo is None:
            from rlx.errors import UsageError, suggestion

            hint = suggestion(name.lower(), [*self._by_name, *(a for x in self for a in x.aliases)])
            raise UsageError(
                f"unknown algorithm '{name}'",
                hint=(hint + " " if hint else "") + "`rlx algos` lists them all",
            )
        return algo

    def constraint_codes(self) -> dict[str, Constraint]:
        out: dict[str, Constraint] = {}
        for algo in self:
            for c in algo.constraints:
                out.setdefault(c.code, c)
        return out
