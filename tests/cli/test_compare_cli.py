"""`rlx compare runs` through the real CLI entry point: formats, files, exit codes, error messages."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from _rlxtest import free_port, run_rlx

from rlx.compare import synth


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Three runs in experiment `exp`: a GSPO and a GRPO rlx run, and a plain verl-style run that failed early."""
    from mlflow.tracking import MlflowClient

    mlflow_uri = f"sqlite:///{tmp_path_factory.mktemp('cmpcli') / 'mlflow.db'}"
    client = MlflowClient(mlflow_uri)
    exp = client.create_experiment("exp")
    base = {"algorithm/adv_estimator": "grpo", "actor_rollout_ref/actor/clip_ratio_high": "0.2",
            "actor_rollout_ref/actor/policy_loss/loss_mode": "vanilla", "data/train_batch_size": "256"}
    gspo = {**base, "actor_rollout_ref/actor/policy_loss/loss_mode": "gspo",
            "actor_rollout_ref/actor/clip_ratio_high": "0.0004"}
    synth.log_run(client, exp, "gspo-run", params=gspo, metrics=synth.curves(10, 1, gain=0.9),
                  tags=synth.rlx_tags("gspo"))
    synth.log_run(client, exp, "grpo-run", params=base, metrics=synth.curves(10, 2, gain=0.5),
                  tags=synth.rlx_tags("grpo"))
    synth.log_run(client, exp, "verl-run", params=base, metrics=synth.curves(3, 3, keys=["critic/score/mean"]),
                  status="FAILED")
    return mlflow_uri


@pytest.fixture
def cmp(rlx_cli, store):
    """`rlx compare runs --tracking-uri <store> ...`"""
    return lambda *args: rlx_cli("compare", "runs", "--tracking-uri", store, *args)


def test_text_table(cmp):
    code, out, err = cmp("-e", "exp")
    assert code == 0, err
    for text in ("gspo-run", "grpo-run", "verl-run", "FAILED", "grpo~", "score ↑", "config diff", "clip_ratio_high",
                 "policy_loss.loss_mode"):
        assert text in out
    assert "data.train_batch_size" not in out and "train_batch_size" not in out  # identical keys stay out


def test_json_csv_md(cmp, tmp_path):
    code, out, _ = cmp("-e", "exp", "--format", "json", "--metric", "actor/grad_norm:down")
    assert code == 0
    data = json.loads(out)
    assert len(data["runs"]) == 3
    assert {m["key"]: m["direction"] for m in data["metrics"]}["actor/grad_norm"] == "down"
    gspo = next(r for r in data["runs"] if r["name"] == "gspo-run")
    assert data["best"]["critic/score/mean"]["final"] == [gspo["run_id"]]
    assert set(data["config_diff"]["sections"]) == {"actor_rollout_ref.actor"}

    code, _, err = cmp("-e", "exp", "-f", "csv", "-o", str(tmp_path / "t.csv"))
    assert code == 0 and "wrote" in err
    lines = (tmp_path / "t.csv").read_text().splitlines()
    assert len(lines) == 4 and lines[0].startswith("run_id,name,experiment,algorithm")

    code, out, _ = cmp("gspo-run", "grpo-run", "-f", "md")
    assert code == 0 and out.startswith("| run |") and "**" in out and "`actor_rollout_ref.actor.clip_ratio_high`" in out


def test_plot_and_html(cmp, tmp_path):
    import matplotlib.image

    png, page = tmp_path / "c.png", tmp_path / "r.html"
    code, _, err = cmp("-e", "exp", "--algo", "gspo", "--plot", str(png), "--smooth", "0.5", "--html", str(page),
                       "-f", "json")
    assert code == 0, err
    assert "1 line(s) in 1 panel(s)" in err
    code, _, err = cmp("-e", "exp", "--algo", "gspo,grpo", "--plot", str(png), "-f", "json")
    assert "3 line(s) in 1 panel(s)" in err  # verl-run has no rlx tags: grpo, derived from its params
    assert matplotlib.image.imread(str(png)).ndim == 3
    assert "data:image/png;base64," in page.read_text()


@pytest.mark.parametrize("args,code,message", [
    (["-e", "exp", "--filter", "params.a = 'x' OR params.b = 'y'"], 1, "MLflow rejected the query"),
    (["-e", "exp", "--filter", "tags.`rlx.algo` = 'none'"], 1, "no runs matched"),
    (["-e", "nope"], 1, "no experiment named 'nope'"),
    (["no-such-run"], 1, "no run with id or name 'no-such-run'"),
    (["-e", "exp", "--algo", "gsp"], 2, "unknown algorithm 'gsp'"),
    (["-e", "exp", "--last", "0"], 2, "--last must be at least 1"),
    (["-e", "exp", "--plot", "x.png", "--smooth", "1.5"], 2, "--smooth must be in [0, 1)"),
])
def test_errors_are_clear(cmp, args, code, message):
    got, out, err = cmp(*args)
    assert got == code, err
    assert f"error: {message}" in err and "Traceback" not in err
    assert "hint:" in err


