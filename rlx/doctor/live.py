"""`rlx runs doctor` while a run trains: the health line of `rlx train` and `rlx runs logs -f`.

Launch follows a run and calls `apply` on each poll (`rlx.launch.lifecycle.Health`); the CLI passes this class in, so
launch never imports the doctor, a later stage.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rlx.doctor import Verdict
    from rlx.launch.lifecycle import Display, Status


class LiveDoctor:
    """`rlx runs doctor` on a run while it trains: re-judged when its step advances (at most every `every` seconds),
    until the first check fails. Cosmetic like the progress: a store that cannot be read now is tried later."""

    def __init__(self, tracking_uri: str, run_id: str, *, every: float = 5.0) -> None:
        self.tracking_uri, self.run_id, self.every = tracking_uri, run_id, every
        self.fired: Verdict | None = None  # the first failing rlx.doctor.Verdict
        self._step: float | None = None
        self._at = -float("inf")

    def poll(self, step: float | None):
        """The failing verdict, returned once, on the first poll that sees it; None otherwise."""
        if self.fired is not None or step is None or step == self._step or time.monotonic() - self._at < self.every:
            return None
        self._step, self._at = step, time.monotonic()
        try:
            from rlx.doctor import diagnose

            (d,) = diagnose([self.run_id], tracking_uri=self.tracking_uri)
        except Exception:  # noqa: BLE001 - health is advisory while the run goes on
            return None
        self.fired = d.first_failure()
        return self.fired

    def apply(self, status: Status, display: Display | None = None, note: Callable[[str], None] | None = None) -> None:
        """Poll at the status's step; on the first failure put it on the status line and print it once."""
        v = self.poll(status.step)
        if v is None:
            return
        status.health = f"doctor: FAIL {v.code} @ step {v.step}"
        text = f"rlx doctor: FAIL {v.code} {v.title} at step {v.step}: {v.message}\n  hint: {v.hint}"
        if display is not None:
            display.note(text)
        elif note is not None:
            note(text)
