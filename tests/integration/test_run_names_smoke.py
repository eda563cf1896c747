"""An unnamed `rlx train --smoke --local` run: one drawn name in verl's config, MLflow, the run record and compare.

Slow tier (integration, smoke): one 1-step CPU smoke run in this process, about 30 s on 2 loaded cores.
"""

from __future__ import annotations

import json
import re

import pytest
import yaml
from _rlxtest import run_rlx

pytestmark = [pytest.mark.integration, pytest.mark.smoke]


def test_unnamed_run_has_one_name_everywhere(tmp_path):
    env = {"RLX_HOME": str(tmp_path / "home"), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    r = run_rlx("train", "--algo", "gspo", "--smoke", "--local", "--steps", "1", env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]

    r = run_rlx("runs", "ls", "--format", "json", env=env, cwd=tmp_path)
    (row,) = json.loads(r.stdout)
    name = row["run_name"]
    assert re.fullmatch(r"gspo-copy-[0-9a-f]{4}", name), name  # not verl's default `gsm8k`

    from mlflow.tracking import MlflowClient

    run = MlflowClient(env["MLFLOW_TRACKING_URI"]).get_run(row["run_id"])
    assert run.info.run_name == name
    r = run_rlx("runs", "show", name[:-2], "--format", "json", env=env, cwd=tmp_path)  # a unique prefix of the name
    assert r.returncode == 0, r.stderr
    shown = json.loads(r.stdout)
    config = yaml.safe_load(open(shown["config_path"]))
    assert config["trainer"]["experiment_name"] == name  # what the job (and verl) read

    r = run_rlx("compare", "runs", "-e", "rlx", "--format", "json", env=env, cwd=tmp_path)
    assert [x["label"] for x in json.loads(r.stdout)["runs"]] == [name]
