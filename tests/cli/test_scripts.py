"""verl bash scripts as they stand: `rlx validate config --verl run.sh` and `rlx import run.sh -o exp.yaml`.

The scripts in tests/data/scripts are written in the style of verl's examples (examples/*_trainer, recipe/dapo):
`set -x`, path variables, `${VAR:-default}`, `$((...))`, `$@`, `| tee`, `ray job submit -- ...`. The round trip is
checked against a config built a second, independent way: the script's arguments (as bash would pass them) applied
to verl's defaults, compared leaf by leaf with what the written experiment file resolves to.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

SCRIPTS = sorted((Path(__file__).resolve().parents[1] / "data" / "scripts").glob("*.sh"))
# the algorithm a researcher means by each script (its file name says it)
EXPECTED_ALGO = {"reinforce": "reinforce_pp"}


def _expected_algo(script: Path) -> str:
    head = script.name.split("_")[0]
    return EXPECTED_ALGO.get(head, head)


def _script_config(script: Path) -> dict:
    from omegaconf import OmegaConf

    from rlx.resolve import flatten, resolve
    from rlx.verlscript import read_script

    args = [a.text for a in read_script(script).overrides]
    return flatten(OmegaConf.to_container(resolve(overrides=args, verl_only=True).config, resolve=False))


def _experiment_config(path: Path) -> dict:
    from omegaconf import OmegaConf

    from rlx.resolve import flatten, resolve

    return flatten(OmegaConf.to_container(resolve(experiment=path).config, resolve=False))


def test_the_corpus_covers_at_least_ten_scripts():
    assert len(SCRIPTS) >= 10
    assert len({_expected_algo(s) for s in SCRIPTS}) >= 10


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_import_round_trip(rlx_cli, tmp_path, script):
    out = tmp_path / "exp.yaml"
    code, stdout, err = rlx_cli("import", str(script), "-o", str(out), "--format", "json")
    assert code == 0, stdout + err
    report = json.loads(stdout)
    assert report["algo"] == _expected_algo(script)
    assert report["round_trip"] == "exact" and report["validation"]["errors"] == 0
    a, b = _script_config(script), _experiment_config(out)
    assert {k for k in a.keys() | b.keys() if a.get(k, "<absent>") != b.get(k, "<absent>")} == set()
    text = out.read_text()
    assert f"algo: {_expected_algo(script)}" in text
    assert "model:" in text and "data:" in text and "overrides:" in text  # lifted out, the rest kept
    # every line of the experiment that came from the script names its line there
    for line in text.splitlines():
        if f"{script.name}:" in line:
            n = int(line.rsplit(":", 1)[1])
            key = line.split(":", 1)[0].strip().lstrip("+~")
            assert key.rsplit(".", 1)[-1] in script.read_text().splitlines()[n - 1] or key in (
                "model", "name", "train", "val", "batch_size", "max_prompt_length", "max_response_length",
                "nnodes", "gpus_per_node", "experiment", "steps"), line


def test_import_sets_back_what_the_preset_changes_and_says_so(rlx_cli, tmp_path):
    script = next(s for s in SCRIPTS if s.name.startswith("grpo_"))
    out = tmp_path / "exp.yaml"
    code, stdout, _ = rlx_cli("import", str(script), "-o", str(out))
    assert code == 0, stdout
    assert "round trip: the experiment resolves to exactly the script's verl config" in stdout
    # verl's token-mean, kept by the script, differs from GRPO's published seq-mean-token-mean
    assert ("actor_rollout_ref.actor.loss_agg_mode: token-mean  # preset grpo sets seq-mean-token-mean; the script "
            "keeps this") in out.read_text()
    code, stdout, err = rlx_cli("import", str(script), "-o", str(out))
    assert code == 2 and "exists" in stdout + err and "--force" in stdout + err


def _write(tmp_path: Path, body: str, name: str = "run.sh") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(body).lstrip("\n"))
    return p


BASE = """
    #!/usr/bin/env bash
    set -x
    BS=${BS:-64}
    python3 -m verl.trainer.main_ppo \\
        algorithm.adv_estimator=grpo \\
        data.train_batch_size=$BS \\
        actor_rollout_ref.model.path=Qwen/Qwen2.5-0.5B \\
        actor_rollout_ref.actor.ppo_mini_batch_size=16 \\
        actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=4 \\
        actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=4 \\
        actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=4 \\
        actor_rollout_ref.rollout.name=vllm \\
        actor_rollout_ref.rollout.n=4 \\
        trainer.n_gpus_per_node=8 {extra} $@
    """


def _validate(rlx_cli, path: Path) -> tuple[int, dict]:
    code, out, err = rlx_cli("validate", "config", "--verl", str(path), "--format", "json")
    return code, json.loads(out)


@pytest.mark.parametrize(("defect", "code", "line"), [
    # a typo'd key, on its own continuation line (line 15)
    ("\\\n    actor_rollout_ref.actor.los_agg_mode=token-mean", "RLX102", 15),
    # a mini-batch larger than the train batch: the finding points at the line that set the mini-batch
    ("\\\n    actor_rollout_ref.actor.ppo_mini_batch_size=128", "RLX205", 15),
    # a group of one for GRPO
    ("\\\n    actor_rollout_ref.rollout.n=1", "RLX401", 15),
])
def test_validate_script_points_at_the_line(rlx_cli, tmp_path, defect, code, line):
    twin = _write(tmp_path, BASE.replace("{extra}", ""), "valid.sh")
    rc, report = _validate(rlx_cli, twin)
    assert rc == 0 and report["errors"] == 0, report
    broken = _write(tmp_path, BASE.replace("{extra}", defect), "run.sh")
    rc, report = _validate(rlx_cli, broken)
    assert rc == 1
    found = [p for p in report["problems"] if p["code"] == code]
    assert found, report["problems"]
    assert f"run.sh:{line}" in found[0]["source"], found[0]


def test_validate_script_names_unresolved_variables_and_skips_their_overrides(rlx_cli, tmp_path):
    p = _write(tmp_path, BASE.replace("{extra}", "\\\n    trainer.nnodes=$NODES"))
    rc, report = _validate(rlx_cli, p)
    assert rc == 0  # a warning: the override is not validated, verl's default stands in
    (u,) = [x for x in report["problems"] if x["code"] == "RLX012"]
    assert u["severity"] == "warning" and "$NODES" in u["message"] and u["source"].endswith("run.sh:15")
    assert "${NODES:-VALUE}" in u["hint"]


def test_validate_script_with_a_custom_config_folder(rlx_cli, tmp_path):
    """`--config-path` relative to the script, `--config-name` a config that extends verl's ppo_trainer."""
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "my_grpo.yaml").write_text(textwrap.dedent("""
        hydra:
          searchpath:
            - file://verl/trainer/config
        defaults:
          - ppo_trainer
          - _self_
        actor_rollout_ref:
          actor:
            loss_agg_mode: token-meen
        """))
    body = BASE.replace(
        "python3 -m verl.trainer.main_ppo \\", "python3 -m verl.trainer.main_ppo --config-path=config \\\n"
        "        --config-name=my_grpo \\")
    rc, report = _validate(rlx_cli, _write(tmp_path, body))
    assert rc == 1  # the typo is in the config the script composes, not on a script line
    (bad,) = [p for p in report["problems"] if p["code"] == "RLX208"]
    assert bad["path"] == "actor_rollout_ref.actor.loss_agg_mode" and "my_grpo" in bad["source"]
    rc, report = _validate(rlx_cli, _write(tmp_path, BASE.replace("{extra}", ""), "plain.sh"))
    assert rc == 0  # the same script on verl's own config
    missing = _write(tmp_path, body.replace("--config-name=my_grpo", "--config-name=nope"), "missing.sh")
    rc, report = _validate(rlx_cli, missing)
    assert rc == 1 and report["problems"][0]["code"] == "RLX011"
    assert "missing.sh:" in report["problems"][0]["source"]


def test_a_script_with_no_trainer_command(rlx_cli, tmp_path):
    p = _write(tmp_path, "#!/bin/bash\n# python3 -m verl.trainer.main_ppo a=1\necho hi\n")
    rc, report = _validate(rlx_cli, p)
    assert rc == 1 and report["problems"][0]["code"] == "RLX010"
    code, out, err = rlx_cli("import", str(p), "-o", str(tmp_path / "x.yaml"))
    assert code == 1 and "no `python -m verl.trainer.main_ppo`" in out + err
    assert not (tmp_path / "x.yaml").exists()
