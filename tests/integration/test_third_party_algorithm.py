"""A third-party algorithm: one spec module and one pyproject entry, and every stage of rlx picks it up.

Two throwaway packages are built with pip from sources written here and installed into a private target directory,
which the rlx subprocesses see through PYTHONPATH (as a `pip install` into the user's environment would be seen):

- `rlx-toypo` contributes the algorithm `toypo`: its spec (`rlx_toypo/spec.py`, entry point `rlx.algorithms`), its
  preset YAML next to it (`extends: grpo`, loss_mode `toypo`), a rule `TOY001` and a verl module that registers the
  policy loss `toypo` with verl's own `register_policy_loss`. The loss is verl's `vanilla` plus a marker metric, so
  the smoke run proves that verl's registry handed the training loop this package's function.
- `rlx-broken` has an `rlx.algorithms` entry point whose module raises on import: rlx warns, names it, and carries on.

`rlx algos`, `rlx validate config` (the rule fires on a bad override, with its hint), `rlx train --dry-run` and a real
`rlx train --smoke` on an embedded Ray head (the job process must import the plugin too) are each run as the user
would run them. Slow: pip builds two wheels (~10 s) and the smoke run starts its own head (~60 s).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from _rlxtest import run_rlx

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SPEC = """
from pathlib import Path

from rlx.algorithms import Algorithm, Constraint, Family, Severity, Status
from rlx.algorithms.registry import gt

CLIP = "actor_rollout_ref.actor.clip_ratio"

SPEC = Algorithm(
    "toypo",
    "ToyPO",
    "a test algorithm: GRPO's advantages with a loss registered by a plugin package",
    "2402.03300",
    Family.GROUP,
    Status.READY,
    adv_estimator="grpo",
    loss_mode="toypo",
    plugin_names={"policy_loss": "toypo"},
    preset_file=str(Path(__file__).with_name("toypo.yaml")),
    verl_module="rlx_toypo.verl_ops",
    clip_level="token",
    constraints=(
        Constraint(
            "TOY001",
            Severity.ERROR,
            CLIP,
            gt(CLIP, 0.5),
            title="ToyPO clip ratio too wide",
            message="clip_ratio={value}: ToyPO is only defined for clip ratios up to 0.5",
            hint="set actor_rollout_ref.actor.clip_ratio=0.2",
        ),
    ),
)
"""

VERL_OPS = """
from verl.trainer.ppo.core_algos import get_policy_loss_fn, register_policy_loss


@register_policy_loss("toypo")
def compute_policy_loss_toypo(*args, **kwargs):
    loss, metrics = get_policy_loss_fn("vanilla")(*args, **kwargs)
    return loss, {**metrics, "toypo/loss_calls": 1.0}
"""

PRESET = """\
# ToyPO: a third-party test algorithm (GRPO with its own registered loss).
extends: grpo
overrides:
  actor_rollout_ref.actor.policy_loss.loss_mode: toypo   # the loss this package registers with verl
"""

PYPROJECT = """\
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "{name}"
version = "0.0.1"

[project.entry-points."rlx.algorithms"]
{entry}

[tool.setuptools]
packages = ["{package}"]

