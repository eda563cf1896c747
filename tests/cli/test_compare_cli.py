"""`rlx compare runs` through the real CLI entry point: formats, files, exit codes, error messages."""

from __future__ import annotations

import html
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
    # The gspo run logged the 6 key metrics of the table (reward, length, entropy, clipfrac, ppo_kl, throughput).
    assert "6 line(s) in 6 panel(s)" in err and "wrote " + str(page) + " (6 chart(s))" in err
    code, _, err = cmp("-e", "exp", "--algo", "gspo,grpo", "--plot", str(png), "-f", "json")
    assert "13 line(s) in 6 panel(s)" in err  # verl-run (grpo, derived from its params) logged only the reward
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
    assert f"nothing accepts connections at 127.0.0.1:{port}" in r.stderr and "Traceback" not in r.stderr


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


CRITIC_RUN = {"critic/score/mean": [0.1, 0.3, 0.5], "actor/pg_clipfrac": [0.01, 0.02, 0.01],
              "actor/ppo_kl": [0.001, -0.002, 0.001], "actor/kl_loss": [0.0, 0.01, 0.02],
              "actor/entropy": [1.2, 1.0, 0.9], "response_length/mean": [40, 42, 45],
              "critic/vf_loss": [0.5, 0.3, 0.2], "critic/vf_explained_var": [-0.2, 0.3, 0.6],
              "actor/grad_norm": [1.0, 0.8, 0.7]}


