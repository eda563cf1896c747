"""`rlx train --smoke --engine verl`: every ready algorithm through verl 0.9.1's own trainer on CPU (issue 11).

Real everything: `rlx train` in a subprocess submits verl's own launcher (`verl.trainer.main_ppo`, or `rlx.verl_entry`
for the plugin algorithms) as a Ray job; verl's `Tracking` logs into the MLflow run rlx created. One private Ray head
with the resources the verl engine declares serves the whole module (`--address` on loopback), one sqlite store.

Slow by design (marked `verl_engine`): each run is a dozen Ray actors importing torch and verl, about a minute.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from _rlxtest import run_rlx

from rlx.algorithms import ALGORITHMS

pytestmark = [pytest.mark.integration, pytest.mark.verl_engine]

READY = sorted(a.name for a in ALGORITHMS if a.ready)
PLUGIN = {"aepo", "aspo", "gad", "gepo", "vapo"}
CRITIC = {"ppo", "vapo"}
# each plugin algorithm's own diagnostic, logged by rlx's code inside verl's trainer
DIAGNOSTIC = {
    "aepo": "actor/aepo_adv_weight_mean",
    "gepo": "actor/gepo_weight_mean",
    "aspo": "aspo/eligible_ratio",
    "vapo": "vapo/lambda_mean",
}
# GAD: the critic worker trained as the discriminator (Bradley-Terry loss through set_loss_fn), its scores the reward
GAD_METRICS = ("critic/d_loss", "critic/d_acc", "critic/d_teacher_score_mean", "critic/d_student_score_mean",
               "critic/task_score/mean")
VERL_METRICS = ("actor/pg_loss", "critic/score/mean", "timing_s/step", "perf/throughput")


@pytest.fixture(scope="module")
def head():
    from rlx.launch.cluster import LocalHead
    from rlx.verl_cpu.engine import HEAD_CPUS, HEAD_GPUS, HEAD_SYSTEM_ENV

    h = LocalHead(num_cpus=HEAD_CPUS, num_gpus=HEAD_GPUS, system_env=HEAD_SYSTEM_ENV).start()
    try:
        yield h
    finally:
        h.stop()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path_factory.mktemp('verl-engine') / 'mlflow.db'}"
    return uri, MlflowClient(uri)


def train(head, store, cwd, *args, timeout=420, env=None):
    uri, _ = store
    return run_rlx(
        "train",
        "--smoke",
        "--engine",
        "verl",
        "--address",
        head.address,
        "--tracking-uri",
        uri,
        "--format",
        "json",
        *args,
        env={"RAY_AUTH_TOKEN": head.token, **(env or {})},
        cwd=cwd,
        timeout=timeout,
    )


def summary(proc) -> dict:
    """The JSON summary `--format json` prints last (indented, so it starts at a line that is just `{`)."""
    lines = proc.stdout.splitlines()
    starts = [i for i, x in enumerate(lines) if x.startswith("{")]
    assert starts, f"no JSON summary (rc {proc.returncode}):\n{proc.stderr[-4000:]}"
    return json.loads("\n".join(lines[starts[-1] :]))


def history(client, run_id, key):
    return [(m.step, m.value) for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)]


@pytest.mark.parametrize("algo", READY)
def test_every_ready_algorithm_runs_three_steps_through_verl(algo, head, store, tmp_path):
    proc = train(head, store, tmp_path, "--algo", algo, "--steps", "3", "--name", f"verl-{algo}")
    assert proc.returncode == 0, proc.stderr[-6000:]
    s = summary(proc)
    client = store[1]
    run = client.get_run(s["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["rlx.engine"] == "verl"
    assert run.data.tags["rlx.entrypoint"] == ("rlx.verl_entry" if algo in PLUGIN else "verl.trainer.main_ppo")
    wanted = (
        VERL_METRICS
        + (("critic/vf_loss",) if algo in CRITIC else ())
        + ((DIAGNOSTIC[algo],) if algo in DIAGNOSTIC else ())
        + (GAD_METRICS if algo == "gad" else ())
    )
    for key in wanted:
        assert [step for step, _ in history(client, s["run_id"], key)] == [1, 2, 3], key
    if algo == "gad":
        # the student's reward is D's score, not the task's: the copy task scores in [0, 1], D's scores of the
        # student fall below 0 as D learns to rank the teacher higher
        assert min(v for _, v in history(client, s["run_id"], "critic/score/min")) < 0
        task = [v for _, v in history(client, s["run_id"], "critic/task_score/mean")]
        assert all(0.0 <= v <= 1.0 for v in task), task
    # verl logged its own config: the CPU sizes, and the preset's algorithm knobs untouched
    assert run.data.params["trainer/device"] == "cpu"
    assert run.data.params["actor_rollout_ref/rollout/name"] == "rlx_cpu"
    # the rollout's weights are the actor's: log-probs agree to float32 noise
    diff = history(client, s["run_id"], "training/rollout_probs_diff_max")
    assert diff and max(v for _, v in diff) < 1e-3, diff  # measured 1.3e-4 to 1.9e-4 over all 15


def test_weight_sync_negative_control(head, store, tmp_path):
    """Without the sync the rollout samples from the initial weights while the actor moves on: from step 2 the
    rollout and actor log-probs diverge by far more than float noise."""
    proc = train(
        head,
        store,
        tmp_path,
        "--algo",
        "grpo",
        "--steps",
        "4",
        "--name",
        "no-sync",
        env={"RLX_VERL_CPU_NO_SYNC": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    diff = dict(history(store[1], summary(proc)["run_id"], "training/rollout_probs_diff_max"))
    # step 1: both still hold the initial weights; measured 1.5e-4 at step 1, then 2.3e-3 to 3.6e-3 (synced runs
    # stay at 1.3e-4 to 1.9e-4, see above)
    assert diff[1] < 1e-3
    later = max(diff[k] for k in diff if k >= 3)
    assert later > 2e-3 and later > 10 * diff[1], diff


USER_REWARD = """
def compute_score(data_source, solution_str, ground_truth, extra_info=None):
    assert data_source == "my_data", data_source
    return 0.25
