"""Every hint that proposes an override works when applied (the hint round trip).

For each finding of each case in the rule corpus (`test_validate_corpus.py`: override cases and the verl example
scripts), the overrides a hint proposes are read out of its text and appended to the case. Validating again, the
finding must be gone and no new error may appear. A hint offering alternatives ("set A=1 or B=2") is tried once per
alternative. Hints that propose no override ("remove it", "pick a plain name") are not round-tripped, nor are
placeholders (`+key=VALUE`, `key=...`): an upper-case or `...` value is a blank for the user to fill, not a proposal.
A hint that says `write X instead` or `did you mean X` replaces the finding's key: the harness drops the case's
override of that key and adds X, as a user editing the line would.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from rlx.validate import validate_source

TESTS = Path(__file__).resolve().parents[1]

# `[+|++|~]dotted.key=value`: a value is a quoted string, a `[...]` list or a run of non-separator characters.
_OVERRIDE = re.compile(
    r"(?<![\w.$/{-])((?:\+\+|\+|~)?[a-z_][\w]*(?:\.[\w]+)+=(?:'[^']*'|\"[^\"]*\"|\[[^\]]*\]|[^\s,;)`'\"]+))"
)


def _corpus():
    spec = importlib.util.spec_from_file_location("validate_corpus", TESTS / "unit" / "test_validate_corpus.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CORPUS = _corpus()


# A value that is a blank to fill in: `VALUE`, `N`, `PATH`, `...` (or nothing left once a trailing `...` is cut).
_PLACEHOLDER = re.compile(r"[A-Z][A-Z_]*|\.*")


def hint_alternatives(hint: str) -> list[list[str]]:
    """The override sets a hint proposes: one list per alternative (split on ` or `), empty alternatives dropped."""
    out = []
    for part in re.split(r"\bor\b|;", hint):
        # prose punctuation after a value (`x=1.`, `x=0.2: why`) is not part of it
        found = [m if m.endswith("...") else m.rstrip(".:") for m in _OVERRIDE.findall(part)]
        found = [m for m in found if not _PLACEHOLDER.fullmatch(m.partition("=")[2])]
        if found:
            out.append(found)
    return out


def replaces_key(hint: str) -> bool:
    """Whether the hint proposes a replacement for the finding's key (a moved, legacy or misspelt key)."""
    return bool(re.search(r"\binstead\b|did you mean", hint))


def _cases() -> list[tuple[str, str | None, list[str]]]:
    cases = [(c[0], c[1], list(c[2])) for c in CORPUS.OVERRIDE_CASES]
    data = CORPUS.DATA / "verl_examples" / "broken"
    cases += [(f"example-{p.stem}", None, CORPUS._args(p)) for p in sorted(data.glob("*.args"))]
    return cases


# Each case's report before any fix, computed once while collecting (the round trips reuse it).
_BEFORE: dict[tuple, object] = {}


def _before(algo, overrides):
    key = (algo, tuple(overrides))
    if key not in _BEFORE:
        _BEFORE[key] = validate_source(algo=algo, overrides=overrides, verl=algo is None)
    return _BEFORE[key]


def _round_trips():
    out = []
    for name, algo, overrides in _cases():
        report = _before(algo, overrides)
        for p in report.problems:
            for i, alt in enumerate(hint_alternatives(p.hint)):
                out.append(
                    pytest.param(
                        algo, overrides, p.code, p.path, alt, replaces_key(p.hint), id=f"{name}-{p.code}-{p.path}-{i}"
                    )
                )
    return out


ROUND_TRIPS = _round_trips()


def _override_keys(overrides: list[str]) -> set[str]:
    return {o.partition("=")[0].lstrip("+~") for o in overrides}


@pytest.mark.parametrize(("algo", "overrides", "code", "path", "fix", "replaces"), ROUND_TRIPS)
def test_hint_override_fixes_the_finding(algo, overrides, code, path, fix, replaces):
    before = _before(algo, overrides)
    # The fix replaces what the case set for the same keys (a user edits the line; Hydra's last value wins anyway),
    # and, for `X instead` / `did you mean X`, the finding's own key.
    keys = _override_keys(fix) | ({path} if replaces else set())
    kept = [o for o in overrides if o.partition("=")[0].lstrip("+~") not in keys]
    after = validate_source(algo=algo, overrides=[*kept, *fix], verl=algo is None)
    found = [(p.code, p.path) for p in after.problems]
    assert (code, path) not in found, f"{fix} did not fix {code} at {path}: {[p.to_dict() for p in after.problems]}"
    old = {(p.code, p.path) for p in before.errors}
    new = [p.to_dict() for p in after.errors if (p.code, p.path) not in old]
    assert new == [], f"{fix} introduced new errors: {new}"


def test_round_trip_covers_the_corpus():
    # Enough hints propose overrides that the round trip means something (a regex that matched nothing would pass).
    assert len(ROUND_TRIPS) >= 40
    codes = {p.values[2] for p in ROUND_TRIPS}
    assert {"RLX104", "RLX201", "RLX401", "RLX440", "RLX442"} <= codes


