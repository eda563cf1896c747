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