@pytest.fixture(scope="module")
def critic_store(tmp_path_factory):
    """A PPO run (critic, KL loss on) and a GRPO run (neither) with verl's metric names."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path_factory.mktemp('curves') / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("curves")
    synth.log_run(client, exp, "grpo-run", tags=synth.rlx_tags("grpo"),
                  metrics={k: v for k, v in CRITIC_RUN.items() if not k.startswith(("critic/vf", "actor/kl_loss"))})
    synth.log_run(client, exp, "ppo-run", tags=synth.rlx_tags("ppo"), metrics=CRITIC_RUN)
    return uri


def _captions(page: str) -> list[str]:
    import re

    return [html.unescape(c) for c in re.findall(r"<figcaption>(.*?)</figcaption>", page)]


def test_html_draws_one_captioned_chart_per_table_metric(rlx_cli, critic_store, tmp_path):
    """The issue's default curves: reward, pg_clipfrac, ppo_kl, the KL to the reference, entropy, response length and,
    because one run has a critic, vf_loss and vf_explained_var; in the table's column order, each captioned with its
    full name. --metric adds a chart (the reward stays); --only-metric replaces them, in the table too."""
    page = tmp_path / "r.html"
    code, out, err = rlx_cli("compare", "runs", "--tracking-uri", critic_store, "--last", "2", "--html", str(page))
    assert code == 0, err
    head = next(line for line in out.splitlines() if line.startswith("run "))
    labels = head.split()[7:-1:2]  # after `stat`, pairs of label and arrow, then `marks`
    assert labels == ["score", "resp_len", "entropy", "clipfrac", "ppo_kl", "kl_ref", "vf_loss", "vf_ev"]
    default = ["critic/score/mean", "response_length/mean", "actor/entropy", "actor/pg_clipfrac", "actor/ppo_kl",
               "actor/kl_loss", "critic/vf_loss", "critic/vf_explained_var"]
    assert _captions(page.read_text()) == default
    assert page.read_text().count("<img ") == len(default)

    code, _, err = rlx_cli("compare", "runs", "--tracking-uri", critic_store, "--last", "2", "--html", str(page),
                           "--metric", "actor/grad_norm", "--smooth", "0.5")
    assert code == 0, err
    assert _captions(page.read_text()) == [k + " (EMA 0.5)" for k in [*default, "actor/grad_norm"]]

    code, out, err = rlx_cli("compare", "runs", "--tracking-uri", critic_store, "--last", "2", "--html", str(page),
                             "--only-metric", "actor/grad_norm")
    assert code == 0, err
    assert _captions(page.read_text()) == ["actor/grad_norm"]
    head = next(line for line in out.splitlines() if line.startswith("run "))
    assert head.split() == ["run", "algo", "status", "steps", "time", "reward", "stat", "actor/grad_norm", "·",
                            "marks"]
    assert "not logged by any selected run" not in out  # the replaced defaults are not missed


def test_plot_legends_say_run_name_and_algorithm(critic_store):
    from rlx.compare import compare_runs
    from rlx.compare import plot as P

    cmp = compare_runs(experiments=["curves"], tracking_uri=critic_store)
    fig = P.render(cmp, P.default_keys(cmp))
    assert fig.legends["critic/score/mean"] == ["ppo-run (ppo)", "grpo-run (grpo)"]  # newest first, as the table
    assert fig.legends["critic/vf_loss"] == ["ppo-run (ppo)"]
    assert fig.lines == 8 + 5 and fig.empty == []  # ppo-run logged the 8 default metrics, grpo-run 5


def test_config_diff_shows_the_sizes_a_smoke_run_trained_with(rlx_cli, tmp_path):
    """A smoke run resolved from the same preset as a GPU run logs verl's full-size params plus the sizes it trained
    with under rlx/smoke/ (what both smoke engines log). The diff shows the smoke sizes, marked, with the value they
    replaced; the two runs are labelled smoke and gpu."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("kinds")
    verl = {"data/train_batch_size": "512", "actor_rollout_ref/rollout/n": "16", "data/max_response_length": "1024",
            "trainer/total_training_steps": "None", "actor_rollout_ref/actor/clip_ratio_high": "0.28"}
    smoke = {"rlx/smoke/data.train_batch_size": "8", "rlx/smoke/actor_rollout_ref.rollout.n": "8",
             "rlx/smoke/data.max_response_length": "4", "rlx/smoke/trainer.total_training_steps": "3",
             "rlx/smoke/task": "copy"}
    metrics = {"critic/score/mean": [0.1, 0.2, 0.3]}
    synth.log_run(client, exp, "dapo-gpu", params=verl, metrics=metrics, tags={**synth.rlx_tags("dapo"),
                                                                                "rlx.smoke": "false"})
    synth.log_run(client, exp, "dapo-smoke", params={**verl, **smoke}, metrics=metrics,
                  tags={**synth.rlx_tags("dapo"), "rlx.smoke": "true"})
    code, out, err = rlx_cli("compare", "runs", "--tracking-uri", uri, "-e", "kinds")
    assert code == 0, err
    lines = [line.rstrip() for line in out.splitlines()]
    rows = {line.split()[0]: line for line in lines if line.split()[:1] in (["dapo-gpu"], ["dapo-smoke"])}
    assert rows["dapo-smoke"].endswith("smoke run (CPU, smoke sizes)") and rows["dapo-gpu"].endswith("gpu run")
    diff = lines[lines.index(next(x for x in lines if x.startswith("config diff:"))):]
    assert diff[0] == "config diff: 5 key(s) differ, 1 identical"  # clip_ratio_high is the identical one
    cells = [line.split() for line in diff[1:]]
    assert cells[0] == ["key", "dapo-smoke", "dapo-gpu"]  # newest first
    assert ["max_response_length", "4", "1024"] in cells and ["train_batch_size", "8", "512"] in cells
    assert ["[actor_rollout_ref.rollout]"] in cells and ["n", "8", "16"] in cells
    assert ["total_training_steps", "3", "None"] in cells
    assert ["rlx/smoke/task", "copy", "—"] in cells  # rlx's own fact about the smoke run, in the rlx section
    prov = [line.strip() for line in diff if "smoke size" in line]
    assert prov == ["(smoke size: resolved 16)", "(smoke size: resolved 1024)", "(smoke size: resolved 512)",
                    "(smoke size: resolved None)"]

    code, out, _ = rlx_cli("compare", "runs", "--tracking-uri", uri, "-e", "kinds", "-f", "json")
    data = json.loads(out)
    assert {r["name"]: r["kind"] for r in data["runs"]} == {"dapo-smoke": "smoke", "dapo-gpu": "gpu"}
    code, out, _ = rlx_cli("compare", "runs", "--tracking-uri", uri, "-e", "kinds", "-f", "md")
    assert "| `data.train_batch_size` | `8` (smoke size: resolved 512) | `512` |" in out
