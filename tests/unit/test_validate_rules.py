"""The rule registry, the report model and renderers, ignore/strict, and every built-in preset validating clean."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from rlx.algorithms import ALGORITHMS
from rlx.algorithms.registry import Severity
from rlx.presets import builtin_names
from rlx.rulebook import all_rules, get_rule
from rlx.validate import validate_source
from rlx.validate.report import Problem, Report, render_github, render_text
from rlx.validate.rules import CATEGORIES, RULES

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", builtin_names())
def test_every_builtin_preset_validates_with_zero_errors(name):
    report = validate_source(preset=name)
    assert report.errors == [], [p.to_dict() for p in report.errors]


@pytest.mark.parametrize("algo", [a.name for a in ALGORITHMS])
def test_every_algorithm_validates_with_zero_errors(algo):
    assert validate_source(algo=algo).errors == []


def test_rules_are_complete_and_codes_unique():
    rules = all_rules()
    codes = [r.code for r in rules]
    assert len(codes) == len(set(codes))
    for r in rules:
        assert re.fullmatch(r"RLX\d{3}", r.code), r.code
        assert r.title and len(r.explanation) > 30, r.code
        assert r.category in CATEGORIES
        digit = {
            "input": "0",
            "schema": "1",
            "verl": "2",
            "names": "3",
            "algorithm": "4",
            "resources": "5",
            "health": "9",
        }
        assert r.code[3] == digit[r.category], f"{r.code} is in the wrong range for {r.category}"


def test_rules_list_includes_catalog_constraints():
    codes = {r.code for r in all_rules()}
    assert set(ALGORITHMS.constraint_codes()) <= codes
    assert get_rule("rlx401").origin.startswith("grpo")
    assert get_rule("RLX201").check is not None


def test_unknown_rule_code_is_a_usage_error():
    from rlx.errors import UsageError

    with pytest.raises(UsageError) as e:
        get_rule("RLX9999")
    assert "rlx rules" in e.value.hint


def test_problems_name_who_set_the_value():
    report = validate_source(algo="gspo", overrides=["actor_rollout_ref.rollout.n=2"])
    (p,) = report.find("RLX402")
    assert p.source == "command line"
    report = validate_source(algo="gspo", overrides=["actor_rollout_ref.actor.loss_agg_mode=token-mean"])
    assert report.find("RLX404")[0].source == "command line"
    report = validate_source(algo="gspo", overrides=["actor_rollout_ref.actor.clip_ratio_low=0.2"])
    (p,) = report.find("RLX420")
    assert p.source.startswith("preset gspo") and "gspo.yaml:" in p.source  # clip_ratio_high is still the preset's


def test_collects_every_problem_not_the_first():
    report = validate_source(
        algo="grpo",
        overrides=[
            "actor_rollout_ref.rollout.n=1",
            "actor_rollout_ref.actor.clip_ratoi=0.2",
            "trainer.logger=a,b",
            "actor_rollout_ref.actor.policy_loss.loss_mode=gspoo",
            "actor_rollout_ref.rollout.mode=sync",
        ],
    )
    assert {"RLX401", "RLX102", "RLX101", "RLX302", "RLX106"} <= set(report.codes())


def test_ignore_and_strict():
    overrides = ["actor_rollout_ref.rollout.n=2", "data.val_batch_size=8"]
    report = validate_source(algo="grpo", overrides=overrides)
    assert report.find("RLX402") and report.find("RLX109") and not report.ok
    report = validate_source(algo="grpo", overrides=overrides, ignore=["rlx402"])
    assert not report.find("RLX402") and report.ok and report.warnings
    report = validate_source(algo="grpo", overrides=overrides, ignore=["RLX402"], strict=True)
    assert not report.ok and report.exit_code == 1


def test_experiment_file_ignore_list():
    path = Path(__file__).resolve().parents[1] / "data" / "validate" / "input" / "experiment_ignore.yaml"
    report = validate_source(path)
    assert report.problems == [] and report.ok


@pytest.mark.parametrize("name", ["experiment_ok.yaml", "preset_ok.yaml"])
def test_valid_files(name):
    path = Path(__file__).resolve().parents[1] / "data" / "validate" / "input" / name
    assert validate_source(path).problems == []


def _report() -> Report:
    return Report(
        problems=[
            Problem(
                "RLX420",
                Severity.WARNING,
                "actor_rollout_ref.actor.clip_ratio_high",
                "token-scale clip",
                "set 4e-4",
                "preset gspo (presets/gspo.yaml:7)",
            ),
            Problem(
                "RLX401", Severity.ERROR, "actor_rollout_ref.rollout.n", "n=1, 100% zero", "set n=8", "command line"
            ),
        ]
    )


def test_report_to_dict_schema():
    d = _report().to_dict()
    assert list(d) == ["ok", "errors", "warnings", "problems"]
    assert d["ok"] is False and d["errors"] == 1 and d["warnings"] == 1
    assert d["problems"][0]["code"] == "RLX401"  # errors first
    assert set(d["problems"][0]) == {"code", "severity", "path", "message", "hint", "source"}
    json.dumps(d)


def test_render_text_groups_by_severity():
    from rich.console import Console

    console = Console(record=True, width=200)
    render_text(_report(), console)
    text = console.export_text()
    assert text.index("Errors (1)") < text.index("Warnings (1)")
    assert "RLX401 actor_rollout_ref.rollout.n" in text and "--> set by preset gspo" in text and "hint: set n=8" in text
    assert "validation failed" in text


def test_render_github_annotations():
    lines = render_github(_report()).splitlines()
    assert (
        lines[0] == "::error title=RLX401 actor_rollout_ref.rollout.n::n=1, 100%25 zero (command line)%0Ahint: set n=8"
    )
    assert lines[1].startswith(
        "::warning file=presets/gspo.yaml,line=7,title=RLX420 actor_rollout_ref.actor.clip_ratio_high::"
    )


def test_rule_checks_registered_once():
    assert all(code == r.code for code, r in RULES.items())


def test_docs_rules_md_matches_registry():
    from rlx.rulebook import rules_markdown

    path = REPO / "docs" / "rules.md"
    assert path.read_text(encoding="utf-8") == rules_markdown(), "regenerate: python -m rlx.docgen"


def test_static_names_include_rlx_plugins():
    from rlx.validate.verl_names import known, rlx_plugin_names

    for kind, names in rlx_plugin_names().items():
        assert set(names) <= set(known(kind))
    assert "gspo" in known("policy_loss") and "grpo" in known("adv_estimator")


def test_parse_registries_reads_enum_and_string_forms():
    from rlx.validate.verl_names import parse_registries

    src = """
