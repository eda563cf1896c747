"""The failed-run summary line, built from Ray's own message format (ray/dashboard/modules/job/job_supervisor.py)."""

from __future__ import annotations

from rlx.launch.failure import failure_summary, shorten

RAY_HEADER = "Job entrypoint command failed with exit code {}, last available logs (truncated to 20,000 chars):"
TRACEBACK = """\
step:1 - critic/score/mean:0.500 - actor/pg_loss:1.000
Traceback (most recent call last):
  File "/app/verl/trainer/main_ppo.py", line 42, in main
    run_ppo(config)
ValueError: train_batch_size (256) must be divisible by ppo_mini_batch_size (48)
"""


def test_ray_failure_reads_as_exit_code_and_last_lines():
    message = RAY_HEADER.format(1) + "\n" + "x" * 19000 + "\n" + TRACEBACK
    assert failure_summary(message, exit_code=1) == (
        'failed: exit code 1 — last lines: File "/app/verl/trainer/main_ppo.py", line 42, in main | run_ppo(config) | '
        "ValueError: train_batch_size (256) must be divisible by ppo_mini_batch_size (48)"
    )
    # the exit code is read from Ray's header when the job info does not carry it
    assert failure_summary(message).startswith("failed: exit code 1 — last lines: ")
    # the job's own log, when rlx could fetch it, is preferred to the copy in Ray's message
    assert failure_summary(message, exit_code=1, logs="a\nb\n\nc\n") == "failed: exit code 1 — last lines: a | b | c"


def test_long_lines_are_cut_at_a_word_boundary_and_the_line_stays_short():
    words = "the quick brown fox jumps over the lazy dog " * 10
    out = failure_summary(RAY_HEADER.format(2) + "\n" + words, exit_code=2)
    kept = out.removeprefix("failed: exit code 2 — last lines: ")
    assert kept.endswith("…") and len(kept) <= 80
    assert words.startswith(kept[:-1] + " ")  # whole words only: the cut falls on a space
    assert len(failure_summary(RAY_HEADER.format(2) + "\n" + (words + "\n") * 5, exit_code=2)) < 300
    assert shorten("a" * 200, 10) == "a" * 9 + "…"  # one long token: cut where it must be


def test_no_logs_and_a_supervisor_error():
    no_logs = "Job entrypoint command failed with exit code 137. No logs available."
    assert failure_summary(no_logs, exit_code=137) == "failed: exit code 137 (no log lines)"
    crash = 'Traceback (most recent call last):\n  File "x.py", line 1\nRuntimeError: runtime env setup failed'
    assert failure_summary(crash) == (
        'failed — last lines: Traceback (most recent call last): | File "x.py", line 1 | '
        "RuntimeError: runtime env setup failed"
    )
    assert failure_summary(None) == "failed (no log lines)"


def test_train_ends_with_the_summary_as_its_error_line(capsys, monkeypatch):
    from rlx.launch import prepare
    from rlx.launch.records import RunRecord, State
    from rlx.launch.run import _report_end
    from rlx.resolve import resolve

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    plan = prepare(
        resolve("grpo"),
        None,
        smoke=True,
        local=False,
        task="fail",
        steps=1,
        seed=0,
        address="http://10.1.2.3:8265",
        detach=True,
        tracking_uri="http://mlflow:5000",
        format="text",
    )
    summary = failure_summary(RAY_HEADER.format(3) + "\nstep:1\ntestjob: failing on purpose (task=fail)", exit_code=3)
    record = RunRecord(
        run_id="abc123",
        submission_id="rlx-abc123",
        experiment="rlx",
        experiment_id="1",
        tracking_uri="http://mlflow:5000",
        address=plan.address,
        embedded_head=False,
        state=State.FAILED,
        message=summary,
    )
    assert _report_end(plan, record, 4) == 4
    assert capsys.readouterr().err.splitlines()[0] == (
        "error: job rlx-abc123 failed: exit code 3 — last lines: step:1 | testjob: failing on purpose (task=fail)"
    )