def test_missing_default_store_is_not_created(rlx_cli, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    code, _, err = rlx_cli("compare", "runs")
    assert code == 3 and f"no MLflow store at {tmp_path / 'mlflow.db'}" in err
    assert not (tmp_path / "mlflow.db").exists()


def test_unreachable_server_exits_3():
    port = free_port()  # nothing listens there
    r = run_rlx("compare", "runs", "--tracking-uri", f"http://127.0.0.1:{port}", timeout=90)
    assert r.returncode == 3, r.stderr
    assert "error: MLflow is unreachable" in r.stderr and "Traceback" not in r.stderr


def test_help_and_cheap_import():
    r = run_rlx("compare", "runs", "--help")
    assert r.returncode == 0 and "$ rlx compare runs" in r.stdout
    code = ("import sys, rlx.cli, rlx.commands.compare, rlx.compare; "
            "print([m for m in ('mlflow', 'pandas', 'matplotlib', 'torch', 'verl', 'ray') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_ppo_kl_closest_to_zero_wins_and_kl_to_reference_is_shown(rlx_cli, tmp_path):
    """What the user reads: the run whose ppo_kl stays near 0 is starred, not the one at -0.3; KL to the reference is
    a column because one run logged it (with the KL loss on), and its cells carry no star (neutral)."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("kl")
    synth.log_run(client, exp, "steady", tags=synth.rlx_tags("grpo"),
                  metrics={"critic/score/mean": [0.1, 0.2], "actor/ppo_kl": [0.002, 0.001],
                           "actor/kl_loss": [0.01, 0.03]})
    synth.log_run(client, exp, "unstable", tags=synth.rlx_tags("gspo"),
                  metrics={"critic/score/mean": [0.1, 0.2], "actor/ppo_kl": [-0.1, -0.3]})
    code, out, err = rlx_cli("compare", "runs", "--tracking-uri", uri, "-e", "kl", "--format", "json")
    assert code == 0, err
    data = json.loads(out)
    steady = next(r["run_id"] for r in data["runs"] if r["name"] == "steady")
    assert data["best"]["actor/ppo_kl"] == {"final": [steady], "best": [steady], "auc": [steady]}
    assert {m["key"]: m["direction"] for m in data["metrics"]}["actor/kl_loss"] == "neutral"

    code, out, err = rlx_cli("compare", "runs", "--tracking-uri", uri, "-e", "kl")
    assert code == 0, err
    lines = out.splitlines()
    head = next(line for line in lines if line.startswith("run "))
    assert head.split() == ["run", "algo", "status", "steps", "time", "reward", "stat", "score", "↑", "ppo_kl", "→0",
                            "kl_ref", "·", "marks"]
    row = {line.split()[0]: line.split() for line in lines if line.split()[:1] in (["steady"], ["unstable"])}
    assert row["steady"][-2:] == ["0.001*", "0.03"]  # final ppo_kl starred; final KL to reference plain
    assert row["unstable"][-4:] == ["-0.3", "—", "missing:", "kl_ref"]  # no KL loss: said so, in the row
    assert "→0 closest to 0 is better" in out
    assert "kl_loss" not in "".join(line for line in lines if line.startswith("note:"))  # logged by one: no nag


def test_failed_runs_say_why_in_one_line(rlx_cli, tmp_path):
    """A failed run's note is the exit code and the last log lines, also for a run whose tag holds Ray's raw message
    (Ray's format: ray/dashboard/modules/job/job_supervisor.py); a stopped run says what stopped it."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("ends")
    raw = ("Job entrypoint command failed with exit code 1, last available logs (truncated to 20,000 chars):\n"
           + "noise " * 3000 + "\nTraceback (most recent call last):\n  File \"main_ppo.py\", line 9, in <module>\n"
           "ValueError: boom\n")
    curve = {"critic/score/mean": [0.1, 0.2]}
    synth.log_run(client, exp, "ok-run", tags=synth.rlx_tags("grpo"), metrics=curve)
    synth.log_run(client, exp, "old-fail", tags={**synth.rlx_tags("grpo", "FAILED"), "rlx.job_message": raw},
                  metrics=curve, status="FAILED")
    synth.log_run(client, exp, "stopped-run", metrics=curve, status="KILLED",
                  tags={**synth.rlx_tags("gspo", "STOPPED"), "rlx.job_message": "Job was intentionally stopped."})
    code, out, err = rlx_cli("compare", "runs", "--tracking-uri", uri, "-e", "ends")
    assert code == 0, err
    notes = [line for line in out.splitlines() if line.startswith("note: ") and "logged no params" not in line
             and "not logged" not in line]
    assert sorted(notes) == [
        'note: old-fail failed: exit code 1 — last lines: Traceback (most recent call last): | File "main_ppo.py", '
        "line 9, in <module> | ValueError: boom",
        "note: stopped-run stopped: Job was intentionally stopped.",
    ]
