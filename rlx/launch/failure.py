"""One readable line for a job that failed: `failed: exit code 1 — last lines: ... | ValueError: boom`.

Ray's own message for a failed entrypoint is "Job entrypoint command failed with exit code N, last available logs
(truncated to 20,000 chars):" followed by up to 20,000 characters of log (ray/dashboard/modules/job/
job_supervisor.py). Cut to a fixed length, it ends mid-word in the middle of the log. The summary keeps what a
reader acts on: the exit code and the last few non-empty log lines (a Python traceback's last line is the
exception), each shortened at a word boundary. The full tail stays in the run's `rlx/job-log-tail.txt` artifact.
"""

from __future__ import annotations

import re

LAST_LINES = 3
LINE_CHARS = 80  # per log line; the whole summary stays under the 300 characters `rlx train`'s last line shows
_RAY_HEADER = re.compile(
    r"^Job entrypoint command failed with exit code (-?\d+)(?:, last available logs "
    r"\(truncated to [\d,]+ chars\):|\. No logs available\.)\s*$"
)
_EXIT_CODE = re.compile(r"exit code (-?\d+)")


def shorten(text: str, limit: int) -> str:
    """`text` on one line, at most `limit` characters, cut at a word boundary with `…` when it is longer."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space >= limit // 2:  # a word boundary not too far back; else a very long token is cut as it is
        cut = cut[:space]
    return cut.rstrip(" ,;:") + "…"


def failure_summary(
    message: str | None, *, exit_code: int | None = None, logs: str | None = None, n: int = LAST_LINES
) -> str:
    """The one-line summary of a failed job from Ray's `message`, its `driver_exit_code` and the job's log."""
    lines = (message or "").splitlines()
    header = _RAY_HEADER.match(lines[0]) if lines else None
    if exit_code is None:
        found = _EXIT_CODE.search(lines[0]) if lines else None
        exit_code = int(found.group(1)) if found else None
    body = lines[1:] if header else lines  # Ray's header is not a log line
    source = logs.splitlines() if logs and logs.strip() else body
    last = [shorten(line, LINE_CHARS) for line in source if line.strip() and not _RAY_HEADER.match(line)][-n:]
    head = f"failed: exit code {exit_code}" if exit_code is not None else "failed"
    return f"{head} — last lines: " + " | ".join(last) if last else head + " (no log lines)"