@pytest.mark.parametrize(
    ("hint", "expected"),
    [
        ("set actor_rollout_ref.rollout.n=8", [["actor_rollout_ref.rollout.n=8"]]),
        (
            "keep one: set algorithm.use_kl_in_reward=false (GRPO-style) or actor_rollout_ref.actor.use_kl_loss=false",
            [["algorithm.use_kl_in_reward=false"], ["actor_rollout_ref.actor.use_kl_loss=false"]],
        ),
        ("write `++reward.reward_kwargs.max_resp_len=4096` instead", [["++reward.reward_kwargs.max_resp_len=4096"]]),
        ("quote the value: data.train_files='~/data/x.parquet'", [["data.train_files='~/data/x.parquet'"]]),
        ("remove it", []),
        ("the key before `=` is empty: write `KEY=VALUE`", []),
        ("To add a key verl's schema lacks, write `+trainr.total_epochs=VALUE`", []),
        (
            "did you mean `trainer.total_epochs=3`? To add a key verl's schema lacks, write `+trainr.total_epochs=...`",
            [["trainer.total_epochs=3"]],
        ),
        ("write `+reward.reward_kwargs.max_resp_len=8192` instead", [["+reward.reward_kwargs.max_resp_len=8192"]]),
        ("set data.max_response_length=1024.", [["data.max_response_length=1024"]]),
        ("give a default: ${oc.env:NAME,VALUE}", []),
    ],
)
def test_hint_alternatives_parser(hint, expected):
    assert hint_alternatives(hint) == expected


# Moved and removed keys (verl 0.9.1's schema; the legacy reward mapping is checked against verl's own
# migrate_legacy_reward_impl in tests/contract/test_verl_moves.py).
@pytest.mark.parametrize(
    ("override", "new_home"),
    [
        ("critic.model.fsdp_config.param_offload=False", "critic.fsdp.param_offload=False"),
        ("critic.model.fsdp_config.optimizer_offload=True", "critic.fsdp.optimizer_offload=True"),
    ],
)
def test_moved_key_points_at_its_new_home(override, new_home):
    report = validate_source(overrides=["algorithm.adv_estimator=gae", override], verl=True)
    (p,) = [p for p in report.problems if p.path == override.partition("=")[0]]
    assert p.code == "RLX102" and "moved" in p.message
    assert hint_alternatives(p.hint) == [[new_home]]
    assert "hf_config_path" not in p.hint and "+" not in p.hint


@pytest.mark.parametrize(
    "override",
    [
        "trainer.use_legacy_worker_impl=auto",
        "reward_model.use_reward_loop=False",
        "actor_rollout_ref.model.torch_dtype=bf16",
    ],
)
def test_removed_key_says_removed_and_never_proposes_plus(override):
    report = validate_source(algo="grpo", overrides=[override])
    (p,) = [p for p in report.problems if p.path == override.partition("=")[0]]
    assert p.code == "RLX102" and "removed" in p.message
    assert "delete" in p.hint and "+" not in p.hint and hint_alternatives(p.hint) == []


def test_unknown_key_in_a_strict_section_never_proposes_plus():
    report = validate_source(algo="grpo", overrides=["actor_rollout_ref.actor.clip_ratoi=0.3"])
    (p,) = report.find("RLX102")
    assert hint_alternatives(p.hint) == [["actor_rollout_ref.actor.clip_ratio=0.3"]]
    assert "`+actor_rollout_ref.actor.clip_ratoi=" not in p.hint


def test_legacy_key_without_a_new_home_is_to_be_removed():
    # migrate_legacy_reward_impl does not move reward_model.model.trust_remote_code anywhere
    report = validate_source(algo="grpo", overrides=["reward_model.model.trust_remote_code=true"])
    (p,) = report.find("RLX107")
    assert p.hint.startswith("remove it") and hint_alternatives(p.hint) == []


def test_plus_follows_the_config_not_the_rule():
    # ASPO's preset adds algorithm.rlx.aspo.k, so changing it takes no `+`. reward.reward_kwargs.max_resp_len is
    # absent from verl's schema (adding it needs `+`) but present in DAPO's preset (changing it must not have one).
    (p,) = validate_source(algo="aspo", overrides=["algorithm.rlx.aspo.k=1.5"]).find("RLX480")
    assert hint_alternatives(p.hint)[0] == ["algorithm.rlx.aspo.k=0.7"]
    (p,) = validate_source(overrides=["+reward_model.reward_kwargs.max_resp_len=4096"], verl=True).find("RLX107")
    assert hint_alternatives(p.hint) == [["+reward.reward_kwargs.max_resp_len=4096"]]
    (p,) = validate_source(algo="dapo", overrides=["+reward_model.reward_kwargs.max_resp_len=4096"]).find("RLX107")
    assert hint_alternatives(p.hint) == [["reward.reward_kwargs.max_resp_len=4096"]]


def test_moved_key_added_with_plus_points_at_its_new_home():
    (p,) = validate_source(algo="ppo", overrides=["+critic.model.fsdp_config.param_offload=true"]).find("RLX112")
    assert hint_alternatives(p.hint) == [["critic.fsdp.param_offload=true"]] and replaces_key(p.hint)


def test_removed_key_in_a_verl_config_file(tmp_path):
    import yaml

    from rlx.resolve import resolve

    data = yaml.safe_load(resolve("grpo").to_yaml())
    data["trainer"]["use_legacy_worker_impl"] = "auto"
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    (p,) = validate_source(path).find("RLX102")
    assert p.path == "trainer.use_legacy_worker_impl" and "removed" in p.hint and "+" not in p.hint
