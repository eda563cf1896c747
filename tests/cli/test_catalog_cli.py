"""`rlx algos`, `rlx presets` and `rlx train --dry-run` through the real CLI entry point: exact output and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rlx.algorithms import ALGORITHMS


def test_algos_json_lists_all_seventeen(rlx_cli):
    code, out, err = rlx_cli("algos", "--format", "json")
    assert code == 0, err
    rows = json.loads(out)
    assert [r["name"] for r in rows] == ALGORITHMS.names()
    assert len(rows) == 17
    for r in rows:
        assert set(r) == {"name", "summary", "paper", "family", "status"}
        assert r["paper"].startswith("arXiv:")
        assert r["family"] in ("group-relative", "critic-based", "single-sample")
        assert r["status"] in ("ready", "planned")


def test_algos_show_lists_keys_with_their_citations(rlx_cli):
    code, out, _ = rlx_cli("algos", "show", "gspo", "--format", "json")
    assert code == 0
    info = json.loads(out)
    settings = {s["key"]: s for s in info["settings"]}
    assert settings["actor_rollout_ref.actor.clip_ratio_low"]["value"] == 0.0003
    assert "section 5.1" in settings["actor_rollout_ref.actor.clip_ratio_low"]["reason"]
    assert settings["algorithm.adv_estimator"]["preset"] == "grpo"
    assert "RLX420" in {r["code"] for r in info["rules"]}
    code, out, _ = rlx_cli("algos", "show", "gspo")
    assert "GSPO" in out and "arxiv.org/abs/2507.18071" in out


def test_presets_ls_show_cp(rlx_cli, tmp_path):
    code, out, _ = rlx_cli("presets", "ls", "--format", "json")
    assert code == 0
    assert {r["name"] for r in json.loads(out)} == set(ALGORITHMS.names())
    code, out, _ = rlx_cli("presets", "show", "dapo", "--format", "json")
    assert json.loads(out)["lineage"] == "dapo <- grpo <- _base"
    dest = tmp_path / "mine.yaml"
    code, out, _ = rlx_cli("presets", "cp", "gspo", str(dest))
    assert code == 0 and dest.read_text().startswith("# GSPO")
    code, _, err = rlx_cli("presets", "cp", "gspo", str(dest))
    assert code == 2 and "already exists" in err and "--force" in err
    # The copy works as a user preset and keeps its algorithm (it extends the built-in grpo).
    dest.write_text(dest.read_text().replace("clip_ratio_high: 4.0e-4", "clip_ratio_high: 5.0e-4"))
    code, out, err = rlx_cli("train", "--preset", str(dest), "--dry-run", "--format", "json")
    assert code == 0, err
    data = json.loads(out)
    assert data["algorithm"] == "gspo"
    assert data["config"]["actor_rollout_ref"]["actor"]["clip_ratio_high"] == 0.0005


def test_train_dry_run_json_shape(rlx_cli):
    code, out, err = rlx_cli("train", "--algo", "gspo", "--dry-run", "--format", "json")
    assert code == 0, err
    data = json.loads(out)
    assert {"config", "changed", "command"} <= set(data)
    assert data["config"]["actor_rollout_ref"]["actor"]["policy_loss"]["loss_mode"] == "gspo"
    change = {c["key"]: c for c in data["changed"]}["actor_rollout_ref.actor.clip_ratio_high"]
    assert (change["value"], change["default"], change["source"]) == (0.0004, 0.2, "preset gspo")
    assert data["command"].startswith("python3 -m verl.trainer.main_ppo ")
    assert "actor_rollout_ref.actor.clip_ratio_low=0.0003" in data["command"]


def test_dry_run_output_writes_the_full_yaml(rlx_cli, tmp_path):
    out_file = tmp_path / "gspo.yaml"
    code, out, err = rlx_cli("train", "--algo", "gspo", "--dry-run", "--output", str(out_file))
    assert code == 0, err
    import yaml

    cfg = yaml.safe_load(out_file.read_text())
    assert cfg["actor_rollout_ref"]["actor"]["clip_ratio_high"] == 0.0004
    assert "Launch command" in out and "set by preset gspo" in out


@pytest.mark.parametrize(
    "args,code,lines",
    [
        (
            ["train", "--algo", "gspoo", "--dry-run"],
            2,
            ["error: unknown algorithm 'gspoo'", "hint: did you mean 'gspo'"],
        ),
        (
            ["train", "--algo", "gspo", "--dry-run", "actor_rollout_ref.actor.clip_ratoi=0.2"],
            1,
            [
                "error: unknown config key 'actor_rollout_ref.actor.clip_ratoi'",
                "  --> override 'actor_rollout_ref.actor.clip_ratoi=0.2'",
                "hint: did you mean `actor_rollout_ref.actor.clip_ratio=0.2`?",
            ],
        ),
        (
            ["train", "-c", "/nonexistent/exp.yaml", "--dry-run"],
            1,
            ["error: experiment file not found: /nonexistent/exp.yaml"],
        ),
        (["algos", "show", "nope"], 2, ["error: unknown algorithm 'nope'"]),
        (["presets", "show", "gspp"], 1, ["error: unknown preset 'gspp'", "hint: did you mean 'gspo'"]),
        (["train", "--dry-run"], 2, ["error: no algorithm given"]),
        (["train", "--algo", "gspo", "--output", "x.yaml"], 2, ["error: --output needs --dry-run"]),
    ],
)
def test_bad_input_gets_a_clear_error_and_exit_code(rlx_cli, args, code, lines):
    got, out, err = rlx_cli(*args)
    assert got == code
    for line in lines:
        assert line in err
    assert "Traceback" not in err + out


def test_malformed_experiment_yaml_reports_file_line_column(rlx_cli, tmp_path):
    bad = tmp_path / "exp.yaml"
    bad.write_text("algo: gspo\noverrides:\n  actor_rollout_ref.rollout.n: [8\n")
    code, _, err = rlx_cli("train", "-c", str(bad), "--dry-run")
    assert code == 1
    assert f"--> {bad}:4:1" in err
    bad.write_text("algo: gspo\nmodle: x\n")
    code, _, err = rlx_cli("train", "-c", str(bad), "--dry-run")
    assert code == 1 and "unknown key 'modle'" in err and f"{bad}:2" in err and "did you mean 'model'" in err


def test_verbose_shows_the_traceback(tmp_path):
    exe = [sys.executable, "-m", "rlx.cli", "--verbose", "train", "--algo", "gspoo", "--dry-run"]
    out = subprocess.run(exe, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "Traceback" in out.stderr


@pytest.mark.parametrize("args", [["--help"], ["algos"], ["presets", "ls"], ["algos", "show", "gspo"]])
def test_light_commands_import_no_heavy_library(args):
    code = (
        "import sys\n"
        "from rlx.cli import main\n"
        f"rc = main({args!r})\n"
        "heavy = sorted(m for m in ('torch', 'ray', 'verl', 'mlflow') if m in sys.modules)\n"
        "print('HEAVY=' + ','.join(heavy))\n"
        "sys.exit(rc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "HEAVY="
