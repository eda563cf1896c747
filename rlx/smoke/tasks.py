"""Synthetic tasks with a verifiable reward, stored in verl's dataset format and scored through verl's reward signature.

| task      | prompt  | answer                                   | reward                                         |
|-----------|---------|------------------------------------------|------------------------------------------------|
| `copy`    | `123=`  | `123`                                    | fraction of answer positions right (default)   |
| `reverse` | `123=`  | `321`                                    | same; harder, so algorithms' curves differ     |
| `code`    | `123=`  | `123` with one `#` ("call code") anywhere | fraction right, halved when no `#` is used     |

The `code` task gives ASPO what it shapes: `compute_score` returns a dict (verl turns the extra keys into
`reward_extra_info`) with `used_code`, `first_code_pos` (the token index of the first `#`: one character is one token),
`correct` (every position right) and `acc` (the fraction of positions right). The position of `#` does not change the reward, so with GRPO it drifts freely; ASPO's advantage
bias pulls it earlier.

Rows follow verl's RL dataset schema (`verl/utils/dataset/rl_dataset.py`): `data_source`, `prompt` (a chat list),
`ability`, `reward_model` (`style`, `ground_truth`) and `extra_info`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CODE_MARK = "#"
DATA_SOURCE_PREFIX = "rlx_smoke/"


def code_markers(solution_str: str) -> dict[str, Any]:
    """`used_code` and `first_code_pos` (token index of the first code marker, -1 when unused) of a response."""
    pos = solution_str.find(CODE_MARK)
    return {"used_code": pos >= 0, "first_code_pos": pos}


def _fraction_right(answer: str, ground_truth: str) -> float:
    return sum(a == b for a, b in zip(answer, ground_truth, strict=False)) / len(ground_truth)


def compute_score(data_source: str, solution_str: str, ground_truth: str, extra_info: dict | None = None) -> dict:
    """verl's reward signature for the smoke tasks: a dict with `score` and extras (`acc`, code markers).

    `data_source` is `rlx_smoke/<task>`; the `code` task ignores code markers in the answer and halves the score of
    answers that never call code.
    """
    task = data_source.removeprefix(DATA_SOURCE_PREFIX)
    markers = code_markers(solution_str)
    if task == "code":
        frac = _fraction_right(solution_str.replace(CODE_MARK, ""), ground_truth)
        score = frac if markers["used_code"] else 0.5 * frac
    elif task in ("copy", "reverse"):
        frac = _fraction_right(solution_str, ground_truth)
        score = frac
    else:
        raise ValueError(f"unknown smoke data_source {data_source!r}")
    # `acc` is what DAPO's group filter reads (algorithm.filter_groups.metric=acc): per-position accuracy, so that a
    # group with partly right answers is not mistaken for a group without signal.
    return {"score": float(score), "acc": float(frac), "correct": frac == 1.0, **markers}


TEACHER_COLUMN = "teacher_response"  # GAD's teacher text in every smoke row (the correct answer, see teacher_response)


@dataclass(frozen=True)
class Task:
    """A smoke task: how prompts and answers look and how long a response may be."""

    name: str
    summary: str
    answer: Callable[[str], str]
    digits: int = 3
    max_response_length: int = 4  # answer + EOS

    @property
    def data_source(self) -> str:
        return DATA_SOURCE_PREFIX + self.name

    @property
    def max_prompt_length(self) -> int:
        return self.digits + 2  # BOS + digits + "="

    def rows(self) -> list[dict[str, Any]]:
        """Every prompt of the task (all digit strings), as verl dataset rows, in a fixed order."""
        out = []
        for i, combo in enumerate(itertools.product("0123456789", repeat=self.digits)):
            digits = "".join(combo)
            out.append(
                {
                    "data_source": self.data_source,
                    "prompt": [{"role": "user", "content": digits + "="}],
                    "ability": "smoke",
                    "reward_model": {"style": "rule", "ground_truth": self.answer(digits)},
                    "extra_info": {"split": "train", "index": i},
                    # GAD's teacher column (its preset's algorithm.rlx.gad.teacher_key); unread by every other algorithm
                    TEACHER_COLUMN: self.answer(digits),
                }
            )
        return out

    def write_parquet(self, path: str | Path) -> Path:
        """Write the dataset as parquet (atomically) and return its path."""
        import io

        import pandas as pd

        from rlx.fsutil import atomic_write_bytes

        buf = io.BytesIO()
        pd.DataFrame(self.rows()).to_parquet(buf, index=False)
        return atomic_write_bytes(path, buf.getvalue())


TASKS: dict[str, Task] = {
    "copy": Task("copy", "copy 3 digits (default; learns in seconds)", answer=lambda d: d),
    "reverse": Task("reverse", "reverse 3 digits (harder; algorithms' curves differ)", answer=lambda d: d[::-1]),
    "code": Task(
        "code",
        "copy 3 digits and call code (#) once; ASPO moves the call earlier",
        answer=lambda d: d,
        max_response_length=5,
    ),
}


def teacher_response(row: dict[str, Any]) -> str:
    """GAD's black-box teacher for a smoke row: the correct answer, always (a fixed teacher whose style, right every
    time and ending at once, a discriminator can learn to recognise). Only text is used, never logits."""
    return str(row["reward_model"]["ground_truth"])


def get_task(name: str) -> Task:
    """The task called `name`, or a ConfigError listing the known ones."""
    from rlx.errors import UsageError, suggestion

    if name not in TASKS:
        raise UsageError(
            f"unknown smoke task {name!r}",
            where="--task",
            hint=suggestion(name, TASKS, fallback="choose one of: " + ", ".join(TASKS)),
        )
    return TASKS[name]


def prompt_text(prompt: Any) -> str:
    """The text the model sees for a verl `prompt` cell: the last user message of the chat list."""
    if isinstance(prompt, str):
        return prompt
    messages = list(prompt)
    users = [m for m in messages if m.get("role") == "user"] or messages
    return str(users[-1]["content"])
