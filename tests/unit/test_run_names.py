"""Run names: an unnamed run is named `<algo>-<task or data stem>-<4 hex>` once, at launch; lookup by name."""

from __future__ import annotations

import json
import re

import pytest

from rlx.errors import UsageError
from rlx.resolve import resolve
from rlx.resolve.naming import name_run, planned_name, user_named

NAME = "trainer.experiment_name"


def test_unnamed_run_is_named_after_algo_and_task_once():
    r = resolve("gspo")
    assert r.get(NAME) == "gsm8k" and not user_named(r)  # verl's default: every run would be `gsm8k`
    name = name_run(r, task="copy")
    assert re.fullmatch(r"gspo-copy-[0-9a-f]{4}", name), name
    # verl reads it from the config, the launcher from the same config: one value everywhere.
    assert r.get(NAME) == name and r.container()["trainer"]["experiment_name"] == name
    assert f"{NAME}={name}" in r.override_list()
    assert user_named(r) and name_run(r, task="copy") is None  # named once: a second call changes nothing
    assert r.get(NAME) == name


def test_suffixes_are_drawn_not_derived():
    names = {name_run(resolve("grpo"), task="copy") for _ in range(6)}
    assert len(names) > 1  # 6 draws from 65,536 suffixes: all equal only if the suffix were not random


def test_gpu_run_is_named_after_its_data():
    # verl's default data.train_files is ~/data/gsm8k/train.parquet: "train" says nothing, its folder does.
    assert name_run(resolve("gspo"), token="3f9a") == "gspo-gsm8k-3f9a"
    r = resolve("dapo", overrides=["data.train_files=[/d/math/dapo-math-17k.parquet,/d/other.parquet]"])
    assert name_run(r, token="0b1c") == "dapo-dapo-math-17k-0b1c"


@pytest.mark.parametrize("override", ["trainer.experiment_name=mine", "trainer.experiment_name=gsm8k"])
def test_a_name_the_user_gave_is_kept(override):
    r = resolve("gspo", overrides=[override])
    assert user_named(r) and name_run(r, task="copy") is None
    assert r.get(NAME) == override.split("=")[1]  # even when it equals verl's default: the user chose it
    assert planned_name(r, "copy") == (override.split("=")[1], False)


def test_resolving_stays_deterministic():
    assert planned_name(resolve("gspo")) == planned_name(resolve("gspo")) == ("gspo-gsm8k-????", True)
    assert planned_name(resolve("grpo"), "reverse") == ("grpo-reverse-????", True)
    assert resolve("gspo").to_yaml() == resolve("gspo").to_yaml()


def test_the_launch_plan_carries_the_drawn_name(monkeypatch):
    from rlx.launch import job_overrides, prepare

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    r = resolve("grpo")
    name = name_run(r, task="copy", token="beef")
    plan = prepare(
        r,
        None,
        smoke=True,
        local=False,
        task="copy",
        steps=2,
        seed=1,
        address="http://10.1.2.3:8265",
        detach=True,
        tracking_uri="http://mlflow:5000",
        format="json",
    )
    assert plan.run_name == name == "grpo-copy-beef"  # the MLflow run name
    assert "  experiment_name: grpo-copy-beef\n" in plan.config_yaml  # what the smoke job reads
    assert "trainer.experiment_name=grpo-copy-beef" in job_overrides(r)[0]  # what verl reads on a cluster


# ---- lookup: `rlx runs show|logs|stop NAME` -----------------------------------------------------------------------


@pytest.fixture
def runs(tmp_path, monkeypatch):
    from rlx.launch import records
    from rlx.launch.records import RunRecord, State

    monkeypatch.setenv("RLX_HOME", str(tmp_path / "home"))
    made = {}
    for i, (rid, name) in enumerate(
        [("aa11bb22cc33", "gspo-copy-3f9a"), ("dd44ee55ff66", "gspo-copy-3f9a2"), ("0123456789ab", "grpo-copy-77c1")]
    ):
        rec = RunRecord(
            run_id=rid,
            submission_id=f"rlx-{rid}",
            experiment="e",
            experiment_id="1",
            tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
            address="http://127.0.0.1:1",
            embedded_head=False,
            run_name=name,
            created=1000.0 + i,
        )
        made[name] = records.save(rec, State.SUCCEEDED, create=True)
    return made


def test_find_by_id_name_or_unique_prefix(runs):
    from rlx.launch import records

    assert records.find("aa11bb22cc33").run_id == "aa11bb22cc33"
    assert records.find("gspo-copy-3f9a").run_id == "aa11bb22cc33"  # exact name beats the longer name it prefixes
    assert records.find("gspo-copy-3f9a2").run_id == "dd44ee55ff66"
    assert records.find("grpo").run_id == "0123456789ab"  # unique prefix of a name
    assert records.find("dd44").run_id == "dd44ee55ff66"  # unique prefix of an id


def test_ambiguous_name_lists_the_candidates_and_exits_2(runs, rlx_cli):
    code, out, err = rlx_cli("runs", "show", "gspo-copy")
    assert code == 2 and out == ""
    assert err.splitlines()[:3] == [
        "error: 'gspo-copy' matches 2 runs:",
        "  dd44ee55ff66  gspo-copy-3f9a2  SUCCEEDED",  # newest first
        "  aa11bb22cc33  gspo-copy-3f9a  SUCCEEDED",
    ]
    assert "hint: give the run id (or more of it) or a longer part of the name" in err
    with pytest.raises(UsageError, match="no run 'ppo'"):
        from rlx.launch import records

        records.find("ppo")


def test_show_by_name(runs, rlx_cli):
    code, out, err = rlx_cli("runs", "show", "grpo-copy-77c1", "--format", "json")
    assert code == 0, err
    data = json.loads(out)
    assert (data["run_id"], data["run_name"], data["state"]) == ("0123456789ab", "grpo-copy-77c1", "SUCCEEDED")


def test_ls_shows_the_names(runs, rlx_cli, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")
    code, out, err = rlx_cli("runs", "ls")
    assert code == 0, err
    rows = [line.replace("│", " ").split() for line in out.splitlines() if "copy" in line]
    assert sorted(r[:3] for r in rows) == [
        ["0123456789ab", "grpo-copy-77c1", "SUCCEEDED"],
        ["aa11bb22cc33", "gspo-copy-3f9a", "SUCCEEDED"],
        ["dd44ee55ff66", "gspo-copy-3f9a2", "SUCCEEDED"],
    ]


def test_dry_run_shows_the_name_it_will_draw(rlx_cli):
    code, out, err = rlx_cli("train", "--algo", "gspo", "--smoke", "--dry-run")
    assert code == 0, err
    assert (
        "  run name gspo-copy-????  (trainer.experiment_name; the 4 hex digits are drawn at launch; --name NAME "
        "picks one)"
    ) in out.splitlines()
    assert rlx_cli("train", "--algo", "gspo", "--smoke", "--dry-run")[1] == out  # deterministic
    code, out, _ = rlx_cli("train", "--algo", "gspo", "--dry-run", "--name", "baseline-1")
    assert "  run name baseline-1" in out.splitlines()
    code, out, _ = rlx_cli("train", "--algo", "gspo", "--dry-run", "--format", "json")
    data = json.loads(out)
    assert (data["run_name"], data["run_name_drawn_at_launch"]) == ("gspo-gsm8k-????", True)
    assert data["config"]["trainer"]["experiment_name"] == "gsm8k"  # the resolved config itself is not touched