class AdvantageEstimator(str, Enum):
    GAE = "gae"
@register_adv_est(AdvantageEstimator.GAE)
def f(): ...
@register_adv_est("mine")
def g(): ...
@register_policy_loss("toy")
def h(): ...
"""
    assert parse_registries(src) == {"adv_estimator": ["gae", "mine"], "policy_loss": ["toy"]}


def test_validate_imports_no_heavy_modules():
    import subprocess
    import sys

    code = (
        "import sys; from rlx.validate import validate_source; validate_source(algo='gspo'); "
        "print(sorted(m for m in ('verl','torch','ray','mlflow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_secrets_in_values_never_reach_the_report(monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "0123456789abcdef0123456789abcdef01234567")
    token = "hf_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6"
    report = validate_source(
        algo="grpo",
        overrides=[
            f"trainer.experiment_name={token}x,y",
            "+ray_kwargs.ray_init.runtime_env.env_vars.HF_TOKEN=12345678",
            f"{'actor_rollout_ref.rollout.n'}={token}",
        ],
    )
    text = json.dumps(report.to_dict())
    assert report.errors and token not in text and "12345678" not in text


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        ({"actor_rollout_ref": {}, "algorithm": {}, "trainer": {}, "data": {}}, "verl"),
        ({"extends": "gspo", "overrides": {}}, "preset"),
        ({"algo": "grpo", "overrides": {}}, "experiment"),
        ({"preset": "p.yaml", "model": "m"}, "experiment"),
    ],
)
def test_file_kind(data, kind):
    from rlx.validate import file_kind

    assert file_kind(data) == kind


@pytest.mark.parametrize(
    ("args", "split"),
    [
        (["exp.yaml", "a.b=1"], ("exp.yaml", ["a.b=1"])),
        (["a.b=1", "~c"], (None, ["a.b=1", "~c"])),
        (["+x.y=2"], (None, ["+x.y=2"])),
        ([], (None, [])),
    ],
)
def test_split_file_and_overrides(args, split):
    from rlx.commands.validate import split_args

    assert split_args(args) == split


def test_algorithm_inference_uses_the_registry():
    from rlx.validate.checks.algorithm import infer_algorithms

    def getter(values):
        return lambda path: values.get(path)

    adv, loss = "algorithm.adv_estimator", "actor_rollout_ref.actor.policy_loss.loss_mode"
    group = {a.name for a in infer_algorithms(getter({adv: "grpo", loss: "vanilla"}))}
    assert group == {a.name for a in ALGORITHMS if (a.adv_estimator, a.loss_mode) == ("grpo", "vanilla")}
    assert [a.name for a in infer_algorithms(getter({adv: "grpo", loss: "gspo"}))] == ["gspo"]
    assert [a.family.value for a in infer_algorithms(getter({adv: "gae", loss: "vanilla"}))] == ["critic-based"]
    assert infer_algorithms(getter({adv: "opo", loss: "vanilla"})) == []


def _raise_site_codes() -> list[tuple[str, int, str]]:
    """Every `code="RLXnnn"` keyword in rlx's source: the rule an error's raise site names."""
    import ast

    found = []
    for path in sorted((REPO / "rlx").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call):
                for kw in node.keywords:
                    if kw.arg == "code" and isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str):
                        found.append((str(path.relative_to(REPO)), node.lineno, kw.value.value))
    return found


def test_error_codes_named_at_raise_sites_are_declared_error_rules():
    sites = _raise_site_codes()
    assert len(sites) >= 30, sites  # yamlio, verlscript, resolve, overrides, validate.script
    rules = {r.code: r for r in all_rules()}  # every rule module loaded (RULES alone fills as check modules import)
    for where, line, code in sites:
        assert code in rules, f"{where}:{line} names {code}, which no rule declares"
        assert rules[code].severity == "error", f"{where}:{line}: {code} is not an error rule"


@pytest.mark.parametrize(
    "text, code",
    [
        ("a: &x 1\nb: *x\n", "RLX005"),  # alias
        ("a: 1\na: 2\n", "RLX003"),  # duplicate key
        ("a: !!python/object/apply:os.system ['true']\n", "RLX004"),  # unsafe tag
        ("a: [1, 2\n", "RLX001"),  # syntax
        ("a:\n" + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(80)), "RLX006"),  # too deep
        (b"a: 1\x00\n", "RLX006"),  # binary
        (b"a: \xff\n", "RLX006"),  # not UTF-8
        ("? [a, b]\n: 1\n", "RLX008"),  # a sequence as a mapping key
    ],
)
def test_yaml_refusals_carry_their_rule_code(text, code):
    from rlx.errors import ConfigError
    from rlx.yamlio import loads

    with pytest.raises(ConfigError) as e:
        loads(text, source="x.yaml")
    assert e.value.code == code, e.value.message


def test_file_and_override_errors_carry_their_rule_code(tmp_path):
    from rlx.errors import ConfigError
    from rlx.resolve import resolve
    from rlx.verlscript import read_script
    from rlx.yamlio import load_file

    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    (tmp_path / "run.sh").write_text("#!/bin/bash\necho hello\n")
    cases = [
        (lambda: load_file(tmp_path / "missing.yaml"), "RLX007"),
        (lambda: load_file(tmp_path), "RLX007"),
        (lambda: load_file(tmp_path / "list.yaml"), "RLX002"),
        (lambda: read_script(tmp_path / "run.sh"), "RLX010"),
        (lambda: read_script(tmp_path / "absent.sh"), "RLX007"),
        (lambda: resolve("grpo", overrides=["algorithm.gamma=1,2"]), "RLX101"),
        (lambda: resolve("grpo", overrides=["actor_rollout_ref.actor.clip_ratoi=0.2"]), "RLX102"),
        (lambda: resolve("grpo", overrides=["+algorithm.gamma=0.9"]), "RLX108"),
        (lambda: resolve("grpo", overrides=["~algorithm.no_such_key"]), "RLX108"),
    ]
    for call, code in cases:
        with pytest.raises(ConfigError) as e:
            call()
        assert e.value.code == code, (code, e.value.message)


@pytest.mark.parametrize(
    ("override", "code", "path"),
    [
        # the key the error is about, not the first quoted word of its message (which names the override)
        ("trainer.totl_epochs=3", "RLX102", "trainer.totl_epochs"),
        ("+trainer.total_epochs=3", "RLX108", "trainer.total_epochs"),
        ("~trainer.no_such_key", "RLX108", "trainer.no_such_key"),
    ],
)
def test_an_override_error_is_reported_at_the_key_its_raise_site_names(override, code, path):
    report = validate_source(algo="grpo", overrides=[override])
    assert [(p.code, p.path) for p in report.errors] == [(code, path)]


def test_a_problem_takes_its_path_from_the_error_not_from_its_message():
    from rlx.errors import ConfigError
    from rlx.validate import _from_error

    e = ConfigError("override 'x.y=1' failed on 'a.b'", code="RLX103", path="a.b")
    assert _from_error(e).path == "a.b"
    assert _from_error(ConfigError("bad 'quoted' word", code="RLX103")).path == ""
