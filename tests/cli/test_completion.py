"""Shell completion as the installed bash script asks for it (`rlx --show-completion bash`): `_RLX_COMPLETE`,
`COMP_WORDS` and `COMP_CWORD` in the environment, one candidate per line on stdout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from rlx.compare import synth


def complete(line: str, env: dict[str, str] | None = None) -> list[str]:
    words = line.split(" ")
    full = {
        **os.environ,
        **(env or {}),
        "_RLX_COMPLETE": "complete_bash",
        "COMP_WORDS": line,
        "COMP_CWORD": str(len(words) - 1),
    }
    r = subprocess.run([sys.executable, "-m", "rlx.cli"], capture_output=True, text=True, env=full, timeout=60)
    assert r.returncode == 0, r.stderr
    return [x for x in r.stdout.splitlines() if x]


def test_rule_codes_for_ignore_and_explain(rlx_cli):
    code, out, _ = rlx_cli("rules", "--format", "json")
    codes = [r["code"] for r in json.loads(out)]
    assert sorted(complete("rlx train --ignore RLX40")) == sorted(c for c in codes if c.startswith("RLX40"))
    assert sorted(complete("rlx validate config --algo gspo --ignore RLX1")) == sorted(
        c for c in codes if c.startswith("RLX1")
    )
    assert sorted(complete("rlx rules explain RLX")) == sorted(codes)


@pytest.mark.parametrize(
    "line,expected",
    [
        ("rlx train trainer.total_ep", ["trainer.total_epochs="]),
        ("rlx train --algo gspo actor_rollout_ref.actor.clip_ratio_h", ["actor_rollout_ref.actor.clip_ratio_high="]),
        ("rlx train actor_rollout_ref.ac", ["actor_rollout_ref.actor."]),  # a section: Tab again goes deeper
        ("rlx validate config --algo gspo data.max_prompt", ["data.max_prompt_length="]),
        ("rlx validate config --verl +trainer.total_ep", ["+trainer.total_epochs="]),
        ("rlx validate config --verl ~trainer.val_before", ["~trainer.val_before_train"]),  # a deletion takes no value
        ("rlx train trainer.total_epochs=", []),  # the value is the user's
        ("rlx train no_such_section.x", []),
    ],
)
def test_verl_config_keys_after_key_eq(line, expected):
    assert complete(line) == expected


def test_run_names_and_ids_for_runs_commands(tmp_path, monkeypatch):
    from rlx.launch.records import RunRecord, save

    env = {"RLX_HOME": str(tmp_path / "home")}
    monkeypatch.setenv("RLX_HOME", env["RLX_HOME"])
    for i, (rid, name) in enumerate([("3f9a00aa11", "gspo-copy-3f9a"), ("77bb00cc22", "grpo-copy-77bb")]):
        save(
            RunRecord(
                run_id=rid,
                submission_id=f"rlx-{rid}",
                experiment="rlx",
                experiment_id="1",
                tracking_uri="sqlite:///x.db",
                address="http://127.0.0.1:8265",
                embedded_head=True,
                run_name=name,
                created=time.time() + i,
            ),
            create=True,
        )
    for cmd in ("show", "logs", "stop"):
        assert complete(f"rlx runs {cmd} gspo-", env) == ["gspo-copy-3f9a"]
    assert complete("rlx runs show 77b", env) == ["77bb00cc22"]
    assert sorted(complete("rlx runs show ", env)) == sorted(
        ["gspo-copy-3f9a", "grpo-copy-77bb", "3f9a00aa11", "77bb00cc22"]
    )


def test_run_names_and_ids_for_compare_runs(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("c")
    gspo = synth.log_run(client, exp, "gspo-run", metrics={"critic/score/mean": [0.1]})
    synth.log_run(client, exp, "grpo-run", metrics={"critic/score/mean": [0.1]})
    assert complete(f"rlx compare runs --tracking-uri {uri} gsp") == ["gspo-run"]
    assert complete("rlx compare runs gr", {"MLFLOW_TRACKING_URI": uri}) == ["grpo-run"]
    assert complete(f"rlx compare runs --tracking-uri {uri} gspo-run {gspo[:6]}") == [gspo]
    missing = tmp_path / "none" / "mlflow.db"
    assert complete(f"rlx compare runs --tracking-uri sqlite:///{missing} g") == []
    assert not missing.exists()  # completion never creates a store
