"""`rlx train --dry-run`: the launch command a user pastes (`ray job submit ...`), read back by Ray's own CLI parser
and Hydra's override parser, its marked placeholders, and the preset keys verl ignores under the config ("inert")."""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path

import pytest

from rlx.resolve import resolve
from rlx.resolve.inert import inert_keys

README = Path(__file__).resolve().parents[2] / "README.md"
ADDRESS = "http://ray-head:8265"
URI = "http://mlflow.internal:5000"
ARGS = [
    "train",
    "--algo",
    "gspo",
    "--dry-run",
    "data.train_files='~/data/gsm8k/train.parquet'",
    "--address",
    ADDRESS,
    "--tracking-uri",
    URI,
]


@pytest.fixture(autouse=True)
def _no_job_env(monkeypatch):
    for name in ("RLX_JOB_PYTHON", "RAY_ADDRESS", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)


def _launch_block(out: str) -> list[str]:
    """The `ray job submit` line and the indented notes under it."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("ray job submit "))
    block = [lines[start]]
    for line in lines[start + 1 :]:
        if not line.startswith("  "):
            break
        block.append(line)
    return block


def test_the_printed_command_is_what_rays_cli_submits(rlx_cli):
    """Split as a shell would and parsed by `ray job submit`'s own click command: the address, the submission id,
    the job's environment, one CPU for the driver, and an entrypoint whose overrides Hydra reads back as written."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from ray.dashboard.modules.job.cli import submit

    code, out, err = rlx_cli(*ARGS)
    assert code == 0, err
    block = _launch_block(out)
    words = shlex.split(block[0])
    assert words[:3] == ["ray", "job", "submit"]
    p = submit.make_context("submit", words[3:]).params
    assert p["address"] == ADDRESS and p["submission_id"] == "rlx-<run-id>" and p["entrypoint_num_cpus"] == 1
    assert json.loads(p["runtime_env_json"]) == {
        "env_vars": {"MLFLOW_TRACKING_URI": URI, "MLFLOW_RUN_ID": "<run-id>", "PYTHONUNBUFFERED": "1",
                     "RLX_VERL_TRACKING": "1"}
    }
    argv = list(p["entrypoint"])
    assert argv[:3] == ["python", "-m", "verl.trainer.main_ppo"]
    seen = {o.key_or_group: o.value() for o in OverridesParser.create().parse_overrides(argv[3:])}
    assert seen["data.train_files"] == "~/data/gsm8k/train.parquet"
    assert seen["actor_rollout_ref.actor.policy_loss.loss_mode"] == "gspo"
    assert "mlflow" in seen["trainer.logger"]  # the job logs into rlx's MLflow run
    assert seen["trainer.experiment_name"] == "gspo-gsm8k-????"  # the drawn name travels, marked below
    # Paths read as written: double quotes around Hydra's single quotes, not '...'"'"'...'"'"''.
    assert "\"data.train_files='~/data/gsm8k/train.parquet'\"" in block[0] and "'\"'\"'" not in block[0]
    assert block[1:] == [
        "  <run-id> (MLFLOW_RUN_ID, and the submission id rlx-<run-id>): the MLflow run id, created at launch, before "
        "the job is submitted",
        "  trainer.experiment_name=gspo-gsm8k-????: the 4 hex digits are drawn at launch (--name NAME picks the name)",
        "  RLX_* variables sent: RLX_VERL_TRACKING (verl's MLflow logger sends through rlx's journal, so a tracking "
        "outage neither stalls a step nor drops it; a GPU job needs no other)",
    ]


def test_a_named_run_has_no_drawn_name_and_secrets_stay_out(rlx_cli):
    token = "hf_" + "a1B2" * 8
    code, out, err = rlx_cli(
        "train",
        "--algo",
        "grpo",
        "--dry-run",
        "--name",
        "baseline-1",
        "--address",
        ADDRESS,
        "--tracking-uri",
        f"https://mlflow.internal/?api_key={token}",
    )
    assert code == 0, err
    block = _launch_block(out)
    assert token not in out and "***REDACTED***" in block[0]
    assert "trainer.experiment_name=baseline-1" in shlex.split(block[0])
    assert not any("drawn at launch" in line for line in block)