"""
FAILING_REWARD = """
def compute_score(data_source, solution_str, ground_truth, extra_info=None):
    raise ValueError("planted reward failure")
"""


def _user_data(path: Path) -> Path:
    import pandas as pd

    rows = [
        {
            "data_source": "my_data",
            "prompt": [{"role": "user", "content": f"Question {i}: " + "why? " * 40}],
            "ability": "qa",
            "reward_model": {"style": "rule", "ground_truth": str(i)},
            "extra_info": {"index": i},
        }
        for i in range(64)
    ]
    pd.DataFrame(rows).to_parquet(path / "train.parquet")
    return path / "train.parquet"


def _experiment(tmp_path: Path, reward: str) -> Path:
    data = _user_data(tmp_path)
    (tmp_path / "my_reward.py").write_text(reward)
    exp = tmp_path / "exp.yaml"
    exp.write_text(f"""algo: grpo
name: my-experiment
data:
  train: {data}
  val: {data}
overrides:
  reward.custom_reward_function.path: {tmp_path / "my_reward.py"}
  reward.custom_reward_function.name: compute_score
""")
    return exp


def test_a_users_own_experiment_runs_with_its_data_and_reward(head, store, tmp_path):
    proc = train(head, store, tmp_path, "-c", str(_experiment(tmp_path, USER_REWARD)), "--steps", "2")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "the experiment's own data" in proc.stderr
    run_id = summary(proc)["run_id"]
    assert [v for _, v in history(store[1], run_id, "critic/score/mean")] == [0.25, 0.25]
    params = store[1].get_run(run_id).data.params
    assert params["data/train_files"].endswith("train.parquet") and "verl-cpu" not in params["data/train_files"]
    assert params["data/max_prompt_length"] == "64"  # prompts of ~200 bytes truncated, not refused


def test_a_failing_reward_ends_the_run_failed_with_the_traceback(head, store, tmp_path):
    proc = train(head, store, tmp_path, "-c", str(_experiment(tmp_path, FAILING_REWARD)), "--steps", "2")
    assert proc.returncode == 4, proc.stderr[-4000:]
    s = summary(proc)
    run = store[1].get_run(s["run_id"])
    assert run.info.status == "FAILED"
    tail = Path(store[1].download_artifacts(s["run_id"], "rlx/job-log-tail.txt", str(tmp_path))).read_text()
    assert "planted reward failure" in tail


# SIGTERM, SIGHUP and SIGKILL of a verl-engine run on its embedded head, every process checked by PID: row 39 of
# tests/reliability/test_verl_engine_faults.py (client-SIGTERM there asserts all this file's SIGTERM test did, and the
# exit code and the run's state; that duplicate cost about 110 s of CI's 90 minutes).


@pytest.mark.skipif(
    os.environ.get("RLX_VERL_LEARNING", "") in ("", "0"),
    reason="not yet robust (issue 11 note): seeded 50-step runs gained +0.12, +0.05; set RLX_VERL_LEARNING=1",
)
@pytest.mark.parametrize("algo", ["grpo"])
def test_grpo_learns_through_verl(algo, head, store, tmp_path):
    """Seeded, 50 steps: verl's trainer raises the copy task's score from ~0 (calibration in docs/verl-engine.md:
    a 40-step run went from 0.004 to 0.125, mean of the first and last 5 steps)."""
    proc = train(head, store, tmp_path, "--algo", algo, "--steps", "50", "--seed", "0", timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    scores = [v for _, v in history(store[1], summary(proc)["run_id"], "critic/score/mean")]
    assert len(scores) == 50
    first, last = sum(scores[:5]) / 5, sum(scores[-5:]) / 5
    assert last >= first + 0.1, scores


def test_engine_flags_are_refused_with_a_hint(tmp_path):
    p = run_rlx("train", "--algo", "grpo", "--engine", "verl", cwd=tmp_path)
    assert p.returncode == 2 and "needs --smoke" in p.stderr and "hint:" in p.stderr
    p = run_rlx("train", "--algo", "grpo", "--smoke", "--engine", "verl", "--local", cwd=tmp_path)
    assert p.returncode == 2 and "--local" in p.stderr
    p = run_rlx(
        "train", "--algo", "grpo", "--smoke", "--engine", "verl", "--address", "http://10.1.2.3:8265", cwd=tmp_path
    )
    assert p.returncode == 2 and "hint:" in p.stderr
