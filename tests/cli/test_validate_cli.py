"""`rlx validate config` and `rlx rules` through the real CLI entry point: exit codes, formats, messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1] / "data" / "validate"


def test_clean_preset_exits_0(rlx_cli):
    code, out, err = rlx_cli("validate", "config", "--algo", "gspo")
    assert code == 0, out + err
    assert "validation passed for preset gspo" in out


def test_issue_examples_are_caught(rlx_cli):
    code, out, _ = rlx_cli("validate", "config", "--algo", "grpo", "actor_rollout_ref.rollout.n=1",
                           "actor_rollout_ref.actor.policy_loss.loss_mode=gspoo", "--format", "json")
    assert code == 1
    report = json.loads(out)
    assert report["ok"] is False and report["errors"] == 2
    by_code = {p["code"]: p for p in report["problems"]}
    assert by_code["RLX401"]["path"] == "actor_rollout_ref.rollout.n"
    assert by_code["RLX302"]["path"] == "actor_rollout_ref.actor.policy_loss.loss_mode"
    assert by_code["RLX302"]["hint"].startswith("did you mean 'gspo'")
    assert by_code["RLX401"]["source"] == "command line"


def test_gspo_token_scale_clip_is_a_warning_exit_0_unless_strict(rlx_cli):
    args = ("validate", "config", "--algo", "gspo", "actor_rollout_ref.actor.clip_ratio_low=0.2",
            "actor_rollout_ref.actor.clip_ratio_high=0.2")
    code, out, _ = rlx_cli(*args)
    assert code == 0 and "RLX420" in out and "Warnings (1)" in out
    code, out, _ = rlx_cli(*args, "--strict")
    assert code == 1 and "--strict" in out
    code, out, _ = rlx_cli(*args, "--strict", "--ignore", "RLX420")
    assert code == 0


def test_text_report_groups_and_names_the_source(rlx_cli):
    code, out, _ = rlx_cli("validate", "config", "--algo", "gspo", "actor_rollout_ref.actor.clip_ratoi=0.2",
                           "actor_rollout_ref.actor.loss_agg_mode=token-mean")
    assert code == 1
    assert "Errors (1)" in out and "Warnings (1)" in out
    assert "RLX102 actor_rollout_ref.actor.clip_ratoi" in out
    assert "did you mean `actor_rollout_ref.actor.clip_ratio=0.2`?" in out


def test_github_format(rlx_cli):
    code, out, _ = rlx_cli("validate", "config", DATA.joinpath("input", "duplicate_key.yaml").as_posix(),
                           "--format", "github")
    assert code == 1
    assert out.startswith("::error file=") and "duplicate_key.yaml,line=4,title=RLX003" in out


def test_verl_mode_validates_a_script_argument_list(rlx_cli):
    args = [line for line in (DATA / "verl_examples" / "valid" / "grpo__run_deepseek7b_llm.args").read_text()
            .splitlines() if line and not line.startswith("#")]
    code, out, err = rlx_cli("validate", "config", "--verl", *args, "--format", "json")
    assert code == 0, out + err
    assert json.loads(out)["errors"] == 0


def test_file_argument_then_overrides(rlx_cli):
    code, out, _ = rlx_cli("validate", "config", str(DATA / "input" / "experiment_ok.yaml"),
                           "actor_rollout_ref.rollout.n=1", "--format", "json")
    assert code == 1
    assert [p["code"] for p in json.loads(out)["problems"]] == ["RLX401"]


@pytest.mark.parametrize("args", [
    ("validate", "config"),  # nothing to validate
    ("validate", "config", "--algo", "nosuchalgo"),
    ("validate", "config", "--verl", "--algo", "grpo"),
    ("validate", "config", "--algo", "grpo", "--format", "xml"),
    ("rules", "explain", "RLX999"),
])
def test_usage_errors_exit_2(rlx_cli, args):
    code, _, err = rlx_cli(*args)
    assert code == 2, err


def test_rules_lists_validator_and_catalog_codes(rlx_cli):
    code, out, _ = rlx_cli("rules", "--format", "json")
    assert code == 0
    codes = {r["code"] for r in json.loads(out)}
    assert {"RLX001", "RLX102", "RLX201", "RLX302", "RLX401", "RLX420", "RLX503"} <= codes


def test_rules_explain(rlx_cli):
    code, out, _ = rlx_cli("rules", "explain", "rlx107")
    assert code == 0
    assert "RLX107" in out and "custom_reward_function" in out and "severity: error" in out


def test_subprocess_exit_codes_and_no_traceback(tmp_path):
    from _rlxtest import run_rlx

    bad = tmp_path / "bad.yaml"
    bad.write_text("algo: grpo\noverrides: [\n")
    proc = run_rlx("validate", "config", str(bad))
    assert proc.returncode == 1
    assert "RLX001" in proc.stdout and "Traceback" not in proc.stdout + proc.stderr
    proc = run_rlx("validate", "config", "--algo", "gspo", "--format", "json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["ok"] is True


def test_train_refuses_to_launch_on_validation_errors(rlx_cli):
    code, out, _ = rlx_cli("train", "--algo", "grpo", "actor_rollout_ref.rollout.n=1", "--dry-run")
    assert code == 1 and "RLX401" in out