def test_json_carries_the_command_and_its_parts(rlx_cli):
    code, out, _ = rlx_cli(*ARGS, "--format", "json")
    data = json.loads(out)["ray_job_submit"]
    assert data["submission_id"] == "rlx-<run-id>" and data["runtime_env"]["env_vars"]["MLFLOW_RUN_ID"] == "<run-id>"
    assert shlex.split(data["line"])[-1] == "trainer.experiment_name='gspo-gsm8k-????'"


def test_inert_keys_follow_verls_switches():
    """verl reads kl_loss_coef only under use_kl_loss (workers/utils/losses.py), builds the reference policy only for
    a KL loss or KL in the reward, and a critic only for GAE or critic.enable (trainer/ppo/utils.py)."""

    def inert(algo, *overrides):
        r = resolve(algo, overrides=list(overrides))
        return set(inert_keys([c.key for c in r.changed()], r.get))

    critic_micro = "critic.ppo_micro_batch_size_per_gpu"
    kl_coef = "actor_rollout_ref.actor.kl_loss_coef"
    ref_micro = "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu"
    assert inert("grpo") == {critic_micro}  # GRPO: KL loss on, so the coefficient and the reference matter
    assert {critic_micro, kl_coef, ref_micro} <= inert("gspo")  # GSPO: no KL loss
    assert inert("gspo", "actor_rollout_ref.actor.use_kl_loss=true") & {kl_coef, ref_micro} == set()
    assert critic_micro not in inert("ppo")  # GAE: a critic
    assert critic_micro not in inert("grpo", "critic.enable=true")


def test_dry_run_marks_inert_keys(rlx_cli):
    code, out, _ = rlx_cli("train", "--algo", "gspo", "--dry-run")
    lines = out.splitlines()
    i = lines.index("  actor_rollout_ref.actor.kl_loss_coef = 0.04  (verl: 0.001)  inert")
    assert (
        lines[i + 2]
        == "      inert: actor_rollout_ref.actor.use_kl_loss is off: verl reads it only with the KL loss on"
    )
    assert "  algorithm.adv_estimator = grpo  (verl: gae)" in lines  # a key that matters is not marked


def test_readme_shows_the_current_launch_command(rlx_cli):
    """The README's dry-run block is this output; RLX_REGEN_DOCS=1 rewrites it."""
    code, out, _ = rlx_cli(*ARGS)
    shown = (
        f"$ rlx train --algo gspo --dry-run \"data.train_files='~/data/gsm8k/train.parquet'\" --address {ADDRESS} "
        f"--tracking-uri {URI}\n...\n" + "\n".join(_launch_block(out)) + "\n"
    )
    block = f"<!-- dry-run-launch: generated by tests/cli/test_dry_run_launch.py -->\n```console\n{shown}```\n"
    text = README.read_text()
    pattern = re.compile(r"<!-- dry-run-launch: generated by [^\n]*-->\n```console\n.*?```\n", re.S)
    if os.environ.get("RLX_REGEN_DOCS") == "1":
        README.write_text(pattern.sub(lambda _: block, text, count=1))
        text = README.read_text()
    assert block in text, "README's dry-run block is stale: rerun this test with RLX_REGEN_DOCS=1"


def test_gad_launches_through_rlxs_verl_entrypoint(rlx_cli):
    """GAD's critic is trained as the discriminator by rlx's trainer extension: verl's own launcher would train GSPO
    on the dataset's reward with an unused value model, so the command submitted must be rlx.verl_entry."""
    code, out, err = rlx_cli("train", "--algo", "gad", "--dry-run", "--address", "http://127.0.0.1:1")
    assert code == 0, out + err
    assert "python -m rlx.verl_entry" in out and "verl.trainer.main_ppo" not in out, out