[tool.setuptools.package-data]
{package} = ["*.yaml"]
"""


def _package(root: Path, name: str, package: str, entry: str, files: dict[str, str]) -> Path:
    src = root / name
    (src / package).mkdir(parents=True)
    (src / "pyproject.toml").write_text(PYPROJECT.format(name=name, package=package, entry=entry))
    for rel, text in files.items():
        (src / package / rel).write_text(textwrap.dedent(text))
    return src


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("third-party")
    toypo = _package(
        root,
        "rlx-toypo",
        "rlx_toypo",
        'toypo = "rlx_toypo.spec:SPEC"',
        {"__init__.py": "", "spec.py": SPEC, "verl_ops.py": VERL_OPS, "toypo.yaml": PRESET},
    )
    broken = _package(
        root,
        "rlx-broken",
        "rlx_broken",
        'broken = "rlx_broken.spec:SPEC"',
        {"__init__.py": "", "spec.py": "raise RuntimeError('this plugin is broken on purpose')\n"},
    )
    target = root / "site"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--no-build-isolation"]
    subprocess.run([*pip, "--target", str(target), str(toypo), str(broken)], check=True, capture_output=True)
    assert (target / "rlx_toypo" / "toypo.yaml").is_file()
    path = os.pathsep.join(p for p in (str(target), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path}


def test_rlx_algos_lists_the_plugin_algorithm_and_names_the_broken_plugin(plugin_env):
    r = run_rlx("algos", "--format", "json", env=plugin_env)
    assert r.returncode == 0, r.stderr
    algos = {a["name"]: a for a in json.loads(r.stdout)}
    assert algos["toypo"]["origin"] == "rlx-toypo"
    assert {"grpo", "gspo", "aepo", "vapo"} <= set(algos)  # rlx's own are all still there
    assert "broken" in r.stderr and "broken on purpose" in r.stderr  # which plugin, and why

    r = run_rlx("algos", "show", "toypo", "--format", "json", env=plugin_env)
    assert r.returncode == 0, r.stderr
    shown = json.loads(r.stdout)
    assert shown["loss_mode"] == "toypo" and shown["preset"].startswith("toypo <- grpo")
    assert "TOY001" in {rule["code"] for rule in shown["rules"]}


def test_validate_checks_the_plugin_algorithm_and_its_own_rule(plugin_env):
    r = run_rlx("validate", "config", "--algo", "toypo", "--format", "json", env=plugin_env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert not [f for f in json.loads(r.stdout)["problems"] if f["severity"] == "error"]

    bad = "actor_rollout_ref.actor.clip_ratio=0.9"
    r = run_rlx("validate", "config", "--algo", "toypo", bad, "--format", "json", env=plugin_env)
    assert r.returncode == 1, r.stdout + r.stderr
    toy = [f for f in json.loads(r.stdout)["problems"] if f["code"] == "TOY001"]
    assert toy and toy[0]["path"] == "actor_rollout_ref.actor.clip_ratio"
    hint = toy[0]["hint"]
    assert hint == "set actor_rollout_ref.actor.clip_ratio=0.2"
    fixed = hint.removeprefix("set ")
    r = run_rlx("validate", "config", "--algo", "toypo", bad, fixed, "--format", "json", env=plugin_env)
    assert r.returncode == 0, r.stdout  # the hint's override fixes it


def test_dry_run_shows_the_plugin_loss(plugin_env, tmp_path):
    r = run_rlx("train", "--algo", "toypo", "--dry-run", env=plugin_env, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "actor_rollout_ref.actor.policy_loss.loss_mode=toypo" in r.stdout
    assert "algorithm.adv_estimator=grpo" in r.stdout


def test_smoke_run_trains_with_the_plugin_loss_on_an_embedded_head(plugin_env, tmp_path):
    from mlflow.tracking import MlflowClient

    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI")}  # an embedded head
    env.update(plugin_env, RLX_HOME=str(tmp_path / ".rlx"))
    steps = 10
    r = subprocess.run(
        [
            str(Path(sys.executable).parent / "rlx"),
            "train",
            "--algo",
            "toypo",
            "--smoke",
            "--steps",
            str(steps),
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    summary = json.loads(r.stdout)
    client = MlflowClient(summary["tracking_uri"])
    run = client.get_run(summary["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["actor_rollout_ref/actor/policy_loss/loss_mode"] == "toypo"
    assert run.data.tags["rlx.algo"] == "toypo"
    # the job's training loop called this package's loss, found through verl's registry, on every step
    calls = client.get_metric_history(summary["run_id"], "toypo/loss_calls")
    assert len(calls) == steps and all(m.value > 0 for m in calls)
